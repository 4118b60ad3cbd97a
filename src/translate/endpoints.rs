//! A service's endpoint groups → ClusterLoadAssignment, as seen by a client in a given region.
//!
//! One locality per group (its region and zone, its name as sub-zone), weighted by effective
//! capacity. Regions become priorities in the client's failover order (`model::regions`),
//! counting only regions with capacity, so priorities stay contiguous from 0. A group whose
//! effective capacity is 0 (a scaler of 0) is left out: it leaves
//! rotation without being deleted. Endpoints removed from the config but still draining are
//! listed with health status DRAINING (no new requests). With a hashing policy (ring hash,
//! Maglev) capacity is carried by endpoint weights, which those policies honour.
//!
//! Health reported by sources other than the config (the health checker) is carried as each
//! endpoint's health status: UNHEALTHY endpoints get no traffic, and an endpoint no source
//! speaks of is UNKNOWN (used). Draining stays DRAINING whatever is reported.
//!
//! The overprovisioning factor is set very high: as the cloud does, a backend keeps its full
//! capacity while any of its endpoints is healthy, and a region hands its traffic to the next
//! one only when it has no healthy endpoint left.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::{HealthStatus, Locality};
use envoy_types::pb::envoy::config::endpoint::v3::{
    cluster_load_assignment::Policy, endpoint::AdditionalAddress, lb_endpoint::HostIdentifier,
    ClusterLoadAssignment, Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::google::protobuf::UInt32Value;

use crate::model::{
    capacity, regions, BalancingPolicy, DrainingEndpoint, EndpointGroup, Model, Service,
};

pub use crate::model::endpoint_facts::{
    addresses_for, port_of, ReportedHealth, ReportedStatus, NO_REPORTED_HEALTH,
};

use super::capacity_shares::{self, CapacityShares, NO_SHARES};
use super::listeners::socket_address;
use super::slow_start::{split_ramping, Ramps, NO_RAMPS};

/// Overprovisioning factor in percent (Envoy's default is 140).
pub const OVERPROVISIONING_PERCENT: u32 = 100_000;

/// What the config alone does not say about endpoints.
#[derive(Clone, Copy)]
pub struct Overlay<'a> {
    /// Endpoints an edit removed, still draining.
    pub draining: &'a [DrainingEndpoint],
    pub health: &'a ReportedHealth,
    /// Endpoints ramping up, for clients that have no slow start of their own.
    pub ramps: &'a Ramps,
    /// Shares decided from measured load, for client regions whose traffic spills.
    pub capacity: &'a CapacityShares,
}

impl<'a> Overlay<'a> {
    pub fn draining_only(draining: &'a [DrainingEndpoint]) -> Overlay<'a> {
        Overlay {
            draining,
            health: &NO_REPORTED_HEALTH,
            ramps: &NO_RAMPS,
            capacity: &NO_SHARES,
        }
    }

    /// The same overlay with `ramps`.
    pub fn with_ramps(self, ramps: &'a Ramps) -> Overlay<'a> {
        Overlay { ramps, ..self }
    }

    fn health_of(&self, service: &str, address: SocketAddr) -> HealthStatus {
        match self
            .health
            .get(service)
            .and_then(|endpoints| endpoints.get(&address))
        {
            Some(ReportedStatus::Healthy) => HealthStatus::Healthy,
            Some(ReportedStatus::Unhealthy) => HealthStatus::Unhealthy,
            None => HealthStatus::Unknown,
        }
    }
}

/// The assignments of every backend service for a client in `client_region`.
pub fn assignments_for(
    model: &Model,
    client_region: Option<&str>,
    draining: &[DrainingEndpoint],
) -> Vec<ClusterLoadAssignment> {
    assignments_with(model, client_region, Overlay::draining_only(draining))
}

/// As [`assignments_for`], with reported health.
pub fn assignments_with(
    model: &Model,
    client_region: Option<&str>,
    overlay: Overlay<'_>,
) -> Vec<ClusterLoadAssignment> {
    assignments_in(model, client_region, None, overlay)
}

/// As [`assignments_with`], for a client in `client_zone` of its region.
pub fn assignments_in(
    model: &Model,
    client_region: Option<&str>,
    client_zone: Option<&str>,
    overlay: Overlay<'_>,
) -> Vec<ClusterLoadAssignment> {
    model
        .services
        .values()
        .map(|service| assignment_in(model, service, client_region, client_zone, overlay))
        .collect()
}

/// One backend's locality before priorities are assigned.
pub struct PlannedLocality<'m> {
    pub group: &'m EndpointGroup,
    pub effective_capacity: f64,
    pub weight: Option<u32>,
}

/// The backends of `service` with their effective capacity and locality weight.
pub fn plan_localities<'m>(model: &'m Model, service: &Service) -> Vec<PlannedLocality<'m>> {
    let backends: Vec<_> = service
        .backends
        .iter()
        .filter_map(|backend| Some((backend, model.endpoint_groups.get(&backend.group.name)?)))
        .collect();
    let capacities: Vec<f64> = backends
        .iter()
        .map(|(backend, group)| capacity::effective_capacity(&backend.capacity, group))
        .collect();
    backends
        .iter()
        .zip(capacities.iter().zip(capacity::weights(&capacities)))
        .map(
            |((_, group), (&effective_capacity, weight))| PlannedLocality {
                group,
                effective_capacity,
                weight,
            },
        )
        .collect()
}

