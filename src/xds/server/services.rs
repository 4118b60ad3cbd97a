//! The discovery services on the xDS port: ADS and the per-type services (clusters,
//! endpoints, listeners, routes), each in state-of-the-world and delta, plus the per-type
//! Fetch calls. All of them run the same stream machinery on the same cache; a per-type
//! stream simply serves one type. Routed by hand (as tonic's generated code does) so that
//! responses use the shared-bytes codec.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use tokio_util::sync::CancellationToken;
use tonic::codegen::{http, Body, BoxFuture, Context, Poll, Service, StdError};
use tonic::server::{Grpc, NamedService, StreamingService, UnaryService};
use tonic::{Request, Response, Status, Streaming};

use super::cache::Cache;
use super::codec::XdsCodec;
use super::delta::DeltaStream;
use super::hooks::{StreamHooks, StreamInfo};
use super::sotw::SotwStream;
use super::stream::{Machine, ResponseStream};
use super::subscription::NameSets;
use crate::xds::types::TypeUrl;
use crate::xds::wire::{DeltaResponse, SotwResponse};

/// The largest request accepted, by default.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// What every discovery service shares: the cache, the hooks, interned names, shutdown.
pub struct XdsServer {
    cache: Cache,
    names: Arc<NameSets>,
    hooks: Arc<dyn StreamHooks>,
    shutdown: CancellationToken,
    next_id: AtomicU64,
    max_request_bytes: usize,
}

impl XdsServer {
    pub fn new(
        cache: Cache,
        hooks: Arc<dyn StreamHooks>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(XdsServer {
            cache,
            names: Arc::new(NameSets::default()),
            hooks,
            shutdown,
            next_id: AtomicU64::new(1),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        })
    }

    /// Every discovery service, added to a tonic router.
    pub fn add_to(
        self: &Arc<Self>,
        router: tonic::transport::server::Router,
    ) -> tonic::transport::server::Router {
        router
            .add_service(DiscoveryServer::<Ads>::new(self.clone()))
            .add_service(DiscoveryServer::<Cds>::new(self.clone()))
            .add_service(DiscoveryServer::<Eds>::new(self.clone()))
            .add_service(DiscoveryServer::<Lds>::new(self.clone()))
            .add_service(DiscoveryServer::<Rds>::new(self.clone()))
    }

    fn open<M: Machine>(
        &self,
        machine: M,
        inbound: Streaming<M::Request>,
        peer: String,
        service: Option<TypeUrl>,
    ) -> ResponseStream<M> {
        let info = StreamInfo {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            peer,
            protocol: M::PROTOCOL,
            service,
            connected_at: Instant::now(),
        };
        ResponseStream::new(
            machine,
            inbound,
            self.cache.subscribe(),
            self.shutdown.clone().cancelled_owned(),
            self.hooks.clone(),
            info,
        )
    }
}

/// One discovery API: its gRPC service name and the type it serves (None: every type).
pub trait DiscoveryApi: Send + Sync + 'static {
    const NAME: &'static str;
    const ONLY: Option<TypeUrl>;
}

pub struct Ads;
pub struct Cds;
pub struct Eds;
pub struct Lds;
pub struct Rds;

impl DiscoveryApi for Ads {
    const NAME: &'static str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
    const ONLY: Option<TypeUrl> = None;
}
impl DiscoveryApi for Cds {
    const NAME: &'static str = "envoy.service.cluster.v3.ClusterDiscoveryService";
    const ONLY: Option<TypeUrl> = Some(TypeUrl::Cluster);
}
impl DiscoveryApi for Eds {
    const NAME: &'static str = "envoy.service.endpoint.v3.EndpointDiscoveryService";
    const ONLY: Option<TypeUrl> = Some(TypeUrl::Endpoint);
}
impl DiscoveryApi for Lds {
    const NAME: &'static str = "envoy.service.listener.v3.ListenerDiscoveryService";
    const ONLY: Option<TypeUrl> = Some(TypeUrl::Listener);
}
impl DiscoveryApi for Rds {
    const NAME: &'static str = "envoy.service.route.v3.RouteDiscoveryService";
    const ONLY: Option<TypeUrl> = Some(TypeUrl::Route);
}

