//! Capacity from load reports, end to end: two regions with one backend each, RATE at a target
//! of 20 requests/s per endpoint, a client in the first region sending load at a held rate.
//! The client reports its load (Envoy — state of the world and delta — and the sidecar through
//! `load_stats_config`, grpcio and grpc-js through the cluster's `lrs_server`), Switchyard
//! decides, and the client's endpoints change: under
//! capacity everything stays near; over it the near backend gets its 20 requests/s and the rest
//! goes far; when the load drops, traffic comes back.
//!
//! Shares are counted at the backends over hundreds of requests (at least 100 per figure; the
//! binomial standard deviation of a share near 0.5 over 400 requests is 0.025, so the ±0.125
//! that 20 ± 5 of 40 requests/s allows is 5 of them). The waits (15 s for traffic to move) are
//! what the issue promises; an implementation that never moves traffic misses them by far more
//! than a loaded machine could.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::common::grpc::{bootstrap, GrpcClient, Library};
use crate::common::*;
use crate::proxyless_grpc::{backends_named, with_ports};

/// How long traffic may take to move after the load changes.
const SETTLE: Duration = Duration::from_secs(15);

/// Near (us-central1-a) and far (europe-west1-b): one endpoint each at maxRatePerEndpoint 20,
/// the near one at `near_scaler`, behind an HTTP proxy on `listen`.
pub(crate) fn config(listen: u16, near: &Backend, far: &Backend, near_scaler: &str) -> String {
    format!(
        r#"
networkEndpointGroups:
- name: near
  zone: us-central1-a
  endpoints:
  - {{ipAddress: 127.0.0.1, port: {near}}}
- name: far
  zone: europe-west1-b
  endpoints:
  - {{ipAddress: 127.0.0.1, port: {far}}}
backendServices:
- name: svc
  backends:
  - group: zones/us-central1-a/networkEndpointGroups/near
    balancingMode: RATE
    maxRatePerEndpoint: 20
    capacityScaler: {near_scaler}
  - group: zones/europe-west1-b/networkEndpointGroups/far
    balancingMode: RATE
    maxRatePerEndpoint: 20
{frontend}"#,
        near = near.port(),
        far = far.port(),
        frontend = http_frontend(listen, "svc")
    )
}

/// The quickstart bootstrap, with load reports to Switchyard every interval it asks for.
fn reporting_bootstrap(xds: std::net::SocketAddr, node_id: &str) -> String {
    let text = bootstrap_text(
        "envoy-bootstrap.yaml",
        &[xds],
        node_id,
        "us-central1",
        "us-central1-a",
        &[],
    );
    if text.contains("load_stats_config") {
        return text;
    }
    text.replace(
        "static_resources:",
        "cluster_manager:\n  load_stats_config:\n    api_type: GRPC\n    transport_api_version: V3\n    grpc_services:\n    - envoy_grpc:\n        cluster_name: switchyard-xds\n\nstatic_resources:",
    )
}