/// Priority of each region with capacity, for a client in `client_region`.
pub fn region_priorities(
    model: &Model,
    planned: &[PlannedLocality<'_>],
    client_region: Option<&str>,
) -> BTreeMap<String, u32> {
    let with_capacity: BTreeSet<String> = planned
        .iter()
        .filter(|p| p.weight.is_some())
        .map(|p| p.group.region.clone())
        .collect();
    regions::failover_tiers(&model.region_order, client_region, &with_capacity)
        .into_iter()
        .enumerate()
        .flat_map(|(priority, tier)| {
            tier.into_iter()
                .map(move |region| (region, priority as u32))
        })
        .collect()
}

/// Priority of each (region, zone) with capacity: regions fail over as [`region_priorities`]
/// says; a service that prefers the client's zone serves it from that zone first, then from
/// the rest of its region. Priorities have no gaps, as Envoy requires.
pub fn locality_priorities(
    model: &Model,
    service: &Service,
    planned: &[PlannedLocality<'_>],
    client_region: Option<&str>,
    client_zone: Option<&str>,
) -> BTreeMap<(String, String), u32> {
    let by_region = region_priorities(model, planned, client_region);
    let zone_first = client_zone.filter(|_| service.prefer_client_zone);
    let raw: BTreeMap<(String, String), u32> = planned
        .iter()
        .filter(|plan| plan.weight.is_some())
        .map(|plan| {
            let group = plan.group;
            let elsewhere = zone_first.is_some_and(|zone| {
                client_region == Some(group.region.as_str()) && group.zone != zone
            });
            let priority = by_region[&group.region] * 2 + u32::from(elsewhere);
            ((group.region.clone(), group.zone.clone()), priority)
        })
        .collect();
    let ranks: BTreeSet<u32> = raw.values().copied().collect();
    let dense: BTreeMap<u32, u32> = ranks
        .into_iter()
        .enumerate()
        .map(|(index, priority)| (priority, index as u32))
        .collect();
    raw.into_iter()
        .map(|(locality, priority)| (locality, dense[&priority]))
        .collect()
}

/// The endpoints of one backend service, as its cluster's EDS resource for that client.
pub fn assignment_for(
    model: &Model,
    service: &Service,
    client_region: Option<&str>,
    draining: &[DrainingEndpoint],
) -> ClusterLoadAssignment {
    assignment_with(
        model,
        service,
        client_region,
        Overlay::draining_only(draining),
    )
}

/// As [`assignment_for`], with reported health.
pub fn assignment_with(
    model: &Model,
    service: &Service,
    client_region: Option<&str>,
    overlay: Overlay<'_>,
) -> ClusterLoadAssignment {
    assignment_in(model, service, client_region, None, overlay)
}

/// As [`assignment_with`], for a client in `client_zone` of its region.
pub fn assignment_in(
    model: &Model,
    service: &Service,
    client_region: Option<&str>,
    client_zone: Option<&str>,
    overlay: Overlay<'_>,
) -> ClusterLoadAssignment {
    let mut planned = plan_localities(model, service);
    let mut priorities = locality_priorities(model, service, &planned, client_region, client_zone);
    if let Some(shares) =
        capacity_shares::shares_for(overlay.capacity, &service.name, client_region)
    {
        capacity_shares::apply(shares, &mut planned, &mut priorities);
    }
    let hashing = service.lb_policy.is_consistent_hash();
    let fails_open = fails_open(service, &planned, overlay);
    let mut localities: BTreeMap<LocalityKey, LocalityLbEndpoints> = BTreeMap::new();
    for plan in &planned {
        let Some(weight) = plan.weight else { continue };
        let group = plan.group;
        let priority = priorities[&(group.region.clone(), group.zone.clone())];
        let members = members(service, group);
        let total_endpoint_weight: u64 = members.iter().map(|m| u64::from(m.weight)).sum();
        let lb_endpoints: Vec<LbEndpoint> = members
            .iter()
            .filter_map(|member| {
                // Hashing policies ignore locality weights: spread the locality's weight over
                // its endpoints instead.
                let share = hashing.then(|| {
                    let share =
                        u64::from(weight) * u64::from(member.weight) / total_endpoint_weight.max(1);
                    share.clamp(1, u64::from(u32::MAX)) as u32
                });
                let mut health = overlay.health_of(&service.name, member.primary);
                if fails_open && is_unhealthy(health) {
                    // Too few are healthy: every endpoint takes traffic again.
                    health = HealthStatus::Unknown;
                }
                if service.slow_start.is_some() && is_unhealthy(health) {
                    // Left out rather than marked, so that its return is an addition, which
                    // starts its ramp (Envoy ramps only endpoints added as healthy).
                    return None;
                }
                Some(lb_endpoint(member.primary, member.fallback, share, health))
            })
            .collect();
        if lb_endpoints.is_empty() && service.slow_start.is_some() {
            continue;
        }
        let locality = locality_of(&group.region, &group.zone, &group.name);
        if let Some(ramps) = overlay.ramps.get(&service.name).filter(|_| !hashing) {
            for split in split_ramping(locality, lb_endpoints, weight, priority, ramps) {
                let split_key = key(priority, split.locality.as_ref().unwrap());
                localities.insert(split_key, split);
            }
            continue;
        }
        localities.insert(
            key(priority, &locality),
            LocalityLbEndpoints {
                locality: Some(locality),
                lb_endpoints,
                load_balancing_weight: Some(UInt32Value { value: weight }),
                priority,
                ..Default::default()
            },
        );
    }
    add_draining(&mut localities, &priorities, service, overlay.draining);
    ClusterLoadAssignment {
        cluster_name: service.name.clone(),
        endpoints: localities.into_values().collect(),
        policy: Some(Policy {
            overprovisioning_factor: Some(UInt32Value {
                value: OVERPROVISIONING_PERCENT,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn is_unhealthy(health: HealthStatus) -> bool {
    matches!(health, HealthStatus::Unhealthy | HealthStatus::Timeout)
}

/// Whether the service's minimum-healthy rule says to route to all its endpoints, unhealthy
/// ones included, because too few of them pass their checks.
pub fn fails_open(
    service: &Service,
    planned: &[PlannedLocality<'_>],
    overlay: Overlay<'_>,
) -> bool {
    let Some(minimum) = &service.minimum_healthy else {
        return false;
    };
    let mut total = 0;
    let mut healthy = 0;
    for plan in planned.iter().filter(|plan| plan.weight.is_some()) {
        for member in members(service, plan.group) {
            total += 1;
            if !is_unhealthy(overlay.health_of(&service.name, member.primary)) {
                healthy += 1;
            }
        }
    }
    minimum.fails_open(healthy, total)
}

/// Adds the service's draining endpoints: into their locality when it is still served, else
/// into a locality of their own (weight 1, never picked: all its endpoints drain), placed at
/// their region's priority or after every served priority.
fn add_draining(
    localities: &mut BTreeMap<LocalityKey, LocalityLbEndpoints>,
    priorities: &BTreeMap<(String, String), u32>,
    service: &Service,
    draining: &[DrainingEndpoint],
) {
    let after_all = priorities.values().max().map(|p| p + 1).unwrap_or(0);
    for endpoint in draining.iter().filter(|d| d.service == service.name) {
        let in_region = priorities
            .iter()
            .filter(|((region, _), _)| *region == endpoint.region)
            .map(|(_, priority)| *priority)
            .min();
        let priority = priorities
            .get(&(endpoint.region.clone(), endpoint.zone.clone()))
            .copied()
            .or(in_region)
            .unwrap_or(after_all);
        let locality = locality_of(&endpoint.region, &endpoint.zone, &endpoint.group);
        let entry = localities
            .entry(key(priority, &locality))
            .or_insert_with(|| LocalityLbEndpoints {
                locality: Some(locality),
                load_balancing_weight: Some(UInt32Value { value: 1 }),
                priority,
                ..Default::default()
            });
        let hashing = service.lb_policy.is_consistent_hash();
        entry.lb_endpoints.push(lb_endpoint(
            endpoint.address,
            None,
            hashing.then_some(1),
            HealthStatus::Draining,
        ));
    }
}

/// Sort key of a locality inside an assignment: priority, then region, zone, sub-zone.
type LocalityKey = (u32, String, String, String);

fn key(priority: u32, locality: &Locality) -> LocalityKey {
    (
        priority,
        locality.region.clone(),
        locality.zone.clone(),
        locality.sub_zone.clone(),
    )
}

fn locality_of(region: &str, zone: &str, group: &str) -> Locality {
    Locality {
        region: region.to_string(),
        zone: zone.to_string(),
        sub_zone: group.to_string(),
    }
}

fn lb_endpoint(
    address: SocketAddr,
    fallback: Option<SocketAddr>,
    weight: Option<u32>,
    health: HealthStatus,
) -> LbEndpoint {
    let additional_addresses = fallback
        .map(|f| AdditionalAddress {
            address: Some(socket_address(f.ip(), f.port())),
        })
        .into_iter()
        .collect();
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(EnvoyEndpoint {
            address: Some(socket_address(address.ip(), address.port())),
            additional_addresses,
            ..Default::default()
        })),
        health_status: health as i32,
        load_balancing_weight: weight.map(|value| UInt32Value { value }),
        ..Default::default()
    }
}

/// One endpoint as a service reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    /// The address connected to first.
    pub primary: SocketAddr,
    /// PREFER_IPV6 with both families: the IPv4 address to fall back to (happy eyeballs).
    pub fallback: Option<SocketAddr>,
    /// Relative weight inside the group (only WEIGHTED_MAGLEV reads endpoint weights).
    pub weight: u32,
}

/// The group's members as the service reaches them: the port (endpoint's, defaultPort or the
/// service's named port) and the addresses its ipAddressSelectionPolicy picks. An endpoint
/// without an address of the needed family is left out. Sorted by address.
pub fn members(service: &Service, group: &EndpointGroup) -> Vec<Member> {
    let weighted = service.lb_policy == BalancingPolicy::WeightedMaglev;
    let mut members: Vec<Member> = group
        .endpoints
        .iter()
        .filter_map(|endpoint| {
            let port = port_of(service, group, endpoint)?;
            let (first, second) = addresses_for(service.ip_address_selection_policy, endpoint);
            let at = |ip: IpAddr| SocketAddr::new(ip, port);
            Some(Member {
                primary: at(first?),
                fallback: second.map(at),
                weight: if weighted {
                    endpoint.weight.unwrap_or(1)
                } else {
                    1
                },
            })
        })
        .collect();
    members.sort();
    members
}

/// Every (service, group, address) the model serves, to tell what an edit removed.
pub fn served_endpoints(model: &Model) -> BTreeSet<DrainingEndpoint> {
    let mut served = BTreeSet::new();
    for service in model.services.values() {
        for plan in plan_localities(model, service) {
            for member in members(service, plan.group) {
                served.insert(DrainingEndpoint {
                    service: service.name.clone(),
                    group: plan.group.name.clone(),
                    region: plan.group.region.clone(),
                    zone: plan.group.zone.clone(),
                    address: member.primary,
                });
            }
        }
    }
    served
}
