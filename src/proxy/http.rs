//! The HTTP side of the data plane, per request (proxy/downstream.rs serves the connections):
//! each request is routed with the route table its listener names and answered as its route
//! says: a redirect, a direct response, or forwarded (proxy/forward.rs) through the shared
//! upstream connection pools kept here (HTTP/2 when the cluster asks for it). Answers as Envoy
//! does when it cannot route: 404 without a route configuration, virtual host or route.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::connect::HttpConnector;

use super::access_log_http::{self, flagged, RequestFacts};
use super::config::ProxyConfig;
use super::endpoint_names::EndpointNames;
use super::filters::{self, router::Routed};
use super::headers::{
    add_forwarding_headers, append_listener_port, append_via_value, drop_underscore_headers,
    strip_host_port,
};
use super::http1_exchange::UpstreamResponseBody;
pub(super) use super::http1_pool::ResponseBody;
use super::http1_pool::{Http1Error, Http1Pool};
use super::http2_pool::{self, Http2Endpoint, Http2Error};
use super::request_body::{BoxError, DownstreamBody, UpstreamBody};
use super::resources::cluster::Cluster;
use super::resources::listener::HttpManager;
use super::resources::tls::UpstreamTls;
use super::rewrite::Connection;
use super::router::{self, RequestParts};
use super::stats::STATS;
use super::upstream_tls::{TlsOrigination, UpstreamConnector};

pub type Body = BoxBody<Bytes, BoxError>;

/// Upstream connection pools, shared by every listener: HTTP/1.1 pools whose connections
/// each worker thread keeps (proxy/http1_pool.rs), and an HTTP/2 connection (prior knowledge)
/// per endpoint shared by every worker (proxy/http2_pool.rs).
#[derive(Clone)]
pub struct Upstreams(std::sync::Arc<Pools>);

/// The largest response header block taken from a backend: Envoy's default
/// (`max_response_headers_kb: 60`).
pub(super) const MAX_RESPONSE_HEADERS_BYTES: usize = 60 * 1024;

/// How long an upstream connection may idle in the pool when its cluster says nothing:
/// Envoy's default.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Where an attempt sends its request: a pool of HTTP/1.1 connections kept per worker
/// thread (proxy/http1_pool.rs), or an endpoint's HTTP/2 connection (proxy/http2_pool.rs).
#[derive(Clone)]
pub(super) enum UpstreamClient {
    Http1(Http1Pool),
    /// Behind a pointer: shared by every worker, and cloned per request.
    Http2(std::sync::Arc<Http2Endpoint>),
}

/// Why an attempt got no answer.
#[derive(Debug)]
pub(super) enum UpstreamError {
    Http1(Http1Error),
    Http2(Http2Error),
}

impl UpstreamClient {
    /// Sends `request`, whose target names the endpoint, taking it from behind the reference
    /// as it goes; the answer, its body still to come.
    pub(super) fn request<'a>(
        &'a self,
        request: &'a mut Request<UpstreamBody>,
    ) -> impl std::future::Future<Output = Result<Response<ResponseBody>, UpstreamError>> + 'a {
        use futures_util::future::{Either, TryFutureExt};
        // Not an async fn: the chosen pool's future is all the state, with no room kept for
        // the other's or for the arguments.
        match self {
            UpstreamClient::Http1(pool) => {
                Either::Left(pool.request(request).map_err(UpstreamError::Http1))
            }
            UpstreamClient::Http2(endpoint) => Either::Right(
                endpoint
                    .request(request)
                    .map_ok(|response| response.map(UpstreamResponseBody::Hyper))
                    .map_err(UpstreamError::Http2),
            ),
        }
    }
}

impl UpstreamClient {
    /// Whether a request with these parts and body is sent without being taken (the
    /// HTTP/1.1 pool's own exchanges, proxy/http1_pool.rs), so that another attempt can send
    /// it again without a copy made beforehand.
    pub(super) fn sends_in_place(&self, parts: &http::request::Parts, body: &UpstreamBody) -> bool {
        match self {
            UpstreamClient::Http1(_) => {
                super::http1_pool::sends_in_place(&parts.method, &parts.headers, body)
            }
            UpstreamClient::Http2(_) => false,
        }
    }
}

