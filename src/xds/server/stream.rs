//! One xDS stream on the wire: a response stream that the transport pulls from. Each time it
//! is asked for the next response it takes in the requests that arrived and the newest
//! snapshot, then asks the state machine what to send. Nothing is computed for a client
//! that is not reading, and nothing queues up for it: what it will get is decided from the
//! newest snapshot when it is ready for it. No task and no channel per stream.
//!
//! Must not: decide anything about xDS (the state machines do) or hold resource payloads.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio_stream::wrappers::WatchStream;
use tokio_stream::Stream;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::{Status, Streaming};

use super::cache::Snapshot;
use super::delta::DeltaStream;
use super::hooks::{Protocol, StreamEvent, StreamHooks, StreamInfo};
use super::sotw::SotwStream;
use super::stream_state::{RequestKind, StreamCore};
use crate::xds::types::TypeUrl;
use crate::xds::wire::{DeltaResponse, SotwRequest, SotwResponse, TypeName, WireParts};

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;

/// A protocol's state machine, as the stream drives it.
pub trait Machine: Send + Unpin + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;
    const PROTOCOL: Protocol;

    fn on_request(&mut self, request: &Self::Request) -> (Option<TypeUrl>, RequestKind);
    fn next_response(&mut self, snapshot: &Snapshot) -> Option<Self::Response>;
    fn core(&self) -> &StreamCore;
    fn core_mut(&mut self) -> &mut StreamCore;
    /// The response's type, resource count and encoded size.
    fn describe(response: &Self::Response) -> (&TypeName, usize, usize);
}

impl Machine for SotwStream {
    type Request = SotwRequest;
    type Response = SotwResponse;
    const PROTOCOL: Protocol = Protocol::Sotw;

    fn on_request(&mut self, request: &SotwRequest) -> (Option<TypeUrl>, RequestKind) {
        SotwStream::on_request(self, request)
    }
    fn next_response(&mut self, snapshot: &Snapshot) -> Option<SotwResponse> {
        SotwStream::next_response(self, snapshot)
    }
    fn core(&self) -> &StreamCore {
        &self.core
    }
    fn core_mut(&mut self) -> &mut StreamCore {
        &mut self.core
    }
    fn describe(response: &SotwResponse) -> (&TypeName, usize, usize) {
        (
            &response.type_url,
            response.resources.len(),
            response.encoded_len(),
        )
    }
}

impl Machine for DeltaStream {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaResponse;
    const PROTOCOL: Protocol = Protocol::Delta;

    fn on_request(&mut self, request: &DeltaDiscoveryRequest) -> (Option<TypeUrl>, RequestKind) {
        DeltaStream::on_request(self, request)
    }
    fn next_response(&mut self, snapshot: &Snapshot) -> Option<DeltaResponse> {
        DeltaStream::next_response(self, snapshot)
    }
    fn core(&self) -> &StreamCore {
        &self.core
    }
    fn core_mut(&mut self) -> &mut StreamCore {
        &mut self.core
    }
    fn describe(response: &DeltaResponse) -> (&TypeName, usize, usize) {
        (
            &response.type_url,
            response.resources.len() + response.removed.len(),
            response.encoded_len(),
        )
    }
}

/// The response side of one stream.
pub struct ResponseStream<M: Machine> {
    machine: M,
    inbound: Streaming<M::Request>,
    snapshots: WatchStream<Arc<Snapshot>>,
    snapshot: Arc<Snapshot>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    hooks: Arc<dyn StreamHooks>,
    info: StreamInfo,
    /// The snapshot version the stream last reported being in sync with.
    synced_with: Option<String>,
    finished: bool,
}

impl<M: Machine> ResponseStream<M> {
    pub fn new(
        machine: M,
        inbound: Streaming<M::Request>,
        snapshots: tokio::sync::watch::Receiver<Arc<Snapshot>>,
        shutdown: WaitForCancellationFutureOwned,
        hooks: Arc<dyn StreamHooks>,
        info: StreamInfo,
    ) -> Self {
        let snapshot = snapshots.borrow().clone();
        let stream = ResponseStream {
            machine,
            inbound,
            snapshots: WatchStream::from_changes(snapshots),
            snapshot,
            shutdown: Box::pin(shutdown),
            hooks,
            info,
            synced_with: None,
            finished: false,
        };
        stream.emit(&StreamEvent::Connected);
        stream
    }

    fn emit(&self, event: &StreamEvent<'_>) {
        self.hooks
            .on_event(&self.info, event, self.machine.core(), &self.snapshot);
    }

    fn finish(&mut self) -> Poll<Option<Result<M::Response, Status>>> {
        self.finished = true;
        Poll::Ready(None)
    }
}

impl<M: Machine> Stream for ResponseStream<M> {
    type Item = Result<M::Response, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if this.shutdown.as_mut().poll(cx).is_ready() {
            return this.finish();
        }
        loop {
            match Pin::new(&mut this.inbound).poll_next(cx) {
                Poll::Ready(Some(Ok(request))) => {
                    let (type_url, kind) = this.machine.on_request(&request);
                    log_request(&this.info, this.machine.core(), type_url, &kind);
                    this.emit(&StreamEvent::Request {
                        type_url,
                        kind: &kind,
                    });
                }
                Poll::Ready(Some(Err(status))) => {
                    tracing::debug!(stream = this.info.id, %status, "xDS stream ended with an error");
                    this.finished = true;
                    return Poll::Ready(Some(Err(status)));
                }
                Poll::Ready(None) => return this.finish(),
                Poll::Pending => break,
            }
        }
        while let Poll::Ready(Some(snapshot)) = Pin::new(&mut this.snapshots).poll_next(cx) {
            this.snapshot = snapshot;
        }
        let snapshot = this.snapshot.clone();
        if let Some(response) = this.machine.next_response(&snapshot) {
            let (type_url, resources, bytes) = M::describe(&response);
            tracing::debug!(
                stream = this.info.id,
                r#type = type_url.url(),
                resources,
                bytes,
                "sending"
            );
            this.emit(&StreamEvent::Sent {
                type_url,
                resources,
                bytes,
            });
            return Poll::Ready(Some(Ok(response)));
        }
        if this.synced_with.as_deref() != Some(snapshot.version.as_str())
            && this.machine.core().is_synced(&snapshot)
        {
            this.synced_with = Some(snapshot.version.clone());
            this.emit(&StreamEvent::Synced);
        }
        Poll::Pending
    }
}

impl<M: Machine> Drop for ResponseStream<M> {
    fn drop(&mut self) {
        self.emit(&StreamEvent::Disconnected);
    }
}

/// Logs what a request was: NACKs at warning level (with what the client said), the rest at
/// debug level.
fn log_request(
    info: &StreamInfo,
    core: &StreamCore,
    type_url: Option<TypeUrl>,
    kind: &RequestKind,
) {
    let node = core.node.as_ref().map(|n| n.id.as_str()).unwrap_or("");
    let type_name = type_url.map_or("(not served)", |t| t.short_name());
    match kind {
        RequestKind::Nack(nack) => tracing::warn!(
            stream = info.id, node, r#type = type_name, version = %nack.version, error_detail = %nack.detail,
            "client rejected (NACKed) a response"
        ),
        _ => tracing::debug!(stream = info.id, node, r#type = type_name, ?kind, "request"),
    }
}
