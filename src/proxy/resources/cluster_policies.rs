//! A Cluster's traffic policies → the sidecar's: slow start (round robin's and least
//! request's slow_start_config; Envoy's defaults: aggression 1.0, a linear ramp, and a minimum
//! weight of 10%) and circuit breakers (the default priority's thresholds; Envoy's default,
//! 1024, for each one not set). Pure.

use envoy_types::pb::envoy::config::cluster::v3::cluster::{LbConfig, SlowStartConfig};
use envoy_types::pb::envoy::config::cluster::v3::CircuitBreakers;

use super::duration;
use crate::proxy::circuit_breakers::{Limits, DEFAULT_LIMIT};
use crate::proxy::slow_start::SlowStart;

/// The circuit-breaker thresholds the sidecar applies (not `max_retries`: the sidecar retries
/// without Envoy's backoff, during which a retry holds its place, so it cannot count retries
/// as Envoy does).
pub(super) const CIRCUIT_BREAKER_FIELDS: &[&str] = &[
    "circuit_breakers.thresholds.max_connections",
    "circuit_breakers.thresholds.max_pending_requests",
    "circuit_breakers.thresholds.max_requests",
];

/// The cluster's thresholds: its first (default-priority) entry's, Envoy's defaults for the rest.
pub(super) fn circuit_breakers(breakers: Option<&CircuitBreakers>) -> Limits {
    let Some(thresholds) = breakers.and_then(|b| b.thresholds.first()) else {
        return Limits::default();
    };
    let limit = |value: Option<&envoy_types::pb::google::protobuf::UInt32Value>| {
        value.map_or(DEFAULT_LIMIT, |v| v.value)
    };
    Limits {
        max_connections: limit(thresholds.max_connections.as_ref()),
        max_pending_requests: limit(thresholds.max_pending_requests.as_ref()),
        max_requests: limit(thresholds.max_requests.as_ref()),
    }
}

/// The slow-start fields of round robin's and least request's config the sidecar applies.
/// (`aggression.runtime_key` names a runtime value; the sidecar has no runtime layer, so the
/// default value applies, as in an Envoy whose runtime does not set the key.)
pub(super) const SLOW_START_FIELDS: &[&str] = &[
    "round_robin_lb_config.slow_start_config.slow_start_window",
    "round_robin_lb_config.slow_start_config.aggression.default_value",
    "round_robin_lb_config.slow_start_config.aggression.runtime_key",
    "round_robin_lb_config.slow_start_config.min_weight_percent",
    "least_request_lb_config.slow_start_config.slow_start_window",
    "least_request_lb_config.slow_start_config.aggression.default_value",
    "least_request_lb_config.slow_start_config.aggression.runtime_key",
    "least_request_lb_config.slow_start_config.min_weight_percent",
];

/// Envoy's minimum weight when slow_start_config names none: 10%.
const DEFAULT_MIN_WEIGHT_PERCENT: f64 = 10.0;

/// The cluster's slow start; None without one or with a zero window (Envoy's "off").
pub(super) fn slow_start(lb_config: Option<&LbConfig>) -> Option<SlowStart> {
    let config = match lb_config? {
        LbConfig::RoundRobinLbConfig(config) => config.slow_start_config.as_ref(),
        LbConfig::LeastRequestLbConfig(config) => config.slow_start_config.as_ref(),
        _ => None,
    }?;
    convert(config)
}

fn convert(config: &SlowStartConfig) -> Option<SlowStart> {
    let window = duration(config.slow_start_window.as_ref()?);
    if window.is_zero() {
        return None;
    }
    // Envoy falls back to a linear ramp for an aggression that is not above zero.
    let aggression = config
        .aggression
        .as_ref()
        .map(|a| a.default_value)
        .filter(|a| *a > 0.0 && a.is_finite())
        .unwrap_or(1.0);
    let percent = config
        .min_weight_percent
        .as_ref()
        .map_or(DEFAULT_MIN_WEIGHT_PERCENT, |p| p.value);
    Some(SlowStart {
        window,
        aggression,
        min_weight: (percent / 100.0).clamp(0.0, 1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::RoundRobinLbConfig;
    use envoy_types::pb::envoy::r#type::v3::Percent;
    use envoy_types::pb::google::protobuf::Duration as XdsDuration;
    use std::time::Duration;

    fn round_robin(config: SlowStartConfig) -> Option<SlowStart> {
        slow_start(Some(&LbConfig::RoundRobinLbConfig(RoundRobinLbConfig {
            slow_start_config: Some(config),
        })))
    }

    #[test]
    fn envoys_defaults_fill_what_the_config_leaves_out_and_a_zero_window_is_off() {
        let window = Some(XdsDuration {
            seconds: 30,
            nanos: 0,
        });
        let defaults = round_robin(SlowStartConfig {
            slow_start_window: window,
            ..Default::default()
        });
        assert_eq!(
            defaults,
            Some(SlowStart {
                window: Duration::from_secs(30),
                aggression: 1.0,
                min_weight: 0.1
            })
        );
        let one_percent = round_robin(SlowStartConfig {
            slow_start_window: window,
            min_weight_percent: Some(Percent { value: 1.0 }),
            ..Default::default()
        });
        assert_eq!(one_percent.map(|s| s.min_weight), Some(0.01));
        let off = round_robin(SlowStartConfig {
            slow_start_window: Some(XdsDuration::default()),
            ..Default::default()
        });
        assert_eq!(off, None);
    }
}
