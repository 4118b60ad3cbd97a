//! `max_requests_per_connection`: an upstream connection of a cluster with that limit carries
//! at most so many requests, then leaves the pool (it closes once its last answer is read),
//! and the next request opens a new one, as Envoy's pools do.
//!
//! This is how HTTP/2 connections (hyper-util's pools) count; HTTP/1.1 connections are kept
//! by proxy/http1_pool.rs, which counts them itself as they start.
//!
//! Each such connection carries a [`RequestBudget`] that hyper's pool hands to every response
//! read on that connection; the answer spends one request of it (one atomic decrement), and
//! the last one poisons the connection (which the request captured), so that the pool drops it
//! instead of reusing it. A cluster without the limit adds nothing to its connections or
//! requests; a limited one pays, per request, the capture (one small allocation) and the
//! decrement. Requests are counted as they are answered, where Envoy counts them as they
//! start: sequential requests see the same connections, but requests in flight at once on
//! one connection (HTTP/2 streams) may take it a little past its budget before it leaves
//! the pool. Must not: pick connections or hold them open.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use http::{Request, Response};
use hyper_util::client::legacy::connect::{capture_connection, CaptureConnection, Connected};

/// What is left of one connection's requests.
#[derive(Clone, Debug)]
pub struct RequestBudget(Arc<AtomicU32>);

/// `connected` with a budget of `limit` requests, when there is a limit.
pub fn attach(connected: Connected, limit: Option<u32>) -> Connected {
    match limit {
        Some(limit) => connected.extra(RequestBudget(Arc::new(AtomicU32::new(limit)))),
        None => connected,
    }
}

/// Asks hyper for the connection that will carry `request`, to take it out of the pool if
/// this is the last request it may carry.
pub fn track<B>(request: &mut Request<B>) -> CaptureConnection {
    capture_connection(request)
}

/// Counts the request `response` answers against the budget of its connection
/// (`connection`): the last one the connection may carry takes it out of the pool.
pub fn spend<B>(response: &Response<B>, connection: &CaptureConnection) {
    let Some(budget) = response.extensions().get::<RequestBudget>() else {
        return;
    };
    if budget.spend_one() {
        if let Some(connected) = connection.connection_metadata().as_ref() {
            connected.poison();
        }
    }
}

impl RequestBudget {
    /// Spends one request; true when it was the last.
    fn spend_one(&self) -> bool {
        self.0.fetch_sub(1, Ordering::Relaxed) == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_on(connected: &Connected) -> Response<()> {
        let mut response = Response::new(());
        connected.get_extras(response.extensions_mut());
        response
    }

    #[test]
    fn the_budget_runs_out_on_the_last_request_it_allows() {
        let connected = attach(Connected::new(), Some(2));
        let budget = |response: Response<()>| {
            response
                .extensions()
                .get::<RequestBudget>()
                .cloned()
                .unwrap()
        };
        assert!(!budget(answer_on(&connected)).spend_one());
        assert!(budget(answer_on(&connected)).spend_one());
    }

    #[test]
    fn a_connection_without_a_limit_carries_no_budget() {
        let connected = attach(Connected::new(), None);
        assert!(answer_on(&connected)
            .extensions()
            .get::<RequestBudget>()
            .is_none());
    }
}
