//! Slow start for clients that have none (proxyless gRPC): an endpoint still ramping up is
//! given a locality of its own whose weight is its share of its group's weight times how far
//! along its ramp is, so that round robin over localities (which gRPC does by weight) gives it
//! that fraction of its traffic. Envoy ramps by itself (slow_start_config) and never gets
//! these. Pure: the ramps (service → endpoint → fraction of weight, 0.01 to 1) come in.
//! Must not: decide who ramps or when (publish does).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::Locality;
use envoy_types::pb::envoy::config::endpoint::v3::LocalityLbEndpoints;
use envoy_types::pb::envoy::config::endpoint::v3::{lb_endpoint::HostIdentifier, LbEndpoint};
use envoy_types::pb::google::protobuf::UInt32Value;

/// Per service, its endpoints that are ramping up and the fraction of their weight they get.
pub type Ramps = BTreeMap<String, BTreeMap<SocketAddr, f64>>;

/// No ramps.
pub static NO_RAMPS: Ramps = BTreeMap::new();

/// Splits one group's locality: its steady endpoints keep the locality with their share of
/// `weight`, each ramping endpoint gets a locality of its own (same region and zone) weighted
/// by its share times its fraction. Returns the localities to serve.
pub fn split_ramping(
    locality: Locality,
    lb_endpoints: Vec<LbEndpoint>,
    weight: u32,
    priority: u32,
    ramps: &BTreeMap<SocketAddr, f64>,
) -> Vec<LocalityLbEndpoints> {
    let per_endpoint = f64::from(weight) / lb_endpoints.len().max(1) as f64;
    let weighted = |share: f64| {
        Some(UInt32Value {
            value: share.round().clamp(1.0, f64::from(u32::MAX)) as u32,
        })
    };
    let (ramping, steady): (Vec<LbEndpoint>, Vec<LbEndpoint>) = lb_endpoints
        .into_iter()
        .partition(|endpoint| address_of(endpoint).is_some_and(|a| ramps.contains_key(&a)));
    let mut localities = Vec::new();
    for endpoint in ramping {
        let Some(address) = address_of(&endpoint) else {
            continue;
        };
        localities.push(LocalityLbEndpoints {
            locality: Some(Locality {
                sub_zone: format!("{} slow-start {address}", locality.sub_zone),
                ..locality.clone()
            }),
            load_balancing_weight: weighted(per_endpoint * ramps[&address]),
            lb_endpoints: vec![endpoint],
            priority,
            ..Default::default()
        });
    }
    if !steady.is_empty() {
        localities.push(LocalityLbEndpoints {
            load_balancing_weight: weighted(per_endpoint * steady.len() as f64),
            locality: Some(locality),
            lb_endpoints: steady,
            priority,
            ..Default::default()
        });
    }
    localities
}

/// The address an endpoint is reached at first.
fn address_of(endpoint: &LbEndpoint) -> Option<SocketAddr> {
    let Some(HostIdentifier::Endpoint(endpoint)) = &endpoint.host_identifier else {
        return None;
    };
    let socket = match endpoint.address.as_ref()?.address.as_ref()? {
        envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(socket) => socket,
        _ => return None,
    };
    let port = match socket.port_specifier.as_ref()? {
        envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(
            port,
        ) => *port,
        _ => return None,
    };
    Some(SocketAddr::new(socket.address.parse().ok()?, port as u16))
}
