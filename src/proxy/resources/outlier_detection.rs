//! A Cluster's `outlier_detection` → the sidecar's [`OutlierSettings`], with Envoy's default
//! for every field left out. Pure: the detector itself is proxy/outlier/.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection;

use super::duration;
use crate::proxy::outlier::OutlierSettings;

/// What the sidecar applies of a Cluster's `outlier_detection` (every field Switchyard
/// writes, and the ejection time cap). Local-origin splitting, jitter and extension monitors
/// are refused.
pub(super) const OUTLIER_FIELDS: &[&str] = &[
    "outlier_detection.consecutive_5xx",
    "outlier_detection.consecutive_gateway_failure",
    "outlier_detection.enforcing_consecutive_5xx",
    "outlier_detection.enforcing_consecutive_gateway_failure",
    "outlier_detection.enforcing_success_rate",
    "outlier_detection.interval",
    "outlier_detection.base_ejection_time",
    "outlier_detection.max_ejection_time",
    "outlier_detection.max_ejection_percent",
    "outlier_detection.always_eject_one_host",
    "outlier_detection.success_rate_minimum_hosts",
    "outlier_detection.success_rate_request_volume",
    "outlier_detection.success_rate_stdev_factor",
    "outlier_detection.enforcing_failure_percentage",
    "outlier_detection.failure_percentage_threshold",
    "outlier_detection.failure_percentage_minimum_hosts",
    "outlier_detection.failure_percentage_request_volume",
];

/// Envoy's longest ejection when the cluster names none (or the base time, if longer).
const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

/// The cluster's outlier detection, None when it has none.
pub(super) fn settings(config: Option<&OutlierDetection>) -> Option<OutlierSettings> {
    let config = config?;
    let or = |value: &Option<u32>, default: u32| value.unwrap_or(default);
    let count = |wrapped: &Option<envoy_types::pb::google::protobuf::UInt32Value>| {
        wrapped.as_ref().map(|w| w.value)
    };
    let time = |wrapped: &Option<envoy_types::pb::google::protobuf::Duration>, default: u64| {
        wrapped
            .as_ref()
            .map_or(Duration::from_millis(default), duration)
    };
    let base_ejection_time = time(&config.base_ejection_time, 30_000);
    Some(OutlierSettings {
        interval: time(&config.interval, 10_000),
        base_ejection_time,
        max_ejection_time: config
            .max_ejection_time
            .as_ref()
            .map_or(DEFAULT_MAX_EJECTION_TIME.max(base_ejection_time), duration),
        max_ejection_percent: or(&count(&config.max_ejection_percent), 10).min(100),
        always_eject_one_host: config
            .always_eject_one_host
            .as_ref()
            .is_some_and(|b| b.value),
        consecutive_5xx: or(&count(&config.consecutive_5xx), 5),
        enforcing_consecutive_5xx: or(&count(&config.enforcing_consecutive_5xx), 100),
        consecutive_gateway_failure: or(&count(&config.consecutive_gateway_failure), 5),
        enforcing_consecutive_gateway_failure: or(
            &count(&config.enforcing_consecutive_gateway_failure),
            0,
        ),
        enforcing_success_rate: or(&count(&config.enforcing_success_rate), 100),
        success_rate_minimum_hosts: or(&count(&config.success_rate_minimum_hosts), 5),
        success_rate_request_volume: or(&count(&config.success_rate_request_volume), 100),
        success_rate_stdev_factor: or(&count(&config.success_rate_stdev_factor), 1900),
        enforcing_failure_percentage: or(&count(&config.enforcing_failure_percentage), 0),
        failure_percentage_threshold: or(&count(&config.failure_percentage_threshold), 85),
        failure_percentage_minimum_hosts: or(&count(&config.failure_percentage_minimum_hosts), 5),
        failure_percentage_request_volume: or(
            &count(&config.failure_percentage_request_volume),
            50,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::{Duration as XdsDuration, UInt32Value};

    #[test]
    fn unset_fields_take_envoys_defaults_and_the_cap_grows_with_the_base_time() {
        let empty = settings(Some(&OutlierDetection::default())).unwrap();
        assert_eq!(empty.consecutive_5xx, 5);
        assert_eq!(empty.enforcing_consecutive_gateway_failure, 0);
        assert_eq!(empty.max_ejection_percent, 10);
        assert_eq!(empty.interval, Duration::from_secs(10));
        assert_eq!(empty.max_ejection_time, Duration::from_secs(300));
        let long = settings(Some(&OutlierDetection {
            base_ejection_time: Some(XdsDuration {
                seconds: 600,
                nanos: 0,
            }),
            consecutive_5xx: Some(UInt32Value { value: 3 }),
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(long.max_ejection_time, Duration::from_secs(600));
        assert_eq!(long.consecutive_5xx, 3);
        assert!(settings(None).is_none());
    }
}
