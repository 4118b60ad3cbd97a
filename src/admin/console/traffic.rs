//! Where one client's traffic to a service goes, read from the ClusterLoadAssignment that
//! client is served (its region's endpoint view): per backend locality its priority, its
//! healthy and total endpoints, its weight, and the share of requests it should receive the
//! way Envoy spreads them — priority levels filled by their health scaled by the
//! overprovisioning factor (spilling to the next level when a level is partly unhealthy), and
//! inside a level by locality weight times the locality's availability. Pure; must not read
//! anything but the assignment it is given.

use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LbEndpoint};

/// Envoy's overprovisioning factor when the assignment sets none (percent).
const DEFAULT_OVERPROVISIONING: f64 = 140.0;

/// How many unhealthy addresses a locality lists.
pub const UNHEALTHY_SHOWN: usize = 5;

/// One backend locality of a service, as one client sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalityShare {
    pub region: String,
    pub zone: String,
    pub sub_zone: String,
    pub priority: u32,
    pub healthy: usize,
    pub total: usize,
    /// The first [`UNHEALTHY_SHOWN`] endpoints not taking traffic, with their status.
    pub unhealthy: Vec<String>,
    pub weight: Option<u32>,
    /// The fraction (0..=1) of this client's requests it should receive.
    pub share: f64,
}

/// Every locality of `assignment` with its share, in the assignment's order.
pub fn shares(assignment: &ClusterLoadAssignment) -> Vec<LocalityShare> {
    let factor = assignment
        .policy
        .as_ref()
        .and_then(|policy| policy.overprovisioning_factor.as_ref())
        .map_or(DEFAULT_OVERPROVISIONING, |value| f64::from(value.value))
        / 100.0;
    let mut rows: Vec<LocalityShare> = assignment
        .endpoints
        .iter()
        .map(|group| {
            let locality = group.locality.clone().unwrap_or_default();
            LocalityShare {
                region: locality.region,
                zone: locality.zone,
                sub_zone: locality.sub_zone,
                priority: group.priority,
                healthy: group
                    .lb_endpoints
                    .iter()
                    .filter(|e| takes_traffic(e))
                    .count(),
                total: group.lb_endpoints.len(),
                unhealthy: group
                    .lb_endpoints
                    .iter()
                    .filter(|e| !takes_traffic(e))
                    .take(UNHEALTHY_SHOWN)
                    .map(describe)
                    .collect(),
                weight: group.load_balancing_weight.as_ref().map(|w| w.value),
                share: 0.0,
            }
        })
        .collect();
    let loads = priority_loads(&rows, factor);
    for (priority, load) in loads.iter().enumerate() {
        spread_in_level(&mut rows, priority as u32, *load, factor);
    }
    rows
}

/// Envoy counts UNKNOWN (never checked) and HEALTHY endpoints as taking traffic.
fn takes_traffic(endpoint: &LbEndpoint) -> bool {
    matches!(
        HealthStatus::try_from(endpoint.health_status),
        Ok(HealthStatus::Unknown | HealthStatus::Healthy)
    )
}

/// `10.0.0.1:80 UNHEALTHY`.
fn describe(endpoint: &LbEndpoint) -> String {
    let address = match &endpoint.host_identifier {
        Some(HostIdentifier::Endpoint(found)) => found
            .address
            .as_ref()
            .and_then(|a| match &a.address {
                Some(envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(
                    socket,
                )) => Some(match &socket.port_specifier {
                    Some(envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(port)) => {
                        format!("{}:{port}", socket.address)
                    }
                    _ => socket.address.clone(),
                }),
                _ => None,
            })
            .unwrap_or_else(|| "?".to_string()),
        _ => "?".to_string(),
    };
    let status =
        HealthStatus::try_from(endpoint.health_status).map_or("?", |status| status.as_str_name());
    format!("{address} {status}")
}

/// The fraction of traffic each priority level takes, from level 0 up.
fn priority_loads(rows: &[LocalityShare], factor: f64) -> Vec<f64> {
    let levels = rows.iter().map(|r| r.priority + 1).max().unwrap_or(0) as usize;
    let health: Vec<f64> = (0..levels)
        .map(|level| {
            let (healthy, total) = rows
                .iter()
                .filter(|r| r.priority as usize == level)
                .fold((0, 0), |(h, t), r| (h + r.healthy, t + r.total));
            if total == 0 {
                0.0
            } else {
                (factor * healthy as f64 / total as f64).min(1.0)
            }
        })
        .collect();
    let sum: f64 = health.iter().sum();
    if levels == 0 {
        return Vec::new();
    }
    if sum == 0.0 {
        // Nothing healthy anywhere: Envoy panics at level 0 and sends there regardless.
        let mut loads = vec![0.0; levels];
        loads[0] = 1.0;
        return loads;
    }
    if sum < 1.0 {
        // Too little health in all: each level takes its part of what there is.
        return health.iter().map(|h| h / sum).collect();
    }
    let mut remaining = 1.0;
    health
        .iter()
        .map(|h| {
            let load = h.min(remaining);
            remaining -= load;
            load
        })
        .collect()
}

