//! The load-report feed: what clients report over LRS, read out of the wire format into
//! capacity's neutral [`Report`]s (cluster → service: clusters are named after services;
//! the client's region from the node that opened the stream) and summed in a shared
//! [`ReportWindow`]. It also decides what clients are asked to report: the clusters of the
//! served services whose balancing mode has a target (requests/s, connections, utilization —
//! plain weights need no measuring), asked again whenever a config edit changes that set, at
//! the interval `serve` was given. Must not: decide anything from the load (capacity's
//! decisions do), or keep what a client reports about a cluster it was not asked for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterStats, UpstreamLocalityStats};
use envoy_types::pb::envoy::service::load_stats::v3::LoadStatsRequest;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::capacity::measured::{
    Locality, MeasuredLoad, Report, ReportWindow, ReportedCounts, WindowSettings,
};
use crate::model::{CapacityTarget, CapacityUnit, Model, Service};
use crate::xds::server::lrs::{LoadSink, ReportAsk};

/// How often clients report unless `serve` is told otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
/// The shortest and longest intervals `serve` accepts.
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// ORCA metrics read as utilization, in order of preference; the unnamed `cpu_utilization`
/// field comes between the two.
const UTILIZATION_METRIC: &str = "utilization";
const CPU_UTILIZATION_METRIC: &str = "cpu_utilization";

/// Turns load reports into measured load, and says what to report.
pub struct LoadFeed {
    window: Arc<ReportWindow>,
    asks: watch::Sender<ReportAsk>,
}

impl LoadFeed {
    /// A feed asking for reports every `interval`, averaging them over a window sized for it;
    /// it asks for nothing until [`LoadFeed::follow`] sees a config.
    pub fn new(interval: Duration) -> Self {
        let (asks, _) = watch::channel(ReportAsk {
            clusters: Vec::new(),
            interval,
        });
        LoadFeed {
            window: Arc::new(ReportWindow::new(WindowSettings::for_interval(interval))),
            asks,
        }
    }

    /// The window the reports are summed in.
    pub fn window(&self) -> Arc<ReportWindow> {
        self.window.clone()
    }

    /// The measured load, as the decisions read it.
    pub fn measured(&self) -> Arc<dyn MeasuredLoad> {
        self.window.clone()
    }

    /// What LRS streams are asked, now and after each change.
    pub fn asks(&self) -> watch::Receiver<ReportAsk> {
        self.asks.subscribe()
    }

    /// Asks for the clusters of `model`'s services that have a capacity target; answers
    /// whether that changed what is asked.
    pub fn follow(&self, model: &Model) -> bool {
        let clusters = clusters_to_report(model);
        self.asks.send_if_modified(|ask| {
            let changed = ask.clusters != clusters;
            ask.clusters = clusters;
            changed
        })
    }

    /// Whether `cluster` is one clients are asked to report.
    fn asked_for(&self, cluster: &str) -> bool {
        self.asks
            .borrow()
            .clusters
            .binary_search_by(|asked| asked.as_str().cmp(cluster))
            .is_ok()
    }
}

impl LoadSink for LoadFeed {
    fn take(&self, node: &Node, request: &LoadStatsRequest, received: Instant) {
        let interval = self.asks.borrow().interval;
        for cluster in &request.cluster_stats {
            if self.asked_for(&cluster.cluster_name) {
                self.window
                    .record(&report_of(node, cluster, interval), received);
            }
        }
    }
}

/// The clusters (named after their services) of the services with a capacity target, sorted.
pub fn clusters_to_report(model: &Model) -> Vec<String> {
    // The model's services are kept by name, so this is sorted.
    model
        .services
        .values()
        .filter(|service| has_capacity_target(service))
        .map(|service| service.name.clone())
        .collect()
}

/// Whether any of `service`'s backends has a target in a unit that can be measured.
fn has_capacity_target(service: &Service) -> bool {
    service.backends.iter().any(|backend| {
        let target = match backend.capacity.target {
            CapacityTarget::Group(total) => total,
            CapacityTarget::PerEndpoint(each) => each,
        };
        backend.capacity.unit != CapacityUnit::Weight && target > 0.0
    })
}

