//! Services whose endpoint group is a destination on the internet by name → clusters that
//! resolve the name themselves (Envoy's LOGICAL_DNS: one name, re-resolved, connections to its current
//! address) instead of taking endpoints over EDS. Pure.

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, DnsLookupFamily,
};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};

use crate::model::{AddressSelection, Members, Model, Service};

use super::endpoints::port_of;
use super::listeners::socket_address_named;

/// The name and port `service` reaches, when its group is an internet destination by name.
pub fn fqdn_target<'m>(model: &'m Model, service: &Service) -> Option<(&'m str, u16)> {
    let backend = service.backends.first()?;
    let group = model.endpoint_groups.get(&backend.group.name)?;
    if group.members != Members::InternetName {
        return None;
    }
    let endpoint = group.endpoints.first()?;
    Some((
        endpoint.fqdn.as_deref()?,
        port_of(service, group, endpoint)?,
    ))
}

/// Turns an EDS cluster into one that resolves `host` and connects on `port`, looking up the
/// families the service's ipAddressSelectionPolicy allows.
pub fn resolve_by_name(cluster: &mut Cluster, service: &Service, host: &str, port: u16) {
    cluster.cluster_discovery_type =
        Some(ClusterDiscoveryType::Type(DiscoveryType::LogicalDns as i32));
    cluster.eds_cluster_config = None;
    cluster.dns_lookup_family = match service.ip_address_selection_policy {
        AddressSelection::Ipv4Only => DnsLookupFamily::V4Only,
        AddressSelection::Ipv6Only => DnsLookupFamily::V6Only,
        AddressSelection::PreferIpv6 => DnsLookupFamily::Auto,
    } as i32;
    // One locality without a weight: locality weighting would give it nothing.
    if let Some(common) = &mut cluster.common_lb_config {
        common.locality_config_specifier = None;
    }
    cluster.load_assignment = Some(ClusterLoadAssignment {
        cluster_name: cluster.name.clone(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                    address: Some(socket_address_named(host, port)),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    });
}
