//! One xDS stream on the wire: a response stream that the transport pulls from. Each time it
//! is asked for the next response it takes in the requests that arrived and the newest
//! snapshot, then asks the state machine what to send. Nothing is computed for a client
//! that is not reading, and nothing queues up for it: what it will get is decided from the
//! newest snapshot when it is ready for it. No task and no channel per stream.
//!
//! Must not: decide anything about xDS (the state machines do) or hold resource payloads.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio_stream::wrappers::WatchStream;
use tokio_stream::Stream;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::{Status, Streaming};

use super::cache::Snapshot;
use super::delta::DeltaStream;
use super::hooks::{Protocol, StreamEvent, StreamHooks, StreamInfo};
use super::limits::{for_log, Refusal, Refusals, XdsLimits};
use super::sotw::SotwStream;
use super::stream_state::{RequestKind, StreamCore};
use crate::xds::types::TypeUrl;
use crate::xds::wire::{DeltaResponse, SotwRequest, SotwResponse, TypeName, WireParts};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;

/// A protocol's state machine, as the stream drives it.
pub trait Machine: Send + Unpin + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;
    const PROTOCOL: Protocol;

    /// Whether `request` stays within `limits`; the refusal and the status to end the stream
    /// with when it does not.
    fn check(&self, request: &Self::Request, limits: &XdsLimits) -> Result<(), (Refusal, Status)>;
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

    fn check(&self, request: &SotwRequest, limits: &XdsLimits) -> Result<(), (Refusal, Status)> {
        check_names(request.resource_names().len(), limits)?;
        check_node_size(request.node_len(), limits)?;
        if self.core.node.is_none() {
            if let Some(node) = request.node() {
                check_node_id(&node, limits)?;
            }
        }
        Ok(())
    }
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

    fn check(
        &self,
        request: &DeltaDiscoveryRequest,
        limits: &XdsLimits,
    ) -> Result<(), (Refusal, Status)> {
        check_names(
            request.resource_names_subscribe.len()
                + request.resource_names_unsubscribe.len()
                + request.initial_resource_versions.len(),
            limits,
        )?;
        if let Some(node) = &request.node {
            check_node_size(prost::Message::encoded_len(node), limits)?;
            check_node_id(node, limits)?;
        }
        Ok(())
    }
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

fn check_names(count: usize, limits: &XdsLimits) -> Result<(), (Refusal, Status)> {
    if count > limits.max_resource_names {
        return Err((
            Refusal::TooManyNames,
            Status::resource_exhausted(format!(
                "the request names {count} resources; at most {} are accepted in one request (--max-resource-names)",
                limits.max_resource_names
            )),
        ));
    }
    Ok(())
}

fn check_node_size(bytes: usize, limits: &XdsLimits) -> Result<(), (Refusal, Status)> {
    if bytes > limits.max_node_bytes {
        return Err((
            Refusal::NodeTooLarge,
            Status::resource_exhausted(format!(
                "the node is {bytes} bytes encoded; at most {} are accepted (--max-node-bytes)",
                limits.max_node_bytes
            )),
        ));
    }
    Ok(())
}

fn check_node_id(node: &Node, limits: &XdsLimits) -> Result<(), (Refusal, Status)> {
    let longest = node.id.len().max(node.cluster.len());
    if longest > limits.max_node_id_bytes {
        return Err((
            Refusal::NodeTooLarge,
            Status::resource_exhausted(format!(
                "the node id and cluster may be {} bytes at most; this node has {longest}",
                limits.max_node_id_bytes
            )),
        ));
    }
    Ok(())
}

/// What a stream answers to beyond its state machine: the hooks that watch it, the limits it
/// keeps, the counts of what it refused, and its connection's count of open streams.
pub struct Guards {
    pub hooks: Arc<dyn StreamHooks>,
    pub limits: XdsLimits,
    pub refusals: Arc<Refusals>,
    pub connection_streams: Option<Arc<AtomicUsize>>,
}

/// The response side of one stream.
pub struct ResponseStream<M: Machine> {
    machine: M,
    inbound: Streaming<M::Request>,
    snapshots: WatchStream<Arc<Snapshot>>,
    snapshot: Arc<Snapshot>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    guards: Guards,
    info: StreamInfo,
    /// The snapshot version the stream last reported being in sync with.
    synced_with: Option<String>,
    /// Whether a request arrived (nothing is authorized or sent before one does).
    requested: bool,
    /// The snapshot version whose access policy the stream was last authorized under.
    authorized_under: Option<String>,
    finished: bool,
}