/// Spreads `load` over the localities of `priority`: by weight × availability when the
/// localities are weighted, by healthy endpoints otherwise.
fn spread_in_level(rows: &mut [LocalityShare], priority: u32, load: f64, factor: f64) {
    let weighted = rows
        .iter()
        .any(|r| r.priority == priority && r.weight.is_some());
    let effective = |row: &LocalityShare| -> f64 {
        if row.total == 0 {
            return 0.0;
        }
        if weighted {
            let availability = (factor * row.healthy as f64 / row.total as f64).min(1.0);
            f64::from(row.weight.unwrap_or(0)) * availability
        } else {
            row.healthy as f64
        }
    };
    let sum: f64 = rows
        .iter()
        .filter(|r| r.priority == priority)
        .map(effective)
        .sum();
    // Nothing healthy in the level (Envoy's panic mode): every endpoint is used alike.
    let panic = |row: &LocalityShare| row.total as f64 * f64::from(row.weight.unwrap_or(1));
    let panic_sum: f64 = rows
        .iter()
        .filter(|r| r.priority == priority)
        .map(panic)
        .sum();
    for row in rows.iter_mut().filter(|r| r.priority == priority) {
        row.share = if sum > 0.0 {
            load * effective(row) / sum
        } else if panic_sum > 0.0 {
            load * panic(row) / panic_sum
        } else {
            0.0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::Locality;
    use envoy_types::pb::envoy::config::endpoint::v3::LocalityLbEndpoints;
    use envoy_types::pb::google::protobuf::UInt32Value;

    fn group(
        zone: &str,
        priority: u32,
        weight: u32,
        healthy: usize,
        sick: usize,
    ) -> LocalityLbEndpoints {
        let endpoint = |status: HealthStatus| LbEndpoint {
            health_status: status as i32,
            ..Default::default()
        };
        LocalityLbEndpoints {
            locality: Some(Locality {
                region: "r".into(),
                zone: zone.into(),
                ..Default::default()
            }),
            lb_endpoints: std::iter::repeat_n(endpoint(HealthStatus::Healthy), healthy)
                .chain(std::iter::repeat_n(endpoint(HealthStatus::Unhealthy), sick))
                .collect(),
            load_balancing_weight: Some(UInt32Value { value: weight }),
            priority,
            ..Default::default()
        }
    }

    fn assignment(groups: Vec<LocalityLbEndpoints>) -> Vec<f64> {
        let cla = ClusterLoadAssignment {
            cluster_name: "svc".into(),
            endpoints: groups,
            ..Default::default()
        };
        shares(&cla)
            .iter()
            .map(|r| (r.share * 1000.0).round() / 1000.0)
            .collect()
    }

    #[test]
    fn a_healthy_first_priority_takes_everything() {
        assert_eq!(
            assignment(vec![group("a", 0, 1, 2, 0), group("b", 1, 1, 2, 0)]),
            [1.0, 0.0]
        );
    }

    #[test]
    fn weights_split_a_level() {
        assert_eq!(
            assignment(vec![group("a", 0, 3, 1, 0), group("b", 0, 1, 1, 0)]),
            [0.75, 0.25]
        );
    }

    #[test]
    fn a_mostly_unhealthy_level_spills_past_the_overprovisioning_factor() {
        // 1 of 4 healthy: 1.4 × 25% = 35% stays, 65% spills to priority 1.
        assert_eq!(
            assignment(vec![group("a", 0, 1, 1, 3), group("b", 1, 1, 2, 0)]),
            [0.35, 0.65]
        );
    }

    #[test]
    fn nothing_healthy_sends_everything_to_the_first_level() {
        let rows = shares(&ClusterLoadAssignment {
            endpoints: vec![group("a", 0, 1, 0, 2), group("b", 1, 1, 0, 2)],
            ..Default::default()
        });
        assert_eq!(rows[1].share, 0.0);
        assert_eq!(rows[0].unhealthy, ["? UNHEALTHY", "? UNHEALTHY"]);
        assert_eq!(rows[0].share, 1.0);
    }
}
