//! The sidecar's applied config: what the xDS client accepted, converted once into listeners,
//! route tables and clusters with their balancers, published as one immutable snapshot that
//! the data plane reads per connection or request. Also the xDS client's consumer: it checks
//! candidate resources (converting them is the check) and says which routes and endpoints the
//! listeners and clusters need.
//!
//! Must not: touch sockets (the listeners do).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::balancer::Balancer;
use super::circuit_breakers::{BreakerStore, Breakers};
use super::dns_clusters::DnsAnswers;
use super::load_stats::LoadStore;
use super::original_dst_hosts::OriginalDstHosts;
use super::outlier::{without_ejected, Detector, OutlierStore};
use super::resources::cluster::{self, Cluster};
use super::resources::endpoint::{self, Assignment};
use super::resources::listener::{self, Listener};
use super::resources::route::{self, RouteTable};
use super::resources::tls::{self, ServedCertificate};
use super::resources::ResourceError;
use super::slow_start::RampStarts;
use crate::xds::client::ads::Consumer;
use crate::xds::client::{Checker, ClientState, HeldMap, Rejection};
use crate::xds::types::TypeUrl;
use tokio_rustls::rustls::ServerConfig;

/// A cluster, its endpoints (None while warming) and the balancer built from both.
#[derive(Debug)]
pub struct ClusterEntry {
    pub cluster: Cluster,
    pub assignment: Option<Assignment>,
    pub balancer: Balancer,
    /// The cluster's circuit breakers, kept across updates while its limits stay.
    pub breakers: Arc<Breakers>,
    /// The cluster's outlier detector, when it has outlier detection (its ejected endpoints
    /// are unhealthy to `balancer`).
    pub outliers: Option<Arc<Detector>>,
    /// The hosts of an ORIGINAL_DST cluster, made per destination (its balancer has none).
    pub original_dst: Option<Arc<OriginalDstHosts>>,
}

/// Everything applied, at one moment.
#[derive(Clone, Debug, Default)]
pub struct ProxyConfig {
    pub listeners: BTreeMap<String, Arc<Listener>>,
    pub routes: BTreeMap<String, Arc<RouteTable>>,
    pub clusters: BTreeMap<String, Arc<ClusterEntry>>,
    /// Certificates that came over SDS, by Secret name.
    pub secrets: BTreeMap<String, Arc<ServedCertificate>>,
    /// The TLS server config of each chain that terminates TLS, by listener name and chain
    /// index; missing while a certificate it names has not arrived.
    pub server_tls: BTreeMap<(String, usize), Arc<ServerConfig>>,
    /// The resources as accepted (type URL, name, version, encoded), for /config_dump.
    pub raw: Vec<(TypeUrl, String, String, Vec<u8>)>,
    pub last_updated: Option<SystemTime>,
    /// When each listener and cluster (by name) first appeared, for the initial fetch timeout.
    pub listeners_since: BTreeMap<String, Instant>,
    pub clusters_since: BTreeMap<String, Instant>,
    /// Whether some cluster is ORIGINAL_DST (only then are accepted connections asked where
    /// they were going).
    pub original_dst_clusters: bool,
}

/// How long a listener waits for its routes, and a cluster for its endpoints, before it
/// stops warming without them (Envoy's default initial_fetch_timeout).
pub const INITIAL_FETCH_TIMEOUT: Duration = Duration::from_secs(15);

impl ProxyConfig {
    /// Whether `listener` can take traffic: its routes are in, or it waited long enough
    /// (then requests get 404, as from Envoy).
    pub fn listener_warm(&self, name: &str, listener: &Listener, now: Instant) -> bool {
        let waited = |since: Option<&Instant>| {
            since.is_some_and(|s| now.saturating_duration_since(*s) >= INITIAL_FETCH_TIMEOUT)
        };
        !self.listener_waits(name, listener) || waited(self.listeners_since.get(name))
    }

    /// Whether `listener` still lacks routes it takes over RDS or certificates it takes over
    /// SDS (its TLS chains have no server config yet).
    fn listener_waits(&self, name: &str, listener: &Listener) -> bool {
        let routes_missing = listener
            .route_names()
            .any(|route| !self.routes.contains_key(route));
        let certificates_missing = listener.chains.iter().enumerate().any(|(index, chain)| {
            chain.tls.is_some() && !self.server_tls.contains_key(&(name.to_string(), index))
        });
        routes_missing || certificates_missing
    }

