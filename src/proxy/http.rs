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
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use super::config::ProxyConfig;
use super::endpoint_names::EndpointNames;
use super::forward;
use super::headers::{
    add_forwarding_headers, append_listener_port, append_via, drop_underscore_headers,
    strip_host_port,
};
use super::request_body::{DownstreamBody, UpstreamBody};
use super::resources::cluster::Cluster;
use super::resources::listener::HttpManager;
use super::resources::route::{Action, Forward, HeaderChanges, Redirect, Retry, Route};
use super::resources::tls::UpstreamTls;
use super::rewrite::{self, Connection, RequestTarget};
use super::router::{self, RequestParts};
use super::stats::STATS;
use super::upstream_tls::{TlsOrigination, UpstreamConnector};

pub type Body = BoxBody<Bytes, hyper::Error>;

/// Upstream connection pools: one for HTTP/1.1, one for HTTP/2 (prior knowledge), shared by
/// every listener and keyed by endpoint address inside.
#[derive(Clone)]
pub struct Upstreams(std::sync::Arc<Pools>);

/// The largest response header block taken from a backend: Envoy's default
/// (`max_response_headers_kb: 60`).
pub(super) const MAX_RESPONSE_HEADERS_BYTES: usize = 60 * 1024;

/// How long an upstream connection may idle in the pool when its cluster says nothing:
/// Envoy's default.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

pub(super) type UpstreamClient = Client<UpstreamConnector, UpstreamBody>;

/// What tells one pool from another: HTTP/2 or not, the idle timeout, and the TLS settings
/// with the SNI its connections send.
type PoolKey = (bool, Duration, Option<(UpstreamTls, Option<String>)>);

/// Connection pools by protocol and idle timeout, made when a cluster first needs one.
/// Cloned into every connection, so kept behind one pointer.
struct Pools {
    connector: HttpConnector<EndpointNames>,
    clients: std::sync::RwLock<std::collections::HashMap<PoolKey, UpstreamClient>>,
}

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

    /// The pool for `cluster`'s connections, for a request to `host`: HTTP/2 or HTTP/1.1,
    /// closed after the cluster's idle timeout, over TLS when the cluster asks (the SNI
    /// the context names, else `host` with auto_sni).
    pub(super) fn client_for(&self, cluster: &Cluster, host: &str) -> UpstreamClient {
        let tls = cluster.tls.as_ref().map(|tls| {
            let auto = cluster.auto_sni.then(|| host.to_string());
            (
                tls.clone(),
                tls.sni.clone().or(auto).filter(|s| !s.is_empty()),
            )
        });
        self.client(cluster.http2, cluster.idle_timeout, tls)
    }

    /// The pool for HTTP/2 (or HTTP/1.1) connections that close after `idle` without use.
    fn client(
        &self,
        http2: bool,
        idle: Option<Duration>,
        tls: Option<(UpstreamTls, Option<String>)>,
    ) -> UpstreamClient {
        let key: PoolKey = (http2, idle.unwrap_or(DEFAULT_IDLE_TIMEOUT), tls);
        if let Some(client) = self
            .0
            .clients
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return client.clone();
        }
        let mut clients = self.0.clients.write().unwrap_or_else(|e| e.into_inner());
        let client = clients.entry(key.clone()).or_insert_with(|| {
            let mut builder = Client::builder(TokioExecutor::new());
            builder.pool_idle_timeout(key.1);
            if http2 {
                builder
                    .http2_only(true)
                    .http2_max_header_list_size(MAX_RESPONSE_HEADERS_BYTES as u32);
            } else {
                // Bounds what a response's head may make the client buffer; the limit itself
                // is checked on the parsed headers (`header_block_size`).
                builder.http1_max_buf_size(2 * MAX_RESPONSE_HEADERS_BYTES);
            }
            builder.build(UpstreamConnector {
                tcp: self.0.connector.clone(),
                tls: key
                    .2
                    .as_ref()
                    .map(|(tls, sni)| TlsOrigination::new(tls, sni.clone())),
            })
        });
        client.clone()
    }
}

impl Default for Upstreams {
    fn default() -> Self {
        Upstreams::new()
    }
}

