//! Backends → ClusterLoadAssignment: one locality per backend (region and zone of its group,
//! the group's name as sub-zone), weighted by effective capacity. A backend whose effective
//! capacity is 0 (capacityScaler 0) is left out: it leaves rotation without being deleted.

use envoy_types::pb::envoy::config::core::v3::Locality;
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::google::protobuf::UInt32Value;

use crate::model::{capacity, BackendService, EndpointGroup, Model};

use super::listeners::socket_address;

pub fn assignments_for(model: &Model) -> Vec<ClusterLoadAssignment> {
    model
        .backend_services
        .values()
        .map(|service| assignment_for(model, service))
        .collect()
}

/// The endpoints of one backend service, as its cluster's EDS resource.
pub fn assignment_for(model: &Model, service: &BackendService) -> ClusterLoadAssignment {
    let backends: Vec<(&crate::model::Backend, &EndpointGroup)> = service
        .backends
        .iter()
        .filter_map(|backend| Some((backend, model.endpoint_groups.get(&backend.group.name)?)))
        .collect();
    let capacities: Vec<f64> = backends
        .iter()
        .map(|(backend, group)| capacity::effective_capacity(backend, group))
        .collect();
    let mut localities: Vec<LocalityLbEndpoints> = backends
        .iter()
        .zip(capacity::weights(&capacities))
        .filter_map(|((_, group), weight)| {
            let weight = weight?;
            Some(LocalityLbEndpoints {
                locality: Some(Locality {
                    region: group.region.clone(),
                    zone: group.zone.clone(),
                    sub_zone: group.name.clone(),
                }),
                lb_endpoints: lb_endpoints(service, group),
                load_balancing_weight: Some(UInt32Value { value: weight }),
                ..Default::default()
            })
        })
        .collect();
    localities.sort_by(|a, b| {
        a.locality
            .as_ref()
            .map(locality_key)
            .cmp(&b.locality.as_ref().map(locality_key))
    });
    ClusterLoadAssignment {
        cluster_name: service.name.clone(),
        endpoints: localities,
        ..Default::default()
    }
}

fn locality_key(locality: &Locality) -> (&str, &str, &str) {
    (&locality.region, &locality.zone, &locality.sub_zone)
}

/// The group's members with the port the service reaches them on, sorted by address.
fn lb_endpoints(service: &BackendService, group: &EndpointGroup) -> Vec<LbEndpoint> {
    let mut members: Vec<(std::net::IpAddr, u16)> = group
        .endpoints
        .iter()
        .filter_map(|endpoint| {
            let port = endpoint
                .port
                .or(group.default_port)
                .or_else(|| group.named_ports.get(&service.port_name).copied())?;
            Some((endpoint.ip_address, port))
        })
        .collect();
    members.sort();
    members
        .into_iter()
        .map(|(ip, port)| LbEndpoint {
            host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                address: Some(socket_address(ip, port)),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect()
}
