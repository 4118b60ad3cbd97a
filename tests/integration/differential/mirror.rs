//! Request mirroring through Envoy and the sidecar with the same config (config.rs's
//! `/mirrored` route, whose requestMirrorPolicy copies every request to `shadow`): the shadow
//! gets each request once, with the path it was sent with and `-shadow` after the host, and
//! sees the same headers and body through both; its slow failing answers change nothing for
//! the client.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use super::exchange::{self, exchange, Request};
use super::table::Front;
use super::{Backends, SideBySide};
use crate::common::{wait_for, Through};

const MIRRORED_REQUESTS: usize = 40;

/// How long the shadow takes before it fails each request: a proxy waiting for it would take
/// MIRRORED_REQUESTS times this for the client's answers.
const SHADOW_DELAY: Duration = Duration::from_secs(2);

/// What the shadow saw of each request: its path and headers (those both proxies write alike;
/// exchange.rs says why the others differ).
type Seen = Vec<(String, BTreeMap<String, String>)>;

/// Headers a backend legitimately sees differently through the two proxies (see
/// exchange.rs's ONE_SIDED_UPSTREAM_HEADERS, and its note on X-Forwarded-For).
const NOT_COMPARED: [&str; 5] = [
    "x-request-id",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-external-address",
    "content-length",
    "x-forwarded-for",
];

/// A shadow backend on loopback that notes each request as it arrives, then, after
/// SHADOW_DELAY, answers 503.
async fn start_shadow() -> (u16, Arc<Mutex<Seen>>) {
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let noted = seen.clone();
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method,
              uri: axum::http::Uri,
              headers: HeaderMap,
              body: String| {
            let noted = noted.clone();
            async move {
                let mut headers: BTreeMap<String, String> = headers
                    .iter()
                    .filter(|(name, _)| !NOT_COMPARED.contains(&name.as_str()))
                    .map(|(name, value)| {
                        let value = String::from_utf8_lossy(value.as_bytes()).to_string();
                        (name.to_string(), value)
                    })
                    .collect();
                headers.insert("(method)".into(), method.to_string());
                headers.insert("(body)".into(), body);
                noted.lock().unwrap().push((uri.to_string(), headers));
                tokio::time::sleep(SHADOW_DELAY).await;
                (axum::http::StatusCode::SERVICE_UNAVAILABLE, "shadow failed")
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

/// Sends the mirrored requests through `port` one by one; returns what went wrong with the
/// client's answers and how long they took together.
async fn send_mirrored(port: u16) -> (Vec<String>, Duration) {
    let client = exchange::client();
    let started = Instant::now();
    let mut problems = Vec::new();
    for index in 0..MIRRORED_REQUESTS {
        // Every other request carries a body, which the copy must carry too.
        let body = (index % 2 == 1).then(|| &*format!("payload {index}").leak());
        let request = Request {
            method: if body.is_some() { "POST" } else { "GET" },
            host: "any.host".into(),
            target: format!("/mirrored/{index}?n={index}"),
            headers: vec![("x-client", "c")],
            body,
        };
        let record = exchange(&client, port, &request).await;
        if !(record.has("status 200") && record.backend() == Some("web")) {
            problems.push(format!("request {index} was answered otherwise:\n{record}"));
        }
    }
    (problems, started.elapsed())
}

/// Waits until the shadow has seen every mirrored request, then takes what it saw.
async fn take_seen(seen: &Arc<Mutex<Seen>>) -> Seen {
    wait_for("the shadow to see every mirrored request", || async {
        (seen.lock().unwrap().len() >= MIRRORED_REQUESTS).then_some(())
    })
    .await;
    // Anything more would arrive at once on loopback; give it a moment to show.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut taken = std::mem::take(&mut *seen.lock().unwrap());
    taken.sort();
    taken
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mirror_gets_a_copy_of_each_request_through_envoy_and_the_sidecar() {
    let backends = Backends::start().await;
    let (shadow_port, seen) = start_shadow().await;
    let mut ports = backends.ports();
    ports.insert("shadow", shadow_port);
    let proxies = SideBySide::start_on(ports).await;
    // The proxies' readiness probes do not go to /mirrored.
    seen.lock().unwrap().clear();

    let mut problems = Vec::new();
    let mut by_proxy = Vec::new();
    for (who, through) in [("Envoy", Through::Envoy), ("sidecar", Through::Sidecar)] {
        let (answers, took) = send_mirrored(proxies.port(through, Front::Gcp)).await;
        problems.extend(answers.into_iter().map(|p| format!("{who}: {p}")));
        // A proxy that waited for the shadow would take MIRRORED_REQUESTS × SHADOW_DELAY (80
        // s); a quarter of that is more than enough for the answers alone on loopback.
        if took > SHADOW_DELAY * (MIRRORED_REQUESTS as u32) / 4 {
            problems.push(format!(
                "{who}'s answers took {took:?}: they waited for the shadow"
            ));
        }
        let copies = take_seen(&seen).await;
        let mut paths: Vec<String> = copies.iter().map(|(path, _)| path.clone()).collect();
        let mut sent: Vec<String> = (0..MIRRORED_REQUESTS)
            .map(|i| format!("/mirrored/{i}?n={i}"))
            .collect();
        paths.sort();
        sent.sort();
        if paths != sent {
            problems.push(format!("{who}'s shadow saw {paths:?}, not {sent:?}"));
        }
        for (path, headers) in &copies {
            if headers.get("host").map(String::as_str) != Some("any.host-shadow") {
                problems.push(format!("{who}'s copy of {path} went with {headers:?}"));
            }
            let index = path.rsplit('=').next().unwrap_or_default();
            let odd = index.parse::<usize>().is_ok_and(|i| i % 2 == 1);
            let body = if odd {
                format!("payload {index}")
            } else {
                String::new()
            };
            if headers.get("(body)") != Some(&body) {
                problems.push(format!("{who}'s copy of {path} carried {headers:?}"));
            }
        }
        by_proxy.push(copies);
    }
    if by_proxy[0] != by_proxy[1] {
        problems.push(format!(
            "the shadow saw different copies:\n  Envoy: {:?}\n  sidecar: {:?}",
            by_proxy[0].first(),
            by_proxy[1].first()
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
