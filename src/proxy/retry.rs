//! Which requests and answers a route's retry policy retries, as Envoy reads the policy.
//! Pure: a policy and a request or status in, a yes or no out.

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
    use http::Request;

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
