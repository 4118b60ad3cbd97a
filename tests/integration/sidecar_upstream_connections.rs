//! How the sidecar keeps its HTTP/1.1 connections to backends, differentially against Envoy:
//! sequential requests from one client share one upstream connection, requests in flight at
//! once each take their own, and a connection the backend closed while it was free is not
//! used again (the request goes out on a new one instead of failing); and answers of every
//! framing (Content-Length, chunked with trailers, none after HEAD or 204, until the close)
//! read whole, the connection reused after them or not as Envoy does. The backends are raw
//! TCP servers on 127.0.0.1 that count the connections they accept.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::counting::{client_connection, get_ok_on, ClientConnection, CountingBackend};
use crate::common::sidecar::SideBySide;
use crate::common::*;

/// An HTTP/1.1 backend answering `ok` to each request head (after `delay`), on keep-alive
/// connections it closes `close_after` past an answer when set, counting what it accepted.
async fn raw_backend(delay: Duration, close_after: Option<Duration>) -> CountingBackend {
    CountingBackend::start(move |stream| answer_heads(stream, delay, close_after)).await
}

/// Answers every request head (bodiless requests) read on `stream`.
async fn answer_heads(
    mut stream: tokio::net::TcpStream,
    delay: Duration,
    close_after: Option<Duration>,
) {
    let mut pending = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            pending.drain(..end + 4);
            tokio::time::sleep(delay).await;
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            if stream.write_all(answer).await.is_err() {
                return;
            }
            if let Some(after) = close_after {
                tokio::time::sleep(after).await;
                return;
            }
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => pending.extend_from_slice(&buffer[..read]),
        }
    }
}

/// Services `probe` (answers when the proxy is ready), `steady`, `slow` and `closing`, each
/// with one endpoint, on four listen ports from `listens`.
fn config(listens: [u16; 4], ports: [u16; 4]) -> String {
    services(&["probe", "steady", "slow", "closing"], &listens, &ports)
}

/// A service of each name with one endpoint on its port, each behind its own listen port.
fn services(names: &[&str], listens: &[u16], ports: &[u16]) -> String {
    let names = names.iter().copied();
    let mut text = String::from("networkEndpointGroups:\n");
    for (name, port) in names.clone().zip(ports) {
        text += &format!("- {{name: {name}-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {port}}}]}}\n");
    }
    text += "backendServices:\n";
    for name in names.clone() {
        text += &format!("- {{name: {name}, protocol: HTTP, backends: [{{group: zones/us-central1-a/networkEndpointGroups/{name}-neg, balancingMode: RATE, maxRate: 1000}}]}}\n");
    }
    text += "urlMaps:\n";
    for name in names.clone() {
        text += &format!("- {{name: {name}-map, defaultService: {name}}}\n");
    }
    text += "targetHttpProxies:\n";
    for name in names.clone() {
        text += &format!("- {{name: {name}-proxy, urlMap: {name}-map}}\n");
    }
    text += "forwardingRules:\n";
    for (name, listen) in names.zip(listens) {
        text += &format!("- {{name: {name}-rule, IPAddress: 127.0.0.1, portRange: \"{listen}\", target: {name}-proxy}}\n");
    }
    text
}

/// The connections `backend` accepted while `requests` ran.
async fn opened_by<F: std::future::Future<Output = ()>>(
    backend: &CountingBackend,
    requests: F,
) -> u64 {
    let before = backend.accepted();
    requests.await;
    backend.accepted() - before
}

