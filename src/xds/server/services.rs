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

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use tokio_util::sync::CancellationToken;
use tonic::codegen::{http, Body, BoxFuture, Context, Poll, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status, Streaming};

use super::cache::Cache;
use super::codec::{RequestDecoder, ResponseBody, XdsCodec};
use super::delta::DeltaStream;
use super::hooks::{StreamHooks, StreamInfo};
use super::incoming::ConnectionInfo;
use super::limits::{Refusal, Refusals, XdsLimits};
use super::sotw::SotwStream;
use super::stream::{Guards, Machine, ResponseStream};
use super::subscription::NameSets;
use crate::xds::types::TypeUrl;
use crate::xds::wire::SotwResponse;

/// What every discovery service shares: the cache, the hooks, interned names, shutdown.
pub struct XdsServer {
    cache: Cache,
    names: Arc<NameSets>,
    hooks: Arc<dyn StreamHooks>,
    shutdown: CancellationToken,
    next_id: AtomicU64,
    limits: XdsLimits,
    refusals: Arc<Refusals>,
}

impl XdsServer {
    pub fn new(
        cache: Cache,
        hooks: Arc<dyn StreamHooks>,
        limits: XdsLimits,
        refusals: Arc<Refusals>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(XdsServer {
            cache,
            names: Arc::new(NameSets::default()),
            hooks,
            shutdown,
            next_id: AtomicU64::new(1),
            limits,
            refusals,
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
        connection: Option<&ConnectionInfo>,
        service: Option<TypeUrl>,
    ) -> ResponseStream<M> {
        let info = StreamInfo {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            peer: connection
                .and_then(|c| c.remote_addr)
                .map(|address| address.to_string())
                .unwrap_or_default(),
            identity: connection.and_then(|c| c.identity.clone()),
            protocol: M::PROTOCOL,
            service,
            connected_at: Instant::now(),
        };
        ResponseStream::new(
            machine,
            inbound,
            self.cache.subscribe(),
            self.shutdown.clone().cancelled_owned(),
            Guards {
                hooks: self.hooks.clone(),
                limits: self.limits,
                refusals: self.refusals.clone(),
                connection_streams: connection.map(|c| c.streams.clone()),
            },
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
        let limit = Some(xds.limits.max_request_bytes);
        let handler = Handler { xds, only: A::ONLY };
        if method.starts_with("Stream") {
            let machine = SotwStream::new(handler.xds.names.clone(), A::ONLY);
            Box::pin(std::future::ready(
                Ok(handler.open_stream(machine, request)),
            ))
        } else if method.starts_with("Delta") {
            let machine = DeltaStream::new(handler.xds.names.clone(), A::ONLY);
            Box::pin(std::future::ready(
                Ok(handler.open_stream(machine, request)),
            ))
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

impl Handler {
    /// Starts a stream: requests decode with tonic's framing; responses go out through
    /// [`ResponseBody`], one exactly-sized frame each.
    fn open_stream<M, B>(
        &self,
        machine: M,
        request: http::Request<B>,
    ) -> http::Response<tonic::body::Body>
    where
        M: Machine,
        M::Request: super::codec::WireRequest,
        ResponseStream<M>: tokio_stream::Stream<Item = Result<M::Response, Status>>,
        M::Response: super::codec::WireResponse + Unpin,
        B: Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        let compressed = request
            .headers()
            .get("grpc-encoding")
            .is_some_and(|encoding| encoding != "identity");
        if compressed {
            return Status::unimplemented(
                "compressed requests are not accepted; send them uncompressed",
            )
            .into_http();
        }
        let connection = request.extensions().get::<ConnectionInfo>().cloned();
        if let Some(connection) = &connection {
            let limit = self.xds.limits.max_streams_per_connection as usize;
            if connection.streams.fetch_add(1, Ordering::Relaxed) >= limit {
                connection.streams.fetch_sub(1, Ordering::Relaxed);
                self.xds.refusals.count(Refusal::StreamsPerConnection);
                return Status::resource_exhausted(format!(
                    "this connection already has {limit} xDS streams open, the most one may have (--max-streams-per-connection); open another connection"
                ))
                .into_http();
            }
        }
        let inbound = Streaming::new_request(
            RequestDecoder::<M::Request>::default(),
            request.into_body(),
            None,
            Some(self.xds.limits.max_request_bytes),
        );
        let stream = self
            .xds
            .open(machine, inbound, connection.as_ref(), self.only);
        let mut response = http::Response::new(tonic::body::Body::new(ResponseBody::new(stream)));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        response
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
        machine.on_request(&crate::xds::wire::SotwRequest::from_message(
            request.get_ref(),
        ));
        let answer = machine
            .next_response(&snapshot)
            .map(Response::new)
            .ok_or_else(|| Status::unavailable("no config is served yet"));
        std::future::ready(answer)
    }
}
