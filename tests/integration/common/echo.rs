//! An HTTP backend on loopback that answers every request with what it received, as JSON:
//! its name, method, path with query, and every header (values of a repeated header joined by ", ").
//! Its answers carry `x-backend: echo` and `x-drop-me: 1`, for response-header edits to act on.
//! A controllable one ([`EchoBackend::start_controllable`]) also counts the requests it gets,
//! echoes the body, and answers with the status and after the delay a request asks for.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

pub struct EchoBackend {
    pub addr: SocketAddr,
    /// Requests received; counted by controllable backends only.
    pub hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// The request header that makes a controllable backend answer with this status.
pub const STATUS_HEADER: &str = "x-echo-status";
/// The request header that makes a controllable backend wait this many milliseconds first.
pub const DELAY_HEADER: &str = "x-echo-delay-ms";

impl EchoBackend {
    pub async fn start() -> EchoBackend {
        Self::start_named("echo").await
    }

    /// An echo backend whose answers also carry `"backend": name`.
    pub async fn start_named(name: &str) -> EchoBackend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = echo_app(name.to_string(), None);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        EchoBackend {
            addr,
            hits: Arc::default(),
            task,
        }
    }

    /// An echo backend that counts requests in `hits`, adds the request body (`"body"`) to
    /// what it echoes, answers `x-backend: name` and `x-drop-me: 1`, and obeys two request
    /// headers: [`STATUS_HEADER`] (answer with that status) and [`DELAY_HEADER`] (wait that
    /// many milliseconds before answering), for tests of retries and timeouts.
    pub async fn start_controllable(name: &str) -> EchoBackend {
        Self::start_controllable_at(name, "127.0.0.1:0".parse().unwrap()).await
    }

    /// A controllable backend listening on `address` (another loopback address, or a port
    /// already used on another address, for backends a DNS answer chooses between).
    pub async fn start_controllable_at(name: &str, address: SocketAddr) -> EchoBackend {
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let app = controllable_app(name.to_string(), hits.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        EchoBackend { addr, hits, task }
    }

    /// Requests a controllable backend has received so far.
    pub fn hit_count(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// An echo backend behind TLS with a self-signed certificate (as backends behind the
    /// cloud often have), offering HTTP/2 and HTTP/1.1 by ALPN; its answers also carry the SNI
    /// the client sent (`"sni"`, empty without one) and the HTTP version (`"version"`).
    pub async fn start_tls(name: &str) -> EchoBackend {
        let acceptor = super::pki::self_signed_backend_acceptor(&[b"h2", b"http/1.1"]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let name = name.to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, name) = (acceptor.clone(), name.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let sni = tls.get_ref().1.server_name().unwrap_or("").to_string();
                    let service =
                        hyper_util::service::TowerToHyperService::new(echo_app(name, Some(sni)));
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        EchoBackend {
            addr,
            hits: Arc::default(),
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// Every header of a request, the values of a repeated one joined by ", ".
fn joined_headers(headers: &axum::http::HeaderMap) -> BTreeMap<String, String> {
    let mut all: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        all.entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    all.into_iter()
        .map(|(name, values)| (name, values.join(", ")))
        .collect()
}

/// The controllable echo service of [`EchoBackend::start_controllable`].
fn controllable_app(name: String, hits: Arc<AtomicU64>) -> axum::Router {
    use axum::http::{HeaderMap, StatusCode};
    axum::Router::new().fallback(
        move |method: axum::http::Method,
              uri: axum::http::Uri,
              headers: HeaderMap,
              body: axum::body::Bytes| {
            let (name, hits) = (name.clone(), hits.clone());
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                let asked = |header: &str| {
                    headers
                        .get(header)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                };
                if let Some(delay) = asked(DELAY_HEADER) {
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                }
                let status = asked(STATUS_HEADER)
                    .and_then(|code| StatusCode::from_u16(code as u16).ok())
                    .unwrap_or(StatusCode::OK);
                let echoed = json!({
                    "backend": name,
                    "method": method.as_str(),
                    "path": uri.path_and_query().map_or("/", |p| p.as_str()),
                    "headers": joined_headers(&headers),
                    "body": String::from_utf8_lossy(&body),
                });
                let answer_headers = [("x-backend", name.clone()), ("x-drop-me", "1".into())];
                (status, answer_headers, axum::Json::<Value>(echoed))
            }
        },
    )
}

/// The echo service; `sni` is added to answers when the connection was TLS.
fn echo_app(name: String, sni: Option<String>) -> axum::Router {
    axum::Router::new().fallback(move |request: axum::extract::Request| {
        let (name, sni) = (name.clone(), sni.clone());
        async move {
            let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (name, value) in request.headers() {
                headers
                    .entry(name.as_str().to_string())
                    .or_default()
                    .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
            }
            let headers: BTreeMap<String, String> = headers
                .into_iter()
                .map(|(name, values)| (name, values.join(", ")))
                .collect();
            let mut body = json!({
                "backend": name,
                "method": request.method().as_str(),
                "path": request.uri().path_and_query().map_or("/", |p| p.as_str()),
                "headers": headers,
            });
            if let Some(sni) = sni {
                body["sni"] = json!(sni);
                body["version"] = json!(format!("{:?}", request.version()));
            }
            (
                [("x-backend", "echo"), ("x-drop-me", "1")],
                axum::Json::<Value>(body),
            )
        }
    })
}

impl Drop for EchoBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}
