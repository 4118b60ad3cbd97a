//! Session affinity → the hash policies that make a hashing load balancer (ring hash, Maglev)
//! send the same client to the same endpoint. Honoured only for services whose
//! localityLbPolicy hashes; validation warns about the others.

use envoy_types::pb::envoy::config::route::v3::route_action::{
    hash_policy::{ConnectionProperties, Cookie, FilterState, Header, PolicySpecifier},
    HashPolicy,
};
use envoy_types::pb::envoy::r#type::v3 as envoy_type;

use crate::model::{BackendService, LoadBalancingScheme, SessionAffinity};

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
use envoy_types::pb::google::protobuf::Any;

use super::{duration, seconds, to_any};

/// Name of the cookie GENERATED_COOKIE affinity issues: `GCLB` behind the global external
/// schemes, `GCILB` behind the internal ones and Traffic Director, as the cloud names it.
pub fn generated_cookie_name(service: &BackendService) -> &'static str {
    match service.load_balancing_scheme {
        LoadBalancingScheme::External | LoadBalancingScheme::ExternalManaged => "GCLB",
        _ => "GCILB",
    }
}

/// Hashing the header that HEADER_FIELD affinity names.
fn header_policy(service: &BackendService) -> PolicySpecifier {
    PolicySpecifier::Header(Header {
        header_name: service
            .consistent_hash
            .http_header_name
            .clone()
            .unwrap_or_default(),
        ..Default::default()
    })
}

/// Route hash policies for requests to `service`; empty when it has no (honoured) affinity.
pub fn route_hash_policies(service: &BackendService) -> Vec<HashPolicy> {
    if !service.locality_lb_policy.is_consistent_hash() {
        return Vec::new();
    }
    let policy = match service.session_affinity {
        SessionAffinity::None => return Vec::new(),
        SessionAffinity::ClientIp => {
            PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: true })
        }
        // A ttl (0 = session cookie) makes Envoy issue the cookie when the request lacks it.
        SessionAffinity::GeneratedCookie => PolicySpecifier::Cookie(Cookie {
            name: generated_cookie_name(service).to_string(),
            ttl: Some(seconds(u64::from(service.affinity_cookie_ttl_sec))),
            path: "/".to_string(),
            ..Default::default()
        }),
        SessionAffinity::HeaderField => header_policy(service),
        SessionAffinity::HttpCookie => {
            let cookie = service.consistent_hash.http_cookie.clone();
            let cookie = cookie.unwrap_or_else(|| crate::model::HttpCookie {
                name: String::new(),
                path: None,
                ttl: None,
            });
            PolicySpecifier::Cookie(Cookie {
                name: cookie.name,
                ttl: Some(duration(cookie.ttl.unwrap_or_default())),
                path: cookie.path.unwrap_or_else(|| "/".to_string()),
                ..Default::default()
            })
        }
    };
    vec![HashPolicy {
        policy_specifier: Some(policy),
        terminal: false,
    }]
}

/// Filter-state key gRPC fills with a per-channel id: hashing it keeps one channel on one
/// backend, the proxyless analogue of client-IP affinity.
pub const GRPC_CHANNEL_ID: &str = "io.grpc.channel_id";

/// Hash policies for proxyless gRPC clients, which implement header and channel-id hashing
/// with ring hash (cookie affinity is left out; validation says so).
pub fn proxyless_hash_policies(service: &BackendService) -> Vec<HashPolicy> {
    if service.locality_lb_policy != crate::model::LocalityLbPolicy::RingHash {
        return Vec::new();
    }
    let policy = match service.session_affinity {
        SessionAffinity::HeaderField => header_policy(service),
        SessionAffinity::ClientIp => PolicySpecifier::FilterState(FilterState {
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
pub fn sticky_cookie(service: &BackendService) -> Option<envoy_http::Cookie> {
    let cookie = &service.sticky_cookie.as_ref()?.cookie;
    Some(envoy_http::Cookie {
        name: cookie.name.clone(),
        ttl: Some(duration(cookie.ttl.unwrap_or_default())),
        path: cookie.path.clone().unwrap_or_else(|| "/".to_string()),
        ..Default::default()
    })
}

/// The session cookie of a sticky service, or of GENERATED_COOKIE (`GCLB` / `GCILB`) and
/// HTTP_COOKIE affinity.
pub fn session_cookie(service: &BackendService) -> Option<envoy_http::Cookie> {
    if service.sticky_cookie.is_some() {
        return sticky_cookie(service);
    }
    match service.session_affinity {
        SessionAffinity::GeneratedCookie => Some(envoy_http::Cookie {
            name: generated_cookie_name(service).to_string(),
            ttl: Some(seconds(u64::from(service.affinity_cookie_ttl_sec))),
            path: "/".to_string(),
            ..Default::default()
        }),
        SessionAffinity::HttpCookie => {
            let cookie = service.consistent_hash.http_cookie.as_ref()?;
            Some(envoy_http::Cookie {
                name: cookie.name.clone(),
                ttl: Some(duration(cookie.ttl.unwrap_or_default())),
                path: cookie.path.clone().unwrap_or_else(|| "/".to_string()),
                ..Default::default()
            })
        }
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

/// TCP proxy hash policy: CLIENT_IP is the only affinity a TCP service can have.
pub fn tcp_hash_policies(service: &BackendService) -> Vec<envoy_type::HashPolicy> {
    let honoured = service.locality_lb_policy.is_consistent_hash()
        && service.session_affinity == SessionAffinity::ClientIp;
    if !honoured {
        return Vec::new();
    }
    vec![envoy_type::HashPolicy {
        policy_specifier: Some(envoy_type::hash_policy::PolicySpecifier::SourceIp(
            envoy_type::hash_policy::SourceIp {},
        )),
    }]
}
