//! Where each client region's traffic should go, given what it sends and what each backend
//! can take: the client's own region (then the next, in the failover order `model::regions`
//! gives) is filled up to its effective capacity — target × routable endpoints × scaler,
//! summed over the region's backends, an unhealthy endpoint carrying none — and the excess
//! goes to the next region with spare capacity. Client regions competing for one backend
//! region are served nearest-first, then in proportion to what they send; once every region
//! is full the rest is spread in proportion to capacity (the target is not a circuit
//! breaker). Within a region backends keep their proportions.
//!
//! Pure: model, health and demand in, target shares out. Must not: keep state or smooth
//! (`stability` does), or know xDS.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::endpoint_facts::{addresses_for, port_of, ReportedHealth, ReportedStatus};
use crate::model::{capacity, regions, CapacityUnit, EndpointGroup, Model, Service};

/// Amounts smaller than this (requests/s, connections) count as nothing.
const NOTHING: f64 = 1e-9;

/// Shares of one client region's traffic: backend group → fraction (the fractions sum to 1).
pub type GroupShares = BTreeMap<String, f64>;

/// One backend of a service, with what it can take now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendCapacity {
    pub group: String,
    pub region: String,
    pub zone: String,
    pub endpoints: usize,
    /// Endpoints not reported unhealthy.
    pub routable: usize,
    /// Target × scaler, counting routable endpoints only.
    pub capacity: f64,
}

/// The target answer for one client region of a service.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientTarget {
    /// What the region sends (after smoothing, in the service's unit).
    pub demand: f64,
    /// The amount each backend region takes.
    pub by_region: BTreeMap<String, f64>,
    pub shares: GroupShares,
    /// What the static answer gives: the first tier, in proportion to capacity.
    pub unspilled: GroupShares,
    /// Whether any of it leaves the first failover tier (else the static answer stands).
    pub spills: bool,
}

/// What a service's backends can take, and where its client regions' traffic should go.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceTarget {
    pub unit: CapacityUnit,
    pub backends: Vec<BackendCapacity>,
    pub clients: BTreeMap<String, ClientTarget>,
}

impl ServiceTarget {
    /// The effective capacity of each backend region.
    pub fn region_capacity(&self) -> BTreeMap<String, f64> {
        let mut regions = BTreeMap::new();
        for backend in &self.backends {
            *regions.entry(backend.region.clone()).or_insert(0.0) += backend.capacity;
        }
        regions
    }

    /// What every client region together sends each backend region.
    pub fn region_load(&self) -> BTreeMap<String, f64> {
        let mut load = BTreeMap::new();
        for client in self.clients.values() {
            for (region, amount) in &client.by_region {
                *load.entry(region.clone()).or_insert(0.0) += amount;
            }
        }
        load
    }

    /// The backend regions whose capacity is taken in full.
    pub fn full_regions(&self) -> BTreeSet<String> {
        let load = self.region_load();
        self.region_capacity()
            .into_iter()
            .filter(|(region, capacity)| {
                *capacity > NOTHING && load.get(region).copied().unwrap_or(0.0) >= capacity * 0.999
            })
            .map(|(region, _)| region)
            .collect()
    }
}

/// The unit a service's capacity is measured in, when every backend has a measurable target
/// in the same unit (requests/s or connections); None: it keeps its static proportions.
pub fn measured_unit(service: &Service) -> Option<CapacityUnit> {
    let first = service.backends.first()?.capacity.unit;
    let measurable = matches!(
        first,
        CapacityUnit::RequestsPerSecond | CapacityUnit::Connections
    );
    let same = service.backends.iter().all(|b| b.capacity.unit == first);
    (measurable && same).then_some(first)
}