/// GET requests to one URL at a held rate, each sent without waiting for the ones before (so
/// a slow answer does not lower the rate); a late tick is made up at once.
struct PacedLoad {
    millirate: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PacedLoad {
    fn start(url: String, per_second: u64) -> PacedLoad {
        let millirate = Arc::new(AtomicU64::new(per_second * 1000));
        let failed = Arc::new(AtomicU64::new(0));
        let (rate, failures) = (millirate.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let client = http();
            let mut current = rate.load(Ordering::Relaxed);
            let mut next = tokio::time::Instant::now();
            loop {
                let wanted = rate.load(Ordering::Relaxed);
                if wanted != current {
                    current = wanted;
                    next = tokio::time::Instant::now();
                }
                next += Duration::from_secs_f64(1000.0 / current as f64);
                tokio::time::sleep_until(next).await;
                let (client, url, failures) = (client.clone(), url.clone(), failures.clone());
                tokio::spawn(async move {
                    let ok = client
                        .get(&url)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        PacedLoad {
            millirate,
            failed,
            task,
        }
    }

    fn set_rate(&self, per_second: u64) {
        self.millirate.store(per_second * 1000, Ordering::Relaxed);
    }
}

impl Drop for PacedLoad {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hits(backend: &Backend) -> u64 {
    *backend.hits.lock().unwrap()
}

/// The near backend's share of the next `count` requests the two backends receive.
async fn near_share_of_next(near: &Backend, far: &Backend, count: u64) -> f64 {
    let (near_before, far_before) = (hits(near), hits(far));
    let (near_now, far_now) = wait_for(&format!("{count} more requests"), || {
        let (n, f) = (hits(near), hits(far));
        async move { (n + f >= near_before + far_before + count).then_some((n, f)) }
    })
    .await;
    let near_got = near_now - near_before;
    let total = near_got + far_now - far_before;
    near_got as f64 / total as f64
}

/// `/capacity?service=svc`, once it has a report.
async fn capacity_report(switchyard: &Switchyard) -> Option<Value> {
    get_json(&switchyard.admin_url("/capacity?service=svc")).await
}

/// The demand Switchyard measured from us-central1, when it has measured some.
async fn measured_demand(switchyard: &Switchyard) -> Option<f64> {
    let report = capacity_report(switchyard).await?;
    report["clients"]
        .as_array()?
        .iter()
        .find(|c| c["region"] == "us-central1")?["measured"]
        .as_f64()
}

/// The near backend's published share of us-central1's traffic (1 for the static answer).
async fn published_near_share(switchyard: &Switchyard) -> Option<f64> {
    let report = capacity_report(switchyard).await?;
    let client = report["clients"]
        .as_array()?
        .iter()
        .find(|c| c["region"] == "us-central1")
        .cloned();
    Some(match client.map(|c| c["published"].clone()) {
        Some(Value::Object(shares)) => shares.get("near").and_then(Value::as_f64).unwrap_or(0.0),
        _ => 1.0,
    })
}

/// Endpoint responses Switchyard has sent so far.
async fn endpoint_pushes(switchyard: &Switchyard) -> u64 {
    let text = get_text(&switchyard.admin_url("/metrics"))
        .await
        .unwrap_or_default();
    text.lines()
        .find_map(|line| {
            line.strip_prefix(r#"switchyard_xds_responses_total{type="ClusterLoadAssignment"} "#)?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0) as u64
}

/// Serves `config` with a 2 s load-report interval to an Envoy in us-central1 that reports.
async fn serve_to_envoy(config: &str, node_id: &str) -> (Switchyard, Envoy) {
    let switchyard = Switchyard::start_with(config, |options| {
        options.load_report_interval = Duration::from_secs(2);
    })
    .await;
    let envoy = Envoy::launch(
        &reporting_bootstrap(switchyard.running.xds_addr, node_id),
        node_id,
        2,
    )
    .await;
    switchyard.wait_for_acks(node_id).await;
    (switchyard, envoy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn envoy_traffic_spills_to_the_next_region_over_capacity_and_comes_back() {
    let (near, far) = (Backend::start("near").await, Backend::start("far").await);
    let listen = free_port();
    let (switchyard, envoy) =
        serve_to_envoy(&config(listen, &near, &far, "1.0"), "spill-envoy").await;
    let load = PacedLoad::start(format!("http://127.0.0.1:{listen}/"), 10);
    wait_for("Envoy's load reports to be measured", || async {
        measured_demand(&switchyard).await.filter(|d| *d >= 8.0)
    })
    .await;

    // 10 of 20: everything stays near (a spill-everything or static-by-capacity answer would
    // give 0.5).
    let share = near_share_of_next(&near, &far, 100).await;
    eprintln!("measured at 10/s: near {share:.3}");
    assert!(
        share >= 0.9,
        "at 10/s at least 90% stays near, got {share:.3}"
    );

    // 40 against 20: the near backend gets 20 ± 5 requests/s, the rest goes far.
    load.set_rate(40);
    tokio::time::sleep(SETTLE).await;
    let pushes_before = endpoint_pushes(&switchyard).await;
    let mut published = Vec::new();
    let first_half = near_share_of_next(&near, &far, 400).await;
    published.push(published_near_share(&switchyard).await.unwrap());
    let second_half = near_share_of_next(&near, &far, 400).await;
    published.push(published_near_share(&switchyard).await.unwrap());
    let pushes = endpoint_pushes(&switchyard).await - pushes_before;
    eprintln!(
        "measured at 40/s: near {:.1}/s then {:.1}/s; published near shares {published:?}; {pushes} endpoint pushes in ~20 s",
        first_half * 40.0,
        second_half * 40.0
    );
    for share in [first_half, second_half] {
        assert!(
            (share * 40.0 - 20.0).abs() <= 5.0,
            "at 40/s the near backend gets 20 ± 5/s, got {:.1}/s",
            share * 40.0
        );
    }
    // Constant load: the shares hold (±10%) and pushes stay bounded — one per interval at most
    // (10 in ~20 s); with hysteresis, far fewer.
    assert!(
        (first_half - second_half).abs() <= 0.1,
        "shares hold at constant load: {first_half:.3} then {second_half:.3}"
    );
    assert!(
        pushes <= 3,
        "at constant load endpoints are not re-pushed every interval: {pushes} pushes"
    );

    // The metrics say the same, per service and locality.
    let metrics = get_text(&switchyard.admin_url("/metrics")).await.unwrap();
    let gauge = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(prefix)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("/metrics has {prefix}"))
    };
    let far_share = gauge(
        r#"switchyard_capacity_share{service="svc",client_region="us-central1",group="far"} "#,
    );
    assert!((0.3..=0.7).contains(&far_share), "far share {far_share}");
    let near_capacity =
        gauge(r#"switchyard_capacity{service="svc",region="us-central1",group="near"} "#);
    assert_eq!(near_capacity, 20.0);

    // Back to 10: traffic returns near.
    load.set_rate(10);
    tokio::time::sleep(SETTLE).await;
    let share = near_share_of_next(&near, &far, 100).await;
    eprintln!("measured back at 10/s: near {share:.3}");
    assert!(
        share >= 0.9,
        "back at 10/s at least 90% is near again, got {share:.3}"
    );
    assert_eq!(load.failed.load(Ordering::Relaxed), 0, "no request failed");
    drop(envoy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_capacity_scaler_of_half_halves_what_the_near_backend_takes_under_load() {
    // At 30/s the near backend would take 20 (2/3) at scaler 1; at 0.5 it takes 10 (1/3),
    // far the other 20. The scaler ignored gives 2/3.
    let (near, far) = (Backend::start("near").await, Backend::start("far").await);
    let listen = free_port();
    let (switchyard, envoy) =
        serve_to_envoy(&config(listen, &near, &far, "0.5"), "spill-scaler").await;
    let load = PacedLoad::start(format!("http://127.0.0.1:{listen}/"), 30);
    tokio::time::sleep(SETTLE).await;
    let share = near_share_of_next(&near, &far, 300).await;
    eprintln!(
        "measured at 30/s with scaler 0.5: near {:.1}/s",
        share * 30.0
    );
    assert!(
        (share * 30.0 - 10.0).abs() <= 3.0,
        "the near backend gets 10 ± 3 of 30/s, got {:.1}/s",
        share * 30.0
    );
    let report = capacity_report(&switchyard).await.unwrap();
    assert_eq!(report["backends"][0]["capacity"], 10.0, "{report}");

    // explain, reading the running server: capacity, load, share sent and why, per backend.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("explain")
        .arg(&switchyard.config)
        .args(["backendServices/svc", "--client-locality", "us-central1"])
        .args(["--admin", &switchyard.running.admin_addr.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    eprintln!("{text}");
    assert!(output.status.success(), "{text}");
    let line = |group: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{group}: ")))
            .unwrap_or_else(|| panic!("explain has a line for {group}: {text}"))
            .to_string()
    };
    let near_line = line("near");
    assert!(
        near_line.contains("capacity 10;") && near_line.contains("— full"),
        "{near_line}"
    );
    assert!(
        near_line.contains("share of us-central1's traffic"),
        "{near_line}"
    );
    assert!(line("far").contains("capacity 20;"), "{text}");
    drop((envoy, load));
}

/// A proxyless service `who` in two regions (one Who server each, 20 requests/s).
fn grpc_config(backends: &[crate::common::grpc::GrpcBackend]) -> String {
    let text = r#"
networkEndpointGroups:
- name: near
  zone: us-central1-a
  endpoints:
  - {instance: near, ipAddress: 127.0.0.1, port: 50051}
- name: far
  zone: europe-west1-b
  endpoints:
  - {instance: far, ipAddress: 127.0.0.1, port: 50052}
backendServices:
- name: who
  loadBalancingScheme: INTERNAL_SELF_MANAGED
  protocol: GRPC
  backends:
  - {group: zones/us-central1-a/networkEndpointGroups/near, balancingMode: RATE, maxRatePerEndpoint: 20}
  - {group: zones/europe-west1-b/networkEndpointGroups/far, balancingMode: RATE, maxRatePerEndpoint: 20}
urlMaps:
- name: who-map
  defaultService: global/backendServices/who
  hostRules:
  - hosts: [who.example]
    pathMatcher: who
  pathMatchers:
  - name: who
    defaultService: global/backendServices/who
targetGrpcProxies:
- name: who-proxy
  urlMap: global/urlMaps/who-map
  validateForProxyless: true
forwardingRules:
- name: who-grpc
  loadBalancingScheme: INTERNAL_SELF_MANAGED
  IPAddress: 0.0.0.0
  portRange: "8080"
  target: global/targetGrpcProxies/who-proxy
"#;
    with_ports(text.to_string(), backends)
}

/// Calls from a proxyless client of `library` in us-central1, about 40/s against a near
/// capacity of 20/s: once its reports are measured, the near region takes 20/s of them.
async fn proxyless_calls_spill(library: Library, node_id: &str) {
    let backends = backends_named(&["near", "far"]).await;
    let switchyard = Switchyard::start_with(&grpc_config(&backends), |options| {
        options.load_report_interval = Duration::from_secs(2);
    })
    .await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        node_id,
        "us-central1",
        "us-central1-a",
    );
    let mut client = GrpcClient::start(library, "xds:///who.example:8080", &node).await;
    // Calls one after another, 20 ms apart: about 40/s on loopback. The first 15 s let the
    // reports arrive and the shares move.
    let warm = client.calls(700, None, 20).await;
    assert!(warm.errors.is_empty(), "{:?}", warm.errors);
    let demand = get_json(&switchyard.admin_url("/capacity?service=who"))
        .await
        .and_then(|r| {
            r["clients"]
                .as_array()?
                .iter()
                .find(|c| c["region"] == "us-central1")?["smoothed"]
                .as_f64()
        })
        .unwrap_or_else(|| panic!("{node_id}'s load reports are measured"));
    let calls = client.calls(400, None, 20).await;
    assert!(calls.errors.is_empty(), "{:?}", calls.errors);
    let near = share(&calls.tally, "near");
    let expected = (20.0 / demand).min(1.0);
    eprintln!(
        "measured with {node_id} at {demand:.1}/s: near {near:.3} of calls, expected {expected:.3}"
    );
    assert!(
        demand > 25.0,
        "the calls are well over the near capacity: {demand}"
    );
    assert!(
        (near - expected).abs() <= 0.125,
        "near takes its 20/s of {demand:.1}/s: expected {expected:.3} ± 0.125, got {near:.3}: {:?}",
        calls.tally
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpcio_calls_spill_to_the_next_region_over_capacity() {
    proxyless_calls_spill(Library::Grpcio, "spill-grpcio").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_js_calls_spill_to_the_next_region_over_capacity() {
    proxyless_calls_spill(Library::GrpcJs, "spill-grpc-js").await;
}

/// A proxy in us-central1 (started by `start` against Switchyard's xDS address) carrying
/// 40 requests/s against a near capacity of 20/s: once its reports are measured, the near
/// backend gets 20 ± 5 of them.
async fn proxy_traffic_spills(node_id: &str, through: Through) {
    let (near, far) = (Backend::start("near").await, Backend::start("far").await);
    let listen = free_port();
    let switchyard = Switchyard::start_with(&config(listen, &near, &far, "1.0"), |options| {
        options.load_report_interval = Duration::from_secs(2);
    })
    .await;
    let xds = switchyard.running.xds_addr;
    let proxy = match through {
        Through::Envoy => Proxy::Envoy(Envoy::start_delta(xds, node_id).await),
        Through::Sidecar => Proxy::Sidecar(
            crate::common::sidecar::Sidecar::start("envoy-bootstrap.yaml", xds, node_id).await,
        ),
    };
    switchyard.wait_for_acks(node_id).await;
    if let Proxy::Sidecar(sidecar) = &proxy {
        sidecar.wait_ready().await;
    }
    let load = PacedLoad::start(format!("http://127.0.0.1:{listen}/"), 40);
    wait_for("the proxy's load reports to be measured", || async {
        measured_demand(&switchyard).await.filter(|d| *d >= 30.0)
    })
    .await;
    tokio::time::sleep(SETTLE).await;
    let share = near_share_of_next(&near, &far, 400).await;
    eprintln!(
        "measured through {node_id} at 40/s: near {:.1}/s",
        share * 40.0
    );
    assert!(
        (share * 40.0 - 20.0).abs() <= 5.0,
        "at 40/s the near backend gets 20 ± 5/s through {node_id}, got {:.1}/s",
        share * 40.0
    );
    assert_eq!(load.failed.load(Ordering::Relaxed), 0, "no request failed");
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delta_envoy_traffic_spills_over_capacity() {
    proxy_traffic_spills("spill-delta-envoy", Through::Envoy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sidecar_traffic_spills_over_capacity() {
    proxy_traffic_spills("spill-sidecar", Through::Sidecar).await;
}

/// A TCP backend that writes its name and holds each connection open until the client closes
/// it, counting the connections it accepted.
struct HoldingTcpBackend {
    port: u16,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl HoldingTcpBackend {
    async fn start(name: &str) -> HoldingTcpBackend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicU64::new(0));
        let (name, counter) = (name.to_string(), accepted.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::Relaxed);
                let name = name.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let _ = stream.write_all(name.as_bytes()).await;
                    let mut sink = [0u8; 64];
                    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                });
            }
        });
        HoldingTcpBackend {
            port,
            accepted,
            task,
        }
    }

    fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for HoldingTcpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens a connection to `addr` every `1 / per_second` s and holds each for `hold`.
fn paced_connections(addr: String, per_second: u64, hold: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let period = Duration::from_secs_f64(1.0 / per_second as f64);
        let mut next = tokio::time::Instant::now();
        loop {
            next += period;
            tokio::time::sleep_until(next).await;
            let addr = addr.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                if let Ok(mut stream) = tokio::net::TcpStream::connect(&addr).await {
                    let mut name = [0u8; 16];
                    let _ = stream.read(&mut name).await;
                    tokio::time::sleep(hold).await;
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn envoy_connections_spill_by_connection_capacity() {
    // CONNECTION behind a TCP proxy: near takes 5 connections, far 20. Connections held 2 s,
    // opened 10 a second: 20 in flight, of which near takes 5 — a quarter of new connections
    // (the static answer sends it all of them). Over 150 connections the standard deviation of
    // that share is 0.035; ±0.12 is over 3 of them.
    let (near, far) = (
        HoldingTcpBackend::start("near").await,
        HoldingTcpBackend::start("far").await,
    );
    let listen = free_port();
    let config = format!(
        r#"
networkEndpointGroups:
- name: near
  zone: us-central1-a
  endpoints:
  - {{ipAddress: 127.0.0.1, port: {near}}}
- name: far
  zone: europe-west1-b
  endpoints:
  - {{ipAddress: 127.0.0.1, port: {far}}}
backendServices:
- name: svc
  protocol: TCP
  timeoutSec: 30
  backends:
  - {{group: zones/us-central1-a/networkEndpointGroups/near, balancingMode: CONNECTION, maxConnectionsPerEndpoint: 5}}
  - {{group: zones/europe-west1-b/networkEndpointGroups/far, balancingMode: CONNECTION, maxConnectionsPerEndpoint: 20}}
targetTcpProxies:
- name: tcp-proxy
  service: global/backendServices/svc
forwardingRules:
- name: fr
  IPAddress: 127.0.0.1
  portRange: "{listen}"
  target: global/targetTcpProxies/tcp-proxy
"#,
        near = near.port,
        far = far.port
    );
    let (switchyard, envoy) = serve_to_envoy(&config, "spill-connections").await;
    let opener = paced_connections(format!("127.0.0.1:{listen}"), 10, Duration::from_secs(2));
    wait_for("Envoy's connections to be measured", || async {
        measured_demand(&switchyard).await.filter(|d| *d >= 10.0)
    })
    .await;
    tokio::time::sleep(SETTLE).await;
    let (near_before, far_before) = (near.accepted(), far.accepted());
    let (near_now, far_now) = wait_for("150 more connections", || {
        let (n, f) = (near.accepted(), far.accepted());
        async move { (n + f >= near_before + far_before + 150).then_some((n, f)) }
    })
    .await;
    let near_got = (near_now - near_before) as f64;
    let share = near_got / (near_got + (far_now - far_before) as f64);
    let demand = measured_demand(&switchyard).await.unwrap();
    eprintln!(
        "measured with CONNECTION: {demand:.1} in flight; near {share:.3} of new connections"
    );
    assert!(
        (share - 0.25).abs() <= 0.12,
        "near takes 5 of 20 connections: expected 0.25 ± 0.12, got {share:.3}"
    );
    opener.abort();
    drop(envoy);
}
