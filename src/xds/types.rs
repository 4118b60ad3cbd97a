//! The resource types Switchyard serves, as an enum that knows their type URLs, the order a
//! push sends them in (clusters before the endpoints they name, listeners before the routes
//! they name), which are full-state in state-of-the-world xDS, and which depend on which.
//! Shared by the server and the sidecar's client.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TypeUrl {
    /// TLS certificates (SDS), named by the listeners that terminate TLS with them.
    Secret,
    Cluster,
    Endpoint,
    Listener,
    Route,
}

impl TypeUrl {
    /// How many types there are, for arrays indexed by type.
    pub const COUNT: usize = 5;

    /// Every type, in push order: add before reference.
    pub const ALL: [TypeUrl; TypeUrl::COUNT] = [
        TypeUrl::Secret,
        TypeUrl::Cluster,
        TypeUrl::Endpoint,
        TypeUrl::Listener,
        TypeUrl::Route,
    ];

    pub fn url(self) -> &'static str {
        match self {
            TypeUrl::Secret => SECRET,
            TypeUrl::Cluster => CLUSTER,
            TypeUrl::Endpoint => ENDPOINT,
            TypeUrl::Listener => LISTENER,
            TypeUrl::Route => ROUTE,
        }
    }

    pub fn from_url(url: &str) -> Option<TypeUrl> {
        TypeUrl::ALL.into_iter().find(|t| t.url() == url)
    }

    /// The message name: `Secret`, `Cluster`, `ClusterLoadAssignment`, `Listener`,
    /// `RouteConfiguration`.
    pub fn short_name(self) -> &'static str {
        short_name(self.url())
    }

    /// Position in push order, for arrays indexed by type.
    pub fn index(self) -> usize {
        self as usize
    }

    /// State-of-the-world responses of this type carry every resource; one left out is
    /// deleted. (Secret, Endpoint and Route responses carry what changed; one left out is
    /// unchanged.)
    pub fn is_full_state(self) -> bool {
        matches!(self, TypeUrl::Cluster | TypeUrl::Listener)
    }

    /// The type whose resources this type's resources name.
    pub fn dependent(self) -> Option<TypeUrl> {
        match self {
            TypeUrl::Cluster => Some(TypeUrl::Endpoint),
            TypeUrl::Listener => Some(TypeUrl::Route),
            _ => None,
        }
    }

    /// Every type whose resources this type's resources name, as a client follows them: a
    /// listener names its routes and, when it terminates TLS, its certificates' Secrets.
    pub fn dependents(self) -> &'static [TypeUrl] {
        match self {
            TypeUrl::Cluster => &[TypeUrl::Endpoint],
            TypeUrl::Listener => &[TypeUrl::Route, TypeUrl::Secret],
            _ => &[],
        }
    }

    /// Whether a changed resource of this type must be followed by its dependent resource,
    /// changed or not: Envoy keeps an updated cluster warming until its endpoints arrive
    /// (an updated listener, by contrast, reuses the routes it already has).
    pub fn warms_dependent(self) -> bool {
        self == TypeUrl::Cluster
    }

    /// Removals of this type wait until the types that reference it were updated: a cluster
    /// goes (and its endpoints with it) only after the routes that named it.
    pub fn removal_waits_for_references(self) -> bool {
        matches!(self, TypeUrl::Cluster | TypeUrl::Endpoint)
    }
}

impl fmt::Display for TypeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// Short name for logs and status: `Cluster`, `ClusterLoadAssignment`, ...
pub fn short_name(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_round_trip_and_order_adds_before_references() {
        for type_url in TypeUrl::ALL {
            assert_eq!(TypeUrl::from_url(type_url.url()), Some(type_url));
        }
        assert_eq!(TypeUrl::from_url("type.googleapis.com/made.up"), None);
        assert!(TypeUrl::Cluster < TypeUrl::Endpoint && TypeUrl::Listener < TypeUrl::Route);
        assert!(TypeUrl::Secret < TypeUrl::Listener);
        assert_eq!(TypeUrl::ALL.len(), TypeUrl::COUNT);
        assert_eq!(TypeUrl::Endpoint.short_name(), "ClusterLoadAssignment");
        assert_eq!(TypeUrl::Cluster.dependent(), Some(TypeUrl::Endpoint));
    }
}