    /// When the next listener or cluster still warming stops waiting; None when none is
    /// (deadlines already past do not count).
    pub fn next_warming_deadline(&self) -> Option<Instant> {
        let now = Instant::now();
        let listeners = self
            .listeners
            .iter()
            .filter(|(name, l)| self.listener_waits(name, l))
            .filter_map(|(name, _)| self.listeners_since.get(name));
        let clusters = self
            .clusters
            .iter()
            .filter(|(_, c)| c.assignment.is_none())
            .filter_map(|(name, _)| self.clusters_since.get(name));
        listeners
            .chain(clusters)
            .map(|since| *since + INITIAL_FETCH_TIMEOUT)
            .filter(|deadline| *deadline > now)
            .min()
    }

    /// Whether a config was applied and every listener and cluster finished warming (has its
    /// routes or endpoints, or waited the initial fetch timeout).
    pub fn is_warm(&self) -> bool {
        if self.last_updated.is_none() {
            return false;
        }
        self.next_warming_deadline().is_none()
    }
}

/// The xDS client's consumer: converts, checks and publishes.
pub struct Applier {
    sender: watch::Sender<Arc<ProxyConfig>>,
    /// When each listener (`l`) and cluster (`c`) name was first applied.
    first_seen: std::sync::Mutex<BTreeMap<(char, String), Instant>>,
    /// The load counters of every cluster's localities, kept across updates.
    loads: Arc<LoadStore>,
    /// The latest answers of the DNS clusters (proxy/dns_clusters.rs keeps them current).
    dns: DnsAnswers,
    /// Every cluster's outlier detector, kept across updates.
    outliers: OutlierStore,
    /// Held while a snapshot is built and published, so that an xDS update and a DNS answer
    /// never publish over each other.
    publishing: std::sync::Mutex<()>,
    /// When the endpoints of clusters with slow start started their ramps, kept across updates.
    ramps: RampStarts,
    /// Every cluster's circuit breakers, kept across updates.
    breakers: BreakerStore,
    pub connected: AtomicBool,
    pub updates_accepted: AtomicU64,
    pub updates_rejected: AtomicU64,
}

impl Applier {
    /// An applier whose balancers count load into `loads`.
    pub fn new(loads: Arc<LoadStore>) -> (Arc<Applier>, watch::Receiver<Arc<ProxyConfig>>) {
        let (sender, receiver) = watch::channel(Arc::new(ProxyConfig::default()));
        let applier = Applier {
            sender,
            first_seen: std::sync::Mutex::default(),
            loads,
            dns: DnsAnswers::default(),
            outliers: OutlierStore::default(),
            publishing: std::sync::Mutex::new(()),
            ramps: RampStarts::default(),
            breakers: BreakerStore::default(),
            connected: AtomicBool::new(false),
            updates_accepted: AtomicU64::new(0),
            updates_rejected: AtomicU64::new(0),
        };
        (Arc::new(applier), receiver)
    }

    pub fn current(&self) -> Arc<ProxyConfig> {
        self.sender.borrow().clone()
    }

