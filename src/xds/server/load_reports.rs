//! What clients reported over LRS, kept per stream and bounded: only clusters the server
//! serves are counted, a stream holds at most [`MAX_ENTRIES_PER_STREAM`] (cluster, locality)
//! totals, client-supplied locality names are cut short, and a stream's totals are kept for
//! [`KEEP_ENDED_FOR`] after it ends (at most [`MAX_ENDED_STREAMS`] of them), then dropped.
//! Reading is filtered and limited. Must not: keep anything a client can grow without bound.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::load_stats::v3::LoadStatsRequest;
use serde::Serialize;

/// (cluster, locality) totals one stream may hold.
pub const MAX_ENTRIES_PER_STREAM: usize = 4096;
/// How long an ended stream's totals are still shown.
pub const KEEP_ENDED_FOR: Duration = Duration::from_secs(300);
/// Ended streams kept at most.
pub const MAX_ENDED_STREAMS: usize = 1024;
/// The longest locality (`region/zone/sub_zone`) and node id kept; longer ones are cut.
const MAX_NAME_BYTES: usize = 256;
/// Rows answered when no limit is asked for, and the most that may be asked for.
pub const DEFAULT_ROWS: usize = 1000;
pub const MAX_ROWS: usize = 10_000;

/// Totals reported for one locality of one cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LocalityLoad {
    pub successful_requests: u64,
    pub error_requests: u64,
    pub issued_requests: u64,
    /// The latest report's count of requests still in flight.
    pub in_progress: u64,
}

impl LocalityLoad {
    fn add(&mut self, other: &LocalityLoad) {
        self.successful_requests += other.successful_requests;
        self.error_requests += other.error_requests;
        self.issued_requests += other.issued_requests;
        self.in_progress += other.in_progress;
    }
}

/// One stream's totals, by (cluster, locality).
struct StreamLoads {
    node_id: String,
    totals: BTreeMap<(String, String), LocalityLoad>,
}

#[derive(Default)]
struct Streams {
    next_id: u64,
    open: HashMap<u64, StreamLoads>,
    /// Oldest first.
    ended: VecDeque<(Instant, StreamLoads)>,
}

impl Streams {
    fn prune(&mut self, now: Instant) {
        while self.ended.len() > MAX_ENDED_STREAMS
            || self
                .ended
                .front()
                .is_some_and(|(ended, _)| now.duration_since(*ended) > KEEP_ENDED_FOR)
        {
            self.ended.pop_front();
        }
    }
}

/// Every stream's load reports.
#[derive(Default)]
pub struct LoadReports {
    streams: Mutex<Streams>,
}

/// A stream's place in [`LoadReports`]; its totals move to the ended ones when dropped.
pub struct LoadStream {
    reports: Arc<LoadReports>,
    id: u64,
}

impl Drop for LoadStream {
    fn drop(&mut self) {
        let mut streams = self.reports.lock();
        if let Some(loads) = streams.open.remove(&self.id) {
            if !loads.totals.is_empty() {
                streams.ended.push_back((Instant::now(), loads));
            }
        }
        streams.prune(Instant::now());
    }
}

/// What `/load_reports` shows of one client, cluster and locality.
#[derive(Debug, Serialize)]
pub struct LoadRow {
    pub node_id: String,
    pub cluster: String,
    pub locality: String,
    #[serde(flatten)]
    pub load: LocalityLoad,
}

/// Which rows to show.
#[derive(Debug, Default)]
pub struct LoadFilter {
    pub node_id: Option<String>,
    pub cluster: Option<String>,
    pub limit: Option<usize>,
}

/// Rows shown, and how many matched in all.
#[derive(Debug, Serialize)]
pub struct LoadPage {
    pub load_reports: Vec<LoadRow>,
    pub matched: usize,
    pub truncated: bool,
}

impl LoadReports {
    fn lock(&self) -> std::sync::MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a stream of `node_id`.
    pub fn open(self: &Arc<Self>, node_id: &str) -> LoadStream {
        let mut streams = self.lock();
        streams.next_id += 1;
        let id = streams.next_id;
        streams.open.insert(
            id,
            StreamLoads {
                node_id: cut(node_id),
                totals: BTreeMap::new(),
            },
        );
        LoadStream {
            reports: self.clone(),
            id,
        }
    }

    /// Adds one report to `stream`, counting only clusters `served` knows; answers how many
    /// entries were dropped (unserved, or over the stream's bound).
    pub fn record(
        &self,
        stream: &LoadStream,
        request: &LoadStatsRequest,
        served: impl Fn(&str) -> bool,
    ) -> u64 {
        let mut streams = self.lock();
        let Some(loads) = streams.open.get_mut(&stream.id) else {
            return 0;
        };
        let mut dropped = 0;
        for cluster in &request.cluster_stats {
            if !served(&cluster.cluster_name) {
                dropped += cluster.upstream_locality_stats.len().max(1) as u64;
                continue;
            }
            for stats in &cluster.upstream_locality_stats {
                let locality = stats
                    .locality
                    .as_ref()
                    .map(|l| cut(&format!("{}/{}/{}", l.region, l.zone, l.sub_zone)))
                    .unwrap_or_default();
                let key = (cluster.cluster_name.clone(), locality);
                let full = loads.totals.len() >= MAX_ENTRIES_PER_STREAM;
                let entry = match loads.totals.get_mut(&key) {
                    Some(entry) => entry,
                    None if full => {
                        dropped += 1;
                        continue;
                    }
                    None => loads.totals.entry(key).or_default(),
                };
                entry.successful_requests += stats.total_successful_requests;
                entry.error_requests += stats.total_error_requests;
                entry.issued_requests += stats.total_issued_requests;
                entry.in_progress = stats.total_requests_in_progress;
            }
        }
        dropped
    }

