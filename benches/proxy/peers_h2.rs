//! The proxy bench with `--peers --h2`: HTTP/2 on both sides (cleartext, prior knowledge),
//! the sidecar against Envoy and haproxy in one run, as gRPC traffic meets them. Each proxy runs
//! one worker in front of the same backend (one nginx worker speaking HTTP/2 and answering
//! `200 ok`); h2load (one thread, its own process) measures each maximum, the median of
//! rounds whose order rotates. nginx is not a peer here: it cannot speak HTTP/2 to a backend.
//!
//! Must not: measure a proxy on a different shape of traffic than the others.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::load::{ready, Transport};
use crate::peers::{chosen, finish, haproxy_with, nginx, ratios, rotating, this_build};
use crate::ports::free_port;
use crate::{bootstrap, config, mib, sidecar_command, Proxy};

const INSTALL: &str = "benches/peers/install.sh";

/// Connections h2load opens, and the streams it keeps open on each.
const CONNECTIONS: u32 = 8;
const STREAMS: u32 = 16;

/// Requests/s h2load reaches on `port`: `CONNECTIONS` connections with `STREAMS` streams
/// each, from one thread. Panics on any failed or errored request.
fn h2load_rate(port: u16, seconds: u64) -> f64 {
    let output = Command::new("h2load")
        .args(["-t1", &format!("-c{CONNECTIONS}"), &format!("-m{STREAMS}")])
        .args(["-D", &seconds.to_string()])
        .arg(format!("http://127.0.0.1:{port}/"))
        .stderr(Stdio::null())
        .output()
        .unwrap_or_else(|_| panic!("h2load runs (install the peers: {INSTALL})"));
    let text = String::from_utf8_lossy(&output.stdout);
    let failures = text
        .lines()
        .find(|line| line.starts_with("requests:"))
        .map(|line| !line.contains(" 0 failed, 0 errored"));
    if failures != Some(false) || !text.contains("status codes:") {
        panic!("h2load saw failures on port {port}:\n{text}");
    }
    text.lines()
        .find_map(|line| line.strip_prefix("finished in "))
        .and_then(|rest| rest.split(", ").nth(1))
        .and_then(|rate| rate.trim_end_matches(" req/s").parse().ok())
        .unwrap_or_else(|| panic!("no rate in h2load's output:\n{text}"))
}

/// One run: maximum rate over HTTP/2 and RSS idle, against Envoy and haproxy (`--only` keeps
/// some of them).
pub async fn run(bench: bool) {
    let (seconds, rounds) = if bench { (5, 5) } else { (1, 1) };
    let dir = tempfile::tempdir().unwrap();
    let backend_port = free_port();
    let _backend = nginx(
        dir.path(),
        "backend nginx h2",
        backend_port,
        &format!(
            "  keepalive_requests 100000000;\n  http2_max_requests 100000000;\n  \
             server {{ listen 127.0.0.1:{backend_port} http2; \
             location / {{ return 200 \"ok\"; }} }}"
        ),
    );
    let backend_address = format!("127.0.0.1:{backend_port}").parse().unwrap();
    let h2c = |listen: u16| {
        config(listen, backend_address, false).replace(
            "- {name: b, backends:",
            "- {name: b, protocol: H2C, backends:",
        )
    };
    let (envoy_port, sidecar_port) = (free_port(), free_port());
    let for_envoy = crate::start_switchyard(dir.path(), envoy_port, h2c(envoy_port))
        .await
        .unwrap();
    let for_sidecar = crate::start_switchyard(dir.path(), sidecar_port, h2c(sidecar_port))
        .await
        .unwrap();
    let envoy = crate::envoy_proxy(dir.path(), for_envoy.xds_addr, "h2-envoy", envoy_port);
    let sidecar = Proxy {
        name: "sidecar",
        child: sidecar_command(
            &this_build(),
            &bootstrap(dir.path(), for_sidecar.xds_addr, "h2-sidecar"),
        ),
        port: sidecar_port,
    };
    // haproxy takes HTTP/2 from clients by the preface on its plain bind.
    let haproxy = haproxy_with(dir.path(), free_port(), backend_port, "", "proto h2");
    let only = chosen();
    let proxies: Vec<&Proxy> = [&envoy, &sidecar, &haproxy]
        .into_iter()
        .filter(|p| {
            only.as_ref()
                .is_none_or(|o| o.contains(&p.name.to_ascii_lowercase()))
        })
        .collect();
    let names: Vec<&str> = proxies.iter().map(|p| p.name).collect();
    for proxy in &proxies {
        ready(proxy.port, &Transport::Plain).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle: Vec<f64> = proxies.iter().map(|p| mib(p.rss_kib())).collect();
    let own: Vec<f64> = proxies.iter().map(|p| mib(p.anonymous_kib())).collect();
    println!(
        "HTTP/2 (cleartext) on both sides; one worker each; backend: one nginx worker; \
         h2load -t1 -c{CONNECTIONS} -m{STREAMS}, {seconds} s per round, {rounds} rotating rounds; machine shared"
    );
    for proxy in &proxies {
        h2load_rate(proxy.port, 1); // warm up
    }
    let maxima = rotating(&proxies, rounds, |port| h2load_rate(port, seconds));
    ratios("max requests/s (h2load)", &names, &maxima, "");
    ratios("RSS idle MiB", &names, &idle, "");
    ratios("  of it anonymous (heap, stacks) MiB", &names, &own, "");
    finish(for_envoy, for_sidecar, None).await;
}