impl UpstreamError {
    /// Whether no connection could be opened.
    pub(super) fn is_connect(&self) -> bool {
        match self {
            UpstreamError::Http1(error) => matches!(error, Http1Error::Connect(_)),
            UpstreamError::Http2(error) => matches!(error, Http2Error::Connect(_)),
        }
    }
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Http1(error) => error.fmt(f),
            UpstreamError::Http2(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpstreamError::Http1(error) => error.source(),
            UpstreamError::Http2(error) => error.source(),
        }
    }
}

/// What tells one pool from another: HTTP/2 or not, the idle timeout, the TLS settings
/// with the SNI its connections send, and the requests a connection may carry.
type PoolKey = (
    bool,
    Duration,
    Option<(UpstreamTls, Option<String>)>,
    Option<u32>,
);

/// Connection pools by protocol and idle timeout, made when a cluster first needs one, and
/// for HTTP/2 one per endpoint too (see [`Upstreams::client_for`]). Cloned into every
/// connection, so kept behind one pointer.
struct Pools {
    connector: HttpConnector<EndpointNames>,
    clients: std::sync::RwLock<std::collections::HashMap<PoolAt, UpstreamClient>>,
}

/// A pool's key and, for HTTP/2, the endpoint all its connections go to.
type PoolAt = (PoolKey, Option<std::net::SocketAddr>);

/// The most pools kept: endpoints come and go, and a pool per HTTP/2 endpoint must not
/// pile up; past it they are all made again as requests need them.
const MOST_POOLS: usize = 4096;

impl Upstreams {
    pub fn new() -> Upstreams {
        let mut connector = HttpConnector::new_with_resolver(EndpointNames);
        // Envoy's default happy-eyeballs delay before the second family is tried.
        connector.set_happy_eyeballs_timeout(Some(Duration::from_millis(300)));
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        Upstreams(std::sync::Arc::new(Pools {
            connector,
            clients: Default::default(),
        }))
    }

    /// The pool for `cluster`'s connections to `endpoint`, for a request to `host`: HTTP/2
    /// or HTTP/1.1, closed after the cluster's idle timeout, over TLS when the cluster asks
    /// (the SNI the context names, else `host` with auto_sni). HTTP/1.1 pools are shared by
    /// the cluster's endpoints (the request's target names the endpoint, and goes out in
    /// origin form); an HTTP/2 pool is the endpoint's own, so that the request's target
    /// can carry the Host as its `:authority` (see [`authority_from_host`]).
    pub(super) fn client_for(
        &self,
        cluster: &Cluster,
        host: &str,
        endpoint: &super::balancer::Host,
    ) -> UpstreamClient {
        let tls = cluster.tls.as_ref().map(|tls| {
            let auto = cluster.auto_sni.then(|| host.to_string());
            (
                tls.clone(),
                tls.sni.clone().or(auto).filter(|s| !s.is_empty()),
            )
        });
        let idle = cluster.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT);
        let key = (
            cluster.http2,
            idle,
            tls,
            cluster.max_requests_per_connection,
        );
        match cluster.http2 {
            true => self.client((key, Some(endpoint.address)), endpoint.authority.as_ref()),
            false => self.client((key, None), None),
        }
    }

    /// The pool for HTTP/2 (or HTTP/1.1) connections as `at` describes them; an endpoint's
    /// own pool connects to `endpoint` whatever its requests' targets name.
    fn client(&self, at: PoolAt, endpoint: Option<&http::uri::Authority>) -> UpstreamClient {
        if let Some(client) = self
            .0
            .clients
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&at)
        {
            return client.clone();
        }
        let mut clients = self.0.clients.write().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MOST_POOLS && !clients.contains_key(&at) {
            clients.clear();
        }
        let (key, _) = &at;
        let http2 = key.0;
        let endpoint = endpoint.and_then(|authority| {
            http::Uri::builder()
                .scheme("http")
                .authority(authority.clone())
                .path_and_query("/")
                .build()
                .ok()
        });
        let client = clients.entry(at.clone()).or_insert_with(|| {
            let connector = UpstreamConnector {
                tcp: self.0.connector.clone(),
                tls: key
                    .2
                    .as_ref()
                    .map(|(tls, sni)| TlsOrigination::new(tls, sni.clone())),
                endpoint,
            };
            if !http2 {
                // Bounds what a response's head may make the client buffer; the limit itself
                // is checked on the parsed headers (`header_block_size`).
                let most_buffered = 2 * MAX_RESPONSE_HEADERS_BYTES;
                return UpstreamClient::Http1(Http1Pool::new(
                    connector,
                    key.1,
                    most_buffered,
                    key.3,
                ));
            }
            let settings = http2_pool::Settings {
                idle_timeout: key.1,
                max_requests: key.3,
                max_header_list_bytes: MAX_RESPONSE_HEADERS_BYTES as u32,
            };
            UpstreamClient::Http2(std::sync::Arc::new(Http2Endpoint::new(connector, settings)))
        });
        client.clone()
    }
}

