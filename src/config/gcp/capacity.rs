//! A backend's capacity from its balancing mode (the tables of the backend-services
//! document), in the model's neutral terms: "per instance / per endpoint = X" is a target of X
//! per endpoint, `maxRate` / `maxConnections` a target for the whole group; UTILIZATION is a
//! per-instance target unless a rate caps it. Also how the target was written, for `explain`.

use crate::model::capacity::number;
use crate::model::{Capacity, CapacityTarget, CapacityUnit, CapacityWritten};

use super::resources::{Backend, BalancingMode, EndpointGroup};

/// The default maxUtilization when UTILIZATION names no target.
pub const DEFAULT_MAX_UTILIZATION: f64 = 0.8;

/// The capacity the balancing mode gives the whole group, before capacityScaler.
#[cfg(test)]
fn target_capacity(backend: &Backend, group: &EndpointGroup) -> f64 {
    let members = group.endpoints.len() as f64;
    let per_member = |total: Option<f64>, per_instance: Option<f64>, per_endpoint: Option<f64>| {
        total
            .or(per_instance.map(|x| x * members))
            .or(per_endpoint.map(|x| x * members))
    };
    match backend.balancing_mode {
        BalancingMode::Rate => per_member(
            backend.max_rate,
            backend.max_rate_per_instance,
            backend.max_rate_per_endpoint,
        )
        .unwrap_or(0.0),
        BalancingMode::Connection => per_member(
            backend.max_connections,
            backend.max_connections_per_instance,
            backend.max_connections_per_endpoint,
        )
        .unwrap_or(0.0),
        // Utilization is a per-instance CPU target: the group can take that much of each of its
        // N members. A rate cap, when given, is the tighter statement of capacity.
        BalancingMode::Utilization => per_member(
            backend.max_rate,
            backend.max_rate_per_instance,
            backend.max_rate_per_endpoint,
        )
        .unwrap_or_else(|| backend.max_utilization.unwrap_or(DEFAULT_MAX_UTILIZATION) * members),
    }
}

/// How the target capacity was reached, for people: `maxRatePerEndpoint 10 × 3 endpoints`.
pub fn describe_target_capacity(backend: &Backend, group: &EndpointGroup) -> String {
    let members = group.endpoints.len();
    let unit = if group.kind.is_instance_group() {
        "instance"
    } else {
        "endpoint"
    };
    let plural = if members == 1 { "" } else { "s" };
    let per = |name: &str, x: f64| format!("{name} {} × {members} {unit}{plural}", number(x));
    let rate = match (
        backend.max_rate,
        backend.max_rate_per_instance,
        backend.max_rate_per_endpoint,
    ) {
        (Some(x), ..) => Some(format!("maxRate {}", number(x))),
        (None, Some(x), _) => Some(per("maxRatePerInstance", x)),
        (None, None, Some(x)) => Some(per("maxRatePerEndpoint", x)),
        _ => None,
    };
    match backend.balancing_mode {
        BalancingMode::Rate => rate.unwrap_or_else(|| "no target capacity".into()),
        BalancingMode::Connection => match (
            backend.max_connections,
            backend.max_connections_per_instance,
            backend.max_connections_per_endpoint,
        ) {
            (Some(x), ..) => format!("maxConnections {}", number(x)),
            (None, Some(x), _) => per("maxConnectionsPerInstance", x),
            (None, None, Some(x)) => per("maxConnectionsPerEndpoint", x),
            _ => "no target capacity".into(),
        },
        BalancingMode::Utilization => rate.unwrap_or_else(|| {
            let utilization = backend.max_utilization.unwrap_or(DEFAULT_MAX_UTILIZATION);
            per("maxUtilization", utilization)
        }),
    }
}

