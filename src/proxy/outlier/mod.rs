//! Outlier detection, as Envoy's applies to a cluster: each attempt's result is reported per
//! endpoint (detector.rs), an endpoint that keeps failing is ejected, and the cluster's
//! balancer is rebuilt with it counted unhealthy until its ejection time is over (timer.rs
//! runs the cluster's interval and asks the applier to rebuild). Detectors are kept across
//! xDS updates while the cluster's settings stay the same (store.rs).
//!
//! Must not: pick endpoints (the balancer does) or touch sockets.

mod detector;
mod stats;
mod store;
pub mod timer;

use std::time::Duration;

pub use detector::{Detector, Reported};
pub use stats::gather;
pub use store::{without_ejected, OutlierStore};

/// A cluster's `outlier_detection`, Envoy's defaults filled in (see
/// proxy/resources/outlier_detection.rs). Percentages are 0..=100; the standard deviation
/// factor is in thousandths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutlierSettings {
    pub interval: Duration,
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    pub max_ejection_percent: u32,
    pub always_eject_one_host: bool,
    pub consecutive_5xx: u32,
    pub enforcing_consecutive_5xx: u32,
    pub consecutive_gateway_failure: u32,
    pub enforcing_consecutive_gateway_failure: u32,
    pub enforcing_success_rate: u32,
    pub success_rate_minimum_hosts: u32,
    pub success_rate_request_volume: u32,
    pub success_rate_stdev_factor: u32,
    pub enforcing_failure_percentage: u32,
    pub failure_percentage_threshold: u32,
    pub failure_percentage_minimum_hosts: u32,
    pub failure_percentage_request_volume: u32,
}