/// Each backend of `service` with its capacity now: endpoints reported unhealthy carry none.
pub fn backend_capacities(
    model: &Model,
    service: &Service,
    health: &ReportedHealth,
) -> Vec<BackendCapacity> {
    let reported = health.get(&service.name);
    service
        .backends
        .iter()
        .filter_map(|backend| {
            let group = model.endpoint_groups.get(&backend.group.name)?;
            let reachable = reachable_addresses(service, group);
            let routable = reachable
                .iter()
                .filter(|address| {
                    reported.and_then(|r| r.get(address)) != Some(&ReportedStatus::Unhealthy)
                })
                .count();
            let full = capacity::effective_capacity(&backend.capacity, group);
            let capacity = if reachable.is_empty() {
                0.0
            } else {
                full * routable as f64 / reachable.len() as f64
            };
            Some(BackendCapacity {
                group: group.name.clone(),
                region: group.region.clone(),
                zone: group.zone.clone(),
                endpoints: reachable.len(),
                routable,
                capacity,
            })
        })
        .collect()
}

/// The addresses a service reaches a group's endpoints at first.
fn reachable_addresses(service: &Service, group: &EndpointGroup) -> Vec<std::net::SocketAddr> {
    group
        .endpoints
        .iter()
        .filter_map(|endpoint| {
            let port = port_of(service, group, endpoint)?;
            let (first, _) = addresses_for(service.ip_address_selection_policy, endpoint);
            Some(std::net::SocketAddr::new(first?, port))
        })
        .collect()
}

/// The target for `service`: where each client region (by its view region, with what it
/// sends) should send its traffic.
pub fn service_target(
    model: &Model,
    service: &Service,
    health: &ReportedHealth,
    demands: &BTreeMap<String, f64>,
) -> Option<ServiceTarget> {
    let unit = measured_unit(service)?;
    let backends = backend_capacities(model, service, health);
    let mut target = ServiceTarget {
        unit,
        backends,
        clients: BTreeMap::new(),
    };
    let capacity = target.region_capacity();
    let with_capacity: BTreeSet<String> = capacity
        .iter()
        .filter(|(_, c)| **c > NOTHING)
        .map(|(r, _)| r.clone())
        .collect();
    if with_capacity.is_empty() {
        return Some(target);
    }
    let clients: Vec<ClientDemand> = demands
        .iter()
        .filter(|(region, demand)| !region.is_empty() && **demand > NOTHING)
        .map(|(region, demand)| ClientDemand {
            region: region.clone(),
            demand: *demand,
            tiers: regions::failover_tiers(&model.region_order, Some(region), &with_capacity),
        })
        .collect();
    let filled = fill(&capacity, &clients);
    for client in &clients {
        let by_region = filled.get(&client.region).cloned().unwrap_or_default();
        let first_tier: BTreeSet<&String> = client.tiers[0].iter().collect();
        let spills = by_region
            .iter()
            .any(|(region, amount)| *amount > NOTHING && !first_tier.contains(region));
        let shares = group_shares(&target.backends, &capacity, &by_region, client.demand);
        let first: BTreeMap<String, f64> = client.tiers[0]
            .iter()
            .map(|region| (region.clone(), capacity[region]))
            .collect();
        let first_total: f64 = first.values().sum();
        let unspilled = group_shares(&target.backends, &capacity, &first, first_total);
        target.clients.insert(
            client.region.clone(),
            ClientTarget {
                demand: client.demand,
                by_region,
                shares,
                unspilled,
                spills,
            },
        );
    }
    Some(target)
}

/// One client region's demand and its failover tiers (over regions with capacity).
#[derive(Clone, Debug)]
pub struct ClientDemand {
    pub region: String,
    pub demand: f64,
    pub tiers: Vec<Vec<String>>,
}

/// Splits a region's amount over its backends in proportion to their capacity: the share of
/// the client's demand each group takes.
fn group_shares(
    backends: &[BackendCapacity],
    capacity: &BTreeMap<String, f64>,
    by_region: &BTreeMap<String, f64>,
    demand: f64,
) -> GroupShares {
    backends
        .iter()
        .filter_map(|backend| {
            let region_capacity = capacity.get(&backend.region).copied().unwrap_or(0.0);
            let amount = by_region.get(&backend.region).copied().unwrap_or(0.0);
            (region_capacity > NOTHING && amount > NOTHING && backend.capacity > NOTHING).then(
                || {
                    (
                        backend.group.clone(),
                        amount / demand * backend.capacity / region_capacity,
                    )
                },
            )
        })
        .collect()
}