    fn build(&self, state: &ClientState) -> ProxyConfig {
        let mut config = ProxyConfig {
            last_updated: Some(SystemTime::now()),
            ..ProxyConfig::default()
        };
        // Everything held was checked when it came in; a failure here cannot happen, and
        // would only leave the resource out.
        for (name, held) in state.held(TypeUrl::Listener) {
            if let Ok(listener) = listener::convert(name, &held.resource.value) {
                config.listeners.insert(name.clone(), Arc::new(listener));
            }
        }
        for (name, held) in state.held(TypeUrl::Secret) {
            if let Ok(certificate) = tls::convert_secret(name, &held.resource.value) {
                config.secrets.insert(name.clone(), certificate);
            }
        }
        config.server_tls = server_configs(&config.listeners, &config.secrets);
        for (name, held) in state.held(TypeUrl::Route) {
            if let Ok(table) = route::convert(name, &held.resource.value) {
                config.routes.insert(name.clone(), Arc::new(table));
            }
        }
        let assignments: BTreeMap<&String, Assignment> = state
            .held(TypeUrl::Endpoint)
            .iter()
            .filter_map(|(name, held)| {
                Some((name, endpoint::convert(name, &held.resource.value).ok()?))
            })
            .collect();
        self.loads.begin_round();
        for (name, held) in state.held(TypeUrl::Cluster) {
            let Ok(cluster) = cluster::convert(name, &held.resource.value) else {
                continue;
            };
            let assignment = match (&cluster.dns, &cluster.original_dst) {
                (Some(settings), _) => self.dns.assignment(name, settings),
                // No endpoints will come: nothing to wait for.
                (None, Some(_)) => Some(Assignment {
                    cluster: name.clone(),
                    localities: Vec::new(),
                    overprovisioning_factor: 140,
                }),
                (None, None) => assignments.get(&cluster.service_name).cloned(),
            };
            let outliers = self.outliers.for_cluster(
                name,
                cluster.outlier_detection.as_ref(),
                assignment.as_ref(),
            );
            let entry = self.cluster_entry(name, cluster, assignment, outliers);
            config.clusters.insert(name.clone(), Arc::new(entry));
        }
        config.original_dst_clusters = config
            .clusters
            .values()
            .any(|entry| entry.original_dst.is_some());
        self.loads.end_round();
        self.ramps
            .retain(&|name| config.clusters.contains_key(name));
        self.breakers
            .retain(&|name| config.clusters.contains_key(name));
        self.outliers
            .retain(&|name| config.clusters.contains_key(name));
        self.note_first_seen(&mut config);
        for type_url in TypeUrl::ALL {
            for (name, held) in state.held(type_url) {
                config.raw.push((
                    type_url,
                    name.clone(),
                    held.version.clone(),
                    held.resource.value.clone(),
                ));
            }
        }
        config
    }
}

impl Applier {
    pub fn dns_answers(&self) -> &DnsAnswers {
        &self.dns
    }

    /// Publishes the current snapshot again with the DNS clusters whose answer changed
    /// rebuilt (their endpoints and balancer); everything else is shared as it was.
    pub fn republish_dns(&self) {
        let _publishing = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current();
        let mut next = ProxyConfig::clone(&current);
        for (name, entry) in &current.clusters {
            let Some(settings) = &entry.cluster.dns else {
                continue;
            };
            let assignment = self.dns.assignment(name, settings);
            if assignment == entry.assignment {
                continue;
            }
            let outliers = self.outliers.for_cluster(
                name,
                entry.cluster.outlier_detection.as_ref(),
                assignment.as_ref(),
            );
            let rebuilt = self.cluster_entry(name, entry.cluster.clone(), assignment, outliers);
            next.clusters.insert(name.clone(), Arc::new(rebuilt));
        }
        self.sender.send_replace(Arc::new(next));
    }

    /// Publishes the current snapshot again with cluster `name`'s balancer rebuilt, after
    /// its outlier detector ejected or returned an endpoint.
    pub fn republish_outliers(&self, name: &str) {
        let _publishing = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current();
        let Some(entry) = current.clusters.get(name) else {
            return;
        };
        let mut next = ProxyConfig::clone(&current);
        let rebuilt = self.cluster_entry(
            name,
            entry.cluster.clone(),
            entry.assignment.clone(),
            entry.outliers.clone(),
        );
        next.clusters.insert(name.to_string(), Arc::new(rebuilt));
        self.sender.send_replace(Arc::new(next));
    }

    /// Cluster `name`'s entry: its balancer over `assignment` (endpoints ramping as slow
    /// start has them), without the endpoints its outlier detector has ejected, and its
    /// circuit breakers.
    fn cluster_entry(
        &self,
        name: &str,
        cluster: Cluster,
        assignment: Option<Assignment>,
        outliers: Option<Arc<Detector>>,
    ) -> ClusterEntry {
        let counters = self
            .loads
            .counters(name, &cluster.service_name, assignment.as_ref());
        // Ramps follow the endpoints themselves: an endpoint back from ejection does not
        // ramp again (Envoy ramps new and newly health-checked endpoints only).
        let started = self
            .ramps
            .update(&cluster, assignment.as_ref(), Instant::now());
        let balanced = without_ejected(assignment.as_ref(), outliers.as_deref());
        let balancer = Balancer::ramped(&cluster, balanced.as_deref(), &counters, &started);
        let breakers = self.breakers.for_cluster(name, cluster.circuit_breakers);
        let original_dst = cluster.original_dst.map(|settings| {
            Arc::new(OriginalDstHosts::new(
                settings.cleanup_interval,
                Instant::now(),
            ))
        });
        ClusterEntry {
            original_dst,
            cluster,
            assignment,
            balancer,
            breakers,
            outliers,
        }
    }

