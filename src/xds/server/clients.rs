//! The registry of connected xDS clients, fed by stream hooks: who they are, and per type what
//! they subscribe to, what they were sent, ACKed and NACKed, and whether they are in sync.
//! `/clients`, CSDS and `switchyard status` read it. Entries hold shared pointers into the
//! streams' state (subscriptions, views), never copies of resources; each stream writes only
//! its own entry, so entries are sharded (dashmap) rather than behind one lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use dashmap::DashMap;
use envoy_types::pb::envoy::config::core::v3::Node;
use serde::Serialize;

use super::cache::{ClientView, Snapshot, TypeView};
use super::hooks::{Protocol, StreamEvent, StreamHooks, StreamInfo};
use super::stream_state::{Nack, StreamCore};
use super::subscription::Subscription;
use crate::xds::types::TypeUrl;

/// How many subscribed names `/clients` lists per type (it counts them all).
pub const NAMES_SHOWN: usize = 100;

/// Where a client stands with one type, the way `istioctl proxy-status` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncStatus {
    /// Subscribed, nothing sent yet.
    NotSent,
    /// Sent and not yet ACKed, or behind the current config.
    Stale,
    Synced,
    /// The last response was rejected and nothing newer was sent.
    Nacked,
}

/// What kind of client a node is, from what it says of itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    Envoy,
    Grpc,
    Sidecar,
    Unknown,
}

impl ClientKind {
    pub fn of(node: Option<&Node>) -> ClientKind {
        let Some(node) = node else {
            return ClientKind::Unknown;
        };
        let agent = node.user_agent_name.to_ascii_lowercase();
        match super::stream_state::audience_of(node) {
            super::cache::Audience::Proxyless => ClientKind::Grpc,
            _ if agent == "envoy" => ClientKind::Envoy,
            _ if agent.starts_with("switchyard") => ClientKind::Sidecar,
            _ => ClientKind::Unknown,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Envoy => "envoy",
            ClientKind::Grpc => "grpc",
            ClientKind::Sidecar => "sidecar",
            ClientKind::Unknown => "unknown",
        }
    }
}

/// One type of one stream.
#[derive(Clone, Debug)]
pub struct TypeEntry {
    pub subscription: Subscription,
    /// The view the client's resources come from.
    pub base: Option<Arc<TypeView>>,
    pub sent_version: Option<Arc<str>>,
    pub acked_version: Option<Arc<str>>,
    pub last_nack: Option<Nack>,
    /// The last response was NACKed and nothing newer was sent.
    pub nacked: bool,
    /// The view that was rejected, while `nacked`.
    pub rejected: Option<Arc<TypeView>>,
    pub awaiting_ack: bool,
    pub responses_sent: u64,
}

impl TypeEntry {
    /// Where the client stands against `view`, the view it should have now.
    pub fn status(&self, view: &TypeView) -> SyncStatus {
        if self.responses_sent == 0 {
            SyncStatus::NotSent
        } else if self.nacked {
            SyncStatus::Nacked
        } else if self.awaiting_ack
            || self.base.as_ref().map(|b| b.generation) != Some(view.generation)
        {
            SyncStatus::Stale
        } else {
            SyncStatus::Synced
        }
    }
}

/// One connected stream.
#[derive(Clone, Debug)]
pub struct ClientEntry {
    pub info: StreamInfo,
    pub node: Option<Arc<Node>>,
    pub client: ClientView,
    pub kind: ClientKind,
    /// The snapshot the stream last processed.
    pub snapshot_version: String,
    pub types: [Option<TypeEntry>; TypeUrl::COUNT],
    pub last_update: SystemTime,
}

#[derive(Default)]
pub struct Clients {
    streams: DashMap<u64, ClientEntry>,
}

impl StreamHooks for Clients {
    fn on_event(
        &self,
        stream: &StreamInfo,
        event: &StreamEvent<'_>,
        state: &StreamCore,
        snapshot: &Arc<Snapshot>,
    ) {
        if matches!(event, StreamEvent::Disconnected) {
            self.streams.remove(&stream.id);
            return;
        }
        let mut entry = self
            .streams
            .entry(stream.id)
            .or_insert_with(|| ClientEntry {
                info: stream.clone(),
                node: None,
                client: ClientView::default(),
                kind: ClientKind::Unknown,
                snapshot_version: String::new(),
                types: Default::default(),
                last_update: SystemTime::now(),
            });
        if entry.node.is_none() && state.node.is_some() {
            entry.node = state.node.clone();
            entry.kind = ClientKind::of(state.node.as_deref());
        }
        entry.client = state.client.clone();
        entry.snapshot_version = snapshot.version.clone();
        entry.last_update = SystemTime::now();
        for type_url in TypeUrl::ALL {
            entry.types[type_url.index()] = state.state(type_url).map(|t| TypeEntry {
                subscription: t.subscription.clone(),
                base: t.base.clone(),
                sent_version: t.sent_version.clone(),
                acked_version: t.acked_version.clone(),
                last_nack: t.last_nack.clone(),
                nacked: t.nacked_generation.is_some(),
                rejected: t.rejected.clone(),
                awaiting_ack: t.awaiting_ack,
                responses_sent: t.responses_sent,
            });
        }
    }
}

