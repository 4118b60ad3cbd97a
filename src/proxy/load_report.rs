//! What the sidecar says on an LRS stream (`StreamLoadStats`), free of I/O, as Envoy says it:
//! the first message carries the node; the server's `LoadStatsResponse` names the clusters it
//! wants (or all of them) and how often, each new response replacing the last; every interval
//! the sidecar sends, per wanted cluster, the counts per upstream locality since it last took
//! them and the time that covers (`load_report_interval`).
//!
//! Unlike Envoy, a cluster that becomes wanted reports what it counted before, with the time
//! that covers, instead of dropping its first period's counts.
//!
//! Must not: touch sockets or timers (proxy/lrs_client.rs does), or count anything.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterStats, UpstreamLocalityStats};
use envoy_types::pb::envoy::service::load_stats::v3::{LoadStatsRequest, LoadStatsResponse};

use super::load_stats::{ClusterLoad, LoadStore};

/// The client feature that tells the server `send_all_clusters` is understood.
const SUPPORTS_SEND_ALL_CLUSTERS: &str = "envoy.lrs.supports_send_all_clusters";

/// The shortest interval followed: a server asking for less (or for none) gets reports this
/// often, so that it cannot make the sidecar spin.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Which clusters the server wants reports for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Wanted {
    All,
    Named(BTreeSet<String>),
}

/// The reporting side of one sidecar, kept across streams.
pub struct LoadReporting {
    node: Node,
    /// What the latest response asked for; None until the first one.
    asked: Option<(Wanted, Duration)>,
}

impl LoadReporting {
    pub fn new(node: Node) -> LoadReporting {
        LoadReporting { node, asked: None }
    }

    /// How often to report, once a response has said so.
    pub fn interval(&self) -> Option<Duration> {
        self.asked.as_ref().map(|(_, interval)| *interval)
    }

    /// The first message of a stream: the node, and (after a reconnect) what the wanted
    /// clusters counted since the last report, so that a broken stream loses no counts.
    pub fn opening(&mut self, store: &LoadStore, now: Instant) -> LoadStatsRequest {
        let mut node = self.node.clone();
        node.client_features
            .push(SUPPORTS_SEND_ALL_CLUSTERS.to_string());
        LoadStatsRequest {
            node: Some(node),
            cluster_stats: self.cluster_stats(store, now),
        }
    }

    /// Takes in a response: it replaces what the last one asked for. Answers the interval to
    /// report at from now on.
    pub fn on_response(&mut self, response: &LoadStatsResponse) -> Duration {
        let wanted = if response.send_all_clusters {
            Wanted::All
        } else {
            Wanted::Named(response.clusters.iter().cloned().collect())
        };
        let interval = response
            .load_reporting_interval
            .as_ref()
            .map_or(Duration::ZERO, |d| {
                Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)
            })
            .max(MIN_INTERVAL);
        self.asked = Some((wanted, interval));
        interval
    }

    /// The report due now: each wanted cluster's counts since its last report.
    pub fn report(&mut self, store: &LoadStore, now: Instant) -> LoadStatsRequest {
        LoadStatsRequest {
            node: None,
            cluster_stats: self.cluster_stats(store, now),
        }
    }

    fn cluster_stats(&self, store: &LoadStore, now: Instant) -> Vec<ClusterStats> {
        let Some((wanted, _)) = &self.asked else {
            return Vec::new();
        };
        let names = match wanted {
            Wanted::All => store.current_clusters(),
            Wanted::Named(names) => names.iter().cloned().collect(),
        };
        names
            .iter()
            .filter_map(|name| store.take(name, now))
            .map(|load| cluster_stats(load, now))
            .collect()
    }
}