/// The amount each client region sends each backend region: rank by rank (each client's own
/// tier first, then its next), every region's spare capacity is handed to the clients asking
/// for it at that rank in proportion to what they ask; what is left once all are full is
/// spread in proportion to capacity.
pub fn fill(
    capacity: &BTreeMap<String, f64>,
    clients: &[ClientDemand],
) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut spare: BTreeMap<String, f64> = capacity.clone();
    let mut remaining: Vec<f64> = clients.iter().map(|c| c.demand).collect();
    let mut amounts: Vec<BTreeMap<String, f64>> = vec![BTreeMap::new(); clients.len()];
    let ranks = clients.iter().map(|c| c.tiers.len()).max().unwrap_or(0);
    for rank in 0..ranks {
        // A few passes, so that what one region of a tier could not take goes to the others.
        for _ in 0..4 {
            let granted = fill_rank(clients, rank, &mut spare, &mut remaining, &mut amounts);
            if granted <= NOTHING {
                break;
            }
        }
    }
    let total: f64 = capacity.values().sum();
    for (index, left) in remaining.iter().enumerate() {
        if *left <= NOTHING || total <= NOTHING {
            continue;
        }
        for (region, region_capacity) in capacity {
            *amounts[index].entry(region.clone()).or_insert(0.0) += left * region_capacity / total;
        }
    }
    clients
        .iter()
        .zip(amounts)
        .map(|(client, amounts)| {
            let kept = amounts.into_iter().filter(|(_, a)| *a > NOTHING).collect();
            (client.region.clone(), kept)
        })
        .collect()
}

