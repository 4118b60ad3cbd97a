//! The DNS side of a Cluster of type STRICT_DNS or LOGICAL_DNS: the names its
//! `load_assignment` gives, the address families to look up (`dns_lookup_family`) and when to
//! look again (`dns_refresh_rate`, or the answer's TTL with `respect_dns_ttl`); cluster.rs
//! lists these fields as taken. Pure: the looking up is proxy/dns.rs's.
//!
//! Must not: resolve anything, or build endpoints (proxy/dns.rs turns answers into them).

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{
    cluster::DnsLookupFamily, Cluster as XdsCluster,
};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address::PortSpecifier};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;

use super::{duration, Fault, Problem};

/// What Envoy re-resolves at when the cluster names no `dns_refresh_rate`.
pub const DEFAULT_REFRESH_RATE: Duration = Duration::from_secs(5);

/// How the answers become endpoints, as Envoy's two DNS cluster types do it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsKind {
    /// Every address of every name is an endpoint.
    Strict,
    /// One name, one endpoint: the first address of the latest answer (the others are tried
    /// after it), so that a changed answer moves new connections only.
    Logical,
}

/// Which records to ask for, Envoy's `dns_lookup_family`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupFamily {
    V4Only,
    V6Only,
    /// IPv4, and IPv6 when the name has no IPv4 address.
    V4Preferred,
    /// IPv6, and IPv4 when the name has no IPv6 address (Envoy's default).
    Auto,
    /// Both families, IPv4 first.
    All,
}

/// One name to resolve, and the port its endpoints take.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsTarget {
    pub host: String,
    pub port: u16,
}

/// A cluster whose endpoints come from DNS rather than EDS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsCluster {
    pub kind: DnsKind,
    pub family: LookupFamily,
    pub refresh_rate: Duration,
    /// Look again when the answer's TTL ends rather than at `refresh_rate`.
    pub respect_ttl: bool,
    pub targets: Vec<DnsTarget>,
}

/// The DNS settings of `cluster`, of the `kind` its type says. (`dns_refresh_rate` and
/// `respect_dns_ttl` are deprecated in favour of the DNS cluster extension, but they are what
/// Switchyard sends and Envoy still reads.)
#[allow(deprecated)]
pub(super) fn read(cluster: &XdsCluster, kind: DnsKind) -> Result<DnsCluster, Fault> {
    let family = match DnsLookupFamily::try_from(cluster.dns_lookup_family) {
        Ok(DnsLookupFamily::V4Only) => LookupFamily::V4Only,
        Ok(DnsLookupFamily::V6Only) => LookupFamily::V6Only,
        Ok(DnsLookupFamily::V4Preferred) => LookupFamily::V4Preferred,
        Ok(DnsLookupFamily::Auto) => LookupFamily::Auto,
        Ok(DnsLookupFamily::All) => LookupFamily::All,
        Err(_) => {
            return Err(Fault::at(
                "dns_lookup_family",
                Problem::UnknownCode {
                    field: "dns_lookup_family",
                    value: cluster.dns_lookup_family,
                },
            ))
        }
    };
    let targets = targets(cluster)?;
    if kind == DnsKind::Logical && targets.len() != 1 {
        return Err(Fault::at(
            "load_assignment",
            Problem::NotValid {
                value: format!("{} endpoints", targets.len()),
                expected: "the one endpoint a LOGICAL_DNS cluster resolves",
            },
        ));
    }
    Ok(DnsCluster {
        kind,
        family,
        refresh_rate: cluster
            .dns_refresh_rate
            .as_ref()
            .map(duration)
            .filter(|rate| !rate.is_zero())
            .unwrap_or(DEFAULT_REFRESH_RATE),
        respect_ttl: cluster.respect_dns_ttl,
        targets,
    })
}

/// The names (or addresses) and ports of the cluster's `load_assignment`.
fn targets(cluster: &XdsCluster) -> Result<Vec<DnsTarget>, Fault> {
    let Some(assignment) = &cluster.load_assignment else {
        return Err(Fault::at(
            "load_assignment",
            Problem::Missing {
                what: "a load_assignment naming the hosts to resolve",
            },
        ));
    };
    let mut targets = Vec::new();
    for (locality_index, locality) in assignment.endpoints.iter().enumerate() {
        for (index, lb_endpoint) in locality.lb_endpoints.iter().enumerate() {
            let at = format!(
                "load_assignment.endpoints[{locality_index}].lb_endpoints[{index}].endpoint.address"
            );
            let socket = match &lb_endpoint.host_identifier {
                Some(HostIdentifier::Endpoint(endpoint)) => endpoint
                    .address
                    .as_ref()
                    .and_then(|a| a.address.as_ref())
                    .and_then(|a| match a {
                        address::Address::SocketAddress(socket) => Some(socket),
                        _ => None,
                    }),
                _ => None,
            };
            let Some(socket) = socket else {
                return Err(Fault::at(
                    at,
                    Problem::Missing {
                        what: "a socket address",
                    },
                ));
            };
            let Some(PortSpecifier::PortValue(port)) = socket.port_specifier else {
                return Err(Fault::at(
                    at,
                    Problem::Missing {
                        what: "a port_value",
                    },
                ));
            };
            let port = u16::try_from(port)
                .map_err(|_| Fault::at(&at, Problem::PortOutOfRange { port }))?;
            targets.push(DnsTarget {
                host: socket.address.clone(),
                port,
            });
        }
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        ClusterDiscoveryType, DiscoveryType,
    };
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
    use envoy_types::pb::envoy::config::endpoint::v3::{
        ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
    };
    use prost::Message;

    use crate::proxy::resources::cluster;

    fn dns_cluster(kind: DiscoveryType, hosts: &[&str], family: DnsLookupFamily) -> Vec<u8> {
        let endpoint = |host: &&str| LbEndpoint {
            host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: host.to_string(),
                        port_specifier: Some(PortSpecifier::PortValue(443)),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            ..Default::default()
        };
        XdsCluster {
            name: "web".into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(kind as i32)),
            dns_lookup_family: family as i32,
            load_assignment: Some(ClusterLoadAssignment {
                cluster_name: "web".into(),
                endpoints: vec![LocalityLbEndpoints {
                    lb_endpoints: hosts.iter().map(endpoint).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn a_logical_dns_cluster_resolves_its_one_name_in_its_family() {
        let bytes = dns_cluster(
            DiscoveryType::LogicalDns,
            &["api.example.test"],
            DnsLookupFamily::V6Only,
        );
        let converted = cluster::convert("web", &bytes).unwrap();
        assert_eq!(
            converted.dns,
            Some(DnsCluster {
                kind: DnsKind::Logical,
                family: LookupFamily::V6Only,
                refresh_rate: DEFAULT_REFRESH_RATE,
                respect_ttl: false,
                targets: vec![DnsTarget {
                    host: "api.example.test".into(),
                    port: 443
                }],
            })
        );
        let strict = dns_cluster(DiscoveryType::StrictDns, &["a", "b"], DnsLookupFamily::All);
        let converted = cluster::convert("web", &strict).unwrap().dns.unwrap();
        assert_eq!(
            (converted.kind, converted.targets.len()),
            (DnsKind::Strict, 2)
        );
    }

    #[test]
    fn a_logical_dns_cluster_with_two_names_is_refused() {
        let bytes = dns_cluster(
            DiscoveryType::LogicalDns,
            &["a", "b"],
            DnsLookupFamily::Auto,
        );
        let refused = cluster::convert("web", &bytes).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "Cluster web: load_assignment: `2 endpoints` is not the one endpoint a LOGICAL_DNS \
             cluster resolves"
        );
    }
}
