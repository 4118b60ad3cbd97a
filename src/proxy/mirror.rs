//! Request mirroring as Envoy's router does it: for each of the route's mirror policies that
//! draws this request, a copy goes to the shadow cluster with `-shadow` after the host (before
//! any port, marked `x-envoy-internal`) and its body copied as it arrives (proxy/body_copy.rs),
//! fire and forget: its answer is read and dropped, its failure only logged, and neither
//! delays nor changes the client's answer. Must not: touch the request that goes to
//! the route's own cluster.

use std::time::Duration;

use http::{header, HeaderValue, Request};
use http_body_util::{BodyExt, Empty};

use super::attempts::upstream_uri;
use super::balancer::next_random;
use super::config::ProxyConfig;
use super::http::Upstreams;
use super::request_body::{DownstreamBody, UpstreamBody};
use super::resources::route::Mirror;

/// How long a copy may take when its route sets no timeout: it must not live forever.
const UNBOUNDED_COPY_LIMIT: Duration = Duration::from_secs(300);

/// Sends a copy of the request `parts` describe (as it goes upstream, with a copy of `body`
/// as it arrives, unless it is `empty`) to each mirror whose share draws it; returns at once.
#[allow(clippy::too_many_arguments)]
pub(super) fn send_copies(
    mirrors: &[Mirror],
    parts: &http::request::Parts,
    body: &mut DownstreamBody,
    empty: bool,
    hash: Option<u64>,
    timeout: Option<Duration>,
    config: &ProxyConfig,
    upstreams: &Upstreams,
) {
    for mirror in mirrors {
        if !draws(mirror.per_million, roll()) {
            continue;
        }
        let Some(entry) = config.clusters.get(&mirror.cluster).cloned() else {
            tracing::debug!(cluster = %mirror.cluster, "mirror cluster not found");
            continue;
        };
        let Some(host) = entry.balancer.pick(hash) else {
            continue;
        };
        let Some(uri) = upstream_uri(&parts.uri, &host) else {
            continue;
        };
        let mut copy = Request::from_parts(parts.clone(), ());
        *copy.uri_mut() = uri;
        *copy.version_mut() = match entry.cluster.http2 {
            true => http::Version::HTTP_2,
            false => http::Version::HTTP_11,
        };
        let shadow = copy
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| HeaderValue::from_str(&shadow_host(h)).ok());
        if let Some(shadow) = shadow {
            copy.headers_mut().insert(header::HOST, shadow);
        }
        // Envoy sends the copy from its own HTTP client, which marks it internal.
        copy.headers_mut()
            .insert("x-envoy-internal", HeaderValue::from_static("true"));
        let body: UpstreamBody = match empty {
            true => Empty::new().map_err(|never| match never {}).boxed(),
            false => body.copy().boxed(),
        };
        let mut copy = copy.map(|()| body);
        if entry.cluster.http2 {
            super::http::authority_from_host(&mut copy, entry.cluster.tls.is_some());
        }
        let client = upstreams.client_for(
            &entry.cluster,
            super::upstream_tls::request_host(parts),
            &host,
        );
        let limit = timeout
            .filter(|t| !t.is_zero())
            .unwrap_or(UNBOUNDED_COPY_LIMIT);
        let cluster = mirror.cluster.clone();
        tokio::spawn(async move {
            let sent = async {
                let mut copy = copy;
                let response = client.request(&mut copy).await.map_err(|e| e.to_string())?;
                // Read to the end, so that the connection can serve again; then dropped.
                let body = response.into_body().collect().await;
                body.map(drop).map_err(|e| e.to_string())
            };
            match tokio::time::timeout(limit, sent).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%cluster, %error, "mirrored request failed"),
                Err(_) => tracing::debug!(%cluster, "mirrored request timed out"),
            }
            drop(entry);
        });
    }
}

/// Whether a roll draws a share of `per_million`.
fn draws(per_million: u32, roll: u64) -> bool {
    roll % 1_000_000 < u64::from(per_million)
}

fn roll() -> u64 {
    static STATE: std::sync::atomic::AtomicU64 =
        std::sync::atomic::AtomicU64::new(0x3C6E_F372_FE94_F82B);
    next_random(&STATE)
}

/// The host a copy is sent with: `-shadow` after the name, before any port.
fn shadow_host(host: &str) -> String {
    let port_start = match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') => Some(colon),
        _ => None,
    };
    match port_start {
        Some(colon) => format!("{}-shadow{}", &host[..colon], &host[colon..]),
        None => format!("{host}-shadow"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shadow_suffix_goes_before_the_port() {
        assert_eq!(shadow_host("shop.example"), "shop.example-shadow");
        assert_eq!(shadow_host("shop.example:8080"), "shop.example-shadow:8080");
        assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
        assert_eq!(shadow_host("[::1]"), "[::1]-shadow");
    }

    #[test]
    fn shares_draw_in_millionths() {
        assert!(draws(1_000_000, 999_999));
        assert!(!draws(0, 0));
        let drawn = (0..1_000_000u64).filter(|r| draws(250_000, *r)).count();
        assert_eq!(drawn, 250_000);
    }
}
