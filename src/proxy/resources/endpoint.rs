//! ClusterLoadAssignment → the endpoints of a cluster by priority and locality, with their
//! weights, health and (dual stack) additional addresses.

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment,
};

use super::{decode_checked, socket_address, Fault, Problem, ResourceError};
use crate::xds::types::TypeUrl;

#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    pub cluster: String,
    /// Localities, each with its priority.
    pub localities: Vec<LocalityEndpoints>,
    pub overprovisioning_factor: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LocalityEndpoints {
    pub region: String,
    pub zone: String,
    pub sub_zone: String,
    pub priority: u32,
    pub weight: u32,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub address: SocketAddr,
    pub additional: Vec<SocketAddr>,
    pub weight: u32,
    pub health: Health,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Unhealthy,
    Draining,
}

pub(super) const FIELDS: &[&str] = &[
    "cluster_name",
    "endpoints.locality.region",
    "endpoints.locality.zone",
    "endpoints.locality.sub_zone",
    "endpoints.priority",
    "endpoints.load_balancing_weight",
    "endpoints.lb_endpoints.endpoint.address.socket_address.address",
    "endpoints.lb_endpoints.endpoint.address.socket_address.port_value",
    "endpoints.lb_endpoints.endpoint.additional_addresses.address.socket_address.address",
    "endpoints.lb_endpoints.endpoint.additional_addresses.address.socket_address.port_value",
    "endpoints.lb_endpoints.endpoint.hostname",
    "endpoints.lb_endpoints.health_status",
    "endpoints.lb_endpoints.load_balancing_weight",
    "policy.overprovisioning_factor",
];

/// Envoy's default overprovisioning factor (140%).
pub const DEFAULT_OVERPROVISIONING: u32 = 140;

/// Converts one ClusterLoadAssignment resource.
pub fn convert(name: &str, bytes: &[u8]) -> Result<Assignment, ResourceError> {
    read(name, bytes).map_err(|fault| fault.of(TypeUrl::Endpoint, name))
}

fn read(name: &str, bytes: &[u8]) -> Result<Assignment, Fault> {
    let assignment: ClusterLoadAssignment = decode_checked(bytes, FIELDS)?;
    let mut localities = Vec::new();
    for (locality_index, group) in assignment.endpoints.iter().enumerate() {
        let locality = group.locality.clone().unwrap_or_default();
        let mut endpoints = Vec::new();
        for (index, lb_endpoint) in group.lb_endpoints.iter().enumerate() {
            let at = format!("endpoints[{locality_index}].lb_endpoints[{index}]");
            let Some(HostIdentifier::Endpoint(endpoint)) = &lb_endpoint.host_identifier else {
                return Err(Fault::at(
                    at,
                    Problem::Missing {
                        what: "an endpoint",
                    },
                ));
            };
            let address = socket_address(endpoint.address.as_ref())
                .map_err(|problem| Fault::at(format!("{at}.endpoint.address"), problem))?;
            let additional = endpoint
                .additional_addresses
                .iter()
                .map(|a| socket_address(a.address.as_ref()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|problem| {
                    Fault::at(format!("{at}.endpoint.additional_addresses"), problem)
                })?;
            let health = match HealthStatus::try_from(lb_endpoint.health_status) {
                Ok(HealthStatus::Unhealthy | HealthStatus::Timeout) => Health::Unhealthy,
                Ok(HealthStatus::Draining) => Health::Draining,
                _ => Health::Healthy,
            };
            endpoints.push(Endpoint {
                address,
                additional,
                weight: lb_endpoint
                    .load_balancing_weight
                    .as_ref()
                    .map_or(1, |w| w.value.max(1)),
                health,
            });
        }
        localities.push(LocalityEndpoints {
            region: locality.region,
            zone: locality.zone,
            sub_zone: locality.sub_zone,
            priority: group.priority,
            weight: group.load_balancing_weight.as_ref().map_or(1, |w| w.value),
            endpoints,
        });
    }
    Ok(Assignment {
        cluster: name.to_string(),
        localities,
        overprovisioning_factor: assignment
            .policy
            .as_ref()
            .and_then(|p| p.overprovisioning_factor.as_ref())
            .map_or(DEFAULT_OVERPROVISIONING, |f| f.value),
    })
}
