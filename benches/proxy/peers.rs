//! The proxy bench with `--peers`: the sidecar against what a standalone deployment replaces,
//! haproxy and nginx, and Envoy, in one run, beside the floor any tokio proxy stands on
//! (floor.rs, plain HTTP only). Each proxy runs one worker in front of the same
//! backend (an nginx answering `200 ok` from its own process, as the issue measured), and
//! each maximum is the median of rounds whose order rotates, so a machine growing busier
//! favours none. The maximum rate comes from wrk (`-t1 -c32`, its own process, as the issue
//! measured), so that the client is the same C program for every proxy and does not share the
//! bench's runtime with the control planes; one round of the bench's own generator against
//! haproxy is printed beside it. Latency comes from the bench's open-loop generator at half
//! haproxy's maximum. benches/peers/install.sh installs the peers from Debian.
//!
//! Must not: measure anything the plain bench (main.rs) does not also measure for Envoy.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::load::{latency_at, max_rate, ready, with_idle_connections, Transport};
use crate::ports::free_port;
use crate::{bootstrap, config, mib, sidecar_command, Proxy};

const INSTALL: &str = "benches/peers/install.sh";

/// An nginx running as one process (no master), from `body` placed in an `http` block.
pub(crate) fn nginx(dir: &Path, name: &'static str, port: u16, body: &str) -> Proxy {
    let file = name.replace(' ', "-");
    let conf = dir.join(format!("{file}.conf"));
    let temp = dir.join(format!("{file}-temp"));
    std::fs::create_dir_all(&temp).unwrap();
    let text = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nworker_rlimit_nofile 20000;\n\
         pid {dir}/{file}.pid;\nerror_log {dir}/{file}.log error;\n\
         events {{ worker_connections 19000; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {temp};\n  proxy_temp_path {temp};\n\
         {body}\n}}\n",
        dir = dir.display(),
        temp = temp.display(),
    );
    std::fs::write(&conf, text).unwrap();
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join(format!("{file}.log")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|_| panic!("nginx starts (install the peers: {INSTALL})"));
    Proxy { name, child, port }
}

/// The backend every proxy forwards to: nginx answering `ok`, keeping connections open.
fn backend(dir: &Path, port: u16) -> Proxy {
    let body = format!(
        "  keepalive_requests 100000000;\n  server {{ listen 127.0.0.1:{port}; \
         location / {{ return 200 \"ok\"; }} }}"
    );
    nginx(dir, "backend nginx", port, &body)
}

/// nginx as a reverse proxy, reusing upstream connections as the others do.
fn nginx_proxy(dir: &Path, port: u16, backend: u16, tls: bool) -> Proxy {
    let listen = match tls {
        false => format!("listen 127.0.0.1:{port};"),
        true => format!(
            "listen 127.0.0.1:{port} ssl; ssl_certificate {certs}/www.example.test.pem; \
             ssl_certificate_key {certs}/www.example.test.key;",
            certs = crate::repo("examples/certs").display()
        ),
    };
    let body = format!(
        "  keepalive_requests 100000000;\n  upstream b {{ server 127.0.0.1:{backend}; keepalive 64; }}\n  \
         server {{ {listen} location / {{ proxy_pass http://b; \
         proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}"
    );
    nginx(dir, "nginx", port, &body)
}

/// haproxy on one thread, HTTP mode, keep-alive both sides.
fn haproxy(dir: &Path, port: u16, backend: u16, tls: bool) -> Proxy {
    let bind_options = match tls {
        false => String::new(),
        true => {
            // haproxy takes the certificate and its key from one file.
            let certs = crate::repo("examples/certs");
            let mut pem = std::fs::read(certs.join("www.example.test.pem")).unwrap();
            pem.extend(std::fs::read(certs.join("www.example.test.key")).unwrap());
            let both = dir.join("www.example.test.both.pem");
            std::fs::write(&both, pem).unwrap();
            format!("ssl crt {}", both.display())
        }
    };
    haproxy_with(dir, port, backend, &bind_options, "")
}

/// haproxy as [`haproxy`] starts it, `bind_options` added to its bind line (`ssl crt …`) and
/// `server_options` to its server line (`proto h2`).
pub(crate) fn haproxy_with(
    dir: &Path,
    port: u16,
    backend: u16,
    bind_options: &str,
    server_options: &str,
) -> Proxy {
    let conf = dir.join("haproxy.cfg");
    let text = format!(
        "global\n  nbthread 1\n  maxconn 9000\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         frontend f\n  bind 127.0.0.1:{port} {bind_options}\n  default_backend b\n\
         backend b\n  server s 127.0.0.1:{backend} {server_options}\n"
    );
    std::fs::write(&conf, text).unwrap();
    let child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|_| panic!("haproxy starts (install the peers: {INSTALL})"));
    Proxy {
        name: "haproxy",
        child,
        port,
    }
}

