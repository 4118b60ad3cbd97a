//! A route's `max_stream_duration` as Envoy's connection manager enforces it: the whole stream
//! (request, answer and the answer's body) must end within the limit. Before the answer has
//! begun the client gets Envoy's local reply — 408 while the request is still arriving (an
//! HTTP/1.1 connection then closes), 504 once it is whole, `downstream duration timeout` — and
//! after, the answer's body fails, which resets the stream (HTTP/2) or closes the connection
//! (HTTP/1.1). Must not: choose the limit (the route does) or touch the answer otherwise.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{header, HeaderValue, Response, StatusCode};
use tokio::time::Instant;

use super::http::{full, Body};

/// Envoy's words, byte for byte.
const DURATION_TIMEOUT: &str = "downstream duration timeout";

/// When an answer's body must have been sent, carried in the answer's extensions.
#[derive(Clone, Copy, Debug)]
pub struct StreamDeadline(pub Instant);

/// What the deadline needs to know of the request.
pub struct StreamLimit {
    pub deadline: Instant,
    /// Set once the whole request body has arrived.
    pub request_complete: Arc<AtomicBool>,
    pub http1: bool,
}

/// `answer`, if it begins before the deadline (its body then ends at the deadline); else the
/// local reply. The second value of the answer passes through untouched.
pub async fn bounded<T>(
    limit: StreamLimit,
    answer: impl Future<Output = (Response<Body>, Option<T>)>,
) -> (Response<Body>, Option<T>) {
    tokio::select! {
        (mut response, extra) = answer => {
            // The connection's side (proxy/timeouts.rs's ClientBody) ends the body on time.
            response.extensions_mut().insert(StreamDeadline(limit.deadline));
            (response, extra)
        }
        () = tokio::time::sleep_until(limit.deadline) => (timed_out_reply(&limit), None),
    }
}

/// The local reply of a stream out of time before its answer began.
fn timed_out_reply(limit: &StreamLimit) -> Response<Body> {
    let complete = limit.request_complete.load(Ordering::Acquire);
    let status = match complete {
        true => StatusCode::GATEWAY_TIMEOUT,
        false => StatusCode::REQUEST_TIMEOUT,
    };
    let mut response = full(status, DURATION_TIMEOUT);
    if !complete && limit.http1 {
        // The rest of the request could not be told from the next one.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
