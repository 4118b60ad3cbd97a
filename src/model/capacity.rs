//! Target and effective capacity of a backend, from its balancing mode (tables of the
//! backend-services document): "per instance / per endpoint = X" means X × N for the group.
//! Pure arithmetic; translation turns the results into locality weights.

use super::{Backend, BalancingMode, EndpointGroup};

/// The default maxUtilization when UTILIZATION names no target.
pub const DEFAULT_MAX_UTILIZATION: f64 = 0.8;

/// The capacity the balancing mode gives the whole group, before capacityScaler.
pub fn target_capacity(backend: &Backend, group: &EndpointGroup) -> f64 {
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
    if group.kind == super::GroupKind::Targets {
        let plural = if members == 1 { "" } else { "s" };
        return format!("one share per target × {members} target{plural}");
    }
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

/// A number without a needless fraction: `10`, `0.8`.
pub fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{}", (x * 1000.0).round() / 1000.0)
    }
}

/// Target capacity × capacityScaler.
pub fn effective_capacity(backend: &Backend, group: &EndpointGroup) -> f64 {
    target_capacity(backend, group) * backend.capacity_scaler
}

/// Largest locality weight handed out; the busiest backend gets this, others in proportion.
pub const WEIGHT_SCALE: f64 = 10_000.0;

/// Integer weights (≥ 1) proportional to `capacities`; `None` for a capacity of 0, which must
/// leave rotation rather than get a weight (xDS forbids a locality weight of 0).
pub fn weights(capacities: &[f64]) -> Vec<Option<u32>> {
    let largest = capacities.iter().copied().fold(0.0_f64, f64::max);
    capacities
        .iter()
        .map(|&capacity| {
            if capacity <= 0.0 || largest <= 0.0 {
                None
            } else {
                Some(((capacity / largest) * WEIGHT_SCALE).round().max(1.0) as u32)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_keep_ratios_and_drop_zero() {
        assert_eq!(
            weights(&[30.0, 10.0, 0.0]),
            vec![Some(10_000), Some(3_333), None]
        );
        assert_eq!(weights(&[0.0, 0.0]), vec![None, None]);
        assert_eq!(weights(&[1e9, 1.0]), vec![Some(10_000), Some(1)]);
    }
}
