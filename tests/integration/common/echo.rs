//! An HTTP backend on loopback that answers every request with what it received, as JSON:
//! its name, method, path with query, and every header (values of a repeated header joined by ", ").
//! Its answers carry `x-backend: echo` and `x-drop-me: 1`, for response-header edits to act on.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::{json, Value};

pub struct EchoBackend {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl EchoBackend {
    pub async fn start() -> EchoBackend {
        Self::start_named("echo").await
    }

    /// An echo backend whose answers also carry `"backend": name`.
    pub async fn start_named(name: &str) -> EchoBackend {
        let name = name.to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| async move {
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
            let body = json!({
                "backend": name,
                "method": request.method().as_str(),
                "path": request.uri().path_and_query().map_or("/", |p| p.as_str()),
                "headers": headers,
            });
            (
                [("x-backend", "echo"), ("x-drop-me", "1")],
                axum::Json::<Value>(body),
            )
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        EchoBackend { addr, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for EchoBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}