impl Clients {
    /// Every connected stream, by id.
    pub fn entries(&self) -> Vec<ClientEntry> {
        let mut all: Vec<ClientEntry> = self.streams.iter().map(|e| e.value().clone()).collect();
        all.sort_by_key(|c| c.info.id);
        all
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Gives back the table space of streams that are gone.
    pub fn shrink(&self) {
        self.streams.shrink_to_fit();
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// What `/clients` shows, each client measured against `snapshot`.
    pub fn list(&self, snapshot: &Snapshot) -> Vec<ClientStatus> {
        self.entries()
            .iter()
            .map(|entry| ClientStatus::of(entry, snapshot))
            .collect()
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ClientStatus {
    pub stream_id: u64,
    pub peer: String,
    /// The identity in the client's certificate; None without mTLS.
    pub identity: Option<String>,
    /// The xdsClients rule the client is served under; None when there is no policy.
    pub access_rule: Option<String>,
    pub protocol: String,
    /// `ads`, or the per-type service (`Cluster`, …).
    pub service: String,
    pub kind: String,
    pub node_id: String,
    pub cluster: String,
    pub locality: Option<LocalityStatus>,
    pub user_agent: String,
    /// Version of the snapshot this client was last served from.
    pub snapshot_version: Option<String>,
    pub types: BTreeMap<String, TypeStatus>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LocalityStatus {
    pub region: String,
    pub zone: String,
    pub sub_zone: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct TypeStatus {
    pub status: SyncStatus,
    pub wildcard: bool,
    /// The first [`NAMES_SHOWN`] names subscribed to.
    pub subscribed: Vec<String>,
    pub subscribed_count: usize,
    pub sent_version: Option<String>,
    pub acked_version: Option<String>,
    pub responses_sent: u64,
    pub last_nack: Option<NackStatus>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct NackStatus {
    pub version: String,
    pub error_detail: String,
}

impl ClientStatus {
    fn of(entry: &ClientEntry, snapshot: &Snapshot) -> ClientStatus {
        let node = entry.node.as_deref();
        ClientStatus {
            stream_id: entry.info.id,
            peer: entry.info.peer.clone(),
            identity: entry.info.identity.as_deref().map(str::to_string),
            access_rule: entry.client.grant.as_deref().map(str::to_string),
            protocol: entry.info.protocol.name().to_string(),
            service: entry
                .info
                .service
                .map_or("ads".to_string(), |t| t.short_name().to_string()),
            kind: entry.kind.name().to_string(),
            node_id: node.map(|n| n.id.clone()).unwrap_or_default(),
            cluster: node.map(|n| n.cluster.clone()).unwrap_or_default(),
            locality: node
                .and_then(|n| n.locality.as_ref())
                .map(|l| LocalityStatus {
                    region: l.region.clone(),
                    zone: l.zone.clone(),
                    sub_zone: l.sub_zone.clone(),
                }),
            user_agent: node.map(|n| n.user_agent_name.clone()).unwrap_or_default(),
            snapshot_version: Some(entry.snapshot_version.clone()).filter(|v| !v.is_empty()),
            types: TypeUrl::ALL
                .into_iter()
                .filter_map(|t| {
                    let state = entry.types[t.index()].as_ref()?;
                    let status = state.status(snapshot.view(t, &entry.client));
                    Some((t.short_name().to_string(), TypeStatus::of(state, status)))
                })
                .collect(),
        }
    }
}

impl TypeStatus {
    fn of(entry: &TypeEntry, status: SyncStatus) -> TypeStatus {
        TypeStatus {
            status,
            wildcard: entry.subscription.wildcard,
            subscribed: entry
                .subscription
                .names
                .iter()
                .take(NAMES_SHOWN)
                .cloned()
                .collect(),
            subscribed_count: entry.subscription.names.len(),
            sent_version: entry.sent_version.as_deref().map(str::to_string),
            acked_version: entry.acked_version.as_deref().map(str::to_string),
            responses_sent: entry.responses_sent,
            last_nack: entry.last_nack.as_ref().map(|n| NackStatus {
                version: n.version.clone(),
                error_detail: n.detail.clone(),
            }),
        }
    }
}

impl ClientEntry {
    /// `ClientKind` and protocol, for metrics labels.
    pub fn labels(&self) -> (ClientKind, Protocol) {
        (self.kind, self.info.protocol)
    }
}
