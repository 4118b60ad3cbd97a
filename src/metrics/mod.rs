//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format: connected clients
//! by kind and protocol; responses, resources and bytes sent by type; ACKs and NACKs by type;
//! config loads by outcome; how long loads take; convergence — from a snapshot's
//! publication until the last client connected at that moment is in sync with it; and health
//! checking — probes by result, checked endpoints by state, targets probed; and capacity —
//! per service and backend locality its effective capacity and the load reaching it, and the
//! share of each client region's traffic it is sent.
//!
//! Besides: `switchyard_build_info` (the version), whether the last config reload succeeded
//! and when one last did, and the process's own figures (process.rs) under their usual names.
//!
//! Fed by the publisher, the health checker and (through xds/server/stream_metrics.rs) the
//! stream hooks; imports nothing of them. Must not be read on any hot path.

pub mod process;

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientLabels {
    kind: &'static str,
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LocalityLabels {
    service: String,
    region: String,
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShareLabels {
    service: String,
    client_region: String,
    group: String,
}

/// A backend locality's capacity and the load reaching it, in its service's unit.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalityCapacity {
    pub service: String,
    pub region: String,
    pub group: String,
    pub capacity: f64,
    pub load: f64,
}

/// The share of one client region's traffic a backend group is sent.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionShare {
    pub service: String,
    pub client_region: String,
    pub group: String,
    pub share: f64,
}

type FloatGauges<L> = Family<L, Gauge<f64, AtomicU64>>;

/// A snapshot whose convergence is being timed.
struct Tracking {
    version: String,
    published_at: Instant,
    /// Streams connected at publication that are not in sync with it yet.
    waiting: HashSet<u64>,
}

/// The resource types xDS series are shown for from the start (at zero), as the xDS layer
/// names them.
const SERVED_TYPES: [&str; 5] = [
    "Listener",
    "RouteConfiguration",
    "Cluster",
    "ClusterLoadAssignment",
    "Secret",
];

pub struct Metrics {
    registry: Registry,
    /// The process's figures, without the `switchyard_` prefix.
    process: Registry,
    last_reload_success: Gauge,
    last_reload_success_time: Gauge<f64, AtomicU64>,
    clients: Family<ClientLabels, Gauge>,
    responses: Family<TypeLabels, Counter>,
    resources: Family<TypeLabels, Counter>,
    bytes: Family<TypeLabels, Counter>,
    acks: Family<TypeLabels, Counter>,
    nacks: Family<TypeLabels, Counter>,
    loads: Family<OutcomeLabels, Counter>,
    load_seconds: Histogram,
    last_reload_attempt: Gauge<f64, AtomicU64>,
    convergence_seconds: Histogram,
    /// The pass and fail counters of `switchyard_health_probes`, looked up once: probes count
    /// thousands of times a second.
    health_probes_passed: Counter,
    health_probes_failed: Counter,
    health_endpoints: Family<StateLabels, Gauge>,
    health_targets: Gauge,
    capacity: FloatGauges<LocalityLabels>,
    capacity_load: FloatGauges<LocalityLabels>,
    capacity_share: FloatGauges<ShareLabels>,
    /// The labels each stream is counted under.
    streams: DashMap<u64, ClientLabels>,
    tracking: Mutex<Option<Tracking>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(|_| {})
    }
}

