//! One simulated xDS client: an ADS stream (state of the world or delta) that subscribes as
//! Envoy does — every cluster and listener, then the endpoints its clusters name and the
//! routes its listeners name — ACKs every response, and counts what it receives. Each client
//! has its own HTTP/2 connection, as each Envoy has.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, Locality, Node};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    aggregated_discovery_service_client::AggregatedDiscoveryServiceClient, DeltaDiscoveryRequest,
    DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const TYPES: [&str; 4] = [CLUSTER, ENDPOINT, LISTENER, ROUTE];

pub fn type_index(type_url: &str) -> usize {
    TYPES.iter().position(|t| *t == type_url).unwrap_or(0)
}

pub fn short(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Sotw,
    Delta,
}

/// Counters every client adds to: per phase (0 setup, 1 after the edit), per type, messages
/// and bytes.
#[derive(Default)]
pub struct Counters {
    messages: [[AtomicU64; 4]; 2],
    bytes: [[AtomicU64; 4]; 2],
    pub phase: AtomicUsize,
}

impl Counters {
    fn add(&self, type_url: &str, bytes: usize) {
        let phase = self.phase.load(Ordering::Relaxed);
        let index = type_index(type_url);
        self.messages[phase][index].fetch_add(1, Ordering::Relaxed);
        self.bytes[phase][index].fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn reset_phase(&self, phase: usize) {
        for index in 0..TYPES.len() {
            self.messages[phase][index].store(0, Ordering::Relaxed);
            self.bytes[phase][index].store(0, Ordering::Relaxed);
        }
    }

    /// (messages, bytes) per type in `phase`.
    pub fn of_phase(&self, phase: usize) -> Vec<(&'static str, u64, u64)> {
        TYPES
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    *t,
                    self.messages[phase][i].load(Ordering::Relaxed),
                    self.bytes[phase][i].load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

/// What one client has seen, for the driver to read.
#[derive(Default)]
pub struct ClientProgress {
    /// Every subscribed type has its latest response ACKed, and endpoints arrived.
    pub synced: std::sync::atomic::AtomicBool,
    /// When the watched cluster's endpoints last arrived.
    pub watched_at: Mutex<Option<Instant>>,
    /// How many of the watched cluster's endpoints were UNHEALTHY in its last assignment.
    pub watched_unhealthy: AtomicUsize,
    /// The versions of every resource the client holds, by type (delta only).
    pub versions: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

pub struct ClientSpec {
    pub id: usize,
    pub protocol: Protocol,
    /// The cluster whose endpoint arrivals are timed.
    pub watched_cluster: String,
    /// Subscribe to the endpoints of this many clusters (all when None).
    pub endpoint_subscriptions: Option<usize>,
    /// Delta: versions to announce in the first request of each type.
    pub initial_versions: BTreeMap<String, BTreeMap<String, String>>,
}

pub fn node(id: usize) -> Node {
    Node {
        id: format!("loadgen-{id}"),
        cluster: "loadgen".into(),
        user_agent_name: "envoy".into(),
        locality: Some(Locality {
            region: "us-central1".into(),
            zone: "us-central1-a".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An HTTP/2 connection with the windows Envoy uses for its xDS cluster.
pub async fn connect(address: &str) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("http://{address}"))
        .expect("a valid address")
        .initial_stream_window_size(16 << 20)
        .initial_connection_window_size(16 << 20)
        .connect()
        .await
}

/// The names a resource of `type_url` makes the client subscribe to next.
fn dependents(type_url: &str, resource: &Any) -> Vec<String> {
    match type_url {
        CLUSTER => Cluster::decode(resource.value.as_slice())
            .map(|c| {
                let service = c
                    .eds_cluster_config
                    .map(|e| e.service_name)
                    .unwrap_or_default();
                vec![if service.is_empty() { c.name } else { service }]
            })
            .unwrap_or_default(),
        LISTENER => Listener::decode(resource.value.as_slice())
            .map(|listener| {
                let mut routes = Vec::new();
                let managers = listener
                    .filter_chains
                    .iter()
                    .flat_map(|c| &c.filters)
                    .filter_map(|f| match &f.config_type {
                        Some(envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(any)) => Some(any),
                        _ => None,
                    })
                    .chain(listener.api_listener.as_ref().and_then(|a| a.api_listener.as_ref()));
                for any in managers {
                    if let Ok(manager) = HttpConnectionManager::decode(any.value.as_slice()) {
                        if let Some(RouteSpecifier::Rds(rds)) = manager.route_specifier {
                            routes.push(rds.route_config_name);
                        }
                    }
                }
                routes
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn dependent_type(type_url: &str) -> Option<&'static str> {
    match type_url {
        CLUSTER => Some(ENDPOINT),
        LISTENER => Some(ROUTE),
        _ => None,
    }
}

/// Per type: what is subscribed and the last response.
#[derive(Default)]
struct TypeState {
    names: BTreeSet<String>,
    nonce: String,
    version: String,
    answered: bool,
}

struct Client {
    spec: ClientSpec,
    counters: Arc<Counters>,
    progress: Arc<ClientProgress>,
    types: BTreeMap<&'static str, TypeState>,
    /// Delta: resources held per type (name → dependents).
    held: BTreeMap<&'static str, BTreeMap<String, Vec<String>>>,
}

impl Client {
    fn limit(&self, mut names: BTreeSet<String>) -> BTreeSet<String> {
        if let Some(limit) = self.spec.endpoint_subscriptions {
            let mut kept: BTreeSet<String> = names.iter().take(limit).cloned().collect();
            if names.contains(&self.spec.watched_cluster) {
                kept.insert(self.spec.watched_cluster.clone());
            }
            names = kept;
        }
        names
    }

    fn note_synced(&self) {
        let synced = TYPES
            .iter()
            .all(|t| self.types.get(t).is_some_and(|s| s.answered));
        self.progress.synced.store(synced, Ordering::Relaxed);
    }
}

/// Runs one client until its stream ends.
pub async fn run(
    channel: Channel,
    spec: ClientSpec,
    counters: Arc<Counters>,
    progress: Arc<ClientProgress>,
) -> Result<(), tonic::Status> {
    let mut client = Client {
        spec,
        counters,
        progress,
        types: BTreeMap::new(),
        held: BTreeMap::new(),
    };
    match client.spec.protocol {
        Protocol::Sotw => run_sotw(channel, &mut client).await,
        Protocol::Delta => run_delta(channel, &mut client).await,
    }
}

async fn run_sotw(channel: Channel, client: &mut Client) -> Result<(), tonic::Status> {
    let (sender, receiver) = mpsc::unbounded_channel::<DiscoveryRequest>();
    let first = |type_url: &str, node: Option<Node>| DiscoveryRequest {
        type_url: type_url.into(),
        node,
        ..Default::default()
    };
    let _ = sender.send(first(CLUSTER, Some(node(client.spec.id))));
    let _ = sender.send(first(LISTENER, None));
    let mut ads =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(256 << 20);
    let mut inbound = ads
        .stream_aggregated_resources(tokio_stream::wrappers::UnboundedReceiverStream::new(
            receiver,
        ))
        .await?
        .into_inner();
    while let Some(response) = inbound.message().await? {
        client.on_sotw(&response, &sender);
    }
    Ok(())
}

impl Client {
    fn on_sotw(
        &mut self,
        response: &DiscoveryResponse,
        sender: &mpsc::UnboundedSender<DiscoveryRequest>,
    ) {
        let type_url = TYPES[type_index(&response.type_url)];
        self.counters.add(type_url, response.encoded_len());
        if type_url == ENDPOINT {
            self.note_watched(response.resources.iter());
        }
        let state = self.types.entry(type_url).or_default();
        state.nonce = response.nonce.clone();
        state.version = response.version_info.clone();
        state.answered = true;
        let names: Vec<String> = state.names.iter().cloned().collect();
        let _ = sender.send(DiscoveryRequest {
            type_url: type_url.into(),
            version_info: response.version_info.clone(),
            response_nonce: response.nonce.clone(),
            resource_names: names,
            ..Default::default()
        });
        if let Some(dependent) = dependent_type(type_url) {
            let wanted: BTreeSet<String> = response
                .resources
                .iter()
                .flat_map(|r| dependents(type_url, r))
                .collect();
            let wanted = if dependent == ENDPOINT {
                self.limit(wanted)
            } else {
                wanted
            };
            let dependent_state = self.types.entry(dependent).or_default();
            if dependent_state.names != wanted || dependent_state.nonce.is_empty() {
                dependent_state.names = wanted.clone();
                let _ = sender.send(DiscoveryRequest {
                    type_url: dependent.into(),
                    version_info: dependent_state.version.clone(),
                    response_nonce: dependent_state.nonce.clone(),
                    resource_names: wanted.into_iter().collect(),
                    ..Default::default()
                });
            }
        }
        self.note_synced();
    }

    fn note_watched<'r>(&self, resources: impl Iterator<Item = &'r Any>) {
        for resource in resources {
            let Ok(assignment) = ClusterLoadAssignment::decode(resource.value.as_slice()) else {
                continue;
            };
            if assignment.cluster_name != self.spec.watched_cluster {
                continue;
            }
            let unhealthy = assignment
                .endpoints
                .iter()
                .flat_map(|locality| &locality.lb_endpoints)
                .filter(|endpoint| endpoint.health_status == HealthStatus::Unhealthy as i32)
                .count();
            self.progress
                .watched_unhealthy
                .store(unhealthy, Ordering::Relaxed);
            *self.progress.watched_at.lock().unwrap() = Some(Instant::now());
        }
    }
}

async fn run_delta(channel: Channel, client: &mut Client) -> Result<(), tonic::Status> {
    let (sender, receiver) = mpsc::unbounded_channel::<DeltaDiscoveryRequest>();
    for (index, type_url) in [CLUSTER, LISTENER].into_iter().enumerate() {
        let _ = sender.send(DeltaDiscoveryRequest {
            type_url: type_url.into(),
            node: (index == 0).then(|| node(client.spec.id)),
            resource_names_subscribe: vec!["*".into()],
            initial_resource_versions: client
                .spec
                .initial_versions
                .get(type_url)
                .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            ..Default::default()
        });
    }
    let mut ads =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(256 << 20);
    let mut inbound = ads
        .delta_aggregated_resources(ReceiverStream::new(forward(receiver)))
        .await?
        .into_inner();
    while let Some(response) = inbound.message().await? {
        client.on_delta(&response, &sender);
    }
    Ok(())
}

/// Bridges an unbounded sender into a bounded stream for tonic.
fn forward<T: Send + 'static>(mut receiver: mpsc::UnboundedReceiver<T>) -> mpsc::Receiver<T> {
    let (sender, bounded) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(item) = receiver.recv().await {
            if sender.send(item).await.is_err() {
                return;
            }
        }
    });
    bounded
}

impl Client {
    fn on_delta(
        &mut self,
        response: &DeltaDiscoveryResponse,
        sender: &mpsc::UnboundedSender<DeltaDiscoveryRequest>,
    ) {
        let type_url = TYPES[type_index(&response.type_url)];
        self.counters.add(type_url, response.encoded_len());
        if type_url == ENDPOINT {
            self.note_watched(
                response
                    .resources
                    .iter()
                    .filter_map(|r| r.resource.as_ref()),
            );
        }
        {
            let mut versions = self.progress.versions.lock().unwrap();
            let of_type = versions.entry(type_url.to_string()).or_default();
            for resource in &response.resources {
                of_type.insert(resource.name.clone(), resource.version.clone());
            }
            for removed in &response.removed_resources {
                of_type.remove(removed);
            }
        }
        let held = self.held.entry(type_url).or_default();
        for resource in &response.resources {
            let names = resource
                .resource
                .as_ref()
                .map(|any| dependents(type_url, any))
                .unwrap_or_default();
            held.insert(resource.name.clone(), names);
        }
        for removed in &response.removed_resources {
            held.remove(removed);
        }
        let state = self.types.entry(type_url).or_default();
        state.answered = true;
        let _ = sender.send(DeltaDiscoveryRequest {
            type_url: type_url.into(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        });
        if let Some(dependent) = dependent_type(type_url) {
            let wanted: BTreeSet<String> =
                self.held[type_url].values().flatten().cloned().collect();
            let wanted = if dependent == ENDPOINT {
                self.limit(wanted)
            } else {
                wanted
            };
            let first = !self.types.contains_key(dependent);
            let dependent_state = self.types.entry(dependent).or_default();
            let subscribe: Vec<String> =
                wanted.difference(&dependent_state.names).cloned().collect();
            let unsubscribe: Vec<String> =
                dependent_state.names.difference(&wanted).cloned().collect();
            if first || !subscribe.is_empty() || !unsubscribe.is_empty() {
                dependent_state.names = wanted;
                let initial = if first {
                    self.spec
                        .initial_versions
                        .get(dependent)
                        .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default()
                } else {
                    Default::default()
                };
                let _ = sender.send(DeltaDiscoveryRequest {
                    type_url: dependent.into(),
                    resource_names_subscribe: subscribe,
                    resource_names_unsubscribe: unsubscribe,
                    initial_resource_versions: initial,
                    ..Default::default()
                });
            }
        }
        self.note_synced();
    }
}
