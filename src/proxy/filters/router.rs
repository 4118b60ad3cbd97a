//! The router, the last filter of every chain: does what the chosen route says — answers
//! directly, redirects, or forwards (proxy/forward.rs) — and applies the response header
//! changes of the weighted cluster, the route, the virtual host and the route configuration
//! to what comes back. Must not: choose the route (the connection manager, proxy/http.rs,
//! did), or run other filters.

use http::{header, HeaderValue, Request, Response, StatusCode};

use super::super::config::ProxyConfig;
use super::super::forward;
use super::super::http::{empty, full, Body, Upstreams};
use super::super::request_body::DownstreamBody;
use super::super::resources::route::{
    Action, Forward, HeaderChanges, Redirect, Retry, Route, RouteTable, VirtualHost,
    WeightedCluster,
};
use super::super::rewrite::{self, Connection, RequestTarget};
use super::super::stream_deadline::{self, StreamLimit};

/// The route a request took, with what forwarding needs from it.
pub(crate) struct Chosen<'c> {
    pub(crate) route: &'c Route,
    pub(crate) forward: &'c Forward,
    /// The route's retry policy, else its virtual host's.
    pub(crate) retry: Option<&'c Retry>,
    /// Header changes from the route outwards: route, virtual host, route configuration.
    pub(crate) levels: [&'c HeaderChanges; 3],
}

/// Where a request was routed: the route configuration, virtual host and route.
#[derive(Clone, Copy)]
pub(crate) struct Routed<'t> {
    pub(crate) table: &'t RouteTable,
    pub(crate) vhost: &'t VirtualHost,
    pub(crate) route: &'t Route,
}

/// Answers `request` as its route says.
pub(crate) async fn respond(
    request: Request<DownstreamBody>,
    mut connection: Connection,
    routed: Routed<'_>,
    config: &ProxyConfig,
    upstreams: &Upstreams,
) -> Response<Body> {
    let Routed {
        table,
        vhost,
        route,
    } = routed;
    let levels = [&route.header_changes, &vhost.headers, &table.headers];
    if reads_request(route, &levels) {
        connection.request_headers = Some(std::sync::Arc::new(request.headers().clone()));
    }
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
            let mut request = request;
            let limit = forward
                .max_stream_duration
                .filter(|limit| !limit.is_zero())
                .map(|limit| StreamLimit {
                    deadline: tokio::time::Instant::now() + limit,
                    request_complete: request.body_mut().completion(),
                    http1: connection.protocol <= http::Version::HTTP_11,
                });
            let forwarded = |request| {
                forward::forward_request(request, connection.clone(), &chosen, config, upstreams)
            };
            // Boxed: forwarding's state (about 4 KB) would otherwise be room in every future
            // that awaits this one, each copied whole as it is built and boxed (the connection
            // manager's future was 12 KB, and memcpy 6% of the sidecar's profile under load).
            match limit {
                None => Box::pin(forwarded(request)).await,
                // Envoy's connection manager answers an expired stream itself, and the route's
                // response headers go on its reply too.
                Some(limit) => Box::pin(stream_deadline::bounded(limit, forwarded(request))).await,
            }
        }
    };
    apply_response_edits(&mut response, cluster, levels, &connection);
    response
}

/// The response header changes of the weighted cluster (if any) and the route's levels.
fn apply_response_edits(
    response: &mut Response<Body>,
    cluster: Option<&WeightedCluster>,
    levels: [&HeaderChanges; 3],
    connection: &Connection,
) {
    let cluster_edits = cluster.map(|c| &c.headers.response);
    rewrite::apply(
        response.headers_mut(),
        cluster_edits
            .into_iter()
            .chain(levels.iter().map(|level| &level.response)),
        connection,
    );
}

/// Whether a response header value of the route's levels (or of its weighted clusters) names
/// a request header, so that the request's headers must be kept for the answer.
fn reads_request(route: &Route, levels: &[&HeaderChanges; 3]) -> bool {
    let clusters = match &route.action {
        Action::Forward(forward) => forward.clusters.as_slice(),
        _ => &[],
    };
    levels.iter().any(|level| level.response.reads_request())
        || clusters.iter().any(|c| c.headers.response.reads_request())
}

/// The response header changes of the route, its virtual host and its route configuration,
/// on a filter's local reply (as Envoy applies them to one).
pub(crate) fn route_response_headers(
    response: &mut Response<Body>,
    routed: Routed<'_>,
    connection: &Connection,
) {
    let levels = [
        &routed.route.header_changes,
        &routed.vhost.headers,
        &routed.table.headers,
    ];
    rewrite::apply(
        response.headers_mut(),
        levels.iter().map(|level| &level.response),
        connection,
    );
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