/// A local answer: `text` as a plain-text body, or no body and (as Envoy sends an empty local
/// reply or direct response) no content type when `text` is empty.
pub(super) fn full(status: StatusCode, text: &str) -> Response<Body> {
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
/// absolute request target), else the Host header, in lower case.
fn host_of(request: &Request<DownstreamBody>) -> String {
    request
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or_default()
        .to_ascii_lowercase()
}

pub async fn handle(
    mut request: Request<DownstreamBody>,
    connection: Connection,
    manager: &HttpManager,
    config: &ProxyConfig,
    upstreams: &Upstreams,
) -> Response<Body> {
    STATS.downstream_requests.fetch_add(1, Ordering::Relaxed);
    if !manager.websocket {
        // Not allowed here: the request goes on as a plain one.
        request.extensions_mut().remove::<OnUpgrade>();
    }
    if manager.drop_underscore_headers {
        drop_underscore_headers(request.headers_mut());
    }
    if manager.strip_any_host_port {
        strip_host_port(&mut request);
    }
    add_forwarding_headers(request.headers_mut(), connection.remote.ip(), manager);
    let mut response = route_and_forward(request, connection, manager, config, upstreams).await;
    STATS.response(response.status().as_u16());
    if let Some(via) = manager.via.as_deref() {
        append_via(response.headers_mut(), via);
    }
    response
}

async fn route_and_forward(
    mut request: Request<DownstreamBody>,
    connection: Connection,
    manager: &HttpManager,
    config: &ProxyConfig,
    upstreams: &Upstreams,
) -> Response<Body> {
    let Some(table) = config.routes.get(&manager.route_name) else {
        return full(StatusCode::NOT_FOUND, "route configuration not found\n");
    };
    let host = host_of(&request);
    let (vhost, route) = {
        let parts = RequestParts {
            host: &host,
            path: request.uri().path(),
            query: request.uri().query(),
            path_and_query: request.uri().path_and_query().map_or("/", |p| p.as_str()),
            method: request.method().as_str(),
            headers: request.headers(),
        };
        let Some(vhost) = router::virtual_host(table, &host) else {
            return full(StatusCode::NOT_FOUND, "no virtual host\n");
        };
        let Some(route) = router::route(vhost, &parts) else {
            return full(StatusCode::NOT_FOUND, "no route\n");
        };
        (vhost, route)
    };
    // Switchyard's step runs between the connection manager and the router: the route was
    // chosen on the host the connection manager left (its port taken off), the action (a
    // redirect's Location, the Host sent upstream) sees the listener's port on it.
    if manager.host_with_listener_port {
        append_listener_port(&mut request, connection.local.port());
    }
    let levels = [&route.header_changes, &vhost.headers, &table.headers];
    let (mut response, cluster) = match &route.action {
        Action::Direct { status, body } => (
            full(
                StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
                body,
            ),
            None,
        ),
        Action::Redirect(redirect) => (redirect_response(redirect, route, &request), None),
        Action::Forward(forward) => {
            let chosen = Chosen {
                route,
                forward,
                retry: forward.retry.as_ref().or(vhost.retry.as_ref()),
                levels,
            };
            forward::forward_request(request, connection, &chosen, config, upstreams).await
        }
    };
    let cluster_edits = cluster.map(|c| &c.headers.response);
    rewrite::apply(
        response.headers_mut(),
        cluster_edits
            .into_iter()
            .chain(levels.iter().map(|level| &level.response)),
        &connection,
    );
    response
}

/// The route a request took, with what forwarding needs from it.
pub(super) struct Chosen<'c> {
    pub(super) route: &'c Route,
    pub(super) forward: &'c Forward,
    /// The route's retry policy, else its virtual host's.
    pub(super) retry: Option<&'c Retry>,
    /// Header changes from the route outwards: route, virtual host, route configuration.
    pub(super) levels: [&'c HeaderChanges; 3],
}

/// A redirect's answer: its status and Location, no body.
fn redirect_response(
    redirect: &Redirect,
    route: &Route,
    request: &Request<DownstreamBody>,
) -> Response<Body> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let target = RequestTarget {
        scheme: request
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("http"),
        host,
        path_and_query: request.uri().path_and_query().map_or("/", |p| p.as_str()),
    };
    let location = rewrite::redirect_location(redirect, &route.path, &target);
    let mut response = Response::new(empty());
    *response.status_mut() =
        StatusCode::from_u16(redirect.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

pub(super) fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}
