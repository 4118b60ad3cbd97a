//! Capacity arithmetic end to end: a backend's balancing mode gives its group a capacity
//! (per-instance and per-endpoint figures × N members, whole-group figures as written, then
//! × capacityScaler), translation turns the capacities into locality weights, and real
//! clients split requests by those weights: Envoy, the sidecar, grpcio and grpc-js-xds.
//!
//! The numbers are chosen so that each misreading — counting endpoints, a per-endpoint or
//! per-instance figure read as the whole group's, a whole-group figure read per endpoint, the
//! scaler ignored, utilization not multiplied by instances — moves the share by at least 0.1;
//! each test lists what each misreading would give. Splits are measured over 4,000 requests
//! with a ±0.04 tolerance (the binomial standard deviation at n = 4,000 is at most 0.0079, so
//! ±0.04 is over 5 of them, and under half the distance to the nearest misreading; at 2,000
//! a right split missed once in about three thousand checks, which across the suite's many
//! checks a CI run met).

use std::collections::BTreeMap;

use crate::common::grpc::{bootstrap, Calls, GrpcBackend, GrpcClient, Library};
use crate::common::*;
use crate::proxyless_grpc::{backends_named, with_ports};

const REQUESTS: usize = 4000;
const TOLERANCE: f64 = 0.04;

/// Translation's locality weight per group (a locality's sub-zone is its group's name) in the
/// assignment of `service`.
fn locality_weights(config: &str, service: &str) -> BTreeMap<String, u32> {
    let loaded = switchyard::config::load_str(config, "capacity.yaml");
    assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
    let resources = switchyard::translate::translate(&loaded.model);
    let assignment = resources
        .endpoints
        .iter()
        .find(|a| a.cluster_name == service)
        .unwrap_or_else(|| panic!("no assignment for {service}"));
    assignment
        .endpoints
        .iter()
        .map(|locality| {
            (
                locality.locality.as_ref().unwrap().sub_zone.clone(),
                locality.load_balancing_weight.as_ref().unwrap().value,
            )
        })
        .collect()
}

/// Asserts that `prefix`* got `expected` ± [`TOLERANCE`] of `seen` and that nothing failed.
fn assert_share(seen: &BTreeMap<String, usize>, prefix: &str, expected: f64) {
    assert_no_errors(seen, "the split");
    let got = share_of_prefix(seen, prefix);
    eprintln!("measured: {prefix}* {got:.3}, expected {expected:.3}");
    assert!(
        (got - expected).abs() <= TOLERANCE,
        "{prefix}* expected {expected:.3} ± {TOLERANCE}, got {got:.3}: {seen:?}"
    );
}

/// The endpoint lines of a NEG: one per port on 127.0.0.1.
fn endpoint_lines(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|port| format!("  - {{ipAddress: 127.0.0.1, port: {port}}}\n"))
        .collect()
}

/// The instance lines of an instance group: `count` instances from 127.0.0.`first_ip` on.
fn instance_lines(prefix: &str, first_ip: u8, count: u8) -> String {
    (0..count)
        .map(|i| {
            format!(
                "  - {{name: {prefix}{}, ipAddress: 127.0.0.{}}}\n",
                i + 1,
                first_ip + i
            )
        })
        .collect()
}

/// RATE: NEG rate-a, its endpoints at maxRatePerEndpoint 10 and capacityScaler `scaler`,
/// against NEG rate-b, its endpoints sharing maxRate 40 as a group.
fn rate_config(listen: u16, a: &[u16], b: &[u16], scaler: &str) -> String {
    format!(
        r#"
networkEndpointGroups:
- name: rate-a
  zone: us-central1-a
  endpoints:
{a_endpoints}- name: rate-b
  zone: us-central1-b
  endpoints:
{b_endpoints}backendServices:
- name: svc
  backends:
  - group: zones/us-central1-a/networkEndpointGroups/rate-a
    balancingMode: RATE
    maxRatePerEndpoint: 10
    capacityScaler: {scaler}
  - group: zones/us-central1-b/networkEndpointGroups/rate-b
    balancingMode: RATE
    maxRate: 40
{frontend}"#,
        a_endpoints = endpoint_lines(a),
        b_endpoints = endpoint_lines(b),
        frontend = http_frontend(listen, "svc")
    )
}

/// RATE, 3 endpoints × 10 = 30 against 40 for a group of 2. A's share at scaler 1 is
/// 30 / 70 = 0.43; at scaler 0.5 on A, 15 / 55 = 0.27. The misreadings give:
/// - counting endpoints: 3 / 5 = 0.60 (at 0.5: 0.60, or 1.5 / 3.5 = 0.43 with the scaler);
/// - maxRatePerEndpoint read as the group's: 10 / 50 = 0.20 (at 0.5: 5 / 45 = 0.11);
/// - maxRate read per endpoint (80): 30 / 110 = 0.27 (at 0.5: 15 / 95 = 0.16);
/// - capacityScaler ignored: 0.43 at 0.5.
const RATE_SHARE: f64 = 30.0 / 70.0;
const RATE_SHARE_HALVED: f64 = 15.0 / 55.0;

