//! The health-checking scale run: `switchyard serve` (its own process) checks `endpoints`
//! endpoints — `per_service` in each of many backend services, every one an HTTP check of
//! GET /healthz at `interval` seconds — against responders on loopback (one listener per
//! service port, reached on many 127.x addresses, so targets are distinct without a socket
//! each). Reports the server's CPU and memory at steady state and the probe rate, then takes one
//! service's responder down and reports the time until the last of `clients` xDS clients
//! watching that service holds every one of its endpoints as UNHEALTHY.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{self, ClientProgress, ClientSpec, Counters, Protocol};
use crate::ports::free_port;
use crate::server::ServerProcess;

/// The address of endpoint `index` of a service (the same set for every service; the port
/// tells services apart).
fn endpoint_ip(index: usize) -> String {
    format!(
        "127.{}.{}.{}",
        10 + index / 62_500,
        (index / 250) % 250 + 1,
        index % 250 + 1
    )
}

fn config(ports: &[u16], per_service: usize, interval: u32, tcp: bool) -> String {
    let timeout = interval.min(5);
    let mut text = String::with_capacity(ports.len() * per_service * 40);
    let check = if tcp {
        "type: TCP, tcpHealthCheck: {portSpecification: USE_SERVING_PORT}"
    } else {
        "type: HTTP, httpHealthCheck: {portSpecification: USE_SERVING_PORT, requestPath: /healthz}"
    };
    writeln!(
        text,
        "healthChecks:\n- {{name: hc, checkIntervalSec: {interval}, timeoutSec: {timeout}, {check}}}\nnetworkEndpointGroups:"
    )
    .unwrap();
    for (service, port) in ports.iter().enumerate() {
        writeln!(
            text,
            "- name: neg-{service}\n  zone: us-central1-a\n  defaultPort: {port}\n  endpoints:"
        )
        .unwrap();
        for index in 0..per_service {
            writeln!(text, "  - {{ipAddress: {}}}", endpoint_ip(index)).unwrap();
        }
    }
    text.push_str("backendServices:\n");
    for service in 0..ports.len() {
        writeln!(
            text,
            "- name: svc-{service}\n  healthChecks: [hc]\n  backends: [{{group: neg-{service}, balancingMode: RATE, maxRatePerEndpoint: 10}}]"
        )
        .unwrap();
    }
    text.push_str("urlMaps:\n- {name: map, defaultService: svc-0}\ntargetHttpProxies:\n- {name: proxy, urlMap: map}\n");
    writeln!(
        text,
        "forwardingRules:\n- {{name: rule, IPAddress: 127.0.0.1, portRange: '{}', target: proxy}}",
        free_port()
    )
    .unwrap();
    text
}

/// Answers every connection on `port` (any 127.x address) with 200 and closes it.
async fn responder(port: u16) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .expect("a responder port");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                let mut read = 0;
                while read < buffer.len() {
                    match stream.read(&mut buffer[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                    if buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = stream.shutdown().await;
            });
        }
    })
}

pub async fn run(endpoints: usize, per_service: usize, clients: usize, interval: u32, tcp: bool) {
    let services = endpoints.div_ceil(per_service);
    let mut ports = Vec::new();
    let mut responders = Vec::new();
    while ports.len() < services {
        let port = free_port();
        if ports.contains(&port) {
            continue;
        }
        ports.push(port);
        responders.push(responder(port).await);
    }
    let text = config(&ports, per_service, interval, tcp);
    println!(
        "health: {} endpoints in {services} services, {} checks every {interval}s; config {} KiB",
        services * per_service,
        if tcp { "TCP" } else { "HTTP" },
        text.len() / 1024
    );
    let server = ServerProcess::start(&text).await;
    let total = (services * per_service) as u64;
    let started = Instant::now();
    loop {
        let counts = server.admin_json("/health?limit=0").await;
        if counts["counts"]["healthy"].as_u64() == Some(total) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not every endpoint became healthy: {counts}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "  first verdict on every endpoint {:.1}s after the server was ready",
        started.elapsed().as_secs_f64()
    );

    let counters = Arc::new(Counters::default());
    let mut progress = Vec::new();
    for id in 0..clients {
        let spec = ClientSpec {
            id,
            protocol: Protocol::Sotw,
            watched_cluster: "svc-0".into(),
            endpoint_subscriptions: Some(1),
            initial_versions: Default::default(),
        };
        let client_progress = Arc::new(ClientProgress::default());
        progress.push(client_progress.clone());
        let (counters, address) = (counters.clone(), server.xds.clone());
        tokio::spawn(async move {
            let channel = client::connect(&address).await.expect("connects");
            let _ = client::run(channel, spec, counters, client_progress).await;
        });
    }
    while !progress
        .iter()
        .all(|p| p.synced.load(Ordering::Relaxed) && p.watched_at.lock().unwrap().is_some())
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Steady state.
    let window = Duration::from_secs(u64::from(interval) * 4);
    let (cpu_before, probes_before) = (
        server.cpu_seconds(),
        server.metric_sum("switchyard_health_probes_total").await,
    );
    tokio::time::sleep(window).await;
    let cpu = (server.cpu_seconds() - cpu_before) / window.as_secs_f64();
    let probes = (server.metric_sum("switchyard_health_probes_total").await - probes_before)
        / window.as_secs_f64();
    println!(
        "  steady state over {}s: {probes:.0} probes/s, server CPU {:.0}% of one core, RSS {:.1} MiB",
        window.as_secs(),
        cpu * 100.0,
        server.rss_kib() as f64 / 1024.0
    );

    // One service's backends go down: its responder stops (connections are refused).
    responders[0].abort();
    let down_at = Instant::now();
    let mut server_saw = None;
    loop {
        if server_saw.is_none() {
            let counts = server.admin_json("/health?service=svc-0&limit=0").await;
            if counts["counts"]["unhealthy"].as_u64() == Some(per_service as u64) {
                server_saw = Some(down_at.elapsed());
            }
        }
        let all = progress
            .iter()
            .all(|p| p.watched_unhealthy.load(Ordering::Relaxed) == per_service);
        if all {
            break;
        }
        assert!(
            down_at.elapsed() < Duration::from_secs(u64::from(interval) * 10 + 30),
            "the clients never saw every endpoint of svc-0 unhealthy"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last = progress
        .iter()
        .filter_map(|p| *p.watched_at.lock().unwrap())
        .max()
        .unwrap();
    let goal = interval * 2 + 1;
    println!(
        "  {per_service} endpoints down: last of {clients} clients saw all UNHEALTHY after {:.2}s (goal ≤ {goal}s: interval × unhealthyThreshold 2 + 1s); /health said so after {:.2}s",
        last.duration_since(down_at).as_secs_f64(),
        server_saw.map_or(f64::NAN, |d| d.as_secs_f64())
    );
}
