//! Requests and responses the cloud's proxies refuse (004's list), sent over a raw socket
//! through Envoy and through the sidecar: an unparsable request line, a header line without
//! a colon, a control character in a header, a bad or conflicting Content-Length, an unknown
//! Transfer-Encoding, an unparsable chunk, and an oversized response header block. Each
//! refused request gets the proxy's own answer (its exact status and body, read in full) and
//! then a closed connection, and never reaches the backend. A connection dropped without an
//! answer fails, and so does a proxy that neither answers nor closes: every read is bounded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// How long one read from the proxy may wait. A proxy that neither answers nor closes fails
/// the test instead of hanging it.
const READ_PATIENCE: Duration = Duration::from_secs(20);

/// What a proxy answered on a connection of its own, and that it closed it afterwards.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    body: String,
}

/// A connection to the proxy's listener carrying one request.
struct Exchange {
    what: String,
    stream: tokio::net::TcpStream,
    received: Vec<u8>,
}

impl Exchange {
    async fn send(listen: u16, what: &str, bytes: &[u8]) -> std::io::Result<Exchange> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", listen)).await?;
        stream.write_all(bytes).await?;
        Ok(Exchange {
            what: what.to_string(),
            stream,
            received: Vec::new(),
        })
    }

    /// Reads once, within [`READ_PATIENCE`]: the bytes read, 0 when the proxy closed the
    /// connection (a reset counts as closed).
    async fn read_more(&mut self, waiting_for: &str) -> usize {
        let mut buffer = [0u8; 16 * 1024];
        let read = tokio::time::timeout(READ_PATIENCE, self.stream.read(&mut buffer))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{}: waited {READ_PATIENCE:?} for {waiting_for}; the proxy neither sent it \
                     nor closed the connection (received so far: {:?})",
                    self.what,
                    String::from_utf8_lossy(&self.received)
                )
            });
        match read {
            Ok(count) => {
                self.received.extend_from_slice(&buffer[..count]);
                count
            }
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(error) => panic!("{}: reading the answer failed: {error}", self.what),
        }
    }

    /// Reads the whole answer (status line, head, the body its Content-Length announces) and
    /// then the close that must follow it. A connection closed before the answer is complete
    /// fails: a dropped connection is not the refusal.
    async fn answer(mut self) -> Answer {
        let head_end = loop {
            if let Some(at) = self.received.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if self.read_more("the status line and headers").await == 0 {
                panic!(
                    "{}: the proxy closed the connection without an answer (received: {:?})",
                    self.what,
                    String::from_utf8_lossy(&self.received)
                );
            }
        };
        let head = String::from_utf8_lossy(&self.received[..head_end]).to_string();
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("{}: not an HTTP/1.1 status line: {head:?}", self.what));
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("{}: an answer without Content-Length: {head:?}", self.what));
        while self.received.len() < head_end + length {
            if self.read_more("the rest of the body").await == 0 {
                panic!(
                    "{}: the connection closed in the middle of the body: {:?}",
                    self.what,
                    String::from_utf8_lossy(&self.received)
                );
            }
        }
        let body = String::from_utf8_lossy(&self.received[head_end..]).to_string();
        let extra = self
            .read_more("the proxy to close the connection after its answer")
            .await;
        assert_eq!(
            extra,
            0,
            "{}: the proxy kept the connection open and sent more: {:?}",
            self.what,
            String::from_utf8_lossy(&self.received[head_end + length..])
        );
        Answer { status, body }
    }
}

/// The answer to `bytes` sent on a new connection (see [`Exchange::answer`]).
async fn answer_to(listen: u16, what: &str, bytes: &[u8]) -> Answer {
    Exchange::send(listen, what, bytes)
        .await
        .unwrap_or_else(|error| panic!("{what}: sending the request failed: {error}"))
        .answer()
        .await
}

