//! Stream events counted in the metrics: which clients are connected (by kind and protocol),
//! what was sent, ACKed and NACKed, and when every client is in sync. The counting is the
//! metrics' own; this adapter only reads the events, so the metrics know nothing of streams.

use std::sync::Arc;

use super::cache::Snapshot;
use super::clients::ClientKind;
use super::hooks::{StreamEvent, StreamHooks, StreamInfo};
use super::stream_state::{RequestKind, StreamCore};
use crate::metrics::Metrics;

impl StreamHooks for Metrics {
    fn on_event(
        &self,
        stream: &StreamInfo,
        event: &StreamEvent<'_>,
        state: &StreamCore,
        snapshot: &Arc<Snapshot>,
    ) {
        let kind = || ClientKind::of(state.node.as_deref()).name();
        match event {
            StreamEvent::Connected => self.stream_seen(stream.id, kind(), stream.protocol.name()),
            StreamEvent::Request {
                type_url,
                kind: request,
            } => {
                // The first request with a node tells who a stream counted as unknown is.
                if state.node.is_some()
                    && self.stream_kind(stream.id) == Some(ClientKind::Unknown.name())
                {
                    self.stream_seen(stream.id, kind(), stream.protocol.name());
                }
                let type_name = type_url.map_or("other", |t| t.short_name());
                match request {
                    RequestKind::Ack => self.response_judged(type_name, true),
                    RequestKind::Nack(_) => self.response_judged(type_name, false),
                    _ => {}
                }
            }
            StreamEvent::Sent {
                type_url,
                resources,
                bytes,
            } => {
                let type_name = type_url.served().map_or("other", |t| t.short_name());
                self.response_sent(type_name, *resources, *bytes);
            }
            StreamEvent::Synced => self.stream_synced(stream.id, &snapshot.version),
            StreamEvent::Disconnected => self.stream_closed(stream.id),
        }
    }
}