/// Requests/s wrk reaches on `port` over 32 keep-alive connections from one thread.
fn wrk_rate(port: u16, seconds: f64, tls: bool) -> f64 {
    let scheme = if tls { "https" } else { "http" };
    let output = Command::new("wrk")
        .args(["-t1", "-c32", &format!("-d{}s", seconds.ceil() as u64)])
        .arg(format!("{scheme}://127.0.0.1:{port}/"))
        .stderr(Stdio::null())
        .output()
        .unwrap_or_else(|_| panic!("wrk runs (install the peers: {INSTALL})"));
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        panic!("wrk saw failures on port {port}:\n{text}");
    }
    text.lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate in wrk's output:\n{text}"))
}

/// The median of `measure` on each proxy over `rounds`, the order rotating each round.
pub(crate) fn rotating<F: FnMut(u16) -> f64>(
    proxies: &[&Proxy],
    rounds: usize,
    mut measure: F,
) -> Vec<f64> {
    let mut rates = vec![Vec::new(); proxies.len()];
    for round in 0..rounds {
        for step in 0..proxies.len() {
            let index = (round + step) % proxies.len();
            rates[index].push(measure(proxies[index].port));
        }
    }
    for (proxy, rates) in proxies.iter().zip(&rates) {
        println!("  rounds: {} {rates:.0?}", proxy.name);
    }
    rates.iter_mut().map(|r| crate::median(r)).collect()
}

pub(crate) fn ratios(label: &str, names: &[&str], values: &[f64], unit: &str) {
    let Some(sidecar) = names
        .iter()
        .position(|n| *n == "sidecar")
        .map(|i| values[i])
    else {
        return;
    };
    let each: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(name, value)| format!("{name} {value:.1}{unit}"))
        .collect();
    let against: Vec<String> = names
        .iter()
        .zip(values)
        .filter(|(name, _)| **name != "sidecar")
        .map(|(name, value)| format!("sidecar/{name} {:.2}", sidecar / value))
        .collect();
    println!("{label}: {} → {}", each.join(", "), against.join(", "));
}

/// The sidecar measured as "sidecar": this build's, unless `SWITCHYARD_BENCH_SIDECAR` names
/// another binary (to compare two earlier builds without rebuilding the bench).
pub(crate) fn this_build() -> String {
    std::env::var("SWITCHYARD_BENCH_SIDECAR")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_switchyard").to_string())
}

/// The proxies named by `--only envoy,sidecar,...` (all when not given).
pub(crate) fn chosen() -> Option<Vec<String>> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "--only")?;
    Some(
        args.get(at + 1)?
            .split(',')
            .map(|name| name.trim().to_ascii_lowercase())
            .collect(),
    )
}