/// The status of a well-formed request, None while the listener is not up yet.
async fn status_while_starting(listen: u16) -> Option<u16> {
    let good = b"GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n";
    let mut exchange = Exchange::send(listen, "a well-formed request", good)
        .await
        .ok()?;
    while !exchange.received.windows(4).any(|w| w == b"\r\n\r\n") {
        if exchange
            .read_more("the answer to a well-formed request")
            .await
            == 0
        {
            return None;
        }
    }
    let text = String::from_utf8_lossy(&exchange.received);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// The refusal each proxy answers a case with: status and exact body. Envoy's are the
/// reference; the sidecar's differ because hyper refuses a request head it cannot parse by
/// itself, with its own empty 400, before the sidecar sees the request, and hyper 1.x offers
/// no hook to word that answer (nor to tell an unknown coding, 501 in Envoy, from a malformed
/// head).
struct Refusal {
    envoy: (u16, &'static str),
    sidecar: (u16, &'static str),
}

const BAD_REQUEST: Refusal = Refusal {
    envoy: (400, "Bad Request"),
    sidecar: (400, ""),
};

/// Envoy says it cannot decode a transfer coding it does not know (RFC 9112 6.1); hyper calls
/// the request malformed.
const UNKNOWN_CODING: Refusal = Refusal {
    envoy: (501, "Not Implemented"),
    sidecar: (400, ""),
};

/// 004's list of requests the load balancer blocks, each with the answer it gets.
const REFUSED: [(&str, &[u8], Refusal); 7] = [
    ("an unparsable request line", b"GARBAGE\r\n\r\n", BAD_REQUEST),
    (
        "a header line without a colon",
        b"GET / HTTP/1.1\r\nHost: a.example\r\nNoColonHere\r\n\r\n",
        BAD_REQUEST,
    ),
    (
        "a control character in a header value",
        b"GET / HTTP/1.1\r\nHost: a.example\r\nX-Bad: a\x01b\r\n\r\n",
        BAD_REQUEST,
    ),
    (
        "a Content-Length that is not a number",
        b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: abc\r\n\r\n",
        BAD_REQUEST,
    ),
    (
        "two different Content-Lengths",
        b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        BAD_REQUEST,
    ),
    (
        "an unknown Transfer-Encoding",
        b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        UNKNOWN_CODING,
    ),
    (
        "two Transfer-Encoding headers, one naming an unknown coding",
        b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        UNKNOWN_CODING,
    ),
];

fn expected(refusal: &Refusal, through: Through) -> Answer {
    let (status, body) = match through {
        Through::Envoy => refusal.envoy,
        Through::Sidecar => refusal.sidecar,
    };
    Answer {
        status,
        body: body.to_string(),
    }
}

async fn illegal_requests_are_refused_through(through: Through) {
    let backend = CountingBackend::start().await;
    let listen = free_port();
    let node = format!("illegal-{through:?}").to_lowercase();
    let (_switchyard, _proxy) = serve_through(through, &node, &config(listen, backend.port)).await;
    wait_for("a well-formed request to pass", || async {
        (status_while_starting(listen).await == Some(200)).then_some(())
    })
    .await;
    let reached = backend.count();
    for (what, bytes, refusal) in &REFUSED {
        let what = format!("{through:?}: {what}");
        assert_eq!(
            answer_to(listen, &what, bytes).await,
            expected(refusal, through),
            "{what}"
        );
        assert_eq!(backend.count(), reached, "{what} reached the backend");
    }

    // A chunk that does not parse: the request may already be on its way to the backend (004
    // says this is the one case where some of it gets there), and the client's connection
    // is closed. Both refuse it as the client's fault, not as an upstream failure.
    let what = format!("{through:?}: an unparsable chunk");
    let bad_chunk = b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n";
    let answer = answer_to(listen, &what, bad_chunk).await;
    let refused = Answer {
        status: 400,
        body: "Bad Request".into(),
    };
    assert_eq!(answer, refused, "{what}");

    // A response whose headers exceed the proxy's limit becomes a 502, not the headers.
    let what = format!("{through:?}: an oversized response header block");
    let huge = b"GET /huge HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n";
    let answer = answer_to(listen, &what, huge).await;
    let says = match through {
        Through::Envoy => "reset reason: protocol error",
        Through::Sidecar => "upstream response headers too large",
    };
    assert_eq!(answer.status, 502, "{what}: {answer:?}");
    assert!(answer.body.contains(says), "{what}: {answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_requests_are_refused_through_envoy() {
    illegal_requests_are_refused_through(Through::Envoy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_requests_are_refused_through_the_sidecar() {
    illegal_requests_are_refused_through(Through::Sidecar).await;
}
