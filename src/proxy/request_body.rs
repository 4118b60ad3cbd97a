//! The request body on its way upstream. The downstream's body is watched, so that a body the
//! client fails to deliver (a chunk that does not parse) is answered as the client's fault and
//! not the backend's, and so that each chunk counts as activity on the request's stream idle
//! clock (proxy/timeouts.rs) when its listener keeps one; and on a route that retries it is kept as it streams, up to Envoy's
//! buffer limit, so that each attempt can send it whole. A request without a body takes none
//! of this: no allocation, nothing kept.
//!
//! Must not: decide whether an attempt is made (proxy/forward.rs and proxy/retry.rs do).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::body_copy::{BodyCopies, CopyBody};
use super::timeouts::StreamClock;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What an upstream request carries.
pub type UpstreamBody = BoxBody<Bytes, BoxError>;

/// How much of a request body Envoy keeps for retries when nothing lowers it: its router keeps
/// up to the listener's buffer limit, whose default (`per_connection_buffer_limit_bytes`) is
/// 1 MiB. A body that outgrows it is sent on by the attempt under way, and never retried.
pub const RETRY_BUFFER_LIMIT_BYTES: usize = 1024 * 1024;

/// Noted on an HTTP/1 connection when the request body it was reading failed to arrive. A body
/// that failed ends its HTTP/1 connection (the next request cannot be found after it), so the
/// mark never outlives its request. HTTP/2 bodies fail only by the client's reset, and the
/// client then reads no answer: they are not watched.
#[derive(Debug, Default)]
pub struct BodyFailure(AtomicBool);

