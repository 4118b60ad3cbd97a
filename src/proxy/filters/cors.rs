//! `envoy.filters.http.cors`: cross-origin requests as Envoy's CORS filter answers them, with
//! the policies Switchyard writes per route (a URL map's corsPolicy). A preflight (OPTIONS
//! with a non-empty Origin and Access-Control-Request-Method) from an allowed origin is
//! answered here, 200 with the policy's Access-Control-* headers; one from another origin
//! goes on to the backend. An actual request from an allowed origin gets
//! Access-Control-Allow-Origin (and credentials, exposed headers) on its answer. Each setting
//! is the route's, else the virtual host's, field by field, as Envoy reads them.
//!
//! Must not: answer or change anything for a request without an Origin, or on a route
//! without a policy.

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy};
use envoy_types::pb::google::protobuf::Any as ProtoAny;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};

use super::super::http::{full, Body};
use super::super::request_body::DownstreamBody;
use super::super::resources::route::{text_match, TextMatch};
use super::super::resources::{Fault, Problem};
use super::super::router::text_matches;
use super::{
    read_config, Decoded, HttpFilter, LevelConfigs, Memo, Registration, RouteFilterConfig,
};

pub const NAME: &str = "envoy.filters.http.cors";

pub const REGISTRATION: Registration = Registration {
    name: NAME,
    build,
    per_route,
    messages: &[
        ("envoy.extensions.filters.http.cors.v3.Cors", &[]),
        (
            "envoy.extensions.filters.http.cors.v3.CorsPolicy",
            POLICY_FIELDS,
        ),
    ],
};

const POLICY_FIELDS: &[&str] = &[
    "allow_origin_string_match.exact",
    "allow_origin_string_match.prefix",
    "allow_origin_string_match.suffix",
    "allow_origin_string_match.contains",
    "allow_origin_string_match.safe_regex.regex",
    "allow_origin_string_match.safe_regex.google_re2",
    "allow_origin_string_match.ignore_case",
    "allow_methods",
    "allow_headers",
    "expose_headers",
    "max_age",
    "allow_credentials",
];

const ALLOW_ORIGIN: HeaderName = HeaderName::from_static("access-control-allow-origin");
const ALLOW_CREDENTIALS: HeaderName = HeaderName::from_static("access-control-allow-credentials");
const ALLOW_METHODS: HeaderName = HeaderName::from_static("access-control-allow-methods");
const ALLOW_HEADERS: HeaderName = HeaderName::from_static("access-control-allow-headers");
const MAX_AGE: HeaderName = HeaderName::from_static("access-control-max-age");
const EXPOSE_HEADERS: HeaderName = HeaderName::from_static("access-control-expose-headers");
const REQUEST_METHOD: &str = "access-control-request-method";
const REQUEST_HEADERS: &str = "access-control-request-headers";

/// One level's CORS policy; empty texts and `None` leave the setting to the next level.
#[derive(Debug)]
pub struct Policy {
    origins: Vec<(TextMatch, bool)>,
    allow_methods: String,
    allow_headers: String,
    expose_headers: String,
    max_age: String,
    allow_credentials: Option<bool>,
}

#[derive(Debug)]
struct CorsFilter;

fn build(config: &ProtoAny) -> Result<Arc<dyn HttpFilter>, Fault> {
    read_config::<Cors>(NAME, config, &[])?;
    Ok(Arc::new(CorsFilter))
}

fn per_route(config: &ProtoAny) -> Result<RouteFilterConfig, Fault> {
    let policy: CorsPolicy = read_config(NAME, config, POLICY_FIELDS)?;
    let origins = policy
        .allow_origin_string_match
        .iter()
        .enumerate()
        .map(|(index, matcher)| {
            text_match(matcher)
                .map_err(|p| Fault::at(format!("allow_origin_string_match[{index}]"), p))
        })
        .collect::<Result<_, _>>()?;
    for (field, value) in [
        ("allow_methods", &policy.allow_methods),
        ("allow_headers", &policy.allow_headers),
        ("expose_headers", &policy.expose_headers),
        ("max_age", &policy.max_age),
    ] {
        if HeaderValue::from_str(value).is_err() {
            return Err(Fault::at(
                field,
                Problem::NotValid {
                    value: value.clone(),
                    expected: "a header value",
                },
            ));
        }
    }
    Ok(Arc::new(Policy {
        origins,
        allow_methods: policy.allow_methods,
        allow_headers: policy.allow_headers,
        expose_headers: policy.expose_headers,
        max_age: policy.max_age,
        allow_credentials: policy.allow_credentials.map(|b| b.value),
    }))
}

