//! Proxyless gRPC through real clients: grpcio (Python, C-core) and grpc-js-xds (Node) dial
//! xds:/// targets served by Switchyard and call tonic backends on 127.0.0.1 that answer with
//! their name. Splits are measured over 2,000 calls with a ±4% tolerance (the binomial
//! standard deviation at n = 2,000 is at most 1.12%).

mod common;

use common::grpc::{bootstrap, GrpcBackend, GrpcClient, Library};
use common::*;

const CALLS: usize = 2000;
const TOLERANCE: f64 = 0.04;

/// examples/grpc.yaml with the test's backend ports.
fn grpc_config(backends: &[GrpcBackend]) -> String {
    let mut text = std::fs::read_to_string(repo_root().join("examples/grpc.yaml")).unwrap();
    for (index, backend) in backends.iter().enumerate() {
        text = text.replace(
            &format!("port: {}}}", 50051 + index),
            &format!("port: {}}}", backend.port()),
        );
    }
    text
}

async fn four_backends() -> Vec<GrpcBackend> {
    let mut backends = Vec::new();
    for name in ["a1", "a2", "a3", "b1"] {
        backends.push(GrpcBackend::start(name).await);
    }
    backends
}

fn assert_zone_a_share(calls: &common::grpc::Calls, expected: f64) {
    assert!(
        calls.errors.is_empty(),
        "no call may fail: {:?}",
        calls.errors
    );
    let total: usize = calls.tally.values().sum();
    let a: usize = calls
        .tally
        .iter()
        .filter(|(k, _)| k.starts_with('a'))
        .map(|(_, v)| v)
        .sum();
    let share = a as f64 / total as f64;
    assert!(
        (share - expected).abs() <= TOLERANCE,
        "zone a expected {expected} ± {TOLERANCE}, got {share:.3}: {:?}",
        calls.tally
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpcio_acks_everything_splits_by_capacity_and_follows_edits() {
    let backends = four_backends().await;
    let switchyard = Switchyard::start(&grpc_config(&backends)).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "grpcio-client",
        "us-central1",
        "us-central1-a",
    );
    let mut client = GrpcClient::start(Library::Grpcio, "xds:///who.example:8080", &node).await;

    let first = client.calls(CALLS, None, 0).await;
    assert_zone_a_share(&first, 0.75);
    let csds = client.csds().await;
    for kind in [
        "Listener",
        "RouteConfiguration",
        "Cluster",
        "ClusterLoadAssignment",
    ] {
        assert_eq!(
            csds[kind],
            serde_json::json!(["ACKED"]),
            "grpcio's own CSDS: {csds}"
        );
    }
    switchyard.wait_for_acks("grpcio-client").await;
    let status = switchyard.client("grpcio-client").await.unwrap();
    assert_eq!(
        status["types"]["Listener"]["subscribed"],
        serde_json::json!(["who.example:8080"])
    );

    // Zone a drained by an edit: every call goes to zone b, with the same client process.
    let drained = grpc_config(&backends).replace(
        "    maxRatePerEndpoint: 10\n",
        "    maxRatePerEndpoint: 10\n    capacityScaler: 0.0\n",
    );
    switchyard.edit(&drained).await;
    switchyard.wait_for_acks("grpcio-client").await;
    let after = client.calls(200, None, 0).await;
    assert_eq!(
        after.tally.get("b1"),
        Some(&200),
        "capacityScaler 0 moves every call: {:?} {:?}",
        after.tally,
        after.errors
    );
}
