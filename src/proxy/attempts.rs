//! The attempts of one forwarded request, as Envoy's router makes them: an endpoint picked per
//! attempt, the route's timeout over all of them and the per-try timeout over each, another
//! attempt while the retry policy asks for one and the body can be sent again whole, and
//! Envoy's answer when none gets a usable response. A request body the client fails to deliver
//! is answered as Envoy's connection manager answers it (400), not blamed on the backend.
//!
//! Must not: change the request (proxy/forward.rs prepared it) or the backend's answer.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{Request, Response, StatusCode, Uri};

use super::access_log_http::{flagged, reached};
use super::balancer::Host;
use super::circuit_breakers::RetryPlace;
use super::config::ClusterEntry;
use super::http::{
    authority_from_host, full, Body, ResponseBody, UpstreamClient, Upstreams,
    MAX_RESPONSE_HEADERS_BYTES,
};
use super::load_stats::Ended;
use super::outlier::Reported;
use super::override_host::{self, OverrideHost, UpstreamHost};
use super::request_body::{AttemptBodies, BodyFailure, UpstreamBody};
use super::resources::route::Retry;
use super::retry::{self, retries_failure, retries_status, Failure};
use super::stats::STATS;

/// What one request's attempts share.
pub(super) struct Attempts<'a> {
    pub entry: &'a ClusterEntry,
    /// The hash that picks the endpoint, if the route hashes.
    pub hash: Option<u64>,
    /// For an ORIGINAL_DST cluster: where the client was going (the host of every attempt).
    pub destination: Option<std::net::SocketAddr>,
    /// The upstream pools: an attempt takes the one for its cluster and endpoint.
    pub upstreams: &'a Upstreams,
    /// The retry policy, when it applies to this request.
    pub retry: Option<&'a Retry>,
    /// When the route's timeout runs out.
    pub deadline: Option<tokio::time::Instant>,
    /// Where the downstream notes that the request body failed to arrive.
    pub body_failure: Option<Arc<BodyFailure>>,
    /// The access log wants the endpoint that answered (only then is it noted).
    pub note_endpoint: bool,
}

/// How one attempt ended. Not boxed: the answer is by far the most common outcome, and boxing
/// it would cost an allocation per request to spare the other outcomes' size.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Answered(Response<ResponseBody>),
    /// The per-try timeout ran out (the route's may have too).
    TimedOut,
    /// No answer: the connection failed or was reset.
    Unanswered(Failure),
    /// No answer because the client's request body failed to arrive.
    BodyFailed,
    /// Turned away by the cluster's circuit breakers.
    Overflow,
}

const UNANSWERED: &str = "upstream connect error or disconnect/reset before headers\n";

