//! Stream events — connect, request (subscribe, ACK, NACK, stale), response sent, synced,
//! disconnect — delivered to whoever watches streams (the client registry behind `/clients`
//! and CSDS, the metrics) through one hook, instead of calls wired into the stream loop.

use std::sync::Arc;
use std::time::Instant;

use super::cache::Snapshot;
use super::stream_state::{RequestKind, StreamCore};
use crate::xds::types::TypeUrl;
use crate::xds::wire::TypeName;

/// The xDS protocol variant a stream speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Sotw,
    Delta,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Sotw => "sotw",
            Protocol::Delta => "delta",
        }
    }
}

/// Who a stream is, as far as the transport tells.
#[derive(Clone, Debug)]
pub struct StreamInfo {
    pub id: u64,
    pub peer: String,
    /// The identity in the client's certificate (mTLS only).
    pub identity: Option<Arc<str>>,
    pub protocol: Protocol,
    /// The per-type service the stream came in on; None for ADS.
    pub service: Option<TypeUrl>,
    pub connected_at: Instant,
}

/// Something that happened on a stream.
#[derive(Debug)]
pub enum StreamEvent<'a> {
    Connected,
    Request {
        type_url: Option<TypeUrl>,
        kind: &'a RequestKind,
    },
    Sent {
        type_url: &'a TypeName,
        resources: usize,
        bytes: usize,
    },
    /// Every subscribed type is answered, ACKed and up to date with the snapshot.
    Synced,
    Disconnected,
}

/// Watches streams. Called from the streams' own tasks: keep it short, never block.
pub trait StreamHooks: Send + Sync {
    fn on_event(
        &self,
        stream: &StreamInfo,
        event: &StreamEvent<'_>,
        state: &StreamCore,
        snapshot: &Arc<Snapshot>,
    );
}

/// Several hooks as one.
#[derive(Default, Clone)]
pub struct Hooks(Vec<Arc<dyn StreamHooks>>);

impl Hooks {
    pub fn with(mut self, hook: Arc<dyn StreamHooks>) -> Self {
        self.0.push(hook);
        self
    }
}

impl StreamHooks for Hooks {
    fn on_event(
        &self,
        stream: &StreamInfo,
        event: &StreamEvent<'_>,
        state: &StreamCore,
        snapshot: &Arc<Snapshot>,
    ) {
        for hook in &self.0 {
            hook.on_event(stream, event, state, snapshot);
        }
    }
}