fn cluster_stats(load: ClusterLoad, now: Instant) -> ClusterStats {
    let covered = now.saturating_duration_since(load.since);
    ClusterStats {
        cluster_name: load.cluster,
        cluster_service_name: load.service_name,
        upstream_locality_stats: load
            .localities
            .into_iter()
            .map(|(locality, counted)| UpstreamLocalityStats {
                locality: Some(Locality {
                    region: locality.region,
                    zone: locality.zone,
                    sub_zone: locality.sub_zone,
                }),
                priority: locality.priority,
                total_successful_requests: counted.successful,
                total_error_requests: counted.errors,
                total_requests_in_progress: counted.in_progress,
                total_issued_requests: counted.issued,
                ..Default::default()
            })
            .collect(),
        load_report_interval: Some(envoy_types::pb::google::protobuf::Duration {
            seconds: covered.as_secs() as i64,
            nanos: covered.subsec_nanos() as i32,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::load_stats::Ended;
    use crate::proxy::resources::endpoint::{Assignment, LocalityEndpoints};
    use envoy_types::pb::google::protobuf::Duration as XdsDuration;

    fn store_with(clusters: &[&str]) -> LoadStore {
        let store = LoadStore::new(true);
        store.begin_round();
        for name in clusters {
            let assignment = Assignment {
                cluster: name.to_string(),
                localities: vec![LocalityEndpoints {
                    region: "r".into(),
                    zone: "z".into(),
                    sub_zone: "s".into(),
                    priority: 0,
                    weight: 1,
                    endpoints: Vec::new(),
                }],
                overprovisioning_factor: 140,
            };
            let counters = store.counters(name, name, Some(&assignment));
            counters[0].issue().end(Ended::Success);
        }
        store.end_round();
        store
    }

    fn asking(clusters: &[&str], all: bool, millis: i32) -> LoadStatsResponse {
        LoadStatsResponse {
            clusters: clusters.iter().map(|c| c.to_string()).collect(),
            send_all_clusters: all,
            load_reporting_interval: Some(XdsDuration {
                seconds: 0,
                nanos: millis * 1_000_000,
            }),
            ..Default::default()
        }
    }

    fn names(report: &LoadStatsRequest) -> Vec<&str> {
        report
            .cluster_stats
            .iter()
            .map(|c| c.cluster_name.as_str())
            .collect()
    }

    #[test]
    fn the_node_goes_first_and_nothing_is_reported_before_the_server_asks() {
        let store = store_with(&["a"]);
        let mut reporting = LoadReporting::new(Node {
            id: "side".into(),
            ..Default::default()
        });
        let opening = reporting.opening(&store, Instant::now());
        let node = opening.node.unwrap();
        assert_eq!(node.id, "side");
        assert_eq!(node.client_features, [SUPPORTS_SEND_ALL_CLUSTERS]);
        assert!(opening.cluster_stats.is_empty());
        assert_eq!(reporting.interval(), None);
    }

    #[test]
    fn a_new_response_replaces_the_clusters_and_interval_asked_for() {
        let store = store_with(&["a", "b", "c"]);
        let mut reporting = LoadReporting::new(Node::default());
        assert_eq!(
            reporting.on_response(&asking(&["b", "gone"], false, 500)),
            Duration::from_millis(500)
        );
        let start = Instant::now();
        let report = reporting.report(&store, start + Duration::from_secs(2));
        assert_eq!(names(&report), ["b"]);
        let b = &report.cluster_stats[0];
        assert_eq!(b.cluster_service_name, "b");
        let locality = &b.upstream_locality_stats[0];
        assert_eq!(
            (
                locality.total_issued_requests,
                locality.total_successful_requests,
                locality.locality.as_ref().unwrap().sub_zone.as_str()
            ),
            (1, 1, "s")
        );
        assert!(b.load_report_interval.as_ref().unwrap().seconds >= 2);

        assert_eq!(reporting.on_response(&asking(&[], true, 0)), MIN_INTERVAL);
        let report = reporting.report(&store, Instant::now());
        assert_eq!(names(&report), ["a", "b", "c"]);
        // b was taken already: its entry covers the time since, with nothing counted.
        assert!(report.cluster_stats[1].upstream_locality_stats.is_empty());
        assert_eq!(report.cluster_stats[0].upstream_locality_stats.len(), 1);
    }

    #[test]
    fn after_a_reconnect_the_opening_carries_what_was_counted_meanwhile() {
        let store = store_with(&["a"]);
        let mut reporting = LoadReporting::new(Node::default());
        reporting.on_response(&asking(&[], true, 1000));
        let opening = reporting.opening(&store, Instant::now());
        assert!(opening.node.is_some());
        assert_eq!(names(&opening), ["a"]);
        assert_eq!(
            opening.cluster_stats[0].upstream_locality_stats[0].total_issued_requests,
            1
        );
    }
}