/// One cluster's entry of a report from the client `node`, as capacity reads it; a report
/// that does not say the time it covers is taken to cover the `asked` interval.
pub fn report_of(node: &Node, cluster: &ClusterStats, asked: Duration) -> Report {
    let client = node
        .locality
        .as_ref()
        .map(|l| Locality {
            region: l.region.clone(),
            zone: l.zone.clone(),
        })
        .unwrap_or_else(|| Locality {
            region: String::new(),
            zone: String::new(),
        });
    let interval = cluster
        .load_report_interval
        .as_ref()
        .and_then(|d| {
            let nanos = u32::try_from(d.nanos).ok()?;
            Some(Duration::new(u64::try_from(d.seconds).ok()?, nanos))
        })
        .unwrap_or(asked);
    Report {
        client,
        service: cluster.cluster_name.clone(),
        upstream: cluster
            .upstream_locality_stats
            .iter()
            .map(|stats| (upstream_locality(stats), counts_of(stats)))
            .collect(),
        interval,
    }
}

fn upstream_locality(stats: &UpstreamLocalityStats) -> Locality {
    let locality = stats.locality.clone().unwrap_or_default();
    Locality {
        region: locality.region,
        zone: locality.zone,
    }
}

fn counts_of(stats: &UpstreamLocalityStats) -> ReportedCounts {
    ReportedCounts {
        issued_requests: stats.total_issued_requests,
        successful_requests: stats.total_successful_requests,
        error_requests: stats.total_error_requests,
        in_progress: stats.total_requests_in_progress,
        utilization: utilization_of(stats),
    }
}

/// The mean utilization the backends reported (ORCA), if any was carried.
fn utilization_of(stats: &UpstreamLocalityStats) -> Option<f64> {
    let mean = |finished: u64, total: f64| (finished > 0).then(|| total / finished as f64);
    let named = |name: &str| {
        stats
            .load_metric_stats
            .iter()
            .filter(|metric| metric.metric_name == name)
            .find_map(|metric| {
                mean(
                    metric.num_requests_finished_with_metric,
                    metric.total_metric_value,
                )
            })
    };
    named(UTILIZATION_METRIC)
        .or_else(|| {
            stats.cpu_utilization.as_ref().and_then(|cpu| {
                mean(
                    cpu.num_requests_finished_with_metric,
                    cpu.total_metric_value,
                )
            })
        })
        .or_else(|| named(CPU_UTILIZATION_METRIC))
}

