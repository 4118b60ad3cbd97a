//! Forwarding one request to the cluster its route chose: the weighted cluster, the hash that
//! picks the endpoint, the request as it goes upstream (header edits and rewrites) and the
//! backend's answer as it comes back; proxy/attempts.rs makes the attempts. Must not: route
//! (proxy/http.rs chose the route already).

use std::sync::Arc;

use http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::upgrade::OnUpgrade;

use super::access_log_http::{RequestFacts, UpstreamCluster};
use super::attempts::Attempts;
use super::balancer::{hash_text, next_random};
use super::config::ProxyConfig;
use super::filters::router::Chosen;
use super::headers::{remove_hop_by_hop, set_cookie};
use super::http::{full, Body, ResponseBody, Upstreams};
use super::request_body::{AttemptBodies, DownstreamBody};
use super::resources::route::{HashPolicy, PathMatch, WeightedCluster};
use super::retry::{retriable, retries_anything};
use super::rewrite::{self, Connection};
use super::timeouts::StreamClock;
use super::{mirror, upgrade};

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
    let original = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let rewritten = match (&chosen.forward.prefix_rewrite, &chosen.route.path) {
        (Some(replacement), matched) => Some(rewrite::replace_matched_prefix(
            original,
            matched,
            replacement,
        )),
        (None, PathMatch::Template(matched)) => chosen
            .forward
            .template_rewrite
            .as_ref()
            .and_then(|rewrite| rewrite::rewrite_by_template(original, matched, rewrite)),
        (None, _) => None,
    };
    if let Some(rewritten) = rewritten {
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
    request: &Request<DownstreamBody>,
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
    mut request: Request<DownstreamBody>,
    connection: Connection,
    chosen: &Chosen<'c>,
    config: &ProxyConfig,
    upstreams: &Upstreams,
) -> (Response<Body>, Option<&'c WeightedCluster>) {
    let forward = chosen.forward;
    let Some(cluster) = choose_cluster(&forward.clusters, roll()) else {
        return (full(StatusCode::SERVICE_UNAVAILABLE, "no cluster\n"), None);
    };
    // Logged requests carry their facts this far (proxy/access_log_http.rs).
    let logged = request.extensions().get::<RequestFacts>().is_some();
    let answer = |mut response: Response<Body>| {
        if logged {
            // For the access log: the cluster the request went to (CEL's xds.cluster_name).
            response
                .extensions_mut()
                .insert(UpstreamCluster(cluster.name.clone()));
        }
        (response, Some(cluster))
    };
    let Some(entry) = config.clusters.get(&cluster.name) else {
        let missing = full(StatusCode::SERVICE_UNAVAILABLE, "cluster not found\n");
        return answer(super::access_log_http::flagged(missing, "NC"));
    };
    // An ORIGINAL_DST cluster's host is where the client was going (unless that is here).
    let destination = match &entry.original_dst {
        None => None,
        Some(_) => {
            let original = connection.original_destination;
            match super::original_dst::destination(original, connection.local, config) {
                Ok(destination) => Some(destination),
                Err(own) => return answer(super::original_dst::loop_answer(own)),
            }
        }
    };
    let (hash, issued) = affinity(&forward.hash, &request, connection.remote.ip());
    // A WebSocket upgrade the listener allows (its OnUpgrade is still in the request).
    let client_upgrade = (upgrade::is_websocket_request(request.headers())
        && request.extensions().get::<OnUpgrade>().is_some())
    .then(|| hyper::upgrade::on(&mut request));
    // The stream idle clock the connection manager keeps for an upgrade, if any.
    let tunnel_clock = client_upgrade
        .as_ref()
        .and_then(|_| request.extensions_mut().remove::<Arc<StreamClock>>());
    let (mut parts, body) = request.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    if client_upgrade.is_some() {
        upgrade::restore_upgrade_headers(&mut parts.headers);
    }
    prepare_upstream_request(&mut parts, chosen, cluster, &connection);
    keep_host(&mut parts);
    let facts = parts
        .extensions
        .remove::<RequestFacts>()
        .map(|facts| Box::new(facts.forwarded(&parts)));
    let retry = chosen.retry.filter(|policy| {
        client_upgrade.is_none() && retries_anything(policy) && retriable(policy, &parts)
    });
    let attempts = Attempts {
        entry,
        hash,
        destination,
        upstreams,
        retry,
        // A route with a max_stream_duration leaves the whole stream to it, as Envoy's router
        // then sets no timeout of its own.
        deadline: forward
            .timeout
            .filter(|t| !t.is_zero() && forward.max_stream_duration.is_none())
            .map(|t| tokio::time::Instant::now() + t),
        body_failure: body.failure(),
        note_endpoint: facts.is_some(),
    };
    let mut body = body;
    let empty = body.is_empty(&parts.headers);
    mirror::send_copies(
        &forward.mirrors,
        &parts,
        &mut body,
        empty,
        hash,
        forward.timeout,
        config,
        upstreams,
    );
    let mut bodies = AttemptBodies::new(body, empty, retry.is_some());
    let mut reply = match attempts.run(parts, &mut bodies).await {
        Ok(response) => answer(downstream_response(
            response,
            client_upgrade.map(|client| (client, tunnel_clock)),
            issued,
        )),
        Err(local) => answer(local),
    };
    if let Some(facts) = facts {
        reply.0.extensions_mut().insert(*facts);
    }
    reply
}

/// The hash that picks the endpoint, and the affinity cookie to issue with the answer: a
/// cookie policy with a TTL issues its cookie when the request has none, as Envoy does (the
/// new value decides this request, and the client's next ones carry it).
fn affinity(
    policies: &[HashPolicy],
    request: &Request<DownstreamBody>,
    client: std::net::IpAddr,
) -> (Option<u64>, Option<HeaderValue>) {
    if let Some(hash) = request_hash(policies, request, client) {
        return (Some(hash), None);
    }
    let Some(HashPolicy::Cookie {
        name,
        path,
        ttl: Some(ttl),
    }) = policies
        .iter()
        .find(|policy| matches!(policy, HashPolicy::Cookie { .. }))
    else {
        return (None, None);
    };
    let value = format!("{:016x}", roll());
    (
        Some(hash_text(&value)),
        set_cookie(name, &value, path, *ttl),
    )
}

/// The upstream URI names the endpoint; the Host the client asked for goes along as it was
/// (an HTTP/2 client sends it as :authority, which arrives as the URI's authority).
fn keep_host(parts: &mut http::request::Parts) {
    if parts.headers.contains_key(header::HOST) {
        return;
    }
    if let Some(authority) = parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        parts.headers.insert(header::HOST, authority);
    }
}

/// The backend's answer as it goes to the client: a switch of protocols tunnelled (idling out
/// on the request's clock, if it has one), the hop-by-hop headers dropped, the affinity cookie
/// issued.
fn downstream_response(
    mut response: Response<ResponseBody>,
    client_upgrade: Option<(OnUpgrade, Option<Arc<StreamClock>>)>,
    issued: Option<HeaderValue>,
) -> Response<Body> {
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if let Some((client, clock)) = client_upgrade.filter(|_| switching) {
        upgrade::tunnel(client, hyper::upgrade::on(&mut response), clock);
    }
    let mut response = response.map(|b| b.boxed());
    remove_hop_by_hop(response.headers_mut());
    if switching {
        upgrade::restore_upgrade_headers(response.headers_mut());
    }
    if let Some(cookie) = issued {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
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