/// An HTTP/2 request's target as Envoy sends it: the Host (after the route's rewrites) as
/// its `:authority`, and no Host header beside it, which servers that check the two (nginx)
/// refuse when they differ; `https` as its `:scheme` over TLS. A Host that is no authority
/// stays a header, and the target keeps the endpoint's name.
pub(super) fn authority_from_host<B>(request: &mut Request<B>, tls: bool) {
    let Some(authority) = request
        .headers()
        .get(header::HOST)
        .and_then(|host| http::uri::Authority::try_from(host.as_bytes()).ok())
    else {
        return;
    };
    let mut target = std::mem::take(request.uri_mut()).into_parts();
    target.authority = Some(authority);
    target.scheme = Some(match tls {
        true => http::uri::Scheme::HTTPS,
        false => http::uri::Scheme::HTTP,
    });
    if target.path_and_query.is_none() {
        target.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = http::Uri::from_parts(target) {
        *request.uri_mut() = uri;
        request.headers_mut().remove(header::HOST);
    }
}

impl Default for Upstreams {
    fn default() -> Self {
        Upstreams::new()
    }
}

/// A local answer: `text` as a plain-text body, or no body and (as Envoy sends an empty local
/// reply or direct response) no content type when `text` is empty.
pub(crate) fn full(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(text.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    if !text.is_empty() {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    response
}

/// The host a request is for, as routing matches it: the `:authority` (HTTP/2, or an
/// absolute request target), else the Host header, in lower case (borrowed when it is
/// already).
fn host_of(request: &Request<DownstreamBody>) -> std::borrow::Cow<'_, str> {
    let host = request
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or_default();
    match host.bytes().any(|b| b.is_ascii_uppercase()) {
        true => host.to_ascii_lowercase().into(),
        false => host.into(),
    }
}

pub async fn handle(
    mut request: Request<DownstreamBody>,
    mut connection: Connection,
    manager: &HttpManager,
    config: &ProxyConfig,
    upstreams: &Upstreams,
) -> Response<Body> {
    STATS.downstream_requests.fetch_add(1, Ordering::Relaxed);
    connection.protocol = request.version();
    if !manager.websocket {
        // Not allowed here: the request goes on as a plain one.
        request.extensions_mut().remove::<OnUpgrade>();
    }
    if manager.drop_underscore_headers {
        drop_underscore_headers(request.headers_mut());
    }
    if !manager.early_mutations.is_empty() {
        // Before anything routes the request (Envoy's early header mutation).
        let edits = &manager.early_mutations.edits;
        super::rewrite::apply(request.headers_mut(), edits, &connection);
    }
    if manager.strip_any_host_port {
        strip_host_port(&mut request);
    }
    add_forwarding_headers(
        request.headers_mut(),
        connection.remote.ip(),
        connection.tls,
        manager,
    );
    // For the access log: the router replaces these with the facts as forwarded. Boxed: a
    // listener without access logs should not carry their room in every request's future.
    let facts = (!manager.access_logs.is_empty())
        .then(|| Box::new(access_log_http::request_facts(&request)));
    if let Some(facts) = &facts {
        request.extensions_mut().insert(RequestFacts::clone(facts));
    }
    // The routing is done before anything is awaited; only the way the request goes on
    // (the router, or the filter chain and then the router) is a future held here.
    let mut response = match route(request, &connection, manager, config) {
        Routing::Answered(response) => response,
        Routing::Routed(request, routed) if manager.filters.is_empty() => {
            filters::router::respond(request, connection, routed, config, upstreams).await
        }
        Routing::Routed(request, routed) => {
            run_filters(request, connection, routed, manager, config, upstreams).await
        }
    };
    if let Some(facts) = facts {
        if response.extensions().get::<RequestFacts>().is_none() {
            response.extensions_mut().insert(*facts);
        }
    }
    STATS.response(response.status().as_u16());
    if let Some(via) = &manager.via_value {
        append_via_value(response.headers_mut(), via);
    }
    response
}

/// Where routing left a request: answered already (nothing routes it), or routed.
// Matched as soon as it is returned, never kept: boxing the request would cost an allocation
// per request to save a few hundred bytes of stack.
#[allow(clippy::large_enum_variant)]
enum Routing<'c> {
    Answered(Response<Body>),
    Routed(Request<DownstreamBody>, Routed<'c>),
}

/// The route of `request` in the table its listener names, as Envoy's connection manager
/// chooses it: 404 without a route configuration, virtual host or route.
fn route<'c>(
    mut request: Request<DownstreamBody>,
    connection: &Connection,
    manager: &HttpManager,
    config: &'c ProxyConfig,
) -> Routing<'c> {
    let Some(table) = config.routes.get(&manager.route_name) else {
        let missing = full(StatusCode::NOT_FOUND, "route configuration not found\n");
        return Routing::Answered(missing);
    };
    let (vhost, route) = {
        let host = host_of(&request);
        let parts = RequestParts {
            host: &host,
            path: request.uri().path(),
            query: request.uri().query(),
            path_and_query: request.uri().path_and_query().map_or("/", |p| p.as_str()),
            method: request.method().as_str(),
            headers: request.headers(),
        };
        let Some(vhost) = router::virtual_host(table, &host) else {
            let answer = flagged(full(StatusCode::NOT_FOUND, "no virtual host\n"), "NR");
            return Routing::Answered(answer);
        };
        let Some(route) = router::route(vhost, &parts) else {
            return Routing::Answered(flagged(full(StatusCode::NOT_FOUND, "no route\n"), "NR"));
        };
        (vhost, route)
    };
    // Switchyard's step runs between the connection manager and the router: the route was
    // chosen on the host the connection manager left (its port taken off), the action (a
    // redirect's Location, the Host sent upstream) sees the listener's port on it.
    if manager.host_with_listener_port {
        append_listener_port(&mut request, connection.local.port());
    }
    let routed = Routed {
        table,
        vhost,
        route,
    };
    Routing::Routed(request, routed)
}

/// The listener's filter chain, then the router. Boxed, so that the state of a filter chain
/// does not grow the future of every request on a listener without one.
async fn run_filters(
    request: Request<DownstreamBody>,
    connection: Connection,
    routed: Routed<'_>,
    manager: &HttpManager,
    config: &ProxyConfig,
    upstreams: &Upstreams,
) -> Response<Body> {
    let (by_route, by_vhost) = (&routed.route.filter_configs, &routed.vhost.filter_configs);
    let for_router = connection.clone();
    Box::pin(filters::run(
        &manager.filters,
        by_route,
        by_vhost,
        request,
        |request| filters::router::respond(request, for_router, routed, config, upstreams),
        |reply| filters::router::route_response_headers(reply, routed, &connection),
    ))
    .await
}

pub(crate) fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}
