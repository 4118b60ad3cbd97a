//! Requests and responses the cloud's proxies refuse (004's list), sent over a raw socket
//! through Envoy and through the sidecar: an unparsable request line, a header line without
//! a colon, a control character in a header, a bad or conflicting Content-Length, an unknown
//! Transfer-Encoding, and an oversized response header block. Each refused request gets a
//! 4xx/5xx answer (or the connection closed) and never reaches the backend.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// A backend that counts requests; `/huge` answers with 100 KiB of response headers.
struct CountingBackend {
    port: u16,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingBackend {
    async fn start() -> CountingBackend {
        let requests = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let counted = requests.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut response = axum::response::Response::new(axum::body::Body::from("ok"));
                if uri.path() == "/huge" {
                    let big = "x".repeat(100 * 1024);
                    response
                        .headers_mut()
                        .insert("x-huge", big.parse().unwrap());
                }
                response
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        CountingBackend {
            port,
            requests,
            task,
        }
    }

    fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for CountingBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn config(listen: u16, backend: u16) -> String {
    format!(
        r#"
networkEndpointGroups:
- {{name: neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {backend}}}]}}
backendServices:
- {{name: web, backends: [{{group: neg, balancingMode: RATE, maxRate: 100}}]}}
urlMaps:
- {{name: lb, defaultService: web}}
targetHttpProxies:
- {{name: proxy, urlMap: lb}}
forwardingRules:
- {{name: fr, IPAddress: 127.0.0.1, portRange: "{listen}", target: proxy}}
"#
    )
}

/// Sends `bytes` on a new connection and returns the status of the answer (0 when the proxy
/// closed the connection without one).
async fn status_of(listen: u16, bytes: &[u8]) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", listen))
        .await
        .unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    // The status line is all that is needed; stop at the end of the head.
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

async fn illegal_requests_are_refused_through(through: Through) {
    let backend = CountingBackend::start().await;
    let listen = free_port();
    let node = format!("illegal-{through:?}").to_lowercase();
    let (_switchyard, _proxy) = serve_through(through, &node, &config(listen, backend.port)).await;
    let good = b"GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n";
    wait_for("a well-formed request to pass", || async {
        (status_of(listen, good).await == 200).then_some(())
    })
    .await;
    let reached = backend.count();
    let cases: [(&str, &[u8]); 7] = [
        ("an unparsable request line", b"GARBAGE\r\n\r\n"),
        (
            "a header line without a colon",
            b"GET / HTTP/1.1\r\nHost: a.example\r\nNoColonHere\r\n\r\n",
        ),
        (
            "a control character in a header value",
            b"GET / HTTP/1.1\r\nHost: a.example\r\nX-Bad: a\x01b\r\n\r\n",
        ),
        (
            "a Content-Length that is not a number",
            b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: abc\r\n\r\n",
        ),
        (
            "two different Content-Lengths",
            b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        ),
        (
            "an unknown Transfer-Encoding",
            b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        ),
        (
            "both Content-Length and a repeated Transfer-Encoding",
            b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        ),
    ];
    for (what, bytes) in cases {
        let status = status_of(listen, bytes).await;
        assert!(
            status == 0 || (400..600).contains(&status),
            "{through:?}: {what} was answered {status}"
        );
        assert_eq!(
            backend.count(),
            reached,
            "{through:?}: {what} reached the backend"
        );
    }
    // A response whose headers exceed the proxy's limit becomes a 5xx, not the headers.
    let huge = b"GET /huge HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n";
    let status = status_of(listen, huge).await;
    assert!(
        (500..600).contains(&status),
        "{through:?}: an oversized response header block was answered {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_requests_are_refused_through_envoy() {
    illegal_requests_are_refused_through(Through::Envoy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_requests_are_refused_through_the_sidecar() {
    illegal_requests_are_refused_through(Through::Sidecar).await;
}
