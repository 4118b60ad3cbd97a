//! gRPC backends and proxyless gRPC clients for the integration tests.
//!
//! The backend is a tonic server of one hand-written method, `/switchyard.test.Who/Name`,
//! which answers with the server's name (after `delay_ms` when asked to be slow), and of
//! grpc.health.v1 `Check`, SERVING (for the server and for `switchyard.test.Who`) until told
//! otherwise. The clients
//! are real grpcio (Python) and grpc-js-xds (Node) processes driven over stdin/stdout by the
//! scripts in tests/clients/.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tonic::codegen::{http, BoxFuture};

use super::{repo_root, INSTALL_HINT};

#[derive(Clone, PartialEq, prost::Message)]
pub struct WhoRequest {
    #[prost(uint64, tag = "1")]
    pub delay_ms: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WhoReply {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// The Who service: one unary method that names the server.
#[derive(Clone)]
pub struct Who {
    name: Arc<str>,
    /// When set, counts Who/Name calls and fails every odd-numbered one with UNAVAILABLE.
    flaky: Option<Arc<AtomicU64>>,
}

struct NameMethod(Arc<str>, Option<Arc<AtomicU64>>);

impl tonic::server::UnaryService<WhoRequest> for NameMethod {
    type Response = WhoReply;
    type Future = BoxFuture<tonic::Response<WhoReply>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<WhoRequest>) -> Self::Future {
        let name = self.0.to_string();
        let failing = self
            .1
            .as_ref()
            .is_some_and(|calls| calls.fetch_add(1, Ordering::SeqCst) % 2 == 0);
        Box::pin(async move {
            if failing {
                return Err(tonic::Status::unavailable("flaky: every other call fails"));
            }
            let delay = request.get_ref().delay_ms;
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            Ok(tonic::Response::new(WhoReply { name }))
        })
    }
}

/// Who/Count: as many replies as the request's `delay_ms` says, named `{server}-{i}`, one
/// every few milliseconds (a server-streaming call).
struct CountMethod(Arc<str>);

impl tonic::server::ServerStreamingService<WhoRequest> for CountMethod {
    type Response = WhoReply;
    type ResponseStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<WhoReply, tonic::Status>> + Send>>;
    type Future = BoxFuture<tonic::Response<Self::ResponseStream>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<WhoRequest>) -> Self::Future {
        let name = self.0.to_string();
        let count = request.get_ref().delay_ms;
        Box::pin(async move {
            let replies = tokio_stream::StreamExt::throttle(
                tokio_stream::iter((0..count).map(move |i| {
                    Ok(WhoReply {
                        name: format!("{name}-{i}"),
                    })
                })),
                Duration::from_millis(5),
            );
            Ok(tonic::Response::new(
                Box::pin(replies) as Self::ResponseStream
            ))
        })
    }
}

impl tower_service::Service<http::Request<tonic::body::Body>> for Who {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let name = self.name.clone();
        let flaky = self.flaky.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            match request.uri().path() {
                "/switchyard.test.Who/Name" => {
                    Ok(grpc.unary(NameMethod(name, flaky), request).await)
                }
                "/switchyard.test.Who/Count" => {
                    Ok(grpc.server_streaming(CountMethod(name), request).await)
                }
                _ => Ok(
                    tonic::Status::unimplemented("only Who/Name and Who/Count are served")
                        .into_http(),
                ),
            }
        })
    }
}

impl tonic::server::NamedService for Who {
    const NAME: &'static str = "switchyard.test.Who";
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// grpc.health.v1.Health with `Check` only: SERVING (1) or NOT_SERVING (2) as `serving`
/// says, for the server ("") and Who; NOT_FOUND for any other service.
#[derive(Clone)]
struct Health {
    serving: Arc<AtomicBool>,
}

struct CheckMethod(Arc<AtomicBool>);

impl tonic::server::UnaryService<HealthCheckRequest> for CheckMethod {
    type Response = HealthCheckResponse;
    type Future = BoxFuture<tonic::Response<HealthCheckResponse>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<HealthCheckRequest>) -> Self::Future {
        let serving = self.0.load(Ordering::SeqCst);
        Box::pin(async move {
            let service = request.get_ref().service.as_str();
            if !service.is_empty() && service != "switchyard.test.Who" {
                return Err(tonic::Status::not_found("unknown service"));
            }
            Ok(tonic::Response::new(HealthCheckResponse {
                status: if serving { 1 } else { 2 },
            }))
        })
    }
}

impl tower_service::Service<http::Request<tonic::body::Body>> for Health {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let serving = self.serving.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            match request.uri().path() {
                "/grpc.health.v1.Health/Check" => {
                    Ok(grpc.unary(CheckMethod(serving), request).await)
                }
                _ => Ok(tonic::Status::unimplemented("only Check is served").into_http()),
            }
        })
    }
}

impl tonic::server::NamedService for Health {
    const NAME: &'static str = "grpc.health.v1.Health";
}