/// The neutral capacity of `backend` (whose group is `group`, when it exists).
pub fn capacity(backend: &Backend, group: Option<&EndpointGroup>) -> Capacity {
    let rate = backend
        .max_rate
        .map(CapacityTarget::Group)
        .or(backend
            .max_rate_per_instance
            .map(CapacityTarget::PerEndpoint))
        .or(backend
            .max_rate_per_endpoint
            .map(CapacityTarget::PerEndpoint));
    let connections = backend
        .max_connections
        .map(CapacityTarget::Group)
        .or(backend
            .max_connections_per_instance
            .map(CapacityTarget::PerEndpoint))
        .or(backend
            .max_connections_per_endpoint
            .map(CapacityTarget::PerEndpoint));
    let none = CapacityTarget::Group(0.0);
    let (unit, target) = match backend.balancing_mode {
        BalancingMode::Rate => (CapacityUnit::RequestsPerSecond, rate.unwrap_or(none)),
        BalancingMode::Connection => (CapacityUnit::Connections, connections.unwrap_or(none)),
        BalancingMode::Utilization => match rate {
            Some(rate) => (CapacityUnit::RequestsPerSecond, rate),
            None => (
                CapacityUnit::Utilization,
                CapacityTarget::PerEndpoint(
                    backend.max_utilization.unwrap_or(DEFAULT_MAX_UTILIZATION),
                ),
            ),
        },
    };
    Capacity {
        unit,
        target,
        scaler: backend.capacity_scaler,
        written: CapacityWritten {
            mode: backend.balancing_mode.as_str().to_string(),
            formula: group
                .map(|group| describe_target_capacity(backend, group))
                .unwrap_or_default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::gcp::resources::GroupKind;
    use crate::model::Loc;

    fn group(kind: GroupKind, endpoints: usize) -> EndpointGroup {
        EndpointGroup {
            name: "g".into(),
            loc: Loc::new("t.yaml", 1),
            kind,
            zone: "z".into(),
            region: "r".into(),
            named_ports: Default::default(),
            default_port: None,
            endpoints: (0..endpoints)
                .map(|_| crate::model::Endpoint {
                    instance: None,
                    ipv4: None,
                    ipv6: None,
                    fqdn: None,
                    port: None,
                    weight: None,
                    zone: None,
                })
                .collect(),
        }
    }

    fn backend(mode: BalancingMode) -> Backend {
        Backend {
            group: crate::model::Ref {
                name: "g".into(),
                loc: Loc::new("t.yaml", 1),
                path: String::new(),
            },
            loc: Loc::new("t.yaml", 1),
            balancing_mode: mode,
            max_rate: None,
            max_rate_per_instance: None,
            max_rate_per_endpoint: None,
            max_connections: None,
            max_connections_per_instance: None,
            max_connections_per_endpoint: None,
            max_utilization: None,
            capacity_scaler: 1.0,
        }
    }

    #[test]
    fn the_neutral_target_is_what_the_balancing_mode_tables_say() {
        let three = group(GroupKind::GceVmIpPortNeg, 3);
        for (written, expected) in [
            (
                Backend {
                    max_rate: Some(40.0),
                    ..backend(BalancingMode::Rate)
                },
                40.0,
            ),
            (
                Backend {
                    max_rate_per_endpoint: Some(10.0),
                    ..backend(BalancingMode::Rate)
                },
                30.0,
            ),
            (
                Backend {
                    max_connections_per_instance: Some(5.0),
                    ..backend(BalancingMode::Connection)
                },
                15.0,
            ),
            (backend(BalancingMode::Utilization), 0.8 * 3.0),
        ] {
            let neutral = capacity(&written, Some(&three));
            let lowered = crate::model::capacity::target_capacity(&neutral, &lowered_group(&three));
            assert_eq!(lowered, target_capacity(&written, &three));
            assert_eq!(lowered, expected);
        }
    }

    fn lowered_group(group: &EndpointGroup) -> crate::model::EndpointGroup {
        crate::model::EndpointGroup {
            name: group.name.clone(),
            loc: group.loc.clone(),
            members: crate::model::Members::Endpoints,
            zone: group.zone.clone(),
            region: group.region.clone(),
            named_ports: group.named_ports.clone(),
            default_port: group.default_port,
            endpoints: group.endpoints.clone(),
        }
    }
}