impl<M: Machine> ResponseStream<M> {
    pub fn new(
        machine: M,
        inbound: Streaming<M::Request>,
        snapshots: tokio::sync::watch::Receiver<Arc<Snapshot>>,
        shutdown: WaitForCancellationFutureOwned,
        guards: Guards,
        info: StreamInfo,
    ) -> Self {
        let snapshot = snapshots.borrow().clone();
        let stream = ResponseStream {
            machine,
            inbound,
            snapshots: WatchStream::from_changes(snapshots),
            snapshot,
            shutdown: Box::pin(shutdown),
            guards,
            info,
            synced_with: None,
            requested: false,
            authorized_under: None,
            finished: false,
        };
        stream.emit(&StreamEvent::Connected);
        stream
    }

    fn emit(&self, event: &StreamEvent<'_>) {
        self.guards
            .hooks
            .on_event(&self.info, event, self.machine.core(), &self.snapshot);
    }

    /// Ends the stream with `status`, counting why.
    fn refuse(
        &mut self,
        refusal: Refusal,
        status: Status,
    ) -> Poll<Option<Result<M::Response, Status>>> {
        self.guards.refusals.count(refusal);
        tracing::debug!(
            stream = self.info.id,
            reason = refusal.name(),
            "request refused"
        );
        self.finished = true;
        Poll::Ready(Some(Err(status)))
    }

    /// Checks the client's identity and node id against `snapshot`'s access policy, and
    /// sets the grant its views are restricted by.
    fn authorize(&mut self, snapshot: &Snapshot) -> Result<(), Status> {
        if self.authorized_under.as_deref() == Some(snapshot.version.as_str()) {
            return Ok(());
        }
        let core = self.machine.core();
        let node_id = core.node.as_ref().map_or("", |n| n.id.as_str());
        let grant = snapshot
            .access()
            .authorize(self.info.identity.as_deref(), node_id)?;
        if core.client.grant != grant {
            tracing::debug!(stream = self.info.id, grant = ?grant, "access granted");
            self.machine.core_mut().client.grant = grant;
        }
        self.authorized_under = Some(snapshot.version.clone());
        Ok(())
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
                    if let Err((refusal, status)) =
                        this.machine.check(&request, &this.guards.limits)
                    {
                        return this.refuse(refusal, status);
                    }
                    this.requested = true;
                    let refused_types = this.machine.core().unknown.refused;
                    let (type_url, kind) = this.machine.on_request(&request);
                    if this.machine.core().unknown.refused > refused_types {
                        this.guards.refusals.count(Refusal::UnknownTypes);
                    }
                    log_request(
                        &this.info,
                        this.machine.core(),
                        type_url,
                        &kind,
                        &this.guards.refusals,
                    );
                    this.emit(&StreamEvent::Request {
                        type_url,
                        kind: &kind,
                    });
                }
                Poll::Ready(Some(Err(status))) => {
                    if status.code() == tonic::Code::OutOfRange {
                        // tonic's decoder: a message over the size limit.
                        let limit = this.guards.limits.max_request_bytes;
                        return this.refuse(
                            Refusal::RequestTooLarge,
                            Status::resource_exhausted(format!(
                                "a request is over the limit of {limit} bytes (--max-request-bytes): {}",
                                status.message()
                            )),
                        );
                    }
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
        if !this.requested {
            return Poll::Pending;
        }
        if let Err(status) = this.authorize(&snapshot) {
            return this.refuse(Refusal::NodeNotAllowed, status);
        }
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
        if let Some(streams) = &self.guards.connection_streams {
            streams.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.emit(&StreamEvent::Disconnected);
    }
}

/// Logs what a request was: NACKs at warning level (a few per minute, client strings cut
/// short), the rest at debug level.
fn log_request(
    info: &StreamInfo,
    core: &StreamCore,
    type_url: Option<TypeUrl>,
    kind: &RequestKind,
    refusals: &Refusals,
) {
    let node = core.node.as_ref().map(|n| n.id.as_str()).unwrap_or("");
    let type_name = type_url.map_or("(not served)", |t| t.short_name());
    match kind {
        RequestKind::Nack(nack) if refusals.may_log_nack() => tracing::warn!(
            stream = info.id, node = %for_log(node), r#type = type_name, version = %nack.version,
            error_detail = %for_log(&nack.detail), "client rejected (NACKed) a response"
        ),
        _ => {
            tracing::debug!(stream = info.id, node = %for_log(node), r#type = type_name, ?kind, "request")
        }
    }
}