impl Attempts<'_> {
    /// The backend's answer, or the local answer Envoy gives when there is none to pass on.
    /// `parts` is the request as it goes upstream, but for its target (each attempt's
    /// endpoint) and body: each attempt but the last sends a copy, the last sends it.
    pub async fn run(
        &self,
        mut parts: http::request::Parts,
        bodies: &mut AttemptBodies,
    ) -> Result<Response<ResponseBody>, Response<Body>> {
        let attempts = self.retry.map_or(1, |policy| policy.num_retries + 1);
        // A retry's place among the cluster's `max_retries`, held while it backs off.
        let mut retry_place = None;
        for attempt in 1..=attempts {
            if let Some(place) = retry_place.take() {
                self.back_off(attempt - 1).await;
                drop(place);
            }
            let wanted = parts.extensions.get::<OverrideHost>();
            let asked_for_host = wanted.is_some();
            let Some(host) = self.choose_host(wanted) else {
                // Envoy's words, byte for byte.
                let answer = full(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream");
                return Err(flagged(answer, "UH"));
            };
            let Some(uri) = upstream_uri(&parts.uri, &host) else {
                return Err(full(StatusCode::BAD_REQUEST, "bad request target\n"));
            };
            let client = self.upstreams.client_for(
                &self.entry.cluster,
                super::upstream_tls::request_host(&parts),
                &host,
            );
            let body = bodies.next_body();
            // Sent in place, the request comes back for the next attempt: no copy needed.
            let in_place = attempt < attempts && client.sends_in_place(&parts, &body);
            let had_host = parts.headers.contains_key(http::header::HOST);
            let sent = match attempt == attempts || in_place {
                true => std::mem::replace(&mut parts, Request::new(()).into_parts().0),
                false => parts.clone(),
            };
            let mut upstream = Request::from_parts(sent, body);
            *upstream.uri_mut() = uri;
            // The cluster's protocol, whatever the client spoke (an HTTP/2 client, over TLS by
            // ALPN or in clear, may reach an HTTP/1.1 backend).
            *upstream.version_mut() = match self.entry.cluster.http2 {
                true => http::Version::HTTP_2,
                false => http::Version::HTTP_11,
            };
            if self.entry.cluster.http2 {
                authority_from_host(&mut upstream, self.entry.cluster.tls.is_some());
            }
            // Lent, not moved, to the attempt: its futures hold a pointer, not a copy each.
            let outcome = self.attempt(&host, &client, &mut upstream).await;
            if in_place {
                parts = upstream.into_parts().0;
                if !had_host {
                    // The pool gave it this endpoint's name; the next may go elsewhere.
                    parts.headers.remove(http::header::HOST);
                }
            }
            // Asked after the attempt: the body may have outgrown what is kept meanwhile.
            let may_retry = attempt < attempts && bodies.can_resend();
            match outcome {
                Outcome::Answered(response)
                    if may_retry
                        && self.retries(&response)
                        && self.take_retry(&mut retry_place) =>
                {
                    STATS.upstream_failures.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Answered(response)
                    if header_block_size(response.headers()) > MAX_RESPONSE_HEADERS_BYTES =>
                {
                    // As Envoy answers a backend whose headers pass its limit.
                    STATS.upstream_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(full(
                        StatusCode::BAD_GATEWAY,
                        "upstream response headers too large\n",
                    ));
                }
                Outcome::Answered(mut response) => {
                    if asked_for_host {
                        // For the filter that asked (only then: this allocates).
                        response.extensions_mut().insert(UpstreamHost(host.address));
                    }
                    return Ok(self.noted(response, &host));
                }
                // Envoy's connection manager refuses a body it cannot decode, in its words.
                Outcome::BodyFailed => return Err(full(StatusCode::BAD_REQUEST, "Bad Request")),
                Outcome::Overflow => return Err(overflow_answer()),
                Outcome::TimedOut
                    if !may_retry
                        || self.route_timed_out()
                        || !self.retries_failure(Failure::PerTryTimeout)
                        || !self.take_retry(&mut retry_place) =>
                {
                    // Envoy's words, byte for byte: no newline.
                    let answer = full(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout");
                    return Err(flagged(self.noted(answer, &host), "UT"));
                }
                Outcome::Unanswered(failure)
                    if !may_retry
                        || !self.retries_failure(failure)
                        || !self.take_retry(&mut retry_place) =>
                {
                    let answer = full(StatusCode::SERVICE_UNAVAILABLE, UNANSWERED);
                    let answer = self.noted(answer, &host);
                    return Err(flagged(answer, failure_flag(failure)));
                }
                Outcome::TimedOut | Outcome::Unanswered(_) => {}
            }
        }
        // Not reached: the last attempt returns whatever its outcome.
        Err(full(StatusCode::SERVICE_UNAVAILABLE, UNANSWERED))
    }

    /// The host of the next attempt: an ORIGINAL_DST cluster's for the destination, else the
    /// balancer's pick (honouring an override host).
    fn choose_host(&self, wanted: Option<&OverrideHost>) -> Option<Arc<Host>> {
        match (&self.entry.original_dst, self.destination) {
            (Some(hosts), Some(destination)) => {
                Some(hosts.host_for(destination, std::time::Instant::now()))
            }
            _ => override_host::choose(&self.entry.balancer, wanted, self.hash),
        }
    }

    /// One attempt to `host`, bounded by the route's deadline and the per-try timeout, counted
    /// in the load of the host's locality.
    async fn attempt(
        &self,
        host: &Host,
        client: &UpstreamClient,
        upstream: &mut Request<UpstreamBody>,
    ) -> Outcome {
        let issued = host.load.issue();
        let outcome = self.attempt_uncounted(host, client, upstream).await;
        issued.end(match &outcome {
            Outcome::Answered(response) => Ended::of_status(response.status()),
            Outcome::TimedOut | Outcome::Unanswered(_) => Ended::Error,
            Outcome::BodyFailed | Outcome::Overflow => Ended::Uncounted,
        });
        self.report_outlier(host, &outcome);
        outcome
    }

    /// Tells the cluster's outlier detector how the attempt to `host` went (a body the
    /// client failed to send, or the circuit breakers turning the attempt away, is not the
    /// endpoint's doing).
    fn report_outlier(&self, host: &Host, outcome: &Outcome) {
        let Some(detector) = &self.entry.outliers else {
            return;
        };
        let result = match outcome {
            Outcome::Answered(response) => Reported::Status(response.status().as_u16()),
            Outcome::TimedOut => Reported::TimedOut,
            Outcome::Unanswered(_) => Reported::Unanswered,
            Outcome::BodyFailed | Outcome::Overflow => return,
        };
        detector.report(host.address, result, std::time::Instant::now());
    }

    async fn attempt_uncounted(
        &self,
        host: &Host,
        client: &UpstreamClient,
        upstream: &mut Request<UpstreamBody>,
    ) -> Outcome {
        // A request waiting for a connection waits within the route's timeouts.
        let admitted = self.entry.breakers.admit(!self.entry.cluster.http2);
        let admitted = match self.try_deadline() {
            Some(limit) => match tokio::time::timeout_at(limit, admitted).await {
                Ok(admitted) => admitted,
                Err(_) => return Outcome::TimedOut,
            },
            None => admitted.await,
        };
        let Ok(_admission) = admitted else {
            return Outcome::Overflow;
        };
        host.active.fetch_add(1, Ordering::Relaxed);
        STATS.upstream_requests.fetch_add(1, Ordering::Relaxed);
        // The pools count their connections' requests themselves.
        let sent = client.request(upstream);
        let result = match self.try_deadline() {
            Some(limit) => tokio::time::timeout_at(limit, sent).await,
            None => Ok(sent.await),
        };
        host.active.fetch_sub(1, Ordering::Relaxed);
        match result {
            Ok(Ok(response)) => Outcome::Answered(response),
            Ok(Err(_)) if self.body_failure.as_ref().is_some_and(|f| f.happened()) => {
                Outcome::BodyFailed
            }
            Ok(Err(error)) => {
                STATS.upstream_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, upstream = %host.address, "upstream request failed");
                Outcome::Unanswered(failure_of(&error))
            }
            Err(_) => {
                STATS.upstream_failures.fetch_add(1, Ordering::Relaxed);
                Outcome::TimedOut
            }
        }
    }

    /// `response`, marked with the endpoint that gave it when the access log asks for it.
    fn noted<B>(&self, response: Response<B>, host: &Host) -> Response<B> {
        match self.note_endpoint {
            true => reached(response, host.address),
            false => response,
        }
    }

    /// When the attempt starting now must have its answer: the route's deadline, or the
    /// per-try timeout from now when that comes first.
    fn try_deadline(&self) -> Option<tokio::time::Instant> {
        let per_try = self
            .retry
            .and_then(|policy| policy.per_try_timeout)
            .map(|timeout| tokio::time::Instant::now() + timeout);
        match (self.deadline, per_try) {
            (Some(deadline), Some(per_try)) => Some(deadline.min(per_try)),
            (deadline, per_try) => deadline.or(per_try),
        }
    }

    fn route_timed_out(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| tokio::time::Instant::now() >= deadline)
    }

    /// Takes a place for a retry into `place`; false (and counted) when the cluster's
    /// `max_retries` are all waiting, as Envoy then gives up retrying.
    fn take_retry<'b>(&'b self, place: &mut Option<RetryPlace<'b>>) -> bool {
        *place = self.entry.breakers.retry();
        place.is_some()
    }

    /// Waits out the back-off before retry number `retry`, within the route's deadline.
    async fn back_off(&self, retry: u32) {
        let wait = tokio::time::Instant::now() + retry::back_off(retry, retry::jitter());
        let until = self.deadline.map_or(wait, |deadline| deadline.min(wait));
        tokio::time::sleep_until(until).await;
    }

    /// Whether the retry policy retries an attempt that failed so.
    fn retries_failure(&self, failure: Failure) -> bool {
        self.retry
            .is_some_and(|policy| retries_failure(policy, failure))
    }

    /// Whether the retry policy retries this answer.
    fn retries(&self, response: &Response<ResponseBody>) -> bool {
        self.retry
            .is_some_and(|policy| retries_status(policy, response.status()))
    }
}