    /// Totals by client, cluster and locality (streams of one client added up), filtered and
    /// limited, sorted.
    pub fn rows(&self, filter: &LoadFilter) -> LoadPage {
        let mut streams = self.lock();
        streams.prune(Instant::now());
        let wanted = |loads: &&StreamLoads| {
            filter
                .node_id
                .as_ref()
                .is_none_or(|node| *node == loads.node_id)
        };
        let mut merged: BTreeMap<(&str, &str, &str), LocalityLoad> = BTreeMap::new();
        let all = streams
            .open
            .values()
            .chain(streams.ended.iter().map(|(_, loads)| loads));
        for loads in all.filter(wanted) {
            for ((cluster, locality), load) in &loads.totals {
                if filter.cluster.as_ref().is_some_and(|c| c != cluster) {
                    continue;
                }
                merged
                    .entry((&loads.node_id, cluster, locality))
                    .or_default()
                    .add(load);
            }
        }
        let limit = filter.limit.unwrap_or(DEFAULT_ROWS).min(MAX_ROWS);
        let matched = merged.len();
        let load_reports = merged
            .into_iter()
            .take(limit)
            .map(|((node_id, cluster, locality), load)| LoadRow {
                node_id: node_id.to_string(),
                cluster: cluster.to_string(),
                locality: locality.to_string(),
                load,
            })
            .collect();
        LoadPage {
            load_reports,
            matched,
            truncated: matched > limit,
        }
    }

    /// (open streams, ended streams kept, entries held in all): for tests and status.
    pub fn size(&self) -> (usize, usize, usize) {
        let streams = self.lock();
        let entries = streams
            .open
            .values()
            .chain(streams.ended.iter().map(|(_, loads)| loads))
            .map(|loads| loads.totals.len())
            .sum();
        (streams.open.len(), streams.ended.len(), entries)
    }
}

/// `text` cut to [`MAX_NAME_BYTES`] at a character boundary.
fn cut(text: &str) -> String {
    let mut end = text.len().min(MAX_NAME_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::Locality;
    use envoy_types::pb::envoy::config::endpoint::v3::{ClusterStats, UpstreamLocalityStats};

    fn report(clusters: &[&str], zones: usize, requests: u64) -> LoadStatsRequest {
        LoadStatsRequest {
            cluster_stats: clusters
                .iter()
                .map(|cluster| ClusterStats {
                    cluster_name: cluster.to_string(),
                    upstream_locality_stats: (0..zones)
                        .map(|zone| UpstreamLocalityStats {
                            locality: Some(Locality {
                                region: "r".into(),
                                zone: format!("z{zone}"),
                                ..Default::default()
                            }),
                            total_successful_requests: requests,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn unserved_clusters_and_entries_over_the_bound_are_dropped() {
        let reports = Arc::new(LoadReports::default());
        let stream = reports.open("n");
        let dropped = reports.record(&stream, &report(&["a", "invented"], 2, 5), |c| c == "a");
        assert_eq!(dropped, 2);
        let dropped = reports.record(
            &stream,
            &report(&["a"], MAX_ENTRIES_PER_STREAM + 10, 1),
            |_| true,
        );
        assert_eq!(dropped, 10);
        assert_eq!(reports.size().2, MAX_ENTRIES_PER_STREAM);
        let page = reports.rows(&LoadFilter {
            cluster: Some("a".into()),
            limit: Some(1),
            ..Default::default()
        });
        assert_eq!(page.load_reports.len(), 1);
        assert_eq!(page.matched, MAX_ENTRIES_PER_STREAM);
        assert!(page.truncated);
        assert_eq!(page.load_reports[0].load.successful_requests, 6);
    }

    #[test]
    fn streams_of_one_client_add_up_and_ended_ones_age_out() {
        let reports = Arc::new(LoadReports::default());
        let first = reports.open("n");
        reports.record(&first, &report(&["a"], 1, 3), |_| true);
        drop(first);
        let second = reports.open("n");
        reports.record(&second, &report(&["a"], 1, 4), |_| true);
        let page = reports.rows(&LoadFilter::default());
        assert_eq!(page.load_reports.len(), 1);
        assert_eq!(page.load_reports[0].load.successful_requests, 7);
        for _ in 0..MAX_ENDED_STREAMS + 5 {
            let stream = reports.open("m");
            reports.record(&stream, &report(&["a"], 1, 1), |_| true);
        }
        let (open, ended, _) = reports.size();
        assert_eq!((open, ended), (1, MAX_ENDED_STREAMS));
        let other = reports.rows(&LoadFilter {
            node_id: Some("nobody".into()),
            ..Default::default()
        });
        assert_eq!(other.matched, 0);
    }
}
