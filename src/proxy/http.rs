//! The HTTP side of the data plane, per request (proxy/downstream.rs serves the connections):
//! each request is routed with the route table its listener names, balanced over the chosen
//! cluster, and sent upstream through a shared connection pool (HTTP/2 when the cluster asks for it). gRPC passes through with its
//! trailers. Answers as Envoy does when it cannot: 404 without a route, 503 without a cluster
//! or a healthy endpoint or when the upstream cannot be reached, 504 on a timeout.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use super::balancer::{hash_text, next_random};
use super::config::ProxyConfig;
use super::endpoint_names::EndpointNames;
use super::headers::{add_forwarding_headers, append_via, remove_hop_by_hop, set_cookie};
use super::resources::listener::HttpManager;
use super::resources::route::{
    Action, Forward, HashPolicy, HeaderChanges, Redirect, Retry, Route, WeightedCluster,
};
use super::rewrite::{self, Connection, RequestTarget};
use super::router::{self, RequestParts};
use super::stats::STATS;
use super::upgrade;

pub type Body = BoxBody<Bytes, hyper::Error>;

/// Upstream connection pools: one for HTTP/1.1, one for HTTP/2 (prior knowledge), shared by
/// every listener and keyed by endpoint address inside.
#[derive(Clone)]
pub struct Upstreams(std::sync::Arc<Pools>);

/// The largest response header block taken from a backend: Envoy's default
/// (`max_response_headers_kb: 60`).
const MAX_RESPONSE_HEADERS_BYTES: usize = 60 * 1024;

/// How long an upstream connection may idle in the pool when its cluster says nothing:
/// Envoy's default.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

type UpstreamClient = Client<HttpConnector<EndpointNames>, Body>;

/// Connection pools by protocol and idle timeout, made when a cluster first needs one.
/// Cloned into every connection, so kept behind one pointer.
struct Pools {
    connector: HttpConnector<EndpointNames>,
    clients: std::sync::RwLock<std::collections::HashMap<(bool, Duration), UpstreamClient>>,
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

    /// The pool for HTTP/2 (or HTTP/1.1) connections that close after `idle` without use.
    fn client(&self, http2: bool, idle: Option<Duration>) -> UpstreamClient {
        let key = (http2, idle.unwrap_or(DEFAULT_IDLE_TIMEOUT));
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
        let client = clients.entry(key).or_insert_with(|| {
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
            builder.build(self.0.connector.clone())
        });
        client.clone()
    }
}

impl Default for Upstreams {
    fn default() -> Self {
        Upstreams::new()
    }
}