/// The policies of a request's route and virtual host, read setting by setting.
#[derive(Clone, Copy)]
struct Policies<'c>(LevelConfigs<'c>);

impl<'c> Policies<'c> {
    /// The first level's non-empty text of `field`.
    fn text(self, field: fn(&Policy) -> &str) -> &'c str {
        self.0
            .typed::<Policy>()
            .map(field)
            .find(|text| !text.is_empty())
            .unwrap_or("")
    }

    fn allows_origin(self, origin: &str) -> bool {
        let Some(policy) = self.0.typed::<Policy>().find(|p| !p.origins.is_empty()) else {
            return false;
        };
        policy.origins.iter().any(|(matcher, ignore_case)| {
            text_matches(matcher, *ignore_case, "*") || text_matches(matcher, *ignore_case, origin)
        })
    }

    fn allow_credentials(self) -> bool {
        self.0
            .typed::<Policy>()
            .find_map(|p| p.allow_credentials)
            .unwrap_or(false)
    }
}

/// What a request from an allowed origin gets on its answer.
struct AllowedOrigin {
    origin: HeaderValue,
    credentials: bool,
    expose_headers: Option<HeaderValue>,
}

impl AllowedOrigin {
    fn mark(&self, response: &mut Response<Body>) {
        let headers = response.headers_mut();
        headers.insert(ALLOW_ORIGIN, self.origin.clone());
        if self.credentials {
            headers.insert(ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        if let Some(expose) = &self.expose_headers {
            headers.insert(EXPOSE_HEADERS, expose.clone());
        }
    }
}

/// `value` under `name`, when it is a non-empty header value.
fn set_text(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        if !value.is_empty() {
            headers.insert(name, value);
        }
    }
}

/// A preflight's answer: 200, no body, the policy's Access-Control-* headers; `*` for the
/// methods or headers allows what the request asks for. Not the route's response headers:
/// Envoy encodes it without them.
fn preflight_answer(
    policies: Policies<'_>,
    request: &HeaderMap,
    origin: &HeaderValue,
) -> Response<Body> {
    let mut response = full(StatusCode::OK, "");
    let headers = response.headers_mut();
    headers.insert(ALLOW_ORIGIN, origin.clone());
    let asked = |name: &str| {
        request
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let methods = policies.text(|p| &p.allow_methods);
    let methods = if methods == "*" {
        asked(REQUEST_METHOD)
    } else {
        methods
    };
    set_text(headers, ALLOW_METHODS, methods);
    let allowed_headers = policies.text(|p| &p.allow_headers);
    let allowed_headers = if allowed_headers == "*" {
        asked(REQUEST_HEADERS)
    } else {
        allowed_headers
    };
    set_text(headers, ALLOW_HEADERS, allowed_headers);
    set_text(headers, MAX_AGE, policies.text(|p| &p.max_age));
    response
}

impl HttpFilter for CorsFilter {
    fn decode_headers(
        &self,
        request: &mut Request<DownstreamBody>,
        route: LevelConfigs<'_>,
    ) -> Decoded {
        let policies = Policies(route);
        if policies.0.most_specific::<Policy>().is_none() {
            return Decoded::Continue;
        }
        let Some(origin) = request
            .headers()
            .get(http::header::ORIGIN)
            .filter(|o| !o.is_empty())
        else {
            return Decoded::Continue;
        };
        let allowed = origin
            .to_str()
            .is_ok_and(|origin| policies.allows_origin(origin));
        let preflight = request.method() == Method::OPTIONS
            && request
                .headers()
                .get(REQUEST_METHOD)
                .is_some_and(|m| !m.is_empty());
        if !allowed {
            // A preflight from another origin goes on to the backend, as Envoy forwards
            // preflights that do not match by default; an actual request's answer is left
            // as it is.
            return Decoded::Continue;
        }
        let expose = policies.text(|p| &p.expose_headers);
        let answer = AllowedOrigin {
            origin: origin.clone(),
            credentials: policies.allow_credentials(),
            expose_headers: HeaderValue::from_str(expose).ok().filter(|v| !v.is_empty()),
        };
        if preflight {
            // Envoy's filter encodes its own preflight answer too, so it carries what an
            // actual request's answer would (the exposed headers among them).
            let mut response = preflight_answer(policies, request.headers(), origin);
            answer.mark(&mut response);
            return Decoded::Respond(response);
        }
        Decoded::Remember(Box::new(answer))
    }

    fn encode_headers(&self, response: &mut Response<Body>, memo: &Memo) {
        if let Some(answer) = memo.downcast_ref::<AllowedOrigin>() {
            answer.mark(response);
        }
    }
}
