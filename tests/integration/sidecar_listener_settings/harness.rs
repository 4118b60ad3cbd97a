//! What the timeout scenarios run on: a scripted backend on a raw socket, the listeners
//! (one with stream and connection idle timeouts, one with a max connection duration) served
//! to Envoy and to the sidecar from a static ADS server each, and a raw client's reading of
//! an answer and of how its connection ends. Must not: hold scenarios or expectations.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::config::listener::v3::{filter, Listener};
use envoy_types::pb::envoy::config::route::v3::{
    route::Action, route_action::ClusterSpecifier, route_match::PathSpecifier, Route, RouteAction,
    RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::UpgradeConfig, HttpConnectionManager,
};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;
use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::common::resources::*;
use crate::common::scripted::StaticServer;
use crate::common::sidecar::Sidecar;
use crate::common::*;

/// How long the scripted backend keeps `/slow` waiting and `/drip` half sent: ten times the
/// stream idle timeout, so that a proxy without one answers it instead.
const BACKEND_PAUSE: Duration = Duration::from_secs(10);

/// The longest a test waits for a proxy to close a connection: Envoy's drain timeout (5 s)
/// and its delayed close (1 s) after the longest timeout here (3 s), with room for a loaded
/// machine; a proxy that never closes misses it for ever.
pub const CLOSE_BOUND: Duration = Duration::from_secs(30);

/// A backend on a raw socket that answers by path: `/slow` after BACKEND_PAUSE, `/drip` with
/// its head and two of ten bytes at once and the rest after BACKEND_PAUSE, `/ws` by switching
/// protocols and echoing what it gets; anything else at once with `ok`.
struct ScriptedBackend {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedBackend {
    async fn start() -> ScriptedBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_scripted(stream));
            }
        });
        ScriptedBackend { port, task }
    }
}

impl Drop for ScriptedBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_scripted(stream: TcpStream) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            head.push(line);
        }
        let path = head[0].split(' ').nth(1).unwrap_or("/").to_string();
        let length: usize = head
            .iter()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let stream = reader.get_mut();
        let written = match path.as_str() {
            "/slow" => {
                tokio::time::sleep(BACKEND_PAUSE).await;
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow")
                    .await
            }
            "/drip" => {
                let head = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab")
                    .await;
                tokio::time::sleep(BACKEND_PAUSE).await;
                head.and(stream.write_all(b"cdefghij").await)
            }
            "/ws" => {
                let switched = stream
                    .write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
                    )
                    .await;
                if switched.is_ok() {
                    let (mut from, mut to) = reader.into_inner().into_split();
                    let _ = tokio::io::copy(&mut from, &mut to).await;
                }
                return;
            }
            _ => {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
            }
        };
        if written.is_err() {
            return;
        }
    }
}

fn seconds(seconds: i64) -> Option<ProtoDuration> {
    Some(ProtoDuration { seconds, nanos: 0 })
}

/// The common listener on `port`, named `name`, with its connection manager changed by
/// `change`.
fn listener_with(
    port: u16,
    name: &str,
    change: impl FnOnce(&mut HttpConnectionManager),
) -> Listener {
    let mut listener = listener(port, "routes");
    listener.name = name.into();
    let Some(filter::ConfigType::TypedConfig(config)) =
        &mut listener.filter_chains[0].filters[0].config_type
    else {
        unreachable!("the common listener has a typed connection manager");
    };
    let mut manager = HttpConnectionManager::decode(config.value.as_slice()).unwrap();
    manager.stat_prefix = name.into();
    manager.via = "1.1 edge".into();
    change(&mut manager);
    config.value = manager.encode_to_vec();
    listener
}

/// Stream idle timeout 1 s, connection idle timeout 2 s, WebSocket upgrades.
fn idle_listener(port: u16) -> Listener {
    listener_with(port, "idle", |manager| {
        manager.stream_idle_timeout = seconds(1);
        manager.common_http_protocol_options = Some(HttpProtocolOptions {
            idle_timeout: seconds(2),
            ..Default::default()
        });
        manager.upgrade_configs = vec![UpgradeConfig {
            upgrade_type: "websocket".into(),
            ..Default::default()
        }];
    })
}

/// Max connection duration 3 s, nothing else.
fn aged_listener(port: u16) -> Listener {
    listener_with(port, "aged", |manager| {
        manager.common_http_protocol_options = Some(HttpProtocolOptions {
            max_connection_duration: seconds(3),
            ..Default::default()
        });
    })
}

