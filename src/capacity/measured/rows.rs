//! What `/load_measured` shows of a [`ReportWindow`]: per service and client region, the load
//! over the window and its share per upstream locality. Must not: change the window.

use std::collections::BTreeMap;

use super::series::Bucket;
use super::{load_of, ReportWindow, Span};

/// What `/load_measured` shows of one service and client region.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MeasuredRow {
    pub service: String,
    pub client_region: String,
    pub requests_per_second: f64,
    pub in_progress: f64,
    pub utilization: Option<f64>,
    /// The same, per upstream locality (`region/zone`).
    pub upstream: BTreeMap<String, UpstreamRow>,
}

/// One upstream locality's share of a [`MeasuredRow`].
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct UpstreamRow {
    pub requests_per_second: f64,
    pub in_progress: f64,
    pub utilization: Option<f64>,
}

/// Rows shown (services sorted, at most the limit asked), with the window's size and losses.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MeasuredPage {
    pub rows: Vec<MeasuredRow>,
    pub window_seconds: f64,
    pub series: usize,
    pub max_series: usize,
    /// Report entries dropped because the window was full, since it started.
    pub dropped_entries: u64,
    pub truncated: bool,
}

impl ReportWindow {
    /// Per service and client region (services from `service` only, when given), at most
    /// `limit` rows.
    pub fn rows(&self, service: Option<&str>, limit: usize) -> MeasuredPage {
        let state = self.lock();
        let Span {
            first,
            end,
            seconds,
            ..
        } = self.span(&state);
        let mut rows = Vec::new();
        let mut truncated = false;
        let services = state
            .services
            .iter()
            .filter(|(name, _)| service.is_none_or(|wanted| wanted == name.as_str()));
        'services: for (name, series) in services {
            let mut by_region: BTreeMap<&str, (Bucket, BTreeMap<String, UpstreamRow>)> =
                BTreeMap::new();
            for ((region, upstream), one) in series {
                let sum = one.sum(first, end);
                if sum.is_idle() {
                    continue;
                }
                let (total, upstreams) = by_region.entry(region).or_default();
                total.add(&sum);
                let load = load_of(&sum, seconds);
                upstreams.insert(
                    format!("{}/{}", upstream.region, upstream.zone),
                    UpstreamRow {
                        requests_per_second: load.requests_per_second,
                        in_progress: load.in_progress,
                        utilization: load.utilization,
                    },
                );
            }
            for (region, (total, upstream)) in by_region {
                if rows.len() >= limit {
                    truncated = true;
                    break 'services;
                }
                let load = load_of(&total, seconds);
                rows.push(MeasuredRow {
                    service: name.clone(),
                    client_region: region.to_string(),
                    requests_per_second: load.requests_per_second,
                    in_progress: load.in_progress,
                    utilization: load.utilization,
                    upstream,
                });
            }
        }
        MeasuredPage {
            rows,
            window_seconds: seconds,
            series: state.series,
            max_series: self.settings.max_series,
            dropped_entries: state.dropped,
            truncated,
        }
    }
}
