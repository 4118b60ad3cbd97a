//! Raw xDS clients for protocol tests: state-of-the-world and delta streams over ADS or a
//! per-type service, sending exactly the requests a test writes and handing back every
//! response. `barrier` asks for a type the server does not serve: its one empty answer comes
//! after every response that was due, so "nothing else was sent" is checked without waiting
//! for time to pass.

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::cluster::v3::cluster_discovery_service_client::ClusterDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::endpoint::v3::endpoint_discovery_service_client::EndpointDiscoveryServiceClient;
use envoy_types::pb::envoy::service::listener::v3::listener_discovery_service_client::ListenerDiscoveryServiceClient;
use envoy_types::pb::envoy::service::route::v3::route_discovery_service_client::RouteDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// How long a test waits for one response before failing.
const PATIENCE: Duration = Duration::from_secs(30);

/// Where a stream is opened: ADS, or one of the per-type services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Ads,
    PerType(&'static str),
}

pub fn node(id: &str) -> Node {
    Node {
        id: id.to_string(),
        user_agent_name: "envoy".into(),
        locality: Some(Locality {
            region: "us-central1".into(),
            zone: "us-central1-a".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn channel(address: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .expect("the xDS port accepts connections")
}

/// The name of an encoded resource of a type Switchyard serves.
pub fn name_of(resource: &Any) -> String {
    let bytes = resource.value.as_slice();
    match resource.type_url.as_str() {
        CLUSTER => Cluster::decode(bytes).unwrap().name,
        ENDPOINT => ClusterLoadAssignment::decode(bytes).unwrap().cluster_name,
        LISTENER => Listener::decode(bytes).unwrap().name,
        ROUTE => RouteConfiguration::decode(bytes).unwrap().name,
        other => panic!("a resource of an unexpected type {other}"),
    }
}

/// Short name of a type URL: `Cluster`, `ClusterLoadAssignment`, …
pub fn short(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}

/// A state-of-the-world stream.
pub struct SotwClient {
    sender: mpsc::UnboundedSender<DiscoveryRequest>,
    inbound: Streaming<DiscoveryResponse>,
    barriers: u32,
}

impl SotwClient {
    pub async fn open(address: SocketAddr, service: Service) -> SotwClient {
        Self::open_on(channel(address).await, service).await
    }

    /// A stream of `service` on an existing connection (a TLS one, say).
    pub async fn open_on(channel: Channel, service: Service) -> SotwClient {
        let (sender, receiver) = mpsc::unbounded_channel();
        let requests = UnboundedReceiverStream::new(receiver);
        let inbound = match service {
            Service::Ads => AggregatedDiscoveryServiceClient::new(channel)
                .stream_aggregated_resources(requests)
                .await
                .unwrap()
                .into_inner(),
            Service::PerType(CLUSTER) => ClusterDiscoveryServiceClient::new(channel)
                .stream_clusters(requests)
                .await
                .unwrap()
                .into_inner(),
            Service::PerType(ENDPOINT) => EndpointDiscoveryServiceClient::new(channel)
                .stream_endpoints(requests)
                .await
                .unwrap()
                .into_inner(),
            Service::PerType(LISTENER) => ListenerDiscoveryServiceClient::new(channel)
                .stream_listeners(requests)
                .await
                .unwrap()
                .into_inner(),
            Service::PerType(ROUTE) => RouteDiscoveryServiceClient::new(channel)
                .stream_routes(requests)
                .await
                .unwrap()
                .into_inner(),
            Service::PerType(other) => panic!("no service for {other}"),
        };
        SotwClient {
            sender,
            inbound,
            barriers: 0,
        }
    }

    /// An ADS stream on an existing connection (several streams may share one).
    pub async fn on_channel(channel: Channel) -> SotwClient {
        Self::try_on_channel(channel)
            .await
            .expect("the stream opens")
    }

    /// As [`SotwClient::on_channel`], answering the status when the server refuses the stream.
    pub async fn try_on_channel(channel: Channel) -> Result<SotwClient, tonic::Status> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let inbound = AggregatedDiscoveryServiceClient::new(channel)
            .stream_aggregated_resources(UnboundedReceiverStream::new(receiver))
            .await?
            .into_inner();
        Ok(SotwClient {
            sender,
            inbound,
            barriers: 0,
        })
    }

    pub fn send(&self, request: DiscoveryRequest) {
        let _ = self.sender.send(request);
    }

    /// Asks for `names` of `type_url` (the node goes with every request).
    pub fn request(&self, type_url: &str, names: &[&str], nonce: &str, version: &str) {
        self.send(DiscoveryRequest {
            node: Some(node("conformance")),
            type_url: type_url.to_string(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            response_nonce: nonce.to_string(),
            version_info: version.to_string(),
            ..Default::default()
        });
    }

    /// ACKs `response`, naming `names`.
    pub fn ack(&self, response: &DiscoveryResponse, names: &[&str]) {
        self.request(
            &response.type_url,
            names,
            &response.nonce,
            &response.version_info,
        );
    }

    /// NACKs `response` with `message`; `accepted` is the version the client still runs.
    pub fn nack(
        &self,
        response: &DiscoveryResponse,
        names: &[&str],
        accepted: &str,
        message: &str,
    ) {
        self.send(DiscoveryRequest {
            type_url: response.type_url.clone(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            response_nonce: response.nonce.clone(),
            version_info: accepted.to_string(),
            error_detail: Some(Status {
                code: 3,
                message: message.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }

    pub async fn recv(&mut self) -> DiscoveryResponse {
        match tokio::time::timeout(PATIENCE, self.inbound.message()).await {
            Ok(Ok(Some(response))) => response,
            Ok(Ok(None)) => panic!("the server closed the stream"),
            Ok(Err(status)) => panic!("the stream failed: {status}"),
            Err(_) => panic!("no response within {PATIENCE:?}"),
        }
    }

    /// The next response, or None when the stream ends first (for polling loops).
    pub async fn try_recv(&mut self) -> Option<DiscoveryResponse> {
        match tokio::time::timeout(PATIENCE, self.inbound.message()).await {
            Ok(Ok(Some(response))) => Some(response),
            Ok(_) => None,
            Err(_) => panic!("no response within {PATIENCE:?}"),
        }
    }

    /// Every response the server had to send, up to a barrier.
    pub async fn drain(&mut self) -> Vec<DiscoveryResponse> {
        self.barriers += 1;
        let barrier = format!("type.googleapis.com/conformance.Barrier{}", self.barriers);
        self.request(&barrier, &[], "", "");
        let mut seen = Vec::new();
        loop {
            let response = self.recv().await;
            if response.type_url == barrier {
                assert!(response.resources.is_empty());
                return seen;
            }
            seen.push(response);
        }
    }

    /// The stream's status after the server closes it.
    pub async fn closed_with(&mut self) -> tonic::Status {
        closed_with(&mut self.inbound).await
    }
}

/// (type, names) of each response, for compact assertions.
pub fn sotw_summary(responses: &[DiscoveryResponse]) -> Vec<(String, Vec<String>)> {
    responses
        .iter()
        .map(|r| {
            (
                short(&r.type_url).to_string(),
                r.resources.iter().map(name_of).collect(),
            )
        })
        .collect()
}

/// A delta stream.
pub struct DeltaClient {
    sender: mpsc::UnboundedSender<DeltaDiscoveryRequest>,
    inbound: Streaming<DeltaDiscoveryResponse>,
    barriers: u32,
}

impl DeltaClient {
    pub async fn open(address: SocketAddr, service: Service) -> DeltaClient {
        Self::open_on(channel(address).await, service).await
    }

    /// A stream of `service` on an existing connection (a TLS one, say).
    pub async fn open_on(channel: Channel, service: Service) -> DeltaClient {
        let (sender, receiver) = mpsc::unbounded_channel();
        let requests = UnboundedReceiverStream::new(receiver);
        let inbound = match service {
            Service::Ads => AggregatedDiscoveryServiceClient::new(channel)
                .delta_aggregated_resources(requests)
                .await
                .unwrap()
                .into_inner(),
            Service::PerType(CLUSTER) => ClusterDiscoveryServiceClient::new(channel)
                .delta_clusters(requests)
                .await
                .unwrap()
                .into_inner(),
            Service::PerType(ENDPOINT) => EndpointDiscoveryServiceClient::new(channel)
                .delta_endpoints(requests)
                .await
                .unwrap()
                .into_inner(),
            Service::PerType(LISTENER) => ListenerDiscoveryServiceClient::new(channel)
                .delta_listeners(requests)
                .await
                .unwrap()
                .into_inner(),
            Service::PerType(ROUTE) => RouteDiscoveryServiceClient::new(channel)
                .delta_routes(requests)
                .await
                .unwrap()
                .into_inner(),
            Service::PerType(other) => panic!("no service for {other}"),
        };
        DeltaClient {
            sender,
            inbound,
            barriers: 0,
        }
    }

    pub fn send(&self, request: DeltaDiscoveryRequest) {
        self.sender.send(request).expect("the stream is open");
    }

    /// Subscribes to and unsubscribes from names of `type_url`.
    pub fn subscribe(&self, type_url: &str, subscribe: &[&str], unsubscribe: &[&str]) {
        self.send(DeltaDiscoveryRequest {
            node: Some(node("conformance")),
            type_url: type_url.to_string(),
            resource_names_subscribe: subscribe.iter().map(|n| n.to_string()).collect(),
            resource_names_unsubscribe: unsubscribe.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        });
    }

    pub fn ack(&self, response: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        });
    }

    pub fn nack(&self, response: &DeltaDiscoveryResponse, message: &str) {
        self.send(DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            error_detail: Some(Status {
                code: 3,
                message: message.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }

    pub async fn recv(&mut self) -> DeltaDiscoveryResponse {
        match tokio::time::timeout(PATIENCE, self.inbound.message()).await {
            Ok(Ok(Some(response))) => response,
            Ok(Ok(None)) => panic!("the server closed the stream"),
            Ok(Err(status)) => panic!("the stream failed: {status}"),
            Err(_) => panic!("no response within {PATIENCE:?}"),
        }
    }

    /// Every response the server had to send, up to a barrier.
    pub async fn drain(&mut self) -> Vec<DeltaDiscoveryResponse> {
        self.barriers += 1;
        let barrier = format!("type.googleapis.com/conformance.Barrier{}", self.barriers);
        self.subscribe(&barrier, &["*"], &[]);
        let mut seen = Vec::new();
        loop {
            let response = self.recv().await;
            if response.type_url == barrier {
                return seen;
            }
            seen.push(response);
        }
    }

    /// The stream's status after the server closes it.
    pub async fn closed_with(&mut self) -> tonic::Status {
        closed_with(&mut self.inbound).await
    }
}

async fn closed_with<M>(inbound: &mut Streaming<M>) -> tonic::Status {
    loop {
        match tokio::time::timeout(PATIENCE, inbound.message()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => return tonic::Status::ok(""),
            Ok(Err(status)) => return status,
            Err(_) => panic!("the stream stayed open"),
        }
    }
}

/// (type, names sent, names removed) of each delta response.
pub fn delta_summary(
    responses: &[DeltaDiscoveryResponse],
) -> Vec<(String, Vec<String>, Vec<String>)> {
    responses
        .iter()
        .map(|r| {
            (
                short(&r.type_url).to_string(),
                r.resources.iter().map(|x| x.name.clone()).collect(),
                r.removed_resources.clone(),
            )
        })
        .collect()
}
