//! Which requests, answers and failures a route's retry policy retries, as Envoy reads the
//! policy (its router's retry state). Pure: a policy and a request, status or failure in, a
//! yes or no out.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use http::StatusCode;

use super::resources::route::Retry;
use super::router::{self, RequestParts};

/// Whether the request is one the policy retries: with retriable_request_headers, it must
/// match one of them (Switchyard names `:method: GET`).
pub(super) fn retriable(policy: &Retry, parts: &http::request::Parts) -> bool {
    let host = parts.uri.authority().map_or("", |a| a.as_str());
    let request = RequestParts {
        host,
        path: parts.uri.path(),
        query: parts.uri.query(),
        path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        method: parts.method.as_str(),
        headers: &parts.headers,
    };
    policy.only_with.is_empty()
        || policy
            .only_with
            .iter()
            .any(|matcher| router::header_matches(matcher, &request))
}

/// Whether the policy retries anything the sidecar can see: a connection failure or reset,
/// a timed-out attempt, or an answer whose status it names.
pub(super) fn retries_anything(policy: &Retry) -> bool {
    policy.retry_on.iter().any(|r| {
        matches!(
            r.as_str(),
            "connect-failure"
                | "reset"
                | "5xx"
                | "gateway-error"
                | "refused-stream"
                | "reset-before-request"
                | "retriable-4xx"
        )
    })
}

/// Envoy's retry back-off when the route names none: a 25 ms base, ten times that at most.
pub(super) const BACK_OFF_BASE: Duration = Duration::from_millis(25);
pub(super) const BACK_OFF_MAX: Duration = Duration::from_millis(250);

/// The wait before retry number `retry` (1 for the first) as Envoy's jittered exponential
/// back-off draws it from `random`: uniform below (2^n - 1) × base, where n grows with each
/// retry until that product first passes the maximum; never more than the maximum.
pub(super) fn back_off(retry: u32, random: u64) -> Duration {
    let (base, max) = (
        BACK_OFF_BASE.as_millis() as u64,
        BACK_OFF_MAX.as_millis() as u64,
    );
    let mut ceiling = base;
    for step in 2..=retry.min(16) {
        if ceiling > max {
            break;
        }
        ceiling = ((1u64 << step) - 1) * base;
    }
    Duration::from_millis((random % ceiling).min(max))
}

/// A random number for the back-off's jitter (std's per-thread keys, stepped per call).
pub(super) fn jitter() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    hasher.finish()
}

/// How an attempt failed without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// No connection to the endpoint: refused, unreachable or timed out connecting.
    ConnectFailed,
    /// The connection or stream was reset after the request went out; `refused` when an
    /// HTTP/2 backend refused the stream (REFUSED_STREAM) before processing it.
    Reset { refused: bool },
    /// The per-try timeout ran out (Envoy resets the attempt's stream).
    PerTryTimeout,
}

/// Whether a failed attempt is retried under the policy, as Envoy's retry state decides for
/// a reset stream: `reset`, `5xx` and `gateway-error` retry any failure (a reset counts as a
/// 5xx); `connect-failure` and `reset-before-request` only a connection that never came up
/// (nothing was sent); `refused-stream` only a refused stream. `retriable-4xx` and the
/// others are about answers, never about failures.
pub(super) fn retries_failure(policy: &Retry, failure: Failure) -> bool {
    policy
        .retry_on
        .iter()
        .any(|condition| match condition.as_str() {
            "reset" | "5xx" | "gateway-error" => true,
            "connect-failure" | "reset-before-request" => failure == Failure::ConnectFailed,
            "refused-stream" => failure == Failure::Reset { refused: true },
            _ => false,
        })
}

/// Whether an answer with `status` is retried under the policy, as Envoy reads retry_on:
/// `5xx` any 5xx, `gateway-error` 502, 503 and 504, `retriable-4xx` 409.
pub(super) fn retries_status(policy: &Retry, status: StatusCode) -> bool {
    policy
        .retry_on
        .iter()
        .any(|condition| match condition.as_str() {
            "5xx" => status.is_server_error(),
            "gateway-error" => matches!(status.as_u16(), 502..=504),
            "retriable-4xx" => status == StatusCode::CONFLICT,
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_grows_as_envoys_until_it_passes_the_maximum() {
        let ceiling = |retry: u32| back_off(retry, u64::MAX - 1).as_millis() + 1;
        // The largest draw is one below each ceiling: 25, 75, 175, then capped at 250.
        assert_eq!(back_off(1, 24), Duration::from_millis(24));
        assert_eq!(back_off(1, 25), Duration::ZERO);
        assert_eq!(back_off(2, 74), Duration::from_millis(74));
        assert_eq!(back_off(3, 174), Duration::from_millis(174));
        assert_eq!(back_off(4, 300), Duration::from_millis(250));
        assert_eq!(back_off(4, 374), Duration::from_millis(250));
        assert_eq!(
            back_off(4, 375),
            Duration::ZERO,
            "the ceiling stays at 375 from there"
        );
        assert_eq!(back_off(9, 375), Duration::ZERO);
        assert!(ceiling(1) <= 25 && ceiling(9) <= 251);
    }
    use http::Request;

    fn policy(retry_on: &[&str]) -> Retry {
        Retry {
            retry_on: retry_on.iter().map(|c| c.to_string()).collect(),
            num_retries: 1,
            per_try_timeout: None,
            only_with: Vec::new(),
        }
    }

    #[test]
    fn failures_are_retried_only_under_the_conditions_envoy_retries_them() {
        let connect = Failure::ConnectFailed;
        let reset = Failure::Reset { refused: false };
        let refused = Failure::Reset { refused: true };
        let timeout = Failure::PerTryTimeout;
        let retried = |conditions: &[&str]| {
            [connect, reset, refused, timeout].map(|f| retries_failure(&policy(conditions), f))
        };
        assert_eq!(retried(&["retriable-4xx"]), [false; 4]);
        assert_eq!(retried(&["retriable-status-codes"]), [false; 4]);
        assert_eq!(retried(&["connect-failure"]), [true, false, false, false]);
        assert_eq!(
            retried(&["reset-before-request"]),
            [true, false, false, false]
        );
        assert_eq!(retried(&["refused-stream"]), [false, false, true, false]);
        for any in ["reset", "5xx", "gateway-error"] {
            assert_eq!(retried(&[any]), [true; 4], "{any}");
        }
        assert_eq!(
            retried(&["retriable-4xx", "connect-failure"]),
            [true, false, false, false]
        );
    }

    #[test]
    fn only_requests_matching_the_retriable_headers_are_retried() {
        use crate::proxy::resources::route::{HeaderMatch, HeaderTest, Retry, TextMatch};
        let policy = Retry {
            retry_on: vec!["connect-failure".into()],
            num_retries: 2,
            per_try_timeout: None,
            only_with: vec![HeaderMatch {
                name: ":method".into(),
                test: HeaderTest::Text {
                    matcher: TextMatch::Exact("GET".into()),
                    ignore_case: false,
                },
                invert: false,
            }],
        };
        let parts = |method: &str| {
            Request::builder()
                .method(method)
                .uri("/x")
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        assert!(retriable(&policy, &parts("GET")));
        assert!(!retriable(&policy, &parts("DELETE")));
    }
}
