//! The endpoint a filter asks the router to use for a request (Envoy's upstream override
//! host, which the stateful session filter sets), and the endpoint that answered, which the
//! filter reads back from the response. Both travel as extensions of the request and the
//! response. Must not: decide which endpoint a session wants (proxy/filters/ does).

use std::net::SocketAddr;
use std::sync::Arc;

use super::balancer::{Balancer, Host};

/// Set on a request by a filter that keeps sessions: the endpoint it asks for, if any. The
/// endpoint that answers is then set on the answer ([`UpstreamHost`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverrideHost {
    /// The endpoint asked for; None when there is none (no session yet, or one naming no
    /// address).
    pub address: Option<SocketAddr>,
    /// An endpoint was asked for and no other will do: without it, the answer is the
    /// cluster's "no healthy upstream".
    pub strict: bool,
}

/// Set on a backend's answer: the endpoint that gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpstreamHost(pub SocketAddr);

/// The endpoint for one attempt: the override when the cluster has it healthy, else (unless
/// strict) the balancer's pick for `hash`.
pub fn choose(
    balancer: &Balancer,
    wanted: Option<&OverrideHost>,
    hash: Option<u64>,
) -> Option<Arc<Host>> {
    let Some(wanted) = wanted else {
        return balancer.pick(hash);
    };
    match wanted.address.and_then(|a| balancer.override_host(a)) {
        Some(host) => Some(host),
        None if wanted.strict => None,
        None => balancer.pick(hash),
    }
}