    /// Records when each listener and cluster of `config` first appeared (kept across
    /// updates, forgotten when the resource goes).
    fn note_first_seen(&self, config: &mut ProxyConfig) {
        let now = Instant::now();
        let mut first_seen = self.first_seen.lock().unwrap_or_else(|e| e.into_inner());
        first_seen.retain(|(kind, name), _| match kind {
            'l' => config.listeners.contains_key(name),
            _ => config.clusters.contains_key(name),
        });
        for name in config.listeners.keys() {
            let since = *first_seen.entry(('l', name.clone())).or_insert(now);
            config.listeners_since.insert(name.clone(), since);
        }
        for name in config.clusters.keys() {
            let since = *first_seen.entry(('c', name.clone())).or_insert(now);
            config.clusters_since.insert(name.clone(), since);
        }
    }
}

/// The server config of every TLS chain whose certificates are all in; a suite the sidecar
/// leaves out of a chain is logged, so that the narrowing is seen.
fn server_configs(
    listeners: &BTreeMap<String, Arc<Listener>>,
    secrets: &BTreeMap<String, Arc<ServedCertificate>>,
) -> BTreeMap<(String, usize), Arc<ServerConfig>> {
    let mut configs = BTreeMap::new();
    for (name, listener) in listeners {
        for (index, chain) in listener.chains.iter().enumerate() {
            let Some(tls) = &chain.tls else { continue };
            if !tls.unserved_cipher_suites.is_empty() {
                tracing::warn!(
                    listener = %name,
                    chain = index,
                    suites = %tls.unserved_cipher_suites.join(":"),
                    "cipher suites rustls does not implement are not offered"
                );
            }
            if let Some(server) = super::tls::server_config(tls, secrets) {
                configs.insert((name.clone(), index), server);
            }
        }
    }
    configs
}

impl Checker for Applier {
    type Refusal = ResourceError;

    fn check(&self, type_url: TypeUrl, candidate: &HeldMap) -> Result<(), ResourceError> {
        for (name, held) in candidate {
            let bytes = held.resource.value.as_slice();
            match type_url {
                TypeUrl::Listener => listener::convert(name, bytes).map(drop),
                TypeUrl::Route => route::convert(name, bytes).map(drop),
                TypeUrl::Cluster => cluster::convert(name, bytes).map(drop),
                TypeUrl::Endpoint => endpoint::convert(name, bytes).map(drop),
                TypeUrl::Secret => tls::convert_secret(name, bytes).map(drop),
            }?;
        }
        Ok(())
    }

    fn interest(&self, dependent: TypeUrl, held: &HeldMap) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for (name, held) in held {
            let bytes = held.resource.value.as_slice();
            match dependent {
                TypeUrl::Route => {
                    if let Ok(listener) = listener::convert(name, bytes) {
                        names.extend(listener.route_names().map(String::from));
                    }
                }
                TypeUrl::Secret => {
                    if let Ok(listener) = listener::convert(name, bytes) {
                        names.extend(listener.secret_names().map(String::from));
                    }
                }
                TypeUrl::Endpoint => {
                    // DNS clusters resolve their endpoints; they take none over EDS.
                    match cluster::convert(name, bytes) {
                        Ok(cluster) if cluster.dns.is_none() => {
                            names.insert(cluster.service_name);
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        names
    }
}

impl Consumer for Applier {
    fn apply(&self, state: &ClientState) {
        let _publishing = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        let config = self.build(state);
        self.updates_accepted.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            listeners = config.listeners.len(),
            routes = config.routes.len(),
            clusters = config.clusters.len(),
            "applied an xDS update"
        );
        self.sender.send_replace(Arc::new(config));
    }

    fn connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }

    fn rejected(&self, _rejection: &Rejection<ResourceError>) {
        self.updates_rejected.fetch_add(1, Ordering::Relaxed);
    }
}
