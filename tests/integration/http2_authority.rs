//! A request forwarded to an HTTP/2 backend carries the client's Host as its `:authority`,
//! with no Host header beside it, through Envoy and through the sidecar. The backend here
//! refuses a request whose Host header names something else than its `:authority`, as nginx
//! does (RFC 9113 8.3.1 lets a server treat it as malformed): a proxy that kept the Host
//! beside a target naming the endpoint got 400 from every nginx speaking HTTP/2.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// What the backend saw of one request: its `:authority` and its Host header.
type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>)>>>;

/// An HTTP/2 (prior knowledge) backend that answers 200, or 400 when the Host header and the
/// `:authority` differ.
async fn start_h2_backend() -> (u16, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let noted = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let noted = noted.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                    let authority = request.uri().authority().map(|a| a.to_string());
                    let host = request
                        .headers()
                        .get(http::header::HOST)
                        .map(|h| h.to_str().unwrap().to_string());
                    let refused = matches!((&authority, &host), (Some(a), Some(h)) if a != h);
                    noted.lock().unwrap().push((authority, host));
                    let mut answer = hyper::Response::new(Full::new(Bytes::from_static(b"ok")));
                    if refused {
                        *answer.status_mut() = http::StatusCode::BAD_REQUEST;
                    }
                    async move { Ok::<_, std::convert::Infallible>(answer) }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, seen)
}

fn config(listen: u16, backend: u16) -> String {
    one_neg_pool(listen, &[backend], 1000, "  protocol: H2C\n")
}

/// The status line of one HTTP/1.1 request for `host` on a new connection.
async fn status_for(listen: u16, host: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", listen)).await.ok()?;
    let request = format!("GET /cart HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.ok()?;
    let text = String::from_utf8_lossy(&answer);
    Some(text.lines().next()?.to_string())
}

async fn host_is_the_authority(through: Through) {
    let (backend, seen) = start_h2_backend().await;
    let listen = free_port();
    let node = format!("h2-authority-{through:?}").to_lowercase();
    let (_switchyard, _proxy) = serve_through(through, &node, &config(listen, backend)).await;
    let status = wait_for("a request to be forwarded", || async move {
        status_for(listen, "shop.example.test")
            .await
            .filter(|status| !status.contains(" 503 ") && !status.contains(" 404 "))
    })
    .await;
    let last = seen.lock().unwrap().last().cloned();
    assert_eq!(
        status, "HTTP/1.1 200 OK",
        "{through:?}: the backend saw (:authority, host) {last:?}"
    );
    assert_eq!(
        last,
        Some((Some("shop.example.test".to_string()), None)),
        "{through:?}: (:authority, host) as the backend saw them"
    );
    // With a port: the listener takes it off before routing (as the cloud's front end does),
    // and what goes on is the Host as routed.
    assert_eq!(
        status_for(listen, "shop.example.test:8080")
            .await
            .as_deref(),
        Some("HTTP/1.1 200 OK"),
        "{through:?}"
    );
    assert_eq!(
        seen.lock().unwrap().last().cloned(),
        Some((Some("shop.example.test".to_string()), None)),
        "{through:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_is_the_authority_of_an_http2_request_through_envoy() {
    host_is_the_authority(Through::Envoy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_is_the_authority_of_an_http2_request_through_the_sidecar() {
    host_is_the_authority(Through::Sidecar).await;
}