impl BodyFailure {
    fn note(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn happened(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The body of a downstream request, noting on its connection when it fails to arrive, and
/// on its stream clock when it makes progress.
pub struct DownstreamBody {
    body: Incoming,
    failure: Option<Arc<BodyFailure>>,
    clock: Option<Arc<StreamClock>>,
    /// Where the bytes read are counted, for the access log.
    received: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// Set once the whole body has arrived, when someone asked to know.
    complete: Option<Arc<AtomicBool>>,
    /// Copies for mirrored requests, when the route mirrors this one.
    copies: Option<BodyCopies>,
}

impl DownstreamBody {
    /// `failure`: the connection's mark, for a body that can fail while the client waits for
    /// an answer (HTTP/1); None otherwise. `clock`: the request's stream idle clock, if any.
    pub fn new(
        body: Incoming,
        failure: Option<Arc<BodyFailure>>,
        clock: Option<Arc<StreamClock>>,
    ) -> DownstreamBody {
        if let Some(clock) = clock.as_ref().filter(|_| body.is_end_stream()) {
            clock.note_request_complete();
        }
        DownstreamBody {
            body,
            failure,
            clock,
            received: None,
            complete: None,
            copies: None,
        }
    }

    /// A copy of the body as it arrives, for a mirrored request (asked before it is read).
    pub fn copy(&mut self) -> CopyBody {
        self.copies
            .get_or_insert_with(BodyCopies::default)
            .new_copy()
    }

    /// A mark set once the whole request body has arrived (at once for a body-less request).
    pub fn completion(&mut self) -> Arc<AtomicBool> {
        let ended = self.body.is_end_stream();
        self.complete
            .get_or_insert_with(|| Arc::new(AtomicBool::new(ended)))
            .clone()
    }

    /// The same body, counting the bytes read into `received` (when set).
    pub fn counting(mut self, received: Option<Arc<std::sync::atomic::AtomicU64>>) -> Self {
        self.received = received;
        self
    }

    /// The mark this body notes its failure on, to be read once it has gone upstream.
    pub fn failure(&self) -> Option<Arc<BodyFailure>> {
        self.failure.clone()
    }

    /// Whether the request has nothing in its body.
    pub fn is_empty(&self, headers: &HeaderMap) -> bool {
        self.body.is_end_stream()
            || headers
                .get(http::header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() == b"0")
    }
}

impl Body for DownstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(received)) = (&polled, &self.received) {
            let bytes = frame.data_ref().map_or(0, |data| data.len() as u64);
            received.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        }
        let ended = self.body.is_end_stream();
        if let (Poll::Ready(read), Some(copies)) = (&polled, &mut self.copies) {
            copies.forward(read.as_ref());
            if ended {
                // Nothing more will be asked of the body: the copies end here too.
                copies.forward::<hyper::Error>(None);
            }
        }
        if let (Poll::Ready(Some(Err(_))), Some(failure)) = (&polled, &self.failure) {
            failure.note();
        }
        if let (Poll::Ready(read), Some(complete)) = (&polled, &self.complete) {
            if read.is_none() || self.body.is_end_stream() {
                complete.store(true, Ordering::Release);
            }
        }
        if let (Poll::Ready(read), Some(clock)) = (&polled, &self.clock) {
            if matches!(read, Some(Ok(_))) {
                clock.touch();
            }
            if read.is_none() || self.body.is_end_stream() {
                clock.note_request_complete();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The bodies the attempts of one request send.
pub enum AttemptBodies<B = DownstreamBody> {
    /// Nothing in the body: the first attempt sends the downstream's (empty) body, later ones
    /// an empty one.
    Empty(Option<B>),
    /// Sent by one attempt only: no route policy retries it.
    Once(Option<B>),
    /// Kept for the retries of a retrying route.
    Kept(Replay<B>),
}

impl<B> AttemptBodies<B>
where
    B: Body<Data = Bytes> + Unpin + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    /// The bodies for a request whose body is `empty` or not, and whose route may `retry` it.
    pub fn new(body: B, empty: bool, retry: bool) -> AttemptBodies<B> {
        match (empty, retry) {
            (true, _) => AttemptBodies::Empty(Some(body)),
            (false, false) => AttemptBodies::Once(Some(body)),
            (false, true) => AttemptBodies::Kept(Replay::new(body, RETRY_BUFFER_LIMIT_BYTES)),
        }
    }

    /// The body of the next attempt.
    pub fn next_body(&mut self) -> UpstreamBody {
        match self {
            AttemptBodies::Empty(body) | AttemptBodies::Once(body) => match body.take() {
                Some(body) => body.map_err(Into::into).boxed(),
                None => empty(),
            },
            AttemptBodies::Kept(replay) => replay.next_attempt().boxed(),
        }
    }

    /// Whether another attempt could send the whole body again.
    pub fn can_resend(&self) -> bool {
        match self {
            AttemptBodies::Empty(_) => true,
            AttemptBodies::Once(_) => false,
            AttemptBodies::Kept(replay) => replay.can_replay(),
        }
    }
}

pub(super) fn empty() -> UpstreamBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

/// A request body kept as it streams, up to a limit, so that each attempt sends all of it:
/// what is kept first, then the rest as it arrives (kept too). Only the latest attempt reads
/// on; an earlier attempt's body fails from then on, so that the connection still sending it
/// is aborted rather than left to end a truncated request.
pub struct Replay<B>(Arc<Mutex<Kept<B>>>);

struct Kept<B> {
    /// The body still being read; None once it ended or failed.
    source: Option<B>,
    failed: bool,
    chunks: Vec<Bytes>,
    trailers: Option<HeaderMap>,
    size: usize,
    limit: usize,
    /// More than `limit` arrived: nothing is kept, no attempt follows the current one.
    overflowed: bool,
    hint: SizeHint,
    /// The number of the attempt that reads on.
    current: u64,
}

impl<B> Replay<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    pub fn new(source: B, limit: usize) -> Replay<B> {
        Replay(Arc::new(Mutex::new(Kept {
            hint: source.size_hint(),
            source: Some(source),
            failed: false,
            chunks: Vec::new(),
            trailers: None,
            size: 0,
            limit,
            overflowed: false,
            current: 0,
        })))
    }

    /// The body of the next attempt; the previous attempt's body fails from now on.
    pub fn next_attempt(&self) -> AttemptBody<B> {
        let mut kept = lock(&self.0);
        kept.current += 1;
        AttemptBody {
            kept: self.0.clone(),
            attempt: kept.current,
            cursor: Cursor::default(),
        }
    }

    /// Whether another attempt could send the whole body: it has not outgrown the limit, and
    /// the client delivered all it sent so far.
    pub fn can_replay(&self) -> bool {
        let kept = lock(&self.0);
        !kept.overflowed && !kept.failed
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<B> Kept<B> {
    /// Keeps `chunk` unless that takes the body past the limit, which gives up keeping anything.
    /// Returns whether it was kept.
    fn keep(&mut self, chunk: &Bytes) -> bool {
        if self.overflowed {
            return false;
        }
        if self.size + chunk.remaining() > self.limit {
            self.overflowed = true;
            self.chunks = Vec::new();
            self.trailers = None;
            return false;
        }
        self.size += chunk.remaining();
        self.chunks.push(chunk.clone());
        true
    }
}

/// One attempt's copy of a [`Replay`]'s body.
pub struct AttemptBody<B> {
    kept: Arc<Mutex<Kept<B>>>,
    attempt: u64,
    cursor: Cursor,
}

/// How far an attempt has come through the body.
#[derive(Default)]
struct Cursor {
    /// How many of the kept chunks it has sent.
    sent: usize,
    trailers_sent: bool,
}

/// Why an attempt's body stopped: a later attempt took the request body over.
#[derive(Debug)]
struct Superseded;

impl std::fmt::Display for Superseded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a later attempt took the request body over")
    }
}

impl std::error::Error for Superseded {}

/// Why a kept body ends in an error for an attempt that did not see the source fail itself.
#[derive(Debug)]
struct SourceFailed;

impl std::fmt::Display for SourceFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client's request body failed to arrive")
    }
}

impl std::error::Error for SourceFailed {}

type Polled = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

impl<B> Body for AttemptBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Polled {
        let this = self.get_mut();
        let mut kept = lock(&this.kept);
        if kept.current != this.attempt {
            return Poll::Ready(Some(Err(Superseded.into())));
        }
        if let Some(chunk) = kept.chunks.get(this.cursor.sent) {
            this.cursor.sent += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
        }
        this.cursor.read_source(&mut kept, cx)
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.kept).hint
    }
}