/// What one proxy did: connections opened for 20 sequential requests on one client
/// connection, for 6 requests in flight at once (each on a client connection of its own),
/// and for 4 requests on one client connection each past the backend closing the upstream
/// connection of the one before. Sequential requests go on one explicit client connection:
/// a pooled client may open a second one when its next request comes before the first is
/// back in its pool, and a proxy's worker keeps its own upstream connections.
async fn connections_through(
    listens: [u16; 4],
    backends: &[CountingBackend; 3],
) -> (u64, u64, u64) {
    let [_, steady, slow, closing] = listens;
    let [steady_backend, slow_backend, closing_backend] = backends;
    let sequential = opened_by(steady_backend, async {
        let mut sender = client_connection(steady).await;
        for request in 0..20 {
            get_ok_on(&mut sender, request).await;
        }
    })
    .await;
    let at_once = opened_by(slow_backend, async {
        let requests = (0..6).map(|request| async move {
            let mut sender = client_connection(slow).await;
            get_ok_on(&mut sender, request).await;
        });
        futures_util::future::join_all(requests).await;
    })
    .await;
    let past_closes = opened_by(closing_backend, async {
        let mut sender = client_connection(closing).await;
        for request in 0..4 {
            get_ok_on(&mut sender, request).await;
            // The backend closes the connection 50 ms after its answer.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    (sequential, at_once, past_closes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_while_free_and_dropped_once_closed_as_by_envoy() {
    let probe = Backend::start("probe").await;
    let backends = [
        raw_backend(Duration::ZERO, None).await,
        raw_backend(Duration::from_millis(400), None).await,
        raw_backend(Duration::ZERO, Some(Duration::from_millis(50))).await,
    ];
    let ports = [
        probe.port(),
        backends[0].port,
        backends[1].port,
        backends[2].port,
    ];
    let envoy_listens = [free_port(), free_port(), free_port(), free_port()];
    let sidecar_listens = [free_port(), free_port(), free_port(), free_port()];
    let _proxies = SideBySide::start(
        &config(envoy_listens, ports),
        &config(sidecar_listens, ports),
        "upstream-reuse",
    )
    .await;
    for listens in [envoy_listens, sidecar_listens] {
        wait_for_body(&format!("http://127.0.0.1:{}/", listens[0]), "probe").await;
    }
    let through_envoy = connections_through(envoy_listens, &backends).await;
    let through_sidecar = connections_through(sidecar_listens, &backends).await;
    // Sequential requests take one connection (a pool that handed connections back late
    // would open more); six slow requests at once take six; each request after a close
    // takes a new one, and none of them fails (asserted in `get_ok`).
    assert_eq!(through_envoy, (1, 6, 4), "Envoy");
    assert_eq!(through_sidecar, through_envoy, "the sidecar, against Envoy");
}

/// Answers each request on `stream` as its method and path say: `/chunked` in chunks with a
/// trailer, `/no-content` with 204, `/until-close` as HTTP/1.0 without a length (closing
/// after it), anything else `ok` with a Content-Length (its head only, to HEAD).
async fn answer_by_path(mut stream: tokio::net::TcpStream) {
    let mut pending = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
            pending.drain(..end + 4);
            let mut request_line = head.split_whitespace();
            let (method, path) = (request_line.next(), request_line.next());
            let (answer, close): (&[u8], bool) = match (method, path) {
                (Some("HEAD"), _) => (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n", false),
                (_, Some("/chunked")) => (
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                      5\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\n",
                    false,
                ),
                (_, Some("/no-content")) => (b"HTTP/1.1 204 No Content\r\n\r\n", false),
                (_, Some("/until-close")) => (b"HTTP/1.0 200 OK\r\n\r\nbye", true),
                _ => (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false),
            };
            if stream.write_all(answer).await.is_err() || close {
                return;
            }
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => pending.extend_from_slice(&buffer[..read]),
        }
    }
}

/// `method` `path` on `sender`'s connection: the status and body.
async fn exchange_on(sender: &mut ClientConnection, method: &str, path: &str) -> (u16, String) {
    use http_body_util::BodyExt;
    sender.ready().await.unwrap();
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "upstream.test")
        .body(http_body_util::Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Each answer through the proxy listening on `listen` (on one client connection until the
/// answer read until the close, then on another), and the upstream connections opened before
/// and after that answer.
async fn framings_through(
    listen: u16,
    backend: &CountingBackend,
) -> (Vec<(u16, String)>, u64, u64) {
    let before = backend.accepted();
    let mut sender = client_connection(listen).await;
    let mut answers = Vec::new();
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/chunked"),
        ("HEAD", "/"),
        ("GET", "/no-content"),
        ("GET", "/"),
    ] {
        answers.push(exchange_on(&mut sender, method, path).await);
    }
    let kept = backend.accepted() - before;
    answers.push(exchange_on(&mut sender, "GET", "/until-close").await);
    // Both proxies close the client's connection after an answer whose end was the close.
    let mut sender = client_connection(listen).await;
    answers.push(exchange_on(&mut sender, "GET", "/").await);
    (answers, kept, backend.accepted() - before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_of_every_framing_pass_whole_and_keep_their_connection_as_through_envoy() {
    let probe = Backend::start("probe").await;
    let framing = CountingBackend::start(answer_by_path).await;
    let ports = [probe.port(), framing.port];
    let envoy_listens = [free_port(), free_port()];
    let sidecar_listens = [free_port(), free_port()];
    let names = ["probe", "framing"];
    let _proxies = SideBySide::start(
        &services(&names, &envoy_listens, &ports),
        &services(&names, &sidecar_listens, &ports),
        "upstream-framing",
    )
    .await;
    for listens in [envoy_listens, sidecar_listens] {
        wait_for_body(&format!("http://127.0.0.1:{}/", listens[0]), "probe").await;
    }
    let through_envoy = framings_through(envoy_listens[1], &framing).await;
    let through_sidecar = framings_through(sidecar_listens[1], &framing).await;
    let ok = (200, "ok".to_string());
    let expected = vec![
        ok.clone(),
        (200, "hello world".to_string()),
        (200, String::new()),
        (204, String::new()),
        ok.clone(),
        (200, "bye".to_string()),
        ok,
    ];
    // One connection for the first five; the answer read until the close ends it, so the
    // last request takes a new one.
    assert_eq!(through_envoy, (expected, 1, 2), "Envoy");
    assert_eq!(through_sidecar, through_envoy, "the sidecar, against Envoy");
}