impl Metrics {
    /// The metrics, with whatever `more` registers (families kept by other parts, such as
    /// the xDS port's refusals).
    pub fn new(more: impl FnOnce(&mut Registry)) -> Self {
        let mut registry = Registry::with_prefix("switchyard");
        more(&mut registry);
        let clients = Family::<ClientLabels, Gauge>::default();
        registry.register(
            "xds_clients",
            "Connected xDS streams by client kind and protocol",
            clients.clone(),
        );
        let counter_family = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<TypeLabels, Counter>::default();
            for r#type in SERVED_TYPES {
                let _ = family.get_or_create(&TypeLabels { r#type });
            }
            registry.register(name, help, family.clone());
            family
        };
        registry.register(
            "build",
            "The running build",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let responses = counter_family(
            &mut registry,
            "xds_responses",
            "xDS responses sent, by resource type",
        );
        let resources = counter_family(
            &mut registry,
            "xds_resources_sent",
            "Resources (and delta removals) sent, by type",
        );
        let bytes = counter_family(
            &mut registry,
            "xds_bytes_sent",
            "Encoded bytes of xDS responses sent, by type",
        );
        let acks = counter_family(
            &mut registry,
            "xds_acks",
            "Responses ACKed by clients, by type",
        );
        let nacks = counter_family(
            &mut registry,
            "xds_nacks",
            "Responses NACKed by clients, by type",
        );
        let loads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "config_loads",
            "Config contents loaded, by outcome (accepted, rejected, held)",
            loads.clone(),
        );
        let load_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "config_load_seconds",
            "Time from reading the config files to publishing the snapshot",
            load_seconds.clone(),
        );
        let last_reload_attempt = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "config_last_reload_attempt_timestamp",
            "When the reloader last started reading the config (a stuck reloader stops moving it)",
            prometheus_client::registry::Unit::Seconds,
            last_reload_attempt.clone(),
        );
        let last_reload_success = Gauge::default();
        registry.register(
            "config_last_reload_success",
            "1 when the last config read was served (or held back for the removal guard), 0 when it was rejected",
            last_reload_success.clone(),
        );
        let last_reload_success_time = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "config_last_reload_success_timestamp",
            "When a config read was last served",
            prometheus_client::registry::Unit::Seconds,
            last_reload_success_time.clone(),
        );
        for outcome in ["accepted", "rejected", "held"] {
            let _ = loads.get_or_create(&OutcomeLabels { outcome });
        }
        let mut process = Registry::default();
        process.register_collector(Box::new(process::ProcessCollector));
        let convergence_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "xds_convergence_seconds",
            "Time from a snapshot's publication until every client connected then is in sync with it",
            convergence_seconds.clone(),
        );
        let health_probes = Family::<ResultLabels, Counter>::default();
        registry.register(
            "health_probes",
            "Health check probes made, by result (pass, fail)",
            health_probes.clone(),
        );
        let health_endpoints = Family::<StateLabels, Gauge>::default();
        registry.register(
            "health_endpoints",
            "Endpoints of services with a health check, by state (healthy, unhealthy, unknown)",
            health_endpoints.clone(),
        );
        let health_targets = Gauge::default();
        registry.register(
            "health_targets",
            "Distinct (address, port, check) targets probed",
            health_targets.clone(),
        );
        let capacity = FloatGauges::<LocalityLabels>::default();
        registry.register(
            "capacity",
            "Effective capacity of a backend (target x routable endpoints x scaler), per service and locality, in the service's unit",
            capacity.clone(),
        );
        let capacity_load = FloatGauges::<LocalityLabels>::default();
        registry.register(
            "capacity_load",
            "Load reaching a backend locality from every client, as load reports measured it",
            capacity_load.clone(),
        );
        let capacity_share = FloatGauges::<ShareLabels>::default();
        registry.register(
            "capacity_share",
            "Share (0-1) of a client region's traffic a backend is sent",
            capacity_share.clone(),
        );
        let health_probes_passed = health_probes
            .get_or_create(&ResultLabels { result: "pass" })
            .clone();
        let health_probes_failed = health_probes
            .get_or_create(&ResultLabels { result: "fail" })
            .clone();
        Metrics {
            registry,
            process,
            last_reload_success,
            last_reload_success_time,
            health_probes_passed,
            health_probes_failed,
            health_endpoints,
            health_targets,
            capacity,
            capacity_load,
            capacity_share,
            clients,
            responses,
            resources,
            bytes,
            acks,
            nacks,
            loads,
            load_seconds,
            last_reload_attempt,
            convergence_seconds,
            streams: DashMap::new(),
            tracking: Mutex::new(None),
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut text = String::new();
        encode_registry(&mut text, &self.registry)
            .and_then(|()| encode_registry(&mut text, &self.process))
            .and_then(|()| encode_eof(&mut text))
            .expect("writing to a String cannot fail");
        text
    }

    /// Gives back the table space of streams that are gone.
    pub fn shrink(&self) {
        self.streams.shrink_to_fit();
    }

    /// A config content was loaded with `outcome`, in `elapsed`.
    pub fn config_loaded(&self, outcome: &'static str, elapsed: Duration) {
        self.loads.get_or_create(&OutcomeLabels { outcome }).inc();
        self.load_seconds.observe(elapsed.as_secs_f64());
        self.last_reload_success
            .set(i64::from(outcome != "rejected"));
        if outcome == "accepted" {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            self.last_reload_success_time.set(now.as_secs_f64());
        }
    }

    /// The reloader started reading the config at `unix_seconds`.
    pub fn config_reload_attempted(&self, unix_seconds: f64) {
        self.last_reload_attempt.set(unix_seconds);
    }

    /// A health probe ended.
    pub fn health_probe(&self, passed: bool) {
        if passed {
            self.health_probes_passed.inc();
        } else {
            self.health_probes_failed.inc();
        }
    }

    /// How many distinct targets are probed.
    pub fn health_targets(&self, targets: u64) {
        self.health_targets.set(targets as i64);
    }

    /// Checked endpoints by state.
    pub fn health_endpoints(&self, healthy: u64, unhealthy: u64, unknown: u64) {
        for (state, count) in [
            ("healthy", healthy),
            ("unhealthy", unhealthy),
            ("unknown", unknown),
        ] {
            self.health_endpoints
                .get_or_create(&StateLabels { state })
                .set(count as i64);
        }
    }

    /// The capacity figures of the latest decisions, replacing the previous ones (services and
    /// regions no longer decided for disappear).
    pub fn capacity_observed(&self, localities: &[LocalityCapacity], shares: &[RegionShare]) {
        self.capacity.clear();
        self.capacity_load.clear();
        self.capacity_share.clear();
        for locality in localities {
            let labels = LocalityLabels {
                service: locality.service.clone(),
                region: locality.region.clone(),
                group: locality.group.clone(),
            };
            self.capacity.get_or_create(&labels).set(locality.capacity);
            self.capacity_load.get_or_create(&labels).set(locality.load);
        }
        for share in shares {
            let labels = ShareLabels {
                service: share.service.clone(),
                client_region: share.client_region.clone(),
                group: share.group.clone(),
            };
            self.capacity_share.get_or_create(&labels).set(share.share);
        }
    }

    /// A new snapshot is published: time how long the clients connected now take to sync.
    pub fn snapshot_published(&self, version: &str) {
        let waiting: HashSet<u64> = self.streams.iter().map(|e| *e.key()).collect();
        let mut tracking = self.tracking.lock().unwrap_or_else(|e| e.into_inner());
        *tracking = (!waiting.is_empty()).then(|| Tracking {
            version: version.to_string(),
            published_at: Instant::now(),
            waiting,
        });
    }

    /// A stream was counted under `kind` (envoy, grpc, sidecar, unknown) and `protocol`:
    /// counts it, or moves it when it was counted otherwise (its node told who it is).
    pub fn stream_seen(&self, stream: u64, kind: &'static str, protocol: &'static str) {
        let labels = ClientLabels { kind, protocol };
        let previous = self.streams.insert(stream, labels.clone());
        if previous.as_ref() != Some(&labels) {
            if let Some(previous) = previous {
                self.clients.get_or_create(&previous).dec();
            }
            self.clients.get_or_create(&labels).inc();
        }
    }

    /// The kind a stream is counted under, if it is counted.
    pub fn stream_kind(&self, stream: u64) -> Option<&'static str> {
        self.streams.get(&stream).map(|labels| labels.kind)
    }

    /// A request of `type_name` that ACKed (or NACKed) a response.
    pub fn response_judged(&self, type_name: &'static str, acked: bool) {
        let labels = TypeLabels { r#type: type_name };
        let family = if acked { &self.acks } else { &self.nacks };
        family.get_or_create(&labels).inc();
    }

    /// A response of `type_name` went out with `resources` resources in `bytes` bytes.
    pub fn response_sent(&self, type_name: &'static str, resources: usize, bytes: usize) {
        let labels = TypeLabels { r#type: type_name };
        self.responses.get_or_create(&labels).inc();
        self.resources
            .get_or_create(&labels)
            .inc_by(resources as u64);
        self.bytes.get_or_create(&labels).inc_by(bytes as u64);
    }

    /// A stream is in sync with snapshot `version`.
    pub fn stream_synced(&self, stream: u64, version: &str) {
        self.stream_settled(stream, Some(version));
    }

    /// A stream ended.
    pub fn stream_closed(&self, stream: u64) {
        if let Some((_, labels)) = self.streams.remove(&stream) {
            self.clients.get_or_create(&labels).dec();
        }
        self.stream_settled(stream, None);
    }

    fn stream_settled(&self, stream: u64, synced_with: Option<&str>) {
        let mut guard = self.tracking.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tracking) = guard.as_mut() else {
            return;
        };
        if synced_with.is_some_and(|v| v != tracking.version) {
            return;
        }
        if tracking.waiting.remove(&stream) && tracking.waiting.is_empty() {
            self.convergence_seconds
                .observe(tracking.published_at.elapsed().as_secs_f64());
            *guard = None;
        }
    }
}