/// A running Who server on 127.0.0.1.
pub struct GrpcBackend {
    pub addr: SocketAddr,
    serving: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl GrpcBackend {
    pub async fn start(name: &str) -> GrpcBackend {
        Self::start_with(name, None).await
    }

    /// A Who server that fails every other Who/Name call (the first, the third, ...) with
    /// UNAVAILABLE, counting calls in `calls`.
    pub async fn start_flaky(name: &str, calls: Arc<AtomicU64>) -> GrpcBackend {
        Self::start_with(name, Some(calls)).await
    }

    /// A Who server on `addr` (another loopback address than 127.0.0.1, say).
    pub async fn start_on(name: &str, addr: SocketAddr) -> GrpcBackend {
        Self::start_at(name, None, addr).await
    }

    async fn start_with(name: &str, flaky: Option<Arc<AtomicU64>>) -> GrpcBackend {
        Self::start_at(name, flaky, "127.0.0.1:0".parse().unwrap()).await
    }

    async fn start_at(name: &str, flaky: Option<Arc<AtomicU64>>, addr: SocketAddr) -> GrpcBackend {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let who = Who {
            name: name.into(),
            flaky,
        };
        let serving = Arc::new(AtomicBool::new(true));
        let health = Health {
            serving: serving.clone(),
        };
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(who)
                .add_service(health)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        GrpcBackend {
            addr,
            serving,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// What grpc.health.v1 answers from now on: SERVING or NOT_SERVING.
    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::SeqCst);
    }
}

impl Drop for GrpcBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The bootstrap a proxyless client uses: Switchyard at `xds`, the node's id and locality.
pub fn bootstrap(xds: SocketAddr, node_id: &str, region: &str, zone: &str) -> String {
    serde_json::json!({
        "xds_servers": [{
            "server_uri": format!("127.0.0.1:{}", xds.port()),
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"]
        }],
        "node": {
            "id": node_id,
            "cluster": "proxyless-tests",
            "locality": {"region": region, "zone": zone}
        }
    })
    .to_string()
}

/// Which client library a [`GrpcClient`] runs.
#[derive(Clone, Copy, Debug)]
pub enum Library {
    /// grpcio (Python, gRPC C-core) from ./.venv.
    Grpcio,
    /// @grpc/grpc-js-xds (Node) from tests/clients/node_modules.
    GrpcJs,
}

/// A proxyless client process dialing one xds:/// target.
pub struct GrpcClient {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

/// What a batch of calls returned: backend name → count, and gRPC status → count.
pub struct Calls {
    pub tally: BTreeMap<String, usize>,
    pub errors: BTreeMap<String, usize>,
}

impl GrpcClient {
    pub async fn start(library: Library, target: &str, bootstrap: &str) -> GrpcClient {
        let clients = repo_root().join("tests/clients");
        let mut command = match library {
            Library::Grpcio => {
                let python = repo_root().join(".venv/bin/python");
                let ready = std::process::Command::new(&python)
                    .args(["-c", "import grpc, envoy.service.status.v3.csds_pb2"])
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(
                    ready,
                    "this test needs grpcio and grpcio-csds in ./.venv; {INSTALL_HINT}"
                );
                let mut command = Command::new(python);
                command.arg(clients.join("grpcio_client.py"));
                command
            }
            Library::GrpcJs => {
                let installed: PathBuf = clients.join("node_modules/@grpc/grpc-js-xds");
                assert!(installed.exists(), "this test needs @grpc/grpc-js-xds in tests/clients/node_modules; {INSTALL_HINT}");
                let mut command = Command::new("node");
                command.arg(clients.join("grpc_js_client.js"));
                command
            }
        };
        let mut child = command
            .arg(target)
            .env("GRPC_XDS_BOOTSTRAP_CONFIG", bootstrap)
            .env_remove("GRPC_XDS_BOOTSTRAP")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start the {library:?} client ({error}); {INSTALL_HINT}")
            });
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        GrpcClient {
            child,
            stdin,
            lines,
        }
    }

    async fn ask(&mut self, command: &str) -> Value {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        let line = tokio::time::timeout(Duration::from_secs(120), self.lines.next_line())
            .await
            .expect("the client answers")
            .unwrap()
            .expect("the client is still running");
        serde_json::from_str(&line).unwrap()
    }

    /// Makes `count` calls that do not wait for a ready backend (grpcio only): with none
    /// healthy, they fail at once.
    pub async fn calls_fail_fast(&mut self, count: usize) -> Calls {
        let answer = self.ask(&format!("failfast {count}")).await;
        calls_of(&answer)
    }

    /// Makes `count` calls; `header` is `name=value` (or `name=*` for a new value per call).
    pub async fn calls(&mut self, count: usize, header: Option<&str>, delay_ms: u64) -> Calls {
        let mut command = format!("calls {count}");
        if let Some(header) = header {
            command.push_str(&format!(" {header}"));
        }
        if delay_ms > 0 {
            command.push_str(&format!(" {delay_ms}"));
        }
        let answer = self.ask(&command).await;
        calls_of(&answer)
    }

    /// One call, then `count` calls sending back the cookie it set (grpcio only).
    pub async fn session(&mut self, count: usize) -> Value {
        self.ask(&format!("session {count}")).await
    }

    /// Makes the (lazy) channel start resolving, so it fetches its xDS resources.
    pub async fn connect(&mut self) {
        self.ask("connect").await;
    }

    /// The client's own CSDS view: resource type → statuses of its resources (grpcio only).
    pub async fn csds(&mut self) -> Value {
        self.ask("csds").await
    }

    /// The route configurations the client holds, as proto3 JSON (grpcio only).
    pub async fn routes(&mut self) -> Value {
        self.ask("routes").await["routes"].clone()
    }
}

/// A client's answer to a batch of calls.
fn calls_of(answer: &Value) -> Calls {
    let counts = |v: &Value| -> BTreeMap<String, usize> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, n)| (k.clone(), n.as_u64().unwrap() as usize))
                    .collect()
            })
            .unwrap_or_default()
    };
    Calls {
        tally: counts(&answer["tally"]),
        errors: counts(&answer["errors"]),
    }
}

impl Drop for GrpcClient {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