#[test]
fn rate_weights_count_per_endpoint_rates_and_the_group_rate_once() {
    let (a, b) = ([8001, 8002, 8003], [8004, 8005]);
    // Right: 30 : 40. Counting endpoints: 10000 : 6667; maxRatePerEndpoint as the group's:
    // 2500 : 10000; maxRate per endpoint: 3750 : 10000.
    assert_eq!(
        locality_weights(&rate_config(10080, &a, &b, "1.0"), "svc"),
        BTreeMap::from([("rate-a".into(), 7500), ("rate-b".into(), 10000)])
    );
    // Right: 15 : 40. Scaler ignored: 7500; counting endpoints: 10000 : 6667 (× scaler:
    // 7500 : 10000); maxRatePerEndpoint as the group's: 1250; maxRate per endpoint: 1875.
    assert_eq!(
        locality_weights(&rate_config(10080, &a, &b, "0.5"), "svc"),
        BTreeMap::from([("rate-a".into(), 3750), ("rate-b".into(), 10000)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_capacity_and_capacity_scaler_shape_the_split() {
    rate_capacity_and_capacity_scaler_shape_the_split_through(Through::Envoy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_capacity_and_capacity_scaler_shape_the_split_through_the_sidecar() {
    rate_capacity_and_capacity_scaler_shape_the_split_through(Through::Sidecar).await;
}

async fn rate_capacity_and_capacity_scaler_shape_the_split_through(through: Through) {
    // Rejects each misreading listed at [`RATE_SHARE`].
    let mut a = Vec::new();
    for name in ["a1", "a2", "a3"] {
        a.push(Backend::start(name).await);
    }
    let b = [Backend::start("b1").await, Backend::start("b2").await];
    let a_ports: Vec<u16> = a.iter().map(Backend::port).collect();
    let b_ports: Vec<u16> = b.iter().map(Backend::port).collect();
    let listen = free_port();
    let config = |scaler: &str| rate_config(listen, &a_ports, &b_ports, scaler);
    let url = format!("http://127.0.0.1:{listen}/");
    let node = format!("rate-{through:?}");
    let (switchyard, _proxy) = serve_through(through, &node, &config("1.0")).await;
    assert_share(&tally(&url, REQUESTS).await, "a", RATE_SHARE);

    switchyard.edit(&config("0.5")).await;
    switchyard.wait_for_acks(&node).await;
    assert_share(&tally(&url, REQUESTS).await, "a", RATE_SHARE_HALVED);

    // Scaler 0: A leaves rotation.
    switchyard.edit(&config("0.0")).await;
    switchyard.wait_for_acks(&node).await;
    let drained = tally(&url, 500).await;
    assert_no_errors(&drained, "with A drained");
    assert_eq!(
        share_of_prefix(&drained, "b"),
        1.0,
        "capacityScaler 0 sends A nothing: {drained:?}"
    );

    // 0.05 is not an allowed scaler: rejected, and the last good config keeps serving.
    switchyard.edit(&config("0.05")).await;
    let status = get_json(&switchyard.admin_url("/config_status"))
        .await
        .unwrap();
    assert_eq!(status["last_load_accepted"], false);
    assert_eq!(
        status["diagnostics"]["items"][0]["message"],
        "0.05 is not allowed; capacityScaler must be exactly 0.0 or between 0.1 and 1.0"
    );
    assert_eq!(
        status["diagnostics"]["items"][0]["path"],
        "backendServices[svc].backends[0].capacityScaler"
    );
    let kept = tally(&url, 100).await;
    assert_no_errors(&kept, "after the rejected edit");
    assert_eq!(share_of_prefix(&kept, "b"), 1.0, "{kept:?}");
}

/// examples/grpc.yaml (proxyless clients, zone a: three endpoints at maxRatePerEndpoint 10)
/// with zone a at capacityScaler `scaler` and zone b grown to two endpoints that share maxRate
/// 40 as a group: the numbers of [`rate_config`], served to gRPC clients.
fn grpc_rate_config(backends: &[GrpcBackend], scaler: &str) -> String {
    let example = std::fs::read_to_string(repo_root().join("examples/grpc.yaml")).unwrap();
    let b1 = "  - {instance: vm-b1, ipAddress: 127.0.0.1, port: 50054}\n";
    let edits = [
        (
            b1,
            format!("{b1}  - {{instance: vm-b2, ipAddress: 127.0.0.1, port: 50055}}\n"),
        ),
        ("    maxRate: 10\n", "    maxRate: 40\n".to_string()),
        (
            "    maxRatePerEndpoint: 10\n",
            format!("    maxRatePerEndpoint: 10\n    capacityScaler: {scaler}\n"),
        ),
    ];
    let edited = edits.iter().fold(example, |text, (from, to)| {
        assert!(text.contains(from), "examples/grpc.yaml has `{from}`");
        text.replace(from, to)
    });
    with_ports(edited, backends)
}

/// Asserts that no call failed and that backends named `prefix`* answered `expected` ±
/// [`TOLERANCE`] of the calls.
fn assert_call_share(calls: &Calls, prefix: &str, expected: f64) {
    assert!(
        calls.errors.is_empty(),
        "no call may fail: {:?}",
        calls.errors
    );
    let got = share_of_prefix(&calls.tally, prefix);
    eprintln!("measured: {prefix}* {got:.3}, expected {expected:.3}");
    assert!(
        (got - expected).abs() <= TOLERANCE,
        "{prefix}* expected {expected:.3} ± {TOLERANCE}, got {got:.3}: {:?}",
        calls.tally
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_capacity_and_capacity_scaler_shape_grpcio_calls() {
    rate_capacity_and_capacity_scaler_shape_calls_of(Library::Grpcio).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_capacity_and_capacity_scaler_shape_grpc_js_xds_calls() {
    rate_capacity_and_capacity_scaler_shape_calls_of(Library::GrpcJs).await;
}

/// One client process of `library` through three configs: scaler 1, 0.5 and 0 on zone a.
async fn rate_capacity_and_capacity_scaler_shape_calls_of(library: Library) {
    // Rejects each misreading listed at [`RATE_SHARE`].
    let backends = backends_named(&["a1", "a2", "a3", "b1", "b2"]).await;
    let switchyard = Switchyard::start(&grpc_rate_config(&backends, "1.0")).await;
    let node_id = format!("rate-{library:?}");
    let node = bootstrap(
        switchyard.running.xds_addr,
        &node_id,
        "us-central1",
        "us-central1-a",
    );
    let mut client = GrpcClient::start(library, "xds:///who.example:8080", &node).await;
    let calls = client.calls(REQUESTS, None, 0).await;
    assert_call_share(&calls, "a", RATE_SHARE);

    switchyard.edit(&grpc_rate_config(&backends, "0.5")).await;
    switchyard.wait_for_acks(&node_id).await;
    let calls = client.calls(REQUESTS, None, 0).await;
    assert_call_share(&calls, "a", RATE_SHARE_HALVED);

    switchyard.edit(&grpc_rate_config(&backends, "0.0")).await;
    switchyard.wait_for_acks(&node_id).await;
    let drained = client.calls(200, None, 0).await;
    assert!(
        drained.errors.is_empty() && drained.tally.keys().all(|name| name.starts_with('b')),
        "capacityScaler 0 moves every call to zone b: {:?} {:?}",
        drained.tally,
        drained.errors
    );
}

/// UTILIZATION: instance group util-a, 3 instances (127.0.0.11–13) at maxUtilization 0.4,
/// against util-b, 1 instance (127.0.0.21) at maxUtilization 0.8.
fn utilization_config(listen: u16, a_port: u16, b_port: u16) -> String {
    format!(
        r#"
instanceGroups:
- name: util-a
  zone: us-central1-a
  namedPorts: [{{name: http, port: {a_port}}}]
  instances:
{a_instances}- name: util-b
  zone: us-central1-b
  namedPorts: [{{name: http, port: {b_port}}}]
  instances:
{b_instances}backendServices:
- name: svc
  backends:
  - {{group: zones/us-central1-a/instanceGroups/util-a, balancingMode: UTILIZATION, maxUtilization: 0.4}}
  - {{group: zones/us-central1-b/instanceGroups/util-b, balancingMode: UTILIZATION, maxUtilization: 0.8}}
{frontend}"#,
        a_instances = instance_lines("vm-a", 11, 3),
        b_instances = instance_lines("vm-b", 21, 1),
        frontend = http_frontend(listen, "svc")
    )
}

/// UTILIZATION, 3 instances × 0.4 = 1.2 against 1 × 0.8: A's share is 1.2 / 2.0 = 0.60. The
/// misreadings give: counting instances 3 / 4 = 0.75; maxUtilization not multiplied by the
/// instances 0.4 / 1.2 = 0.33; maxUtilization ignored (the default 0.8 each) 0.75.
const UTILIZATION_SHARE: f64 = 1.2 / 2.0;

#[test]
fn utilization_weights_multiply_max_utilization_by_instances() {
    // Right: 1.2 : 0.8. Counting instances or the default 0.8: 10000 : 3333; maxUtilization
    // not multiplied: 5000 : 10000.
    assert_eq!(
        locality_weights(&utilization_config(10080, 8000, 8001), "svc"),
        BTreeMap::from([("util-a".into(), 10000), ("util-b".into(), 6667)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn utilization_capacity_follows_instances_and_max_utilization() {
    utilization_capacity_follows_instances_through(Through::Envoy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn utilization_capacity_follows_instances_through_the_sidecar() {
    utilization_capacity_follows_instances_through(Through::Sidecar).await;
}

async fn utilization_capacity_follows_instances_through(through: Through) {
    // Rejects each misreading listed at [`UTILIZATION_SHARE`].
    let (a_port, _a) = instances("a", 11, 3).await;
    let (b_port, _b) = instances("b", 21, 1).await;
    let listen = free_port();
    let node = format!("utilization-{through:?}");
    let config = utilization_config(listen, a_port, b_port);
    let (_switchyard, _proxy) = serve_through(through, &node, &config).await;
    let seen = tally(&format!("http://127.0.0.1:{listen}/"), REQUESTS).await;
    assert_share(&seen, "a", UTILIZATION_SHARE);
    assert!(
        ["a1", "a2", "a3"]
            .iter()
            .all(|name| seen.contains_key(*name)),
        "every instance of A serves: {seen:?}"
    );
}

/// CONNECTION behind a TCP proxy: instance group conn-a, 2 instances (127.0.0.31–32) at
/// maxConnectionsPerInstance 10, against conn-b, 3 instances (127.0.0.41–43) sharing
/// maxConnections 15 as a group.
fn connection_config(listen: u16, a_port: u16, b_port: u16) -> String {
    format!(
        r#"
instanceGroups:
- name: conn-a
  zone: us-central1-a
  namedPorts: [{{name: http, port: {a_port}}}]
  instances:
{a_instances}- name: conn-b
  zone: us-central1-b
  namedPorts: [{{name: http, port: {b_port}}}]
  instances:
{b_instances}backendServices:
- name: tcp
  protocol: TCP
  timeoutSec: 30
  backends:
  - {{group: zones/us-central1-a/instanceGroups/conn-a, balancingMode: CONNECTION, maxConnectionsPerInstance: 10}}
  - {{group: zones/us-central1-b/instanceGroups/conn-b, balancingMode: CONNECTION, maxConnections: 15}}
targetTcpProxies:
- name: tcp-proxy
  service: global/backendServices/tcp
forwardingRules:
- name: fr-tcp
  IPAddress: 127.0.0.1
  portRange: "{listen}"
  target: global/targetTcpProxies/tcp-proxy
"#,
        a_instances = instance_lines("vm-a", 31, 2),
        b_instances = instance_lines("vm-b", 41, 3),
    )
}

/// CONNECTION, 2 instances × 10 = 20 against 15 for a group of 3: A's share is 20 / 35 = 0.57.
/// The misreadings give: counting instances 2 / 5 = 0.40; maxConnectionsPerInstance read as
/// the group's 10 / 25 = 0.40; maxConnections read per instance (45) 20 / 65 = 0.31.
const CONNECTION_SHARE: f64 = 20.0 / 35.0;

#[test]
fn connection_weights_tell_per_instance_from_whole_group() {
    // Right: 20 : 15. Counting instances or maxConnectionsPerInstance as the group's:
    // 6667 : 10000; maxConnections per instance: 4444 : 10000.
    assert_eq!(
        locality_weights(&connection_config(10080, 8000, 8001), "tcp"),
        BTreeMap::from([("conn-a".into(), 10000), ("conn-b".into(), 7500)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connection_capacity_splits_tcp_connections() {
    connection_capacity_splits_tcp_connections_through(Through::Envoy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connection_capacity_splits_tcp_connections_through_the_sidecar() {
    connection_capacity_splits_tcp_connections_through(Through::Sidecar).await;
}

async fn connection_capacity_splits_tcp_connections_through(through: Through) {
    // Rejects each misreading listed at [`CONNECTION_SHARE`].
    let (a_port, _a) = tcp_instances("a", 31, 2).await;
    let (b_port, _b) = tcp_instances("b", 41, 3).await;
    let listen = free_port();
    let node = format!("connection-{through:?}");
    let config = connection_config(listen, a_port, b_port);
    let (_switchyard, _proxy) = serve_through(through, &node, &config).await;
    let address = format!("127.0.0.1:{listen}");
    wait_for("the TCP listener to proxy", || async {
        failures(&tally_tcp(&address, 1).await)
            .is_empty()
            .then_some(())
    })
    .await;
    assert_share(&tally_tcp(&address, REQUESTS).await, "a", CONNECTION_SHARE);
}
