//! The registry of connected xDS clients, for the admin endpoint: who they are, and per type
//! what they subscribe to, ACKed and NACKed. Each stream writes only its own entry, from its
//! own task, so entries are sharded (dashmap) rather than behind one lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use serde::Serialize;

use super::sotw::{Nack, StreamState};
use super::types::short_name;

#[derive(Clone, Debug, Default, Serialize)]
pub struct ClientStatus {
    pub stream_id: u64,
    pub peer: String,
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

#[derive(Clone, Debug, Default, Serialize)]
pub struct TypeStatus {
    pub wildcard: bool,
    pub subscribed: Vec<String>,
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

impl From<&Nack> for NackStatus {
    fn from(nack: &Nack) -> Self {
        NackStatus {
            version: nack.version.clone(),
            error_detail: nack.detail.clone(),
        }
    }
}

#[derive(Default)]
pub struct Clients {
    next_id: AtomicU64,
    streams: DashMap<u64, ClientStatus>,
}

impl Clients {
    pub fn register(&self, peer: String) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.streams.insert(
            id,
            ClientStatus {
                stream_id: id,
                peer,
                ..Default::default()
            },
        );
        id
    }

    pub fn remove(&self, id: u64) {
        self.streams.remove(&id);
    }

    /// Copies what the admin endpoint shows out of a stream's state.
    pub fn update(&self, id: u64, state: &StreamState) {
        let Some(mut entry) = self.streams.get_mut(&id) else {
            return;
        };
        if let Some(node) = &state.node {
            entry.node_id = node.id.clone();
            entry.cluster = node.cluster.clone();
            entry.user_agent = node.user_agent_name.clone();
            entry.locality = node.locality.as_ref().map(|l| LocalityStatus {
                region: l.region.clone(),
                zone: l.zone.clone(),
                sub_zone: l.sub_zone.clone(),
            });
        }
        entry.snapshot_version = state.served_version().map(str::to_string);
        entry.types = state
            .types
            .iter()
            .map(|(type_url, t)| {
                let status = TypeStatus {
                    wildcard: t.wildcard,
                    subscribed: t.names.iter().cloned().collect(),
                    sent_version: t.sent_version.clone(),
                    acked_version: t.acked_version.clone(),
                    responses_sent: t.responses_sent,
                    last_nack: t.last_nack.as_ref().map(NackStatus::from),
                };
                (short_name(type_url).to_string(), status)
            })
            .collect();
    }

    /// Every connected client, by stream id.
    pub fn list(&self) -> Vec<ClientStatus> {
        let mut all: Vec<ClientStatus> = self.streams.iter().map(|e| e.value().clone()).collect();
        all.sort_by_key(|c| c.stream_id);
        all
    }
}
