//! Forwarding one request to the cluster its route chose: the weighted cluster and the
//! endpoint (by the route's hash policy), the request as it goes upstream (header edits and
//! rewrites), the attempts the retry policy and timeouts allow, and the answer Envoy gives when
//! the upstream fails. Must not: route (proxy/http.rs chose the route already).

use std::sync::atomic::Ordering;

use http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::balancer::{hash_text, next_random};
use super::config::ProxyConfig;
use super::headers::{remove_hop_by_hop, set_cookie};
use super::http::{empty, full, Body, Chosen, Upstreams, MAX_RESPONSE_HEADERS_BYTES};
use super::resources::route::{HashPolicy, WeightedCluster};
use super::retry::{retriable, retries_anything, retries_status};
use super::rewrite::{self, Connection};
use super::stats::STATS;
use super::upgrade;

/// The request as it goes upstream: each level's header edits (the weighted cluster's first),
/// then the host and path rewrites of the route, keeping the Host and path they replace in
/// x-envoy-original-host and x-envoy-original-path as Envoy's router does (it omits them
/// only under `suppress_envoy_headers`, which the sidecar refuses).
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
        let original = parts.headers.get(header::HOST).cloned().or_else(|| {
            let authority = parts.uri.authority()?;
            HeaderValue::from_str(authority.as_str()).ok()
        });
        if let Some(original) = original {
            parts.headers.insert("x-envoy-original-host", original);
        }
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
pub(super) async fn forward_request<'c>(
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
                    // Envoy's words, byte for byte: no newline.
                    return answer(full(
                        StatusCode::GATEWAY_TIMEOUT,
                        "upstream request timeout",
                    ));
                }
                last_error = "upstream request timeout";
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

fn body_is_empty(headers: &http::HeaderMap, body: &Incoming) -> bool {
    use hyper::body::Body as _;
    body.is_end_stream()
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0")
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
    use crate::proxy::resources::route::HeaderChanges;

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
