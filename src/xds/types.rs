//! Type URLs of the resources Switchyard serves, in the order a push sends them: clusters
//! before the endpoints they name, listeners before the routes they name.

pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// Push order: add before reference.
pub const PUSH_ORDER: [&str; 4] = [CLUSTER, ENDPOINT, LISTENER, ROUTE];

/// Types whose state-of-the-world responses carry every resource (a missing one is deleted).
pub fn is_full_state(type_url: &str) -> bool {
    type_url == CLUSTER || type_url == LISTENER
}

/// The type whose resources `type_url`'s resources name, and which must be answered after a
/// change to them (cluster warming waits for EDS, listener warming for RDS).
pub fn dependent_of(type_url: &str) -> Option<&'static str> {
    match type_url {
        CLUSTER => Some(ENDPOINT),
        LISTENER => Some(ROUTE),
        _ => None,
    }
}

/// Short name for logs and status: `Cluster`, `ClusterLoadAssignment`, ...
pub fn short_name(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}
