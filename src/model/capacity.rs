//! Target and effective capacity of a service's endpoint group: its target (for the group,
//! or per endpoint × the group's endpoints) × its scaler. Pure arithmetic; translation turns
//! the results into locality weights, the dialects decide what the target is.

use super::{Capacity, CapacityTarget, EndpointGroup};

/// The capacity the target gives the whole group, before the scaler.
pub fn target_capacity(capacity: &Capacity, group: &EndpointGroup) -> f64 {
    match capacity.target {
        CapacityTarget::Group(total) => total,
        CapacityTarget::PerEndpoint(each) => each * group.endpoints.len() as f64,
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

/// Target capacity × scaler.
pub fn effective_capacity(capacity: &Capacity, group: &EndpointGroup) -> f64 {
    target_capacity(capacity, group) * capacity.scaler
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