impl Cursor {
    /// The end of the body once every kept chunk is sent and the source is done.
    fn after_source<B>(&mut self, kept: &Kept<B>) -> Polled {
        if kept.failed {
            return Poll::Ready(Some(Err(SourceFailed.into())));
        }
        match &kept.trailers {
            Some(trailers) if !self.trailers_sent => {
                self.trailers_sent = true;
                Poll::Ready(Some(Ok(Frame::trailers(trailers.clone()))))
            }
            _ => Poll::Ready(None),
        }
    }

    /// The next frame from the downstream, kept on its way through.
    fn read_source<B>(&mut self, kept: &mut Kept<B>, cx: &mut Context<'_>) -> Polled
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        let Some(source) = kept.source.as_mut() else {
            return self.after_source(kept);
        };
        let frame = match std::task::ready!(Pin::new(source).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(error)) => {
                kept.source = None;
                kept.failed = true;
                return Poll::Ready(Some(Err(error.into())));
            }
            None => {
                kept.source = None;
                return Poll::Ready(None);
            }
        };
        if let Some(chunk) = frame.data_ref() {
            if kept.keep(chunk) {
                self.sent += 1;
            } else {
                // Nothing is kept any more: no later attempt, and nothing left to replay.
                self.sent = 0;
            }
        } else if let Some(trailers) = frame.trailers_ref() {
            self.trailers_sent = true;
            if !kept.overflowed {
                kept.trailers = Some(trailers.clone());
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::convert::Infallible;

    type Polled = Poll<Option<Result<Frame<Bytes>, Infallible>>>;

    /// A body that answers each poll with the next of its scripted answers.
    struct Scripted(VecDeque<Polled>);

    impl Scripted {
        fn new(script: Vec<Option<&'static str>>) -> Scripted {
            Scripted(
                script
                    .into_iter()
                    .map(|step| match step {
                        Some(text) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(text))))),
                        None => Poll::Pending,
                    })
                    .collect(),
            )
        }
    }

    impl Body for Scripted {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Polled {
            self.0.pop_front().unwrap_or(Poll::Ready(None))
        }
    }

    /// What polling `body` until it is pending or ends yields: its data, whether it ended,
    /// and whether it failed.
    fn drain<B: Body<Data = Bytes, Error = BoxError> + Unpin>(
        body: &mut B,
    ) -> (String, bool, bool) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut text = String::new();
        loop {
            match Pin::new(&mut *body).poll_frame(&mut cx) {
                Poll::Pending => return (text, false, false),
                Poll::Ready(None) => return (text, true, false),
                Poll::Ready(Some(Err(_))) => return (text, false, true),
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        text.push_str(std::str::from_utf8(&data).unwrap());
                    }
                }
            }
        }
    }

    #[test]
    fn every_attempt_sends_the_whole_body() {
        let replay = Replay::new(Scripted::new(vec![Some("ab"), Some("cd")]), 1024);
        let mut first = replay.next_attempt();
        assert_eq!(drain(&mut first), ("abcd".into(), true, false));
        assert!(replay.can_replay());
        let mut second = replay.next_attempt();
        assert_eq!(drain(&mut second), ("abcd".into(), true, false));
    }

    #[test]
    fn a_retry_takes_over_a_body_still_arriving() {
        let replay = Replay::new(Scripted::new(vec![Some("ab"), None, Some("cd")]), 1024);
        let mut first = replay.next_attempt();
        assert_eq!(drain(&mut first), ("ab".into(), false, false));
        let mut second = replay.next_attempt();
        // The first attempt's connection is aborted, not left to end a truncated body.
        assert_eq!(drain(&mut first), (String::new(), false, true));
        assert_eq!(drain(&mut second), ("abcd".into(), true, false));
        let mut third = replay.next_attempt();
        assert_eq!(drain(&mut third), ("abcd".into(), true, false));
    }

    #[test]
    fn a_body_past_the_limit_goes_once_and_is_not_kept() {
        let replay = Replay::new(Scripted::new(vec![Some("abc"), Some("def")]), 5);
        let mut first = replay.next_attempt();
        assert_eq!(drain(&mut first), ("abcdef".into(), true, false));
        assert!(!replay.can_replay());
        assert!(lock(&replay.0).chunks.is_empty());

        let at_the_limit = Replay::new(Scripted::new(vec![Some("abc"), Some("de")]), 5);
        drain(&mut at_the_limit.next_attempt());
        assert!(at_the_limit.can_replay());
    }

    #[test]
    fn only_an_empty_or_kept_body_can_be_sent_again() {
        let body = || Scripted::new(vec![Some("ab")]);
        assert!(AttemptBodies::new(body(), true, false).can_resend());
        assert!(!AttemptBodies::new(body(), false, false).can_resend());
        assert!(AttemptBodies::new(body(), false, true).can_resend());
    }
}
