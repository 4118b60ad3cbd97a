//! Session affinity → the hash policies that make a hashing load balancer (ring hash, Maglev)
//! send the same client to the same endpoint, and the cookies of stateful sessions. Hash
//! policies are honoured only for services whose balancing policy hashes.

use envoy_types::pb::envoy::config::route::v3::route_action::{
    hash_policy::{ConnectionProperties, Cookie, FilterState, Header, PolicySpecifier},
    HashPolicy,
};
use envoy_types::pb::envoy::r#type::v3 as envoy_type;

use crate::model::{Affinity, HttpCookie, Service};

use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::route::v3::FilterConfig;
use envoy_types::pb::envoy::extensions::filters::http::stateful_session::v3::{
    stateful_session_per_route::Override as PerRouteOverride, StatefulSession,
    StatefulSessionPerRoute,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::extensions::http::stateful_session::cookie::v3::CookieBasedSessionState;
use envoy_types::pb::envoy::r#type::http::v3 as envoy_http;
use envoy_types::pb::google::protobuf::{Any, Duration};

use super::{duration, to_any};

/// A cookie as the hash policy and the stateful session filter name it (a ttl of 0 makes a
/// session cookie; Envoy issues the cookie when a request lacks it).
fn cookie_parts(cookie: &HttpCookie) -> (String, Duration, String) {
    (
        cookie.name.clone(),
        duration(cookie.ttl.unwrap_or_default()),
        cookie.path.clone().unwrap_or_else(|| "/".to_string()),
    )
}

/// Route hash policies for requests to `service`; empty when it has no affinity, or a
/// balancing policy that does not hash (validation warns about those).
pub fn route_hash_policies(service: &Service) -> Vec<HashPolicy> {
    if !service.lb_policy.is_consistent_hash() {
        return Vec::new();
    }
    let policy = match &service.affinity {
        Affinity::None => return Vec::new(),
        Affinity::ClientAddress => {
            PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: true })
        }
        Affinity::Cookie(cookie) => {
            let (name, ttl, path) = cookie_parts(cookie);
            PolicySpecifier::Cookie(Cookie {
                name,
                ttl: Some(ttl),
                path,
                ..Default::default()
            })
        }
        Affinity::Header(name) => header_policy(name),
    };
    vec![HashPolicy {
        policy_specifier: Some(policy),
        terminal: false,
    }]
}

/// Hashing a request header's value.
fn header_policy(name: &str) -> PolicySpecifier {
    PolicySpecifier::Header(Header {
        header_name: name.to_string(),
        ..Default::default()
    })
}

/// Filter-state key gRPC fills with a per-channel id: hashing it keeps one channel on one
/// backend, the proxyless analogue of client-IP affinity.
pub const GRPC_CHANNEL_ID: &str = "io.grpc.channel_id";

/// Hash policies for proxyless gRPC clients, which implement header and channel-id hashing
/// with ring hash (cookie affinity is left out; validation says so).
pub fn proxyless_hash_policies(service: &Service) -> Vec<HashPolicy> {
    if service.lb_policy != crate::model::BalancingPolicy::RingHash {
        return Vec::new();
    }
    let policy = match &service.affinity {
        Affinity::Header(name) => header_policy(name),
        Affinity::ClientAddress => PolicySpecifier::FilterState(FilterState {
            key: GRPC_CHANNEL_ID.to_string(),
        }),
        _ => return Vec::new(),
    };
    vec![HashPolicy {
        policy_specifier: Some(policy),
        terminal: false,
    }]
}

/// HTTP filter that keeps a proxyless session on one backend with a cookie (gRFC A55).
pub const STATEFUL_SESSION: &str = "envoy.filters.http.stateful_session";
const COOKIE_SESSION_STATE: &str = "envoy.http.stateful_session.cookie";

/// The cookie of a service whose proxies issue one naming the endpoint that served (under any
/// balancing policy).
pub fn sticky_cookie(service: &Service) -> Option<envoy_http::Cookie> {
    let cookie = &service.sticky_cookie.as_ref()?.cookie;
    Some(session_state_cookie(cookie))
}

fn session_state_cookie(cookie: &HttpCookie) -> envoy_http::Cookie {
    let (name, ttl, path) = cookie_parts(cookie);
    envoy_http::Cookie {
        name,
        ttl: Some(ttl),
        path,
        ..Default::default()
    }
}

/// The session cookie of a sticky service, or of cookie affinity.
pub fn session_cookie(service: &Service) -> Option<envoy_http::Cookie> {
    if service.sticky_cookie.is_some() {
        return sticky_cookie(service);
    }
    match &service.affinity {
        Affinity::Cookie(cookie) => Some(session_state_cookie(cookie)),
        _ => None,
    }
}

/// The HTTP connection manager's stateful-session filter for proxyless clients: optional (a
/// client without it, such as grpc-js, ignores it instead of rejecting the listener) and
/// without a session of its own; routes to cookie-affinity services switch it on.
pub fn stateful_session_filter() -> HttpFilter {
    HttpFilter {
        name: STATEFUL_SESSION.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(to_any(
            &StatefulSession::default(),
        ))),
        is_optional: true,
        ..Default::default()
    }
}

/// Per-route config turning cookie sessions on for one service's routes, wrapped as optional
/// so that a client without the filter ignores it instead of rejecting the routes.
pub fn stateful_session_for_route(cookie: envoy_http::Cookie) -> Any {
    let state = CookieBasedSessionState {
        cookie: Some(cookie),
    };
    let per_route = StatefulSessionPerRoute {
        r#override: Some(PerRouteOverride::StatefulSession(StatefulSession {
            session_state: Some(TypedExtensionConfig {
                name: COOKIE_SESSION_STATE.to_string(),
                typed_config: Some(to_any(&state)),
            }),
            ..Default::default()
        })),
    };
    to_any(&FilterConfig {
        config: Some(to_any(&per_route)),
        is_optional: true,
        ..Default::default()
    })
}

/// TCP proxy hash policy: the client's address is the only affinity a TCP service can have.
pub fn tcp_hash_policies(service: &Service) -> Vec<envoy_type::HashPolicy> {
    let honoured =
        service.lb_policy.is_consistent_hash() && service.affinity == Affinity::ClientAddress;
    if !honoured {
        return Vec::new();
    }
    vec![envoy_type::HashPolicy {
        policy_specifier: Some(envoy_type::hash_policy::PolicySpecifier::SourceIp(
            envoy_type::hash_policy::SourceIp {},
        )),
    }]
}
