//! The outlier detector's counters, named as Envoy names them under
//! `cluster.<name>.outlier_detection.`, and their Prometheus text.

use std::sync::atomic::{AtomicU64, Ordering};

use super::detector::Ejection;

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

/// The Prometheus text of the counters of every cluster with outlier detection, as Envoy's
/// `/stats/prometheus` writes them (`envoy_cluster_outlier_detection_<stat>`).
pub fn render<'a>(clusters: impl Iterator<Item = (&'a String, &'a OutlierStats)>) -> String {
    let mut by_stat: Vec<(String, Vec<(String, u64)>)> = Vec::new();
    for (cluster, stats) in clusters {
        for (index, (stat, value)) in stats.values().into_iter().enumerate() {
            if by_stat.len() <= index {
                by_stat.push((stat, Vec::new()));
            }
            by_stat[index].1.push((cluster.clone(), value));
        }
    }
    let mut text = String::new();
    for (stat, values) in by_stat {
        let kind = if stat == "ejections_active" {
            "gauge"
        } else {
            "counter"
        };
        let name = format!("envoy_cluster_outlier_detection_{stat}");
        text.push_str(&format!("# TYPE {name} {kind}\n"));
        for (cluster, value) in values {
            text.push_str(&format!(
                "{name}{{envoy_cluster_name=\"{cluster}\"}} {value}\n"
            ));
        }
    }
    text
}
