//! A scripted ADS server for testing xDS clients: the test sends exactly the responses it
//! wants and reads every request the client makes. One state-of-the-world stream at a time.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

type Responses = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaResponses = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[derive(Clone)]
struct Script(Arc<ScriptChannels>);

struct ScriptChannels {
    requests: mpsc::UnboundedSender<DiscoveryRequest>,
    responses: Mutex<Option<mpsc::UnboundedReceiver<DiscoveryResponse>>>,
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Script {
    type StreamAggregatedResourcesStream = Responses;
    type DeltaAggregatedResourcesStream = DeltaResponses;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Responses>, Status> {
        let Some(responses) = self.0.responses.lock().unwrap().take() else {
            return Err(Status::unavailable("the script serves one stream"));
        };
        let mut inbound = request.into_inner();
        let requests = self.0.requests.clone();
        tokio::spawn(async move {
            while let Some(Ok(request)) = inbound.next().await {
                let _ = requests.send(request);
            }
        });
        Ok(Response::new(Box::pin(
            UnboundedReceiverStream::new(responses).map(Ok),
        )))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<DeltaResponses>, Status> {
        Err(Status::unimplemented(
            "the script speaks state of the world",
        ))
    }
}

pub struct ScriptedServer {
    pub address: SocketAddr,
    requests: mpsc::UnboundedReceiver<DiscoveryRequest>,
    responses: mpsc::UnboundedSender<DiscoveryResponse>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedServer {
    pub async fn start() -> ScriptedServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (request_sender, requests) = mpsc::unbounded_channel();
        let (responses, response_receiver) = mpsc::unbounded_channel();
        let script = Script(Arc::new(ScriptChannels {
            requests: request_sender,
            responses: Mutex::new(Some(response_receiver)),
        }));
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(AggregatedDiscoveryServiceServer::new(script))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        ScriptedServer {
            address,
            requests,
            responses,
            task,
        }
    }

    pub fn send(&self, response: DiscoveryResponse) {
        self.responses.send(response).expect("the stream is open");
    }

    /// The next request of `type_url` (others are skipped).
    pub async fn next_request(&mut self, type_url: &str) -> DiscoveryRequest {
        loop {
            let request = tokio::time::timeout(Duration::from_secs(30), self.requests.recv())
                .await
                .unwrap_or_else(|_| panic!("no {type_url} request within 30 s"))
                .expect("the client is connected");
            if request.type_url == type_url {
                return request;
            }
        }
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