/// Asks for what each served config needs reported, and moves the window along every
/// interval (so that load from clients that went quiet ages out), until `shutdown`.
pub async fn run(
    feed: Arc<LoadFeed>,
    mut models: watch::Receiver<Arc<Model>>,
    shutdown: CancellationToken,
) {
    let interval = feed.asks.borrow().interval;
    let mut ticks = tokio::time::interval(feed.window.settings().bucket.max(MIN_INTERVAL / 4));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut following = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => feed.window.advance(Instant::now()),
            changed = models.changed(), if following => {
                following = changed.is_ok();
                let model = models.borrow_and_update().clone();
                if feed.follow(&model) {
                    let asked = feed.asks.borrow().clusters.len();
                    tracing::info!(
                        clusters = asked,
                        interval_seconds = interval.as_secs_f64(),
                        "asking clients for load reports"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::Locality as EnvoyLocality;
    use envoy_types::pb::envoy::config::endpoint::v3::{
        EndpointLoadMetricStats, UnnamedEndpointLoadMetricStats,
    };

    const CONFIG: &str = "
networkEndpointGroups:
- {name: near, zone: us-east1-b, networkEndpointType: GCE_VM_IP_PORT, endpoints: [{ipAddress: 127.0.0.1, port: 8081}]}
instanceGroups:
- {name: vms, zone: us-east1-b, namedPorts: [{name: http, port: 8082}], instances: [{name: vm1, ipAddress: 127.0.0.2}]}
backendServices:
- name: rated
  backends:
  - {group: zones/us-east1-b/networkEndpointGroups/near, balancingMode: RATE, maxRatePerEndpoint: 20}
- name: utilized
  backends:
  - {group: zones/us-east1-b/instanceGroups/vms, balancingMode: UTILIZATION}
";

    /// CONFIG, plus copies of `rated` counting connections and weighted plainly (as AWS
    /// target groups are).
    fn model(text: &str) -> Model {
        let loaded = crate::config::load_str(text, "lb.yaml");
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        let mut model = loaded.model;
        for (name, unit) in [
            ("connected", CapacityUnit::Connections),
            ("weighted", CapacityUnit::Weight),
        ] {
            let mut copy = model.services["rated"].clone();
            copy.name = name.into();
            copy.backends[0].capacity.unit = unit;
            model.services.insert(name.into(), copy);
        }
        model
    }

    fn node(region: &str) -> Node {
        Node {
            id: "envoy".into(),
            locality: Some(EnvoyLocality {
                region: region.into(),
                zone: format!("{region}-b"),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn stats(issued: u64) -> UpstreamLocalityStats {
        UpstreamLocalityStats {
            locality: Some(EnvoyLocality {
                region: "us-east1".into(),
                zone: "us-east1-b".into(),
                sub_zone: "near".into(),
            }),
            total_issued_requests: issued,
            total_successful_requests: issued - 1,
            total_error_requests: 1,
            total_requests_in_progress: 3,
            ..Default::default()
        }
    }

    fn cluster(name: &str, issued: u64) -> ClusterStats {
        ClusterStats {
            cluster_name: name.into(),
            upstream_locality_stats: vec![stats(issued)],
            load_report_interval: Some(envoy_types::pb::google::protobuf::Duration {
                seconds: 1,
                nanos: 500_000_000,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn services_with_a_target_are_asked_for_and_plain_weights_are_not() {
        assert_eq!(
            clusters_to_report(&model(CONFIG)),
            ["connected", "rated", "utilized"]
        );
        let feed = LoadFeed::new(Duration::from_secs(2));
        let asks = feed.asks();
        assert!(asks.borrow().clusters.is_empty(), "nothing before a config");
        assert!(feed.follow(&model(CONFIG)));
        assert!(
            !feed.follow(&model(CONFIG)),
            "the same set is not asked again"
        );
        let mut edited = model(CONFIG);
        edited.services.remove("utilized");
        edited.services.remove("connected");
        assert!(feed.follow(&edited));
        assert_eq!(asks.borrow().clusters, ["rated"]);
        assert_eq!(asks.borrow().interval, Duration::from_secs(2));
    }

    #[test]
    fn a_report_is_read_per_upstream_locality_with_the_client_region_and_its_span() {
        let report = report_of(&node("us-east1"), &cluster("rated", 30), DEFAULT_INTERVAL);
        assert_eq!(report.service, "rated");
        assert_eq!(report.client.region, "us-east1");
        assert_eq!(report.interval, Duration::from_millis(1500));
        let (upstream, counts) = &report.upstream[0];
        assert_eq!(
            (upstream.region.as_str(), upstream.zone.as_str()),
            ("us-east1", "us-east1-b")
        );
        assert_eq!(
            *counts,
            ReportedCounts {
                issued_requests: 30,
                successful_requests: 29,
                error_requests: 1,
                in_progress: 3,
                utilization: None,
            }
        );
        let mut unsaid = cluster("rated", 30);
        unsaid.load_report_interval = None;
        assert_eq!(
            report_of(&node("us-east1"), &unsaid, DEFAULT_INTERVAL).interval,
            DEFAULT_INTERVAL
        );
    }

    #[test]
    fn utilization_comes_from_the_named_metric_then_the_cpu_field_then_the_named_cpu() {
        let named = |name: &str, value: f64| EndpointLoadMetricStats {
            metric_name: name.into(),
            num_requests_finished_with_metric: 4,
            total_metric_value: value,
        };
        let mut one = stats(10);
        assert_eq!(utilization_of(&one), None);
        one.load_metric_stats = vec![named("cpu_utilization", 2.0), named("other", 4.0)];
        assert_eq!(utilization_of(&one), Some(0.5));
        one.cpu_utilization = Some(UnnamedEndpointLoadMetricStats {
            num_requests_finished_with_metric: 4,
            total_metric_value: 3.0,
        });
        assert_eq!(utilization_of(&one), Some(0.75));
        one.load_metric_stats.push(named("utilization", 1.0));
        assert_eq!(utilization_of(&one), Some(0.25));
    }

    #[test]
    fn only_clusters_asked_for_reach_the_window() {
        let feed = LoadFeed::new(Duration::from_secs(1));
        feed.follow(&model(CONFIG));
        let start = Instant::now();
        feed.window.advance(start);
        let mut rated = cluster("rated", 20);
        rated.load_report_interval = Some(envoy_types::pb::google::protobuf::Duration {
            seconds: 1,
            nanos: 0,
        });
        for second in 1..=6 {
            let request = LoadStatsRequest {
                cluster_stats: vec![rated.clone(), cluster("invented", 1000)],
                ..Default::default()
            };
            feed.take(
                &node("us-east1"),
                &request,
                start + Duration::from_secs(second),
            );
        }
        let demand = feed.measured().demand("rated", "us-east1");
        assert_eq!(
            (demand.requests_per_second, demand.in_progress),
            (20.0, 3.0)
        );
        assert_eq!(
            feed.measured().client_regions("invented"),
            Vec::<String>::new()
        );
        assert_eq!(feed.window.series(), 1);
    }
}