/// One pass of one rank; returns the amount granted.
fn fill_rank(
    clients: &[ClientDemand],
    rank: usize,
    spare: &mut BTreeMap<String, f64>,
    remaining: &mut [f64],
    amounts: &mut [BTreeMap<String, f64>],
) -> f64 {
    // What each client asks of each region of its tier: its remaining demand split over the
    // tier in proportion to spare capacity.
    let mut asked: BTreeMap<&str, Vec<(usize, f64)>> = BTreeMap::new();
    for (index, client) in clients.iter().enumerate() {
        let Some(tier) = client.tiers.get(rank) else {
            continue;
        };
        let tier_spare: f64 = tier.iter().map(|r| spare[r]).sum();
        if remaining[index] <= NOTHING || tier_spare <= NOTHING {
            continue;
        }
        for region in tier {
            let ask = remaining[index] * spare[region] / tier_spare;
            if ask > NOTHING {
                asked.entry(region).or_default().push((index, ask));
            }
        }
    }
    let mut granted_total = 0.0;
    for (region, asks) in asked {
        let wanted: f64 = asks.iter().map(|(_, ask)| ask).sum();
        let available = spare[region];
        let scale = if wanted <= available {
            1.0
        } else {
            available / wanted
        };
        for (index, ask) in asks {
            let granted = ask * scale;
            *amounts[index].entry(region.to_string()).or_insert(0.0) += granted;
            remaining[index] -= granted;
            granted_total += granted;
        }
        *spare.get_mut(region).expect("asked regions have capacity") -= wanted * scale;
    }
    granted_total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(r, c)| (r.to_string(), *c)).collect()
    }

    fn client(region: &str, demand: f64, tiers: &[&[&str]]) -> ClientDemand {
        ClientDemand {
            region: region.to_string(),
            demand,
            tiers: tiers
                .iter()
                .map(|t| t.iter().map(|r| r.to_string()).collect())
                .collect(),
        }
    }

    fn amount(filled: &BTreeMap<String, BTreeMap<String, f64>>, client: &str, region: &str) -> f64 {
        filled[client].get(region).copied().unwrap_or(0.0)
    }

    fn close(got: f64, expected: f64) {
        assert!(
            (got - expected).abs() < 1e-9,
            "expected {expected}, got {got}"
        );
    }

    #[test]
    fn under_capacity_everything_stays_near() {
        let caps = capacity(&[("east", 20.0), ("west", 20.0)]);
        let filled = fill(&caps, &[client("east", 10.0, &[&["east"], &["west"]])]);
        close(amount(&filled, "east", "east"), 10.0);
        close(amount(&filled, "east", "west"), 0.0);
    }

    #[test]
    fn the_excess_spills_to_the_next_region() {
        let caps = capacity(&[("east", 20.0), ("west", 20.0)]);
        let filled = fill(&caps, &[client("east", 30.0, &[&["east"], &["west"]])]);
        close(amount(&filled, "east", "east"), 20.0);
        close(amount(&filled, "east", "west"), 10.0);
    }

    #[test]
    fn a_full_region_passes_over_to_the_one_after_with_spare() {
        let caps = capacity(&[("a", 10.0), ("b", 5.0), ("c", 100.0)]);
        let other = client("b", 5.0, &[&["b"], &["a"], &["c"]]);
        let filled = fill(
            &caps,
            &[client("a", 30.0, &[&["a"], &["b"], &["c"]]), other],
        );
        close(amount(&filled, "a", "a"), 10.0);
        close(amount(&filled, "a", "b"), 0.0);
        close(amount(&filled, "a", "c"), 20.0);
        close(amount(&filled, "b", "b"), 5.0);
    }

    #[test]
    fn a_region_serves_its_own_clients_before_others_spill_into_it() {
        // west's own clients (15) come first; east's excess (20) gets the 5 left.
        let caps = capacity(&[("east", 20.0), ("west", 20.0), ("asia", 100.0)]);
        let filled = fill(
            &caps,
            &[
                client("east", 40.0, &[&["east"], &["west"], &["asia"]]),
                client("west", 15.0, &[&["west"], &["east"], &["asia"]]),
            ],
        );
        close(amount(&filled, "west", "west"), 15.0);
        close(amount(&filled, "east", "west"), 5.0);
        close(amount(&filled, "east", "asia"), 15.0);
    }

    #[test]
    fn clients_at_the_same_distance_share_in_proportion_to_demand() {
        // Both spill into asia (capacity 12) at rank 1, asking 10 and 20: they get 4 and 8,
        // and the rest (6 and 12) goes on to far.
        let caps = capacity(&[
            ("east", 10.0),
            ("west", 10.0),
            ("asia", 12.0),
            ("far", 99.0),
        ]);
        let filled = fill(
            &caps,
            &[
                client("east", 20.0, &[&["east"], &["asia"], &["west"], &["far"]]),
                client("west", 30.0, &[&["west"], &["asia"], &["east"], &["far"]]),
            ],
        );
        close(amount(&filled, "east", "asia"), 4.0);
        close(amount(&filled, "west", "asia"), 8.0);
        close(amount(&filled, "east", "far"), 6.0);
        close(amount(&filled, "west", "far"), 12.0);
    }

    #[test]
    fn when_everything_is_full_the_rest_is_spread_by_capacity() {
        // 60 against 20 + 40: after filling both, 0 left; at 90, the extra 30 goes 10 / 20.
        let caps = capacity(&[("east", 20.0), ("west", 40.0)]);
        let filled = fill(&caps, &[client("east", 90.0, &[&["east"], &["west"]])]);
        close(amount(&filled, "east", "east"), 30.0);
        close(amount(&filled, "east", "west"), 60.0);
    }

    #[test]
    fn a_tier_of_two_regions_is_filled_by_their_spare() {
        let caps = capacity(&[("east", 10.0), ("us-a", 10.0), ("us-b", 30.0)]);
        let filled = fill(
            &caps,
            &[client("east", 30.0, &[&["east"], &["us-a", "us-b"]])],
        );
        close(amount(&filled, "east", "us-a"), 5.0);
        close(amount(&filled, "east", "us-b"), 15.0);
    }
}
