//! The HTTP connection manager's clocks, as Envoy keeps them. Per request, the stream idle
//! timeout: nothing received from or sent to the client for that long ends the request with
//! Envoy's local reply (408 `stream timeout` while the request is still arriving, 504 once it
//! is whole) or, once the answer has begun, with a reset. Per connection, the idle timeout
//! (no request open for that long) and the max connection duration, either of which drains
//! the connection as Envoy's drain sequence does: HTTP/1.1 answers carry `connection: close`,
//! HTTP/2 clients get a GOAWAY, and a connection still open after Envoy's drain timeout is
//! closed (at once, when its client never sent a byte).
//!
//! Only listeners that set these timeouts get clocks: without them a request or connection
//! has no timer and allocates nothing more. Must not: route, forward or read the socket.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::headers::append_via;
use super::http::{full, Body};
use super::request_body::BoxError;
use super::resources::listener::Timeouts;
use super::stats::STATS;

/// How long a draining connection stays open for a last request: Envoy's default
/// `drain_timeout` (the connection manager's field, which the sidecar does not take).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Envoy's body of its stream timeout replies.
const STREAM_TIMEOUT: &str = "stream timeout";

/// One request's clock: when something last went between the proxy and the client.
#[derive(Debug)]
pub struct StreamClock {
    timeout: Duration,
    started: Instant,
    /// Microseconds from `started` to the last activity.
    last_activity: AtomicU64,
    request_complete: AtomicBool,
}

impl StreamClock {
    /// A clock for a request that begins now, ending it after `timeout` without activity.
    pub fn start(timeout: Duration) -> Arc<StreamClock> {
        Arc::new(StreamClock {
            timeout,
            started: Instant::now(),
            last_activity: AtomicU64::new(0),
            request_complete: AtomicBool::new(false),
        })
    }

    /// Something was received from or sent to the client.
    pub fn touch(&self) {
        let since = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_activity.fetch_max(since, Ordering::Relaxed);
    }

    /// The client has sent the whole request.
    pub fn note_request_complete(&self) {
        self.request_complete.store(true, Ordering::Relaxed);
    }

    fn deadline(&self) -> Instant {
        let last = Duration::from_micros(self.last_activity.load(Ordering::Relaxed));
        self.started + last + self.timeout
    }