/// A discovery service as a tower service.
pub struct DiscoveryServer<A> {
    xds: Arc<XdsServer>,
    api: PhantomData<fn() -> A>,
}

impl<A> DiscoveryServer<A> {
    fn new(xds: Arc<XdsServer>) -> Self {
        DiscoveryServer {
            xds,
            api: PhantomData,
        }
    }
}

impl<A> Clone for DiscoveryServer<A> {
    fn clone(&self) -> Self {
        DiscoveryServer::new(self.xds.clone())
    }
}

impl<A: DiscoveryApi> NamedService for DiscoveryServer<A> {
    const NAME: &'static str = A::NAME;
}

impl<A, B> Service<http::Request<B>> for DiscoveryServer<A>
where
    A: DiscoveryApi,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().rsplit('/').next().unwrap_or("");
        let xds = self.xds.clone();
        let limit = Some(xds.max_request_bytes);
        let handler = Handler { xds, only: A::ONLY };
        if method.starts_with("Stream") {
            Box::pin(async move {
                let mut grpc = Grpc::new(XdsCodec::<DiscoveryRequest, SotwResponse>::default())
                    .apply_max_message_size_config(limit, None);
                Ok(grpc.streaming(SotwHandler(handler), request).await)
            })
        } else if method.starts_with("Delta") {
            Box::pin(async move {
                let mut grpc =
                    Grpc::new(XdsCodec::<DeltaDiscoveryRequest, DeltaResponse>::default())
                        .apply_max_message_size_config(limit, None);
                Ok(grpc.streaming(DeltaHandler(handler), request).await)
            })
        } else if method.starts_with("Fetch") && A::ONLY.is_some() {
            Box::pin(async move {
                let mut grpc = Grpc::new(XdsCodec::<DiscoveryRequest, SotwResponse>::default())
                    .apply_max_message_size_config(limit, None);
                Ok(grpc.unary(FetchHandler(handler), request).await)
            })
        } else {
            Box::pin(async move { Ok(Status::unimplemented("no such method").into_http()) })
        }
    }
}

#[derive(Clone)]
struct Handler {
    xds: Arc<XdsServer>,
    only: Option<TypeUrl>,
}

fn peer_of<T>(request: &Request<T>) -> String {
    request
        .remote_addr()
        .map(|a| a.to_string())
        .unwrap_or_default()
}

struct SotwHandler(Handler);

impl StreamingService<DiscoveryRequest> for SotwHandler {
    type Response = SotwResponse;
    type ResponseStream = ResponseStream<SotwStream>;
    type Future = std::future::Ready<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<Streaming<DiscoveryRequest>>) -> Self::Future {
        let Handler { xds, only } = &self.0;
        let peer = peer_of(&request);
        let machine = SotwStream::new(xds.names.clone(), *only);
        let stream = xds.open(machine, request.into_inner(), peer, *only);
        std::future::ready(Ok(Response::new(stream)))
    }
}

struct DeltaHandler(Handler);

impl StreamingService<DeltaDiscoveryRequest> for DeltaHandler {
    type Response = DeltaResponse;
    type ResponseStream = ResponseStream<DeltaStream>;
    type Future = std::future::Ready<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<Streaming<DeltaDiscoveryRequest>>) -> Self::Future {
        let Handler { xds, only } = &self.0;
        let peer = peer_of(&request);
        let machine = DeltaStream::new(xds.names.clone(), *only);
        let stream = xds.open(machine, request.into_inner(), peer, *only);
        std::future::ready(Ok(Response::new(stream)))
    }
}

/// The per-type Fetch call: one state-of-the-world answer for the names asked.
struct FetchHandler(Handler);

impl UnaryService<DiscoveryRequest> for FetchHandler {
    type Response = SotwResponse;
    type Future = std::future::Ready<Result<Response<SotwResponse>, Status>>;

    fn call(&mut self, request: Request<DiscoveryRequest>) -> Self::Future {
        let Handler { xds, only } = &self.0;
        let snapshot = xds.cache.current();
        let mut machine = SotwStream::new(xds.names.clone(), *only);
        machine.on_request(request.get_ref());
        let answer = machine
            .next_response(&snapshot)
            .map(Response::new)
            .ok_or_else(|| Status::unavailable("no config is served yet"));
        std::future::ready(answer)
    }
}
