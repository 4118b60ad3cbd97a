//! The outlier detector's counters, named as Envoy names them under
//! `cluster.<name>.outlier_detection.`, and their Prometheus text.

use std::sync::atomic::{AtomicU64, Ordering};

use super::detector::Ejection;
use crate::proxy::prometheus::{label, Labels, Scrape};

#[derive(Debug, Default)]
pub struct OutlierStats {
    pub ejections_active: AtomicU64,
    pub ejections_overflow: AtomicU64,
    pub ejections_enforced_total: AtomicU64,
    /// Enforced ejections by reason, in [`Ejection`]'s order.
    enforced: [AtomicU64; 4],
    /// Detected ejections (enforced or not) by reason.
    detected: [AtomicU64; 4],
}

const REASONS: [&str; 4] = [
    "consecutive_5xx",
    "consecutive_gateway_failure",
    "success_rate",
    "failure_percentage",
];

impl OutlierStats {
    pub fn detected(&self, reason: Ejection) {
        self.detected[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn enforced(&self, reason: Ejection) {
        self.ejections_enforced_total
            .fetch_add(1, Ordering::Relaxed);
        self.enforced[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter as (Envoy's stat name under `outlier_detection.`, value).
    pub(super) fn values(&self) -> Vec<(String, u64)> {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut values = vec![
            ("ejections_active".to_string(), get(&self.ejections_active)),
            (
                "ejections_overflow".to_string(),
                get(&self.ejections_overflow),
            ),
            (
                "ejections_enforced_total".to_string(),
                get(&self.ejections_enforced_total),
            ),
        ];
        for (index, reason) in REASONS.iter().enumerate() {
            values.push((
                format!("ejections_enforced_{reason}"),
                get(&self.enforced[index]),
            ));
            values.push((
                format!("ejections_detected_{reason}"),
                get(&self.detected[index]),
            ));
        }
        values
    }
}

/// Adds the counters of every cluster with outlier detection to `scrape`, as Envoy's
/// `/stats/prometheus` names them (`envoy_cluster_outlier_detection_<stat>`), counters with
/// `_total` (`ejections_enforced_total` is Envoy's counter `ejections_enforced_total` too).
pub fn gather<'a>(
    clusters: impl Iterator<Item = (&'a String, &'a OutlierStats)>,
    scrape: &mut Scrape,
) {
    let mut by_stat: Vec<(String, Vec<(Labels, u64)>)> = Vec::new();
    for (cluster, stats) in clusters {
        for (index, (stat, value)) in stats.values().into_iter().enumerate() {
            if by_stat.len() <= index {
                by_stat.push((stat, Vec::new()));
            }
            by_stat[index]
                .1
                .push((label("envoy_cluster_name", cluster), value));
        }
    }
    for (stat, series) in by_stat {
        if stat == "ejections_active" {
            let name = format!("envoy_cluster_outlier_detection_{stat}");
            scrape.gauges(&name, "Hosts ejected now.", series);
        } else {
            // The encoder adds `_total` to counters; a stat already ending in it keeps one.
            let stat = stat.strip_suffix("_total").unwrap_or(&stat);
            let name = format!("envoy_cluster_outlier_detection_{stat}");
            scrape.counters(
                &name,
                "Outlier detection ejections, as Envoy counts them.",
                series,
            );
        }
    }
}