fn full(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(text.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// The host a request is for, as routing matches it.
fn host_of(request: &Request<Incoming>, strip_port: bool) -> String {
    let host = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !strip_port {
        return host;
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.ends_with(':') => {
            name.to_string()
        }
        _ => host,
    }
}

pub async fn handle(
    mut request: Request<Incoming>,
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
    add_forwarding_headers(request.headers_mut(), connection.remote, manager);
    let mut response = route_and_forward(request, connection, manager, config, upstreams).await;
    STATS.response(response.status().as_u16());
    if let Some(via) = manager.via.as_deref() {
        append_via(response.headers_mut(), via);
    }
    response
}

async fn route_and_forward(
    request: Request<Incoming>,
    connection: Connection,
    manager: &HttpManager,
    config: &ProxyConfig,
    upstreams: &Upstreams,
) -> Response<Body> {
    let Some(table) = config.routes.get(&manager.route_name) else {
        return full(StatusCode::NOT_FOUND, "route configuration not found\n");
    };
    let host = host_of(&request, manager.strip_any_host_port);
    let (vhost, route) = {
        let parts = RequestParts {
            host: &host,
            path: request.uri().path(),
            query: request.uri().query(),
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
            forward_request(request, connection, &chosen, config, upstreams).await
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
struct Chosen<'c> {
    route: &'c Route,
    forward: &'c Forward,
    /// The route's retry policy, else its virtual host's.
    retry: Option<&'c Retry>,
    /// Header changes from the route outwards: route, virtual host, route configuration.
    levels: [&'c HeaderChanges; 3],
}

/// A redirect's answer: its status and Location, no body.
fn redirect_response(
    redirect: &Redirect,
    route: &Route,
    request: &Request<Incoming>,
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

/// The request as it goes upstream: each level's header edits (the weighted cluster's first),
/// then the host and path rewrites of the route, keeping the original path in
/// x-envoy-original-path as Envoy does.
fn prepare_upstream_request(
    parts: &mut http::request::Parts,
    chosen: &Chosen<'_>,
    cluster: &WeightedCluster,
    connection: &Connection,
) {
    rewrite::apply(
        &mut parts.headers,
        std::iter::once(&cluster.headers.request)
            .chain(chosen.levels.iter().map(|level| &level.request)),
        connection,
    );
    if let Some(host) = chosen
        .forward
        .host_rewrite
        .as_deref()
        .and_then(|h| HeaderValue::from_str(h).ok())
    {
        parts.headers.insert(header::HOST, host);
    }
    if let Some(replacement) = &chosen.forward.prefix_rewrite {
        let original = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let rewritten = rewrite::replace_matched_prefix(original, &chosen.route.path, replacement);
        if let (Ok(original), Ok(path)) = (
            HeaderValue::from_str(original),
            rewritten.parse::<http::uri::PathAndQuery>(),
        ) {
            parts.headers.insert("x-envoy-original-path", original);
            let mut uri = std::mem::take(&mut parts.uri).into_parts();
            uri.path_and_query = Some(path);
            parts.uri = Uri::from_parts(uri).unwrap_or_default();
        }
    }
}

/// The hash of a request under `policies` (the first that applies), if any.
fn request_hash(
    policies: &[HashPolicy],
    request: &Request<Incoming>,
    client: std::net::IpAddr,
) -> Option<u64> {
    policies.iter().find_map(|policy| match policy {
        HashPolicy::Header(name) => request
            .headers()
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .map(hash_text),
        HashPolicy::Cookie { name, .. } => request
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                let value = value.trim_matches('"');
                (key == name).then(|| hash_text(value))
            }),
        HashPolicy::SourceIp => Some(hash_text(&client.to_string())),
    })
}

/// The cluster of a weighted set for one request.
fn choose_cluster(clusters: &[WeightedCluster], roll: u64) -> Option<&WeightedCluster> {
    let total: u64 = clusters.iter().map(|c| u64::from(c.weight)).sum();
    if total == 0 {
        return clusters.first();
    }
    let mut point = roll % total;
    for cluster in clusters {
        if point < u64::from(cluster.weight) {
            return Some(cluster);
        }
        point -= u64::from(cluster.weight);
    }
    None
}

fn roll() -> u64 {
    static STATE: std::sync::atomic::AtomicU64 =
        std::sync::atomic::AtomicU64::new(0x2545_F491_4F6C_DD1D);
    next_random(&STATE)
}

/// Forwards the request as the chosen route says; also returns the weighted cluster it went
/// to, whose response header edits apply to the answer.
async fn forward_request<'c>(
    mut request: Request<Incoming>,
    connection: Connection,
    chosen: &Chosen<'c>,
    config: &ProxyConfig,
    upstreams: &Upstreams,
) -> (Response<Body>, Option<&'c WeightedCluster>) {
    let forward = chosen.forward;
    let Some(cluster) = choose_cluster(&forward.clusters, roll()) else {
        return (full(StatusCode::SERVICE_UNAVAILABLE, "no cluster\n"), None);
    };
    let answer = |response| (response, Some(cluster));
    let Some(entry) = config.clusters.get(&cluster.name) else {
        return answer(full(StatusCode::SERVICE_UNAVAILABLE, "cluster not found\n"));
    };
    let mut hash = request_hash(&forward.hash, &request, connection.remote);
    // A cookie policy with a TTL issues its cookie when the request has none, as Envoy does:
    // the new value decides this request, and the client's next ones carry it.
    let mut issued = None;
    if hash.is_none() {
        if let Some(HashPolicy::Cookie {
            name,
            path,
            ttl: Some(ttl),
        }) = forward
            .hash
            .iter()
            .find(|p| matches!(p, HashPolicy::Cookie { .. }))
        {
            let value = format!("{:016x}", roll());
            hash = Some(hash_text(&value));
            issued = set_cookie(name, &value, path, *ttl);
        }
    }
    // A WebSocket upgrade the listener allows (its OnUpgrade is still in the request).
    let mut client_upgrade = (upgrade::is_websocket_request(request.headers())
        && request.extensions().get::<OnUpgrade>().is_some())
    .then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    if client_upgrade.is_some() {
        upgrade::restore_upgrade_headers(&mut parts.headers);
    }
    prepare_upstream_request(&mut parts, chosen, cluster, &connection);
    // Only a request without a body can be sent again (nothing of it was consumed).
    let replayable = body_is_empty(&parts.headers, &body);
    let attempts = match chosen.retry {
        Some(policy)
            if replayable
                && client_upgrade.is_none()
                && retries_anything(policy)
                && retriable(policy, &parts) =>
        {
            policy.num_retries + 1
        }
        _ => 1,
    };
    let client = upstreams.client(entry.cluster.http2, entry.cluster.idle_timeout);
    // The upstream URI names the endpoint; the Host the client asked for goes along as it was
    // (an HTTP/2 client sends it as :authority, which arrives as the URI's authority).
    if !parts.headers.contains_key(header::HOST) {
        if let Some(authority) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(header::HOST, authority);
        }
    }
    let mut body = Some(body.boxed());
    let mut last_error = "no healthy upstream\n";
    // The route's timeout covers every attempt; a per-try timeout bounds each one.
    let deadline = forward
        .timeout
        .filter(|t| !t.is_zero())
        .map(|t| tokio::time::Instant::now() + t);
    let per_try = chosen.retry.and_then(|p| p.per_try_timeout);
    for attempt in 1..=attempts {
        let last_attempt = attempt == attempts;
        let Some(host) = entry.balancer.pick(hash) else {
            // Envoy's words, byte for byte.
            return answer(full(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream"));
        };
        let uri = match upstream_uri(&parts.uri, &host.name) {
            Some(uri) => uri,
            None => return answer(full(StatusCode::BAD_REQUEST, "bad request target\n")),
        };
        let mut upstream = Request::from_parts(parts.clone(), body.take().unwrap_or_else(empty));
        *upstream.uri_mut() = uri;
        host.active.fetch_add(1, Ordering::Relaxed);
        STATS.upstream_requests.fetch_add(1, Ordering::Relaxed);
        let sent = client.request(upstream);
        let try_deadline = match (deadline, per_try) {
            (Some(deadline), Some(per_try)) => {
                Some(deadline.min(tokio::time::Instant::now() + per_try))
            }
            (Some(deadline), None) => Some(deadline),
            (None, per_try) => per_try.map(|t| tokio::time::Instant::now() + t),
        };
        let result = match try_deadline {
            Some(limit) => tokio::time::timeout_at(limit, sent).await,
            None => Ok(sent.await),
        };
        host.active.fetch_sub(1, Ordering::Relaxed);
        let result = match result {
            Ok(result) => result,
            Err(_) => {
                STATS.upstream_failures.fetch_add(1, Ordering::Relaxed);
                let route_timeout = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
                if route_timeout || last_attempt {
                    return answer(full(
                        StatusCode::GATEWAY_TIMEOUT,
                        "upstream request timeout\n",
                    ));
                }
                last_error = "upstream request timeout\n";
                continue;
            }
        };
        match result {
            Ok(response)
                if !last_attempt
                    && chosen
                        .retry
                        .is_some_and(|p| retries_status(p, response.status())) =>
            {
                STATS.upstream_failures.fetch_add(1, Ordering::Relaxed);
                last_error = "upstream answered with a retriable status\n";
            }
            Ok(response) if header_block_size(response.headers()) > MAX_RESPONSE_HEADERS_BYTES => {
                // As Envoy answers a backend whose headers pass its limit.
                STATS.upstream_failures.fetch_add(1, Ordering::Relaxed);
                return answer(full(
                    StatusCode::BAD_GATEWAY,
                    "upstream response headers too large\n",
                ));
            }
            Ok(mut response) => {
                let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
                if let Some(client) = client_upgrade.take().filter(|_| switching) {
                    upgrade::tunnel(client, hyper::upgrade::on(&mut response));
                }
                let mut response = response.map(|b| b.boxed());
                remove_hop_by_hop(response.headers_mut());
                if switching {
                    upgrade::restore_upgrade_headers(response.headers_mut());
                }
                if let Some(cookie) = issued {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                return answer(response);
            }
            Err(error) => {
                STATS.upstream_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, upstream = %host.address, "upstream request failed");
                last_error = "upstream connect error or disconnect/reset before headers\n";
            }
        }
    }
    answer(full(StatusCode::SERVICE_UNAVAILABLE, last_error))
}

/// The bytes a header block takes on the wire (`name: value\r\n` per header).
fn header_block_size(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn body_is_empty(headers: &http::HeaderMap, body: &Incoming) -> bool {
    use hyper::body::Body as _;
    body.is_end_stream()
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0")
}

/// Whether the request is one the policy retries: with retriable_request_headers, it must
/// match one of them (Switchyard names `:method: GET`).
fn retriable(policy: &Retry, parts: &http::request::Parts) -> bool {
    let host = parts.uri.authority().map_or("", |a| a.as_str());
    let request = RequestParts {
        host,
        path: parts.uri.path(),
        query: parts.uri.query(),
        method: parts.method.as_str(),
        headers: &parts.headers,
    };
    policy.only_with.is_empty()
        || policy
            .only_with
            .iter()
            .any(|matcher| router::header_matches(matcher, &request))
}

/// Whether the policy retries anything the sidecar can see: a connection failure or reset,
/// a timed-out attempt, or an answer whose status it names.
fn retries_anything(policy: &Retry) -> bool {
    policy.retry_on.iter().any(|r| {
        matches!(
            r.as_str(),
            "connect-failure"
                | "reset"
                | "5xx"
                | "gateway-error"
                | "refused-stream"
                | "reset-before-request"
                | "retriable-4xx"
        )
    })
}

/// Whether an answer with `status` is retried under the policy, as Envoy reads retry_on:
/// `5xx` any 5xx, `gateway-error` 502, 503 and 504, `retriable-4xx` 409.
fn retries_status(policy: &Retry, status: StatusCode) -> bool {
    policy
        .retry_on
        .iter()
        .any(|condition| match condition.as_str() {
            "5xx" => status.is_server_error(),
            "gateway-error" => matches!(status.as_u16(), 502..=504),
            "retriable-4xx" => status == StatusCode::CONFLICT,
            _ => false,
        })
}

/// The request target rewritten to reach the endpoint named `name` (no port: the name holds
/// each address's own), keeping path and query.
fn upstream_uri(uri: &Uri, name: &str) -> Option<Uri> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("http://{name}{path}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requests_matching_the_retriable_headers_are_retried() {
        use crate::proxy::resources::route::{HeaderMatch, HeaderTest, Retry, TextMatch};
        let policy = Retry {
            retry_on: vec!["connect-failure".into()],
            num_retries: 2,
            per_try_timeout: None,
            only_with: vec![HeaderMatch {
                name: ":method".into(),
                test: HeaderTest::Text {
                    matcher: TextMatch::Exact("GET".into()),
                    ignore_case: false,
                },
                invert: false,
            }],
        };
        let parts = |method: &str| {
            Request::builder()
                .method(method)
                .uri("/x")
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        assert!(retriable(&policy, &parts("GET")));
        assert!(!retriable(&policy, &parts("DELETE")));
    }

    #[test]
    fn weighted_clusters_are_chosen_in_proportion() {
        let clusters: Vec<WeightedCluster> = [("a", 3), ("b", 1), ("c", 0)]
            .into_iter()
            .map(|(name, weight)| WeightedCluster {
                name: name.into(),
                weight,
                headers: HeaderChanges::default(),
            })
            .collect();
        let mut seen = std::collections::BTreeMap::new();
        for roll in 0..400 {
            *seen
                .entry(choose_cluster(&clusters, roll).unwrap().name.as_str())
                .or_insert(0) += 1;
        }
        assert_eq!(seen.get("a"), Some(&300));
        assert_eq!(seen.get("b"), Some(&100));
        assert_eq!(seen.get("c"), None);
    }
}