/// One run against every peer: maximum rate, latency at half haproxy's maximum, RSS idle and
/// with `idle_connections` held. With `SWITCHYARD_BENCH_BASELINE` naming another build's
/// binary, its sidecar runs as one more peer ("baseline"); `--only sidecar,baseline` (any of
/// envoy, sidecar, haproxy, nginx, floor, baseline) keeps a run to some of them, the latency then
/// at half the first one's maximum.
pub async fn run(bench: bool, tls: bool) {
    // 8,000 idle connections, not the plain bench's 10,000: haproxy needs two descriptors per
    // connection it may hold, and this machine allows a process 20,000.
    let (seconds, idle_connections, rounds) = if bench {
        (5.0, 8_000, 5)
    } else {
        (1.0, 100, 1)
    };
    let dir = tempfile::tempdir().unwrap();
    let backend_port = free_port();
    let _backend = backend(dir.path(), backend_port);
    let backend_address = format!("127.0.0.1:{backend_port}").parse().unwrap();
    let (envoy_port, sidecar_port) = (free_port(), free_port());
    let start = |listen: u16| {
        crate::start_switchyard(dir.path(), listen, config(listen, backend_address, tls))
    };
    let for_envoy = start(envoy_port).await.unwrap();
    let for_sidecar = start(sidecar_port).await.unwrap();
    let envoy = crate::envoy_proxy(dir.path(), for_envoy.xds_addr, "peers-envoy", envoy_port);
    let sidecar = Proxy {
        name: "sidecar",
        child: sidecar_command(
            &this_build(),
            &bootstrap(dir.path(), for_sidecar.xds_addr, "peers-sidecar"),
        ),
        port: sidecar_port,
    };
    let haproxy = haproxy(dir.path(), free_port(), backend_port, tls);
    let nginx = nginx_proxy(dir.path(), free_port(), backend_port, tls);
    // The least a tokio proxy does per request (floor.rs): plain HTTP only.
    let floor = (!tls).then(|| crate::floor::start(free_port(), backend_port));
    let transport = match tls {
        true => crate::tls::client(true),
        false => Transport::Plain,
    };
    let for_baseline = match std::env::var("SWITCHYARD_BENCH_BASELINE") {
        Ok(binary) => {
            let port = free_port();
            let serving = start(port).await.unwrap();
            let path = bootstrap(dir.path(), serving.xds_addr, "peers-baseline");
            let proxy = Proxy {
                name: "baseline",
                child: sidecar_command(&binary, &path),
                port,
            };
            Some((serving, proxy))
        }
        Err(_) => None,
    };
    let everyone = [&envoy, &sidecar, &haproxy, &nginx]
        .into_iter()
        .chain(&floor)
        .chain(for_baseline.as_ref().map(|(_, proxy)| proxy));
    let only = chosen();
    let proxies: Vec<&Proxy> = everyone
        .filter(|p| {
            only.as_ref()
                .is_none_or(|o| o.contains(&p.name.to_ascii_lowercase()))
        })
        .collect();
    let names: Vec<&str> = proxies.iter().map(|p| p.name).collect();
    let reference = names.iter().position(|n| *n == "haproxy").unwrap_or(0);
    for proxy in &proxies {
        ready(proxy.port, &transport).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle: Vec<f64> = proxies.iter().map(|p| mib(p.rss_kib())).collect();
    let own: Vec<f64> = proxies.iter().map(|p| mib(p.anonymous_kib())).collect();
    let over = if tls {
        "over TLS 1.3 (keep-alive: handshakes amortised)"
    } else {
        "plain"
    };
    println!("HTTP/1.1 {over} against the peers; one worker each; backend: one nginx worker; wrk -t1 -c32, {seconds} s per round, {rounds} rotating rounds; machine shared");
    for proxy in &proxies {
        wrk_rate(proxy.port, 1.0, tls); // warm up
    }
    let maxima = rotating(&proxies, rounds, |port| wrk_rate(port, seconds, tls));
    ratios("max requests/s (wrk)", &names, &maxima, "");
    let first = proxies[reference];
    let in_process = max_rate(first.port, &transport, 32, seconds).await;
    println!(
        "  one round of the bench's own generator against {}: {in_process:.0} requests/s ({:.2} of wrk's median)",
        first.name,
        in_process / maxima[reference]
    );
    let target = maxima[reference] / 2.0;
    let (p50, p99) = latencies(
        &proxies,
        &maxima,
        target,
        rounds.min(3),
        seconds,
        &transport,
    )
    .await;
    println!(
        "latency at {target:.0} requests/s (half {}'s max), open loop, median of rotating rounds; NaN: the proxy's maximum is below that rate:",
        first.name
    );
    ratios("  p50 ms", &names, &p50, "");
    ratios("  p99 ms", &names, &p99, "");
    ratios("RSS idle MiB", &names, &idle, "");
    ratios("  of it anonymous (heap, stacks) MiB", &names, &own, "");
    if only.is_some() {
        // A run kept to some proxies compares builds; holding connections is the full run's.
        return finish(for_envoy, for_sidecar, for_baseline).await;
    }
    let mut held = Vec::new();
    for proxy in &proxies {
        let kib =
            with_idle_connections(proxy.port, &transport, idle_connections, || proxy.rss_kib())
                .await;
        held.push(mib(kib));
    }
    ratios(
        &format!("RSS with {idle_connections} idle keep-alive connections MiB"),
        &names,
        &held,
        "",
    );
    finish(for_envoy, for_sidecar, for_baseline).await;
}

/// p50 and p99 (ms) of each proxy at `target` requests/s, the medians of `rounds` whose order
/// rotates, as the maxima's do: a proxy measured just after another one struggled is not
/// always the same one. A proxy whose maximum is below the rate is left out (NaN): it would
/// only queue, and its backlog would weigh on whichever proxy came next.
async fn latencies(
    proxies: &[&Proxy],
    maxima: &[f64],
    target: f64,
    rounds: usize,
    seconds: f64,
    transport: &Transport,
) -> (Vec<f64>, Vec<f64>) {
    let mut seen = vec![(Vec::new(), Vec::new()); proxies.len()];
    for round in 0..rounds {
        for step in 0..proxies.len() {
            let index = (round + step) % proxies.len();
            if maxima[index] < target * 1.1 {
                continue;
            }
            let port = proxies[index].port;
            let (p50, p99) = latency_at(port, transport, target, 16, seconds).await;
            seen[index].0.push(p50);
            seen[index].1.push(p99);
        }
    }
    let median_or_nan = |values: &mut Vec<f64>| match values.is_empty() {
        true => f64::NAN,
        false => crate::median(values),
    };
    seen.into_iter()
        .map(|(mut p50, mut p99)| (median_or_nan(&mut p50), median_or_nan(&mut p99)))
        .unzip()
}

pub(crate) type Serving = switchyard::serve::Running;

pub(crate) async fn finish(envoy: Serving, sidecar: Serving, baseline: Option<(Serving, Proxy)>) {
    envoy.shutdown().await;
    sidecar.shutdown().await;
    if let Some((serving, _)) = baseline {
        serving.shutdown().await;
    }
}
