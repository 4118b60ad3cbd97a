//! The tonic ADS service. Each stream runs in its own task: requests and snapshot changes go
//! into the stream's state machine, responses go out through a small bounded channel, so a
//! slow or stuck client only ever holds up itself.
//!
//! Nothing is answered before the first config is published: an empty answer would make a
//! client drop what it has, so a server restarted with a broken config must stay silent, not
//! wipe the fleet. On shutdown every stream ends after the responses it already queued.

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    aggregated_discovery_service_server::{
        AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
    },
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::sotw::{RequestKind, StreamState};
use super::types::short_name;
use super::{Cache, Clients};

/// Responses buffered per stream before the stream's task waits for the client.
const STREAM_BUFFER: usize = 16;

/// Resource types whose requests a stream keeps while waiting for the first config.
const MAX_HELD_TYPES: usize = 16;

#[derive(Clone)]
pub struct AdsService {
    cache: Cache,
    clients: Arc<Clients>,
    shutdown: CancellationToken,
}

impl AdsService {
    pub fn new(cache: Cache, clients: Arc<Clients>, shutdown: CancellationToken) -> Self {
        AdsService {
            cache,
            clients,
            shutdown,
        }
    }

    pub fn into_server(self) -> AggregatedDiscoveryServiceServer<Self> {
        AggregatedDiscoveryServiceServer::new(self)
    }
}

type DeltaStream = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = DeltaStream;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let inbound = request.into_inner();
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        let id = self.clients.register(peer);
        tokio::spawn(run_sotw_stream(
            id,
            inbound,
            sender,
            self.cache.clone(),
            self.clients.clone(),
            self.shutdown.clone(),
        ));
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "delta xDS is not served yet; use state-of-the-world ADS",
        ))
    }
}

async fn run_sotw_stream(
    id: u64,
    mut inbound: Streaming<DiscoveryRequest>,
    sender: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    cache: Cache,
    clients: Arc<Clients>,
    shutdown: CancellationToken,
) {
    let mut snapshots = cache.subscribe();
    let mut state = StreamState::default();
    let Some(held) =
        hold_until_published(&mut inbound, &mut snapshots, &mut state, &shutdown).await
    else {
        clients.remove(id);
        return;
    };
    let mut backlog = held.into_iter();
    loop {
        let responses = if let Some(request) = backlog.next() {
            let snapshot = snapshots.borrow_and_update().clone();
            let (kind, responses) = state.on_request(&request, &snapshot);
            log_request(&state, &request, &kind);
            responses
        } else {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                message = inbound.message() => match message {
                    Ok(Some(request)) => {
                        let snapshot = snapshots.borrow_and_update().clone();
                        let (kind, responses) = state.on_request(&request, &snapshot);
                        log_request(&state, &request, &kind);
                        responses
                    }
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(stream = id, %status, "xDS stream ended with an error");
                        break;
                    }
                },
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let snapshot = snapshots.borrow_and_update().clone();
                    state.on_snapshot(&snapshot)
                }
            }
        };
        clients.update(id, &state);
        for response in responses {
            tracing::debug!(stream = id, r#type = short_name(&response.type_url), version = %response.version_info, nonce = %response.nonce, resources = response.resources.len(), "sending");
            if sender.send(Ok(response)).await.is_err() {
                clients.remove(id);
                return;
            }
        }
    }
    clients.remove(id);
}

/// Before the first config is published, keeps each type's latest request (and the node,
/// which only the first request carries) unanswered. Returns the requests to answer once a
/// config is published, or None when the stream ended or the server is stopping.
async fn hold_until_published(
    inbound: &mut Streaming<DiscoveryRequest>,
    snapshots: &mut tokio::sync::watch::Receiver<Arc<crate::xds::Snapshot>>,
    state: &mut StreamState,
    shutdown: &CancellationToken,
) -> Option<Vec<DiscoveryRequest>> {
    let mut held: Vec<DiscoveryRequest> = Vec::new();
    while !snapshots.borrow_and_update().is_published() {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            message = inbound.message() => {
                let request = message.ok().flatten()?;
                if state.node.is_none() {
                    state.node = request.node.clone();
                }
                match held.iter().position(|r| r.type_url == request.type_url) {
                    Some(same_type) => held[same_type] = request,
                    None if held.len() < MAX_HELD_TYPES => held.push(request),
                    None => {}
                }
            }
            changed = snapshots.changed() => changed.ok()?,
        }
    }
    Some(held)
}

fn log_request(state: &StreamState, request: &DiscoveryRequest, kind: &RequestKind) {
    let node = state.node.as_ref().map(|n| n.id.as_str()).unwrap_or("");
    let type_name = short_name(&request.type_url);
    match kind {
        RequestKind::Nack(nack) => tracing::warn!(
            node, r#type = type_name, version = %nack.version, error_detail = %nack.detail,
            "client rejected (NACKed) a response"
        ),
        RequestKind::Ack { version } => tracing::debug!(node, r#type = type_name, %version, "ACK"),
        RequestKind::Subscribe => {
            tracing::info!(node, r#type = type_name, names = ?request.resource_names, "subscribe")
        }
        RequestKind::Stale => tracing::debug!(node, r#type = type_name, "stale request ignored"),
    }
}
