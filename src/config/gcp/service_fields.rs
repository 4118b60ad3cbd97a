//! Backend-service fields of the GCP dialect beyond balancing: `circuitBreakers`,
//! `localityLbPolicy` with its list form `localityLbPolicies`, and how session affinity is
//! served on the classic EXTERNAL scheme, which honours CLIENT_IP and GENERATED_COOKIE without
//! a hashing locality policy. Reads and lowers; custom headers are in `custom_headers`.

use std::sync::Arc;

use crate::config::gcp::resources::{LoadBalancingScheme, SessionAffinity};
use crate::config::reader::Fields;
use crate::config::yaml::Node;
use crate::model::{BackendProtocol, BalancingPolicy, CircuitBreakers, Diagnostics, HttpCookie};

use super::fields::classify;

/// `circuitBreakers`: every limit the cloud has, each 1 or more when written.
pub(super) fn circuit_breakers(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> CircuitBreakers {
    let mut fields = Fields::new(node, file, path, diagnostics);
    classify(&mut fields, "CircuitBreakers", diagnostics);
    let mut limit = |key: &'static str, diagnostics: &mut Diagnostics| {
        fields
            .integer(key, 1, i64::from(u32::MAX), diagnostics)
            .map(|value| value as u32)
    };
    let breakers = CircuitBreakers {
        max_connections: limit("maxConnections", diagnostics),
        max_pending_requests: limit("maxPendingRequests", diagnostics),
        max_requests: limit("maxRequests", diagnostics),
        max_requests_per_connection: limit("maxRequestsPerConnection", diagnostics),
        max_retries: limit("maxRetries", diagnostics),
    };
    fields.finish(diagnostics);
    breakers
}

/// The locality policy: the first entry of `localityLbPolicies` when written (the list form
/// overrides `localityLbPolicy`, as in the cloud), else `localityLbPolicy`, else ROUND_ROBIN.
/// The built-in policies are all served, so the first entry is the one every client uses; a
/// `customPolicy` is refused by name.
pub(super) fn locality_lb_policy(
    fields: &mut Fields<'_>,
    diagnostics: &mut Diagnostics,
) -> BalancingPolicy {
    let single = fields.cloud_enum::<BalancingPolicy>("localityLbPolicy", diagnostics);
    let listed = fields.mappings("localityLbPolicies", diagnostics, listed_policy);
    let Some(first) = listed.first().copied() else {
        return single.unwrap_or(BalancingPolicy::RoundRobin);
    };
    if let Some(single) = single.filter(|single| *single != first) {
        diagnostics.warning(
            &fields.loc_of("localityLbPolicy"),
            fields.field_path("localityLbPolicy"),
            format!(
                "{} is overridden by localityLbPolicies, whose first policy {} is served; remove one of the two",
                single.as_str(),
                first.as_str()
            ),
        );
    }
    first
}

/// One entry of `localityLbPolicies`: `{policy: {name: ...}}` with a built-in name.
fn listed_policy(entry: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> Option<BalancingPolicy> {
    classify(
        entry,
        "BackendServiceLocalityLoadBalancingPolicyConfig",
        diagnostics,
    );
    let policy = entry.mapping("policy", diagnostics, |policy, diagnostics| {
        let name = policy.cloud_enum::<BalancingPolicy>("name", diagnostics);
        policy.require("name", diagnostics);
        name
    });
    if policy.is_none() && entry.get("policy").is_none() && entry.get("customPolicy").is_none() {
        diagnostics.error(
            &entry.loc(),
            entry.path.clone(),
            "an entry of localityLbPolicies needs `policy: {name: ...}` naming a built-in policy",
        );
    }
    policy
}

/// How affinity is served on the classic EXTERNAL scheme, which keeps a client on its
/// endpoint without the hashing locality policy the Envoy-based schemes need: CLIENT_IP
/// hashes the client address with MAGLEV; GENERATED_COOKIE issues `GCLB` naming the endpoint
/// that served (a session cookie at ttl 0), so the first request is still balanced as
/// written. Only when no locality policy was written: a written one is served as written.
pub(super) struct ExternalAffinity {
    pub policy: BalancingPolicy,
    pub sticky_cookie: Option<HttpCookie>,
}

pub(super) fn external_affinity(
    scheme: LoadBalancingScheme,
    affinity: SessionAffinity,
    cookie_ttl_sec: u32,
    policy: BalancingPolicy,
    policy_written: bool,
) -> ExternalAffinity {
    let classic = scheme == LoadBalancingScheme::External && !policy_written;
    match affinity {
        SessionAffinity::ClientIp if classic && !policy.is_consistent_hash() => ExternalAffinity {
            policy: BalancingPolicy::Maglev,
            sticky_cookie: None,
        },
        SessionAffinity::GeneratedCookie if classic && !policy.is_consistent_hash() => {
            ExternalAffinity {
                policy,
                sticky_cookie: Some(HttpCookie {
                    name: "GCLB".to_string(),
                    path: Some("/".to_string()),
                    ttl: (cookie_ttl_sec > 0)
                        .then(|| std::time::Duration::from_secs(u64::from(cookie_ttl_sec))),
                }),
            }
        }
        _ => ExternalAffinity {
            policy,
            sticky_cookie: None,
        },
    }
}

/// A note saying how affinity on the classic EXTERNAL scheme is served, when it is lowered.
pub(super) fn note_served_affinity(
    fields: &Fields<'_>,
    served: &ExternalAffinity,
    affinity: SessionAffinity,
    diagnostics: &mut Diagnostics,
) {
    let how = match (affinity, &served.sticky_cookie) {
        (SessionAffinity::GeneratedCookie, Some(_)) => {
            "the proxy issues the GCLB cookie naming the endpoint that served, and requests \
             carrying it return there"
        }
        (SessionAffinity::ClientIp, _) if served.policy == BalancingPolicy::Maglev => {
            "endpoints are chosen by a MAGLEV hash of the client's address"
        }
        _ => return,
    };
    diagnostics.note(
        &fields.loc_of("sessionAffinity"),
        fields.field_path("sessionAffinity"),
        format!(
            "{} on the EXTERNAL scheme sticks without a hashing localityLbPolicy: {how}",
            affinity.as_str()
        ),
    );
}

/// maxRequestsPerConnection counts HTTP requests; a TCP or SSL service has none.
pub(super) fn check_per_connection_limit(
    fields: &Fields<'_>,
    breakers: &CircuitBreakers,
    protocol: BackendProtocol,
    diagnostics: &mut Diagnostics,
) {
    if breakers.max_requests_per_connection.is_some() && !protocol.is_http() {
        diagnostics.warning(
            &fields.loc_of("circuitBreakers"),
            format!(
                "{}.maxRequestsPerConnection",
                fields.field_path("circuitBreakers")
            ),
            format!(
                "has no effect on a {} service: its connections carry bytes, not requests",
                protocol.as_str()
            ),
        );
    }
}
