//! The tonic ADS service. Each stream runs in its own task: requests and snapshot changes go
//! into the stream's state machine, responses go out through a small bounded channel, so a
//! slow or stuck client only ever holds up itself.

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
use tonic::{Request, Response, Status, Streaming};

use super::sotw::{RequestKind, StreamState};
use super::types::short_name;
use super::{Cache, Clients};

/// Responses buffered per stream before the stream's task waits for the client.
const STREAM_BUFFER: usize = 16;

#[derive(Clone)]
pub struct AdsService {
    cache: Cache,
    clients: Arc<Clients>,
}

impl AdsService {
    pub fn new(cache: Cache, clients: Arc<Clients>) -> Self {
        AdsService { cache, clients }
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
) {
    let mut snapshots = cache.subscribe();
    let mut state = StreamState::default();
    loop {
        let responses = tokio::select! {
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