    /// Resolves once the request has been idle for the timeout.
    pub async fn expired(&self) {
        loop {
            let deadline = self.deadline();
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }

    /// Envoy's local reply for a request that idled out before its answer began: 408 while
    /// the request is still arriving (an HTTP/1.1 connection then closes: the rest of the
    /// request could not be told from the next one), 504 once it is whole.
    pub fn timed_out_reply(&self, http1: bool, via: Option<&str>) -> Response<Body> {
        STATS.stream_idle_timeouts.fetch_add(1, Ordering::Relaxed);
        let complete = self.request_complete.load(Ordering::Relaxed);
        let status = if complete {
            StatusCode::GATEWAY_TIMEOUT
        } else {
            StatusCode::REQUEST_TIMEOUT
        };
        STATS.response(status.as_u16());
        let mut response = full(status, STREAM_TIMEOUT);
        if let Some(via) = via {
            append_via(response.headers_mut(), via);
        }
        if !complete && http1 {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Envoy's 408 to a client whose HTTP/1.1 request head stopped arriving: the whole answer as
/// bytes, written on the socket itself (no request was parsed for hyper to answer).
pub fn head_timed_out_reply(via: Option<&str>, now: SystemTime) -> Vec<u8> {
    STATS.stream_idle_timeouts.fetch_add(1, Ordering::Relaxed);
    let via = via.map(|via| format!("via: {via}\r\n")).unwrap_or_default();
    format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\
         date: {}\r\n{via}connection: close\r\n\r\n{STREAM_TIMEOUT}",
        STREAM_TIMEOUT.len(),
        http_date(now)
    )
    .into_bytes()
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`: the Date format of HTTP (RFC 9110 5.6.7).
fn http_date(now: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (days, time) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_date(days);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[month as usize - 1],
        time / 3600,
        time / 60 % 60,
        time % 60
    )
}

/// The (year, month 1–12, day 1–31) of the day `days` after 1970-01-01, in the proleptic
/// Gregorian calendar: counted in 400-year eras of 146,097 days, each year taken to start on
/// March 1st so that the leap day falls last.
pub(super) fn civil_date(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468; // days from 0000-03-01
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// A response body on its way to the client. Each frame sent is activity on the request's
/// clock, and once the request has idled out the body fails, which resets the stream (HTTP/2)
/// or closes the connection (HTTP/1.1), as Envoy resets a stream whose answer had begun. It
/// also holds the request's place among the connection's open streams until it is sent.
pub struct ClientBody {
    inner: Body,
    clock: Option<Arc<StreamClock>>,
    timer: Option<Pin<Box<Sleep>>>,
    /// The route's max_stream_duration, when it has one: the body fails once it passes.
    deadline: Option<Pin<Box<Sleep>>>,
    _open: Option<OpenStream>,
}

impl ClientBody {
    pub fn new(inner: Body, clock: Option<Arc<StreamClock>>, open: Option<OpenStream>) -> Self {
        ClientBody {
            inner,
            clock,
            timer: None,
            deadline: None,
            _open: open,
        }
    }

    /// The body fails at `deadline` if it has not ended by then.
    pub fn ending_by(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline.map(|at| Box::pin(tokio::time::sleep_until(at)));
        self
    }

    fn out_of_time(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready())
    }

    /// Whether the request has idled out: it then arms the timer for its current deadline.
    fn idled_out(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(clock) = &self.clock else {
            return false;
        };
        let deadline = clock.deadline();
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready() && Instant::now() >= clock.deadline()
    }
}

/// The error a response body ends with when its request idled out.
#[derive(Debug)]
struct IdledOut;

impl std::fmt::Display for IdledOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the stream idle timeout ran out while the answer was being sent")
    }
}

impl std::error::Error for IdledOut {}

/// The error a response body ends with when its route's max_stream_duration ran out.
#[derive(Debug)]
struct OutOfTime;

impl std::fmt::Display for OutOfTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the route's max_stream_duration ran out while the answer was being sent")
    }
}

impl std::error::Error for OutOfTime {}

impl HttpBody for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.out_of_time(cx) {
            return Poll::Ready(Some(Err(OutOfTime.into())));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(clock) = &self.clock {
                    clock.touch();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if self.idled_out(cx) => {
                STATS.stream_idle_timeouts.fetch_add(1, Ordering::Relaxed);
                Poll::Ready(Some(Err(IdledOut.into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why a connection drains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DrainReason {
    Idle,
    MaxDuration,
}

/// One connection's clock: its age, its open requests and since when it has had none.
#[derive(Debug)]
pub struct ConnectionClock {
    timeouts: Timeouts,
    accepted: Instant,
    open_streams: AtomicUsize,
    /// Microseconds from `accepted` to when the last open request ended.
    idle_since: AtomicU64,
    /// The client has sent something (Envoy has made the connection's codec).
    client_spoke: AtomicBool,
    /// Cancelled when the connection starts draining.
    pub draining: CancellationToken,
    /// Cancelled when the connection must close: once it has drained for DRAIN_TIMEOUT, or
    /// at once if its client never sent a byte; and when its listener drains.
    pub closing: CancellationToken,
}

impl ConnectionClock {
    /// The clock of a connection accepted now on a listener that drains with `listener`.
    pub fn start(timeouts: Timeouts, listener: &CancellationToken) -> Arc<ConnectionClock> {
        Arc::new(ConnectionClock {
            timeouts,
            accepted: Instant::now(),
            open_streams: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            client_spoke: AtomicBool::new(false),
            draining: CancellationToken::new(),
            closing: listener.child_token(),
        })
    }

    pub fn note_client_spoke(&self) {
        self.client_spoke.store(true, Ordering::Relaxed);
    }

    /// A request begins; it counts as open until the returned mark is dropped.
    pub fn stream_opened(self: &Arc<Self>) -> OpenStream {
        self.open_streams.fetch_add(1, Ordering::AcqRel);
        OpenStream(self.clone())
    }

    fn since_accepted(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Why the connection must drain at `now`, or when to look again.
    fn drain_due(&self, now: Instant) -> Result<DrainReason, Instant> {
        let mut next: Option<Instant> = None;
        if let Some(limit) = self.timeouts.max_connection_duration {
            let at = self.accepted + limit;
            if now >= at {
                return Ok(DrainReason::MaxDuration);
            }
            next = Some(at);
        }
        if let Some(idle) = self.timeouts.connection_idle {
            let at = if self.open_streams.load(Ordering::Acquire) == 0 {
                let since = Duration::from_micros(self.idle_since.load(Ordering::Acquire));
                self.accepted + since + idle
            } else {
                // A request is open: the connection cannot be idle before it ends.
                now + idle
            };
            if now >= at {
                return Ok(DrainReason::Idle);
            }
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        // A clock is made only for a connection with a limit; this is never reached.
        Err(next.unwrap_or(now + Duration::from_secs(3600)))
    }

    /// Watches the connection until it must close (then stays pending): drains it when it has
    /// been idle or lived long enough, and closes it DRAIN_TIMEOUT later.
    pub async fn run(&self) {
        let reason = loop {
            match self.drain_due(Instant::now()) {
                Ok(reason) => break reason,
                Err(at) => tokio::time::sleep_until(at).await,
            }
        };
        let counter = match reason {
            DrainReason::Idle => &STATS.connection_idle_timeouts,
            DrainReason::MaxDuration => &STATS.connection_max_durations,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if self.client_spoke.load(Ordering::Relaxed) {
            self.draining.cancel();
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        }
        self.closing.cancel();
        std::future::pending::<()>().await;
    }
}

/// A request's place among its connection's open streams.
#[derive(Debug)]
pub struct OpenStream(Arc<ConnectionClock>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        let clock = &self.0;
        // The idle time starts before the count says idle, so that no one reads a stale one.
        clock
            .idle_since
            .fetch_max(clock.since_accepted(), Ordering::AcqRel);
        clock.open_streams.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts(idle: Option<u64>, max: Option<u64>) -> Timeouts {
        Timeouts {
            stream_idle: None,
            connection_idle: idle.map(Duration::from_secs),
            max_connection_duration: max.map(Duration::from_secs),
        }
    }

    #[test]
    fn dates_are_written_as_http_writes_them() {
        let at = |seconds: u64| http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds));
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
        assert_eq!(at(4_107_542_399), "Sun, 28 Feb 2100 23:59:59 GMT");
    }

    #[test]
    fn the_head_timeout_reply_is_envoys_408() {
        let reply = head_timed_out_reply(Some("1.1 lb"), SystemTime::UNIX_EPOCH);
        assert_eq!(
            String::from_utf8(reply).unwrap(),
            "HTTP/1.1 408 Request Timeout\r\ncontent-length: 14\r\ncontent-type: text/plain\r\n\
             date: Thu, 01 Jan 1970 00:00:00 GMT\r\nvia: 1.1 lb\r\nconnection: close\r\n\r\n\
             stream timeout"
        );
    }

    #[tokio::test]
    async fn a_connection_drains_when_idle_or_old_enough_whichever_comes_first() {
        let listener = CancellationToken::new();
        let clock = ConnectionClock::start(timeouts(Some(10), Some(60)), &listener);
        let start = clock.accepted;
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        assert_eq!(clock.drain_due(at(5)), Err(at(10)));
        assert_eq!(clock.drain_due(at(10)), Ok(DrainReason::Idle));
        let open = clock.stream_opened();
        assert_eq!(
            clock.drain_due(at(20)),
            Err(at(30)),
            "not idle with a request open"
        );
        clock.idle_since.store(25_000_000, Ordering::Relaxed);
        drop(open);
        let since = Duration::from_micros(clock.idle_since.load(Ordering::Relaxed));
        assert!(since >= Duration::from_secs(25), "{since:?}");
        assert_eq!(
            clock.drain_due(at(30)),
            Err(start + since + Duration::from_secs(10))
        );
        assert_eq!(clock.drain_due(at(60)), Ok(DrainReason::MaxDuration));

        let ageless = ConnectionClock::start(timeouts(None, Some(60)), &listener);
        let _open = ageless.stream_opened();
        assert_eq!(
            ageless.drain_due(ageless.accepted + Duration::from_secs(59)),
            Err(ageless.accepted + Duration::from_secs(60))
        );
        listener.cancel();
        assert!(
            clock.closing.is_cancelled(),
            "a listener's drain closes its connections"
        );
    }

    #[tokio::test]
    async fn an_answer_still_being_sent_at_the_streams_deadline_fails() {
        use http_body_util::BodyExt;
        /// A body whose next frame never comes.
        struct Stalled;
        impl HttpBody for Stalled {
            type Data = Bytes;
            type Error = crate::proxy::request_body::BoxError;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
                Poll::Pending
            }
        }
        let soon = Some(Instant::now() + Duration::from_millis(20));
        let stalled = ClientBody::new(Stalled.boxed(), None, None).ending_by(soon);
        // Bounded, so that a body the deadline does not end fails here instead of hanging.
        let ended = tokio::time::timeout(Duration::from_secs(10), stalled.collect()).await;
        assert!(
            matches!(ended, Ok(Err(_))),
            "the stalled answer did not fail"
        );
        let whole = super::super::http::full(StatusCode::OK, "done").into_body();
        let later = Some(Instant::now() + Duration::from_secs(5));
        let sent = ClientBody::new(whole, None, None).ending_by(later);
        assert_eq!(sent.collect().await.unwrap().to_bytes(), "done");
    }

    #[tokio::test]
    async fn a_request_times_out_only_after_a_whole_timeout_without_activity() {
        let clock = StreamClock::start(Duration::from_secs(10));
        assert_eq!(clock.deadline(), clock.started + Duration::from_secs(10));
        clock.last_activity.store(4_000_000, Ordering::Relaxed);
        assert_eq!(clock.deadline(), clock.started + Duration::from_secs(14));
        clock.touch();
        assert_eq!(
            clock.deadline(),
            clock.started + Duration::from_secs(14),
            "activity never moves the deadline back"
        );
        assert_eq!(
            clock.timed_out_reply(true, None).status(),
            StatusCode::REQUEST_TIMEOUT
        );
        clock.note_request_complete();
        let reply = clock.timed_out_reply(true, Some("1.1 lb"));
        assert_eq!(reply.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(reply.headers()["via"], "1.1 lb");
        assert!(!reply.headers().contains_key("connection"));
    }
}
