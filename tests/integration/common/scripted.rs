//! A scripted ADS server for testing xDS clients: the test sends exactly the responses it
//! wants and reads every request the client makes (one state-of-the-world stream at a time);
//! and a static server that answers every client the same fixed resources.

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

/// An ADS server that answers every client the same fixed resources: each type once per
/// stream, on the client's first request for it, at version "1". Any NACK is recorded.
pub struct StaticServer {
    pub address: SocketAddr,
    rejections: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Fixed {
    resources: Arc<Vec<envoy_types::pb::google::protobuf::Any>>,
    rejections: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Fixed {
    type StreamAggregatedResourcesStream = Responses;
    type DeltaAggregatedResourcesStream = DeltaResponses;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Responses>, Status> {
        let mut inbound = request.into_inner();
        let (sender, responses) = mpsc::unbounded_channel();
        let fixed = self.clone();
        tokio::spawn(async move {
            let mut answered = std::collections::HashSet::new();
            while let Some(Ok(request)) = inbound.next().await {
                if let Some(error) = &request.error_detail {
                    fixed.rejections.lock().unwrap().push(error.message.clone());
                }
                if !answered.insert(request.type_url.clone()) {
                    continue;
                }
                let resources = fixed
                    .resources
                    .iter()
                    .filter(|r| r.type_url == request.type_url)
                    .cloned()
                    .collect();
                let _ = sender.send(DiscoveryResponse {
                    version_info: "1".into(),
                    nonce: format!("{}-1", request.type_url),
                    type_url: request.type_url.clone(),
                    resources,
                    ..Default::default()
                });
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
            "the static server speaks state of the world",
        ))
    }
}

impl StaticServer {
    pub async fn start(resources: Vec<envoy_types::pb::google::protobuf::Any>) -> StaticServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let rejections = Arc::new(Mutex::new(Vec::new()));
        let fixed = Fixed {
            resources: Arc::new(resources),
            rejections: rejections.clone(),
        };
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(AggregatedDiscoveryServiceServer::new(fixed))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        StaticServer {
            address,
            rejections,
            task,
        }
    }

    /// The error messages of every NACK received so far.
    pub fn rejections(&self) -> Vec<String> {
        self.rejections.lock().unwrap().clone()
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