/// Everything to the backend, with no route timeout (`0s`, as Switchyard writes AWS routes).
fn routes() -> RouteConfiguration {
    RouteConfiguration {
        name: "routes".into(),
        virtual_hosts: vec![VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(Action::Route(RouteAction {
                    cluster_specifier: Some(ClusterSpecifier::Cluster("backend".into())),
                    timeout: seconds(0),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Which listener of a proxy a scenario uses.
#[derive(Clone, Copy)]
pub enum Front {
    Idle,
    Aged,
}

#[derive(Clone, Copy)]
struct Ports {
    idle: u16,
    aged: u16,
}

impl Ports {
    fn of(&self, front: Front) -> u16 {
        match front {
            Front::Idle => self.idle,
            Front::Aged => self.aged,
        }
    }
}

/// Envoy and the sidecar, each served the listeners on its own ports.
pub struct SideBySide {
    envoy: Ports,
    sidecar: Ports,
    _backend: ScriptedBackend,
    _servers: (StaticServer, StaticServer),
    _proxies: (Envoy, Sidecar),
}

impl SideBySide {
    pub async fn start(node: &str) -> SideBySide {
        let backend = ScriptedBackend::start().await;
        let ports = || Ports {
            idle: free_port(),
            aged: free_port(),
        };
        let (envoy_ports, sidecar_ports) = (ports(), ports());
        let resources = |ports: Ports| {
            vec![
                any(&idle_listener(ports.idle)),
                any(&aged_listener(ports.aged)),
                any(&routes()),
                any(&cluster("backend")),
                any(&assignment("backend", backend.port)),
            ]
        };
        let for_envoy = StaticServer::start(resources(envoy_ports)).await;
        let for_sidecar = StaticServer::start(resources(sidecar_ports)).await;
        let envoy = Envoy::start(for_envoy.address, &format!("envoy-{node}")).await;
        let sidecar = Sidecar::start(
            "envoy-bootstrap.yaml",
            for_sidecar.address,
            &format!("sidecar-{node}"),
        )
        .await;
        sidecar.wait_ready().await;
        for port in [envoy_ports, sidecar_ports]
            .iter()
            .flat_map(|p| [p.idle, p.aged])
        {
            wait_for(&format!("the listener on {port}"), || async move {
                let body = get_text(&format!("http://127.0.0.1:{port}/")).await?;
                (body == "ok").then_some(())
            })
            .await;
        }
        assert!(
            for_sidecar.rejections().is_empty(),
            "the sidecar NACKed: {:?}",
            for_sidecar.rejections()
        );
        assert!(
            for_envoy.rejections().is_empty(),
            "Envoy NACKed: {:?}",
            for_envoy.rejections()
        );
        SideBySide {
            envoy: envoy_ports,
            sidecar: sidecar_ports,
            _backend: backend,
            _servers: (for_envoy, for_sidecar),
            _proxies: (envoy, sidecar),
        }
    }

    /// What `scenario` sees through Envoy and through the sidecar, run at the same time.
    pub async fn both<F, Fut>(&self, front: Front, scenario: F) -> (Vec<String>, Vec<String>)
    where
        F: Fn(u16) -> Fut,
        Fut: std::future::Future<Output = Vec<String>>,
    {
        tokio::join!(
            scenario(self.envoy.of(front)),
            scenario(self.sidecar.of(front))
        )
    }
}

/// Response headers one proxy writes and the other need not, or whose value is the moment.
const UNCOMPARED: [&str; 3] = ["date", "server", "x-envoy-upstream-service-time"];

/// Reads one answer: its status line, its headers (sorted, the uncompared ones out) and its
/// body as far as it came; an empty list when the connection closed first.
pub async fn read_answer(stream: &mut BufReader<TcpStream>) -> Vec<String> {
    let mut seen = Vec::new();
    let mut line = String::new();
    let read = tokio::time::timeout(CLOSE_BOUND, stream.read_line(&mut line)).await;
    if !matches!(read, Ok(Ok(n)) if n > 0) {
        return seen;
    }
    seen.push(line.trim_end().to_string());
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let line = line.trim_end().to_ascii_lowercase();
        if let Some(value) = line.strip_prefix("content-length: ") {
            length = value.parse().unwrap_or(0);
        }
        if !UNCOMPARED
            .iter()
            .any(|name| line.starts_with(&format!("{name}:")))
        {
            headers.push(format!("header {line}"));
        }
    }
    headers.sort();
    seen.extend(headers);
    let mut body = vec![0; length];
    let mut got = 0;
    while got < length {
        match tokio::time::timeout(CLOSE_BOUND, stream.read(&mut body[got..])).await {
            Ok(Ok(n)) if n > 0 => got += n,
            _ => break,
        }
    }
    seen.push(format!("body {:?}", String::from_utf8_lossy(&body[..got])));
    seen
}

/// `closed` once the proxy closes the connection (within CLOSE_BOUND), with anything it
/// sent before; `still open` otherwise.
pub async fn ending(stream: &mut BufReader<TcpStream>) -> Vec<String> {
    let mut rest = Vec::new();
    match tokio::time::timeout(CLOSE_BOUND, stream.read_to_end(&mut rest)).await {
        Ok(_) if rest.is_empty() => vec!["closed".into()],
        Ok(_) => vec![
            format!("sent {:?}", String::from_utf8_lossy(&rest)),
            "closed".into(),
        ],
        Err(_) => vec!["still open".into()],
    }
}

pub async fn connect(port: u16) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap())
}