/// Envoy's response flag for an attempt without an answer.
fn failure_flag(failure: Failure) -> &'static str {
    match failure {
        Failure::ConnectFailed => "UF",
        _ => "UR",
    }
}

/// Envoy's answer to a request its circuit breakers turn away, byte for byte.
fn overflow_answer() -> Response<Body> {
    let mut answer = full(
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream connect error or disconnect/reset before headers. reset reason: overflow",
    );
    answer
        .headers_mut()
        .insert("x-envoy-overloaded", http::HeaderValue::from_static("true"));
    answer
}

/// How an attempt without an answer failed: no connection, or a stream reset (refused, when
/// an HTTP/2 backend said REFUSED_STREAM; hyper keeps that reason only in its error's text).
fn failure_of(error: &super::http::UpstreamError) -> Failure {
    if error.is_connect() {
        return Failure::ConnectFailed;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    let mut refused = false;
    while let Some(cause) = source {
        refused |= cause.to_string().contains("refused stream");
        source = cause.source();
    }
    Failure::Reset { refused }
}

/// The request target rewritten to reach `host` by its endpoint name (no port: the name holds
/// each address's own), keeping path and query.
pub(super) fn upstream_uri(uri: &Uri, host: &Host) -> Option<Uri> {
    let mut target = http::uri::Parts::default();
    target.scheme = Some(http::uri::Scheme::HTTP);
    target.authority = Some(host.authority.clone()?);
    target.path_and_query = Some(
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    Uri::from_parts(target).ok()
}

/// The bytes a header block takes on the wire (`name: value\r\n` per header).
fn header_block_size(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}
