//! Proxyless gRPC through real clients: grpcio (Python, C-core) and grpc-js-xds (Node) dial
//! xds:/// targets served by Switchyard and call tonic backends on 127.0.0.1 that answer with
//! their name. How capacity splits their calls is in capacity_splits.rs.

use crate::common::grpc::{bootstrap, GrpcBackend, GrpcClient, Library};
use crate::common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// examples/grpc.yaml with the test's backend ports.
fn grpc_config(backends: &[GrpcBackend]) -> String {
    let example = std::fs::read_to_string(repo_root().join("examples/grpc.yaml")).unwrap();
    with_ports(example, backends)
}

/// `text` with example port 50051 + i replaced by the port of `backends[i]`.
pub fn with_ports(mut text: String, backends: &[GrpcBackend]) -> String {
    for (index, backend) in backends.iter().enumerate() {
        text = text.replace(
            &format!("port: {}}}", 50051 + index),
            &format!("port: {}}}", backend.port()),
        );
    }
    text
}

async fn four_backends() -> Vec<GrpcBackend> {
    backends_named(&["a1", "a2", "a3", "b1"]).await
}

/// Who servers named `names`, on 127.0.0.1.
pub async fn backends_named(names: &[&str]) -> Vec<GrpcBackend> {
    let mut backends = Vec::new();
    for name in names {
        backends.push(GrpcBackend::start(name).await);
    }
    backends
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpcio_acks_everything_and_subscribes_to_its_listener() {
    let backends = four_backends().await;
    let switchyard = Switchyard::start(&grpc_config(&backends)).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "grpcio-client",
        "us-central1",
        "us-central1-a",
    );
    let mut client = GrpcClient::start(Library::Grpcio, "xds:///who.example:8080", &node).await;
    let calls = client.calls(100, None, 0).await;
    assert!(calls.errors.is_empty(), "{:?}", calls.errors);
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_js_xds_acks_everything() {
    let backends = four_backends().await;
    let switchyard = Switchyard::start(&grpc_config(&backends)).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "grpc-js-client",
        "us-central1",
        "us-central1-a",
    );
    let mut client = GrpcClient::start(Library::GrpcJs, "xds:///who.example:8080", &node).await;
    let calls = client.calls(100, None, 0).await;
    assert!(calls.errors.is_empty(), "{:?}", calls.errors);
    switchyard.wait_for_acks("grpc-js-client").await;
    let status = switchyard.client("grpc-js-client").await.unwrap();
    for kind in [
        "Listener",
        "RouteConfiguration",
        "Cluster",
        "ClusterLoadAssignment",
    ] {
        assert!(
            status["types"][kind]["last_nack"].is_null(),
            "{kind}: {status}"
        );
    }
}

/// A ring-hash service for proxyless clients with the given affinity lines.
fn hashed_config(backends: &[GrpcBackend], affinity: &str) -> String {
    grpc_config(backends).replace(
        "  localityLbPolicy: ROUND_ROBIN\n",
        &format!("  localityLbPolicy: RING_HASH\n{affinity}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ring_hash_keeps_one_header_value_on_one_backend() {
    let backends = four_backends().await;
    let affinity = "  sessionAffinity: HEADER_FIELD\n  consistentHash: {httpHeaderName: x-user}\n";
    let switchyard = Switchyard::start(&hashed_config(&backends, affinity)).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "hashing",
        "us-central1",
        "us-central1-a",
    );
    for library in [Library::Grpcio, Library::GrpcJs] {
        let mut client = GrpcClient::start(library, "xds:///who.example:8080", &node).await;
        let same = client.calls(200, Some("x-user=alice"), 0).await;
        assert!(same.errors.is_empty(), "{library:?}: {:?}", same.errors);
        assert_eq!(
            same.tally.len(),
            1,
            "{library:?}: one header value, one backend: {:?}",
            same.tally
        );
        let spread = client.calls(200, Some("x-user=*"), 0).await;
        assert!(
            spread.tally.len() >= 3,
            "{library:?}: different values spread: {:?}",
            spread.tally
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_ip_affinity_keeps_a_channel_on_one_backend() {
    let backends = four_backends().await;
    let switchyard =
        Switchyard::start(&hashed_config(&backends, "  sessionAffinity: CLIENT_IP\n")).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "channel",
        "us-central1",
        "us-central1-a",
    );
    let mut landed = std::collections::BTreeSet::new();
    // Each channel hashes on its own id: with four backends, all of twelve channels on one
    // backend is a 1-in-4 million chance (six gave 1 in 1,024, and one CI run met it). Stops
    // once two backends are seen.
    for _ in 0..12 {
        if landed.len() >= 2 {
            break;
        }
        let mut client = GrpcClient::start(Library::Grpcio, "xds:///who.example:8080", &node).await;
        let calls = client.calls(50, None, 0).await;
        assert!(calls.errors.is_empty(), "{:?}", calls.errors);
        assert_eq!(
            calls.tally.len(),
            1,
            "one channel, one backend: {:?}",
            calls.tally
        );
        landed.extend(calls.tally.into_keys());
    }
    assert!(
        landed.len() >= 2,
        "different channels land on different backends: {landed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_stream_duration_ends_slow_calls() {
    // The clients' own deadline is 20 s, so an 8 s call that ends early was ended by the 3 s
    // maxStreamDuration. (grpcio 1.85 starts the deadline up to about a second early: with
    // a 1 s duration every call fails at once, with 2 s a first call sometimes does; 3 s
    // leaves it margin.)
    let backends = four_backends().await;
    let config = grpc_config(&backends).replace(
        "  maxStreamDuration:\n    seconds: 5\n",
        "  maxStreamDuration:\n    seconds: 3\n",
    );
    let switchyard = Switchyard::start(&config).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "deadline",
        "us-central1",
        "us-central1-a",
    );
    for library in [Library::Grpcio, Library::GrpcJs] {
        let mut client = GrpcClient::start(library, "xds:///who.example:8080", &node).await;
        let quick = client.calls(5, None, 0).await;
        assert!(quick.errors.is_empty(), "{library:?}: {:?}", quick.errors);
        let slow = client.calls(3, None, 8000).await;
        // The client ends the call at the 3 s deadline (DEADLINE_EXCEEDED); or the backend,
        // which reads the same deadline from the call's grpc-timeout header, ends it first —
        // tonic answers an expired grpc-timeout with CANCELLED. Either way the call was cut
        // at 3 s rather than the client's 20 s, and none got through.
        let cut: usize = ["DEADLINE_EXCEEDED", "CANCELLED"]
            .iter()
            .filter_map(|status| slow.errors.get(*status))
            .sum();
        assert_eq!(
            (cut, slow.tally.len()),
            (3, 0),
            "{library:?}: {:?} {:?}",
            slow.tally,
            slow.errors
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_config_grpc_rejects_is_a_nack_and_validate_for_proxyless_stops_it_first() {
    let backends = four_backends().await;
    let maglev = grpc_config(&backends)
        .replace(
            "  localityLbPolicy: ROUND_ROBIN\n",
            "  localityLbPolicy: MAGLEV\n",
        )
        .replace("  validateForProxyless: true\n", "");
    let switchyard = Switchyard::start(&maglev).await;
    let status = get_json(&switchyard.admin_url("/config_status"))
        .await
        .unwrap();
    let warning = status["diagnostics"]["items"][0]["message"]
        .as_str()
        .unwrap();
    assert_eq!(warning, "MAGLEV is not supported by proxyless gRPC clients, which reject the cluster; use ROUND_ROBIN or RING_HASH (served anyway, since targetGrpcProxies[who-proxy] does not set validateForProxyless)");

    let node = bootstrap(
        switchyard.running.xds_addr,
        "nacking",
        "us-central1",
        "us-central1-a",
    );
    let mut client = GrpcClient::start(Library::Grpcio, "xds:///who.example:8080", &node).await;
    client.connect().await;
    let nack = wait_for("grpcio to NACK the MAGLEV cluster", || async {
        let client = switchyard.client("nacking").await?;
        let nack = client["types"]["Cluster"]["last_nack"].clone();
        (!nack.is_null()).then_some(nack)
    })
    .await;
    let detail = nack["error_detail"].as_str().unwrap().to_string();
    assert!(
        detail.to_lowercase().contains("lb") || detail.contains("MAGLEV"),
        "gRPC's own error text: {detail}"
    );
    let sends = |c: &serde_json::Value| c["types"]["Cluster"]["responses_sent"].as_u64().unwrap();
    let before = sends(&switchyard.client("nacking").await.unwrap());
    // An endpoint edit goes out; the rejected cluster is not sent again.
    switchyard
        .edit(&maglev.replace(
            &format!("port: {}}}", backends[3].port()),
            &format!("port: {}}}", backends[2].port()),
        ))
        .await;
    wait_for("the endpoint edit to reach the client", || async {
        let c = switchyard.client("nacking").await?;
        (c["snapshot_version"] == switchyard.serving_version().as_str()).then_some(())
    })
    .await;
    assert_eq!(
        sends(&switchyard.client("nacking").await.unwrap()),
        before,
        "the NACKed cluster was re-sent"
    );
    drop(client);

    // With validateForProxyless the same config never reaches a client.
    let validated = grpc_config(&backends).replace(
        "  localityLbPolicy: ROUND_ROBIN\n",
        "  localityLbPolicy: MAGLEV\n",
    );
    let loaded = switchyard::config::load_str(&validated, "grpc.yaml");
    let errors: Vec<String> = loaded
        .diagnostics
        .errors()
        .map(ToString::to_string)
        .collect();
    let line = validated
        .lines()
        .position(|l| l.contains("localityLbPolicy: MAGLEV"))
        .unwrap()
        + 1;
    assert_eq!(
        errors,
        vec![format!("error: grpc.yaml:{line}: backendServices[who].localityLbPolicy: MAGLEV is not supported by proxyless gRPC clients, which reject the cluster; use ROUND_ROBIN or RING_HASH (targetGrpcProxies[who-proxy] has validateForProxyless)")]
    );
    switchyard.edit(&validated).await;
    let status = get_json(&switchyard.admin_url("/config_status"))
        .await
        .unwrap();
    assert_eq!(
        status["last_load_accepted"], false,
        "rejected before it is served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn envoy_and_grpcio_share_a_server_each_with_its_own_view() {
    let backends = four_backends().await;
    let listen = free_port();
    let with_envoy_frontend = format!(
        "{}targetHttpProxies:\n- {{name: who-http, urlMap: who-map}}\n---\nforwardingRules:\n- {{name: who-envoy, IPAddress: 127.0.0.1, portRange: '{listen}', target: who-http}}\n",
        grpc_config(&backends)
    )
    .replace("  protocol: GRPC\n", "  protocol: GRPC\n  loadBalancingScheme: INTERNAL_SELF_MANAGED\n")
    .replace("  loadBalancingScheme: INTERNAL_SELF_MANAGED\n  protocol: GRPC\n  loadBalancingScheme: INTERNAL_SELF_MANAGED\n", "  loadBalancingScheme: INTERNAL_SELF_MANAGED\n  protocol: GRPC\n");
    let switchyard = Switchyard::start(&with_envoy_frontend).await;
    let _envoy = Envoy::start(switchyard.running.xds_addr, "envoy-side").await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "grpc-side",
        "us-central1",
        "us-central1-a",
    );
    let mut client = GrpcClient::start(Library::Grpcio, "xds:///who.example", &node).await;
    let calls = client.calls(100, None, 0).await;
    assert!(
        calls.errors.is_empty() && calls.tally.values().sum::<usize>() == 100,
        "{:?} {:?}",
        calls.tally,
        calls.errors
    );
    switchyard.wait_for_acks("envoy-side").await;
    switchyard.wait_for_acks("grpc-side").await;

    let envoy = switchyard.client("envoy-side").await.unwrap();
    let grpc = switchyard.client("grpc-side").await.unwrap();
    assert_ne!(
        envoy["types"]["Listener"]["sent_version"], grpc["types"]["Listener"]["sent_version"],
        "different listener views"
    );
    assert_eq!(envoy["types"]["Listener"]["wildcard"], true);
    assert_eq!(
        grpc["types"]["Listener"]["subscribed"],
        serde_json::json!(["who.example"])
    );
    assert_eq!(
        envoy["types"]["Cluster"]["sent_version"], grpc["types"]["Cluster"]["sent_version"],
        "clusters are shared"
    );
    let dump = get_json(&switchyard.admin_url("/config_dump"))
        .await
        .unwrap();
    let envoy_listeners: Vec<&str> = dump["resources"]["Listener"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    let grpc_listeners: Vec<&str> = dump["proxyless"]["Listener"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(envoy_listeners, vec!["who-envoy"]);
    assert_eq!(grpc_listeners, vec!["who.example", "who.example:8080"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_reports_from_grpc_clients_are_shown() {
    let backends = four_backends().await;
    let switchyard = Switchyard::start(&grpc_config(&backends)).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "reporting",
        "us-central1",
        "us-central1-a",
    );
    let mut client = GrpcClient::start(Library::Grpcio, "xds:///who.example:8080", &node).await;
    let calls = client.calls(400, None, 0).await;
    assert!(calls.errors.is_empty(), "{:?}", calls.errors);
    let rows = wait_for("grpcio to report the load of its 400 calls", || async {
        let reports = get_json(&switchyard.admin_url("/load_reports")).await?;
        let rows = reports["load_reports"].as_array()?.clone();
        let total: u64 = rows
            .iter()
            .filter(|r| r["node_id"] == "reporting")
            .map(|r| r["successful_requests"].as_u64().unwrap())
            .sum();
        (total >= 400).then_some(rows)
    })
    .await;
    let localities: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r["locality"].as_str().unwrap())
        .collect();
    assert!(
        localities.contains("us-central1/us-central1-a/who-a")
            && localities.contains("us-central1/us-central1-b/who-b"),
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r["cluster"] == "who"), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generated_cookie_affinity_keeps_a_grpcio_session_on_its_backend() {
    let backends = four_backends().await;
    let config = grpc_config(&backends).replace(
        "  localityLbPolicy: ROUND_ROBIN\n",
        "  localityLbPolicy: ROUND_ROBIN\n  sessionAffinity: GENERATED_COOKIE\n  affinityCookieTtlSec: 600\n",
    );
    let switchyard = Switchyard::start(&config).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "sessions",
        "us-central1",
        "us-central1-a",
    );
    let mut client = GrpcClient::start(Library::Grpcio, "xds:///who.example:8080", &node).await;
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..8 {
        let session = client.session(25).await;
        let set_cookie = session["set_cookie"]
            .as_str()
            .expect("the first call sets the session cookie");
        assert!(
            set_cookie.starts_with("GCILB=") && set_cookie.contains("Max-Age=600"),
            "{set_cookie}"
        );
        let first = session["first"].as_str().unwrap().to_string();
        assert_eq!(
            session["tally"],
            serde_json::json!({ first.clone(): 25 }),
            "calls carrying the cookie stay on {first}: {session}"
        );
        firsts.insert(first);
    }
    assert!(
        firsts.len() >= 2,
        "new sessions are balanced across backends: {firsts:?}"
    );
    let plain = client.calls(100, None, 0).await;
    assert!(
        plain.tally.len() >= 3,
        "calls without the cookie are balanced: {:?}",
        plain.tally
    );

    // grpc-js has no stateful sessions: the filter is optional, so it still accepts and serves.
    let js_node = bootstrap(
        switchyard.running.xds_addr,
        "sessions-js",
        "us-central1",
        "us-central1-a",
    );
    let mut js = GrpcClient::start(Library::GrpcJs, "xds:///who.example:8080", &js_node).await;
    let served = js.calls(20, None, 0).await;
    assert!(
        served.errors.is_empty() && served.tally.values().sum::<usize>() == 20,
        "{:?} {:?}",
        served.tally,
        served.errors
    );
    let status = switchyard.client("sessions-js").await.unwrap();
    assert!(
        status["types"]["Listener"]["last_nack"].is_null(),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn header_matches_route_calls_to_another_service() {
    let backends = four_backends().await;
    let canary = GrpcBackend::start("canary").await;
    let config = format!(
        "{}---\nnetworkEndpointGroups:\n- {{name: canary-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {}}}]}}\nbackendServices:\n- {{name: canary, protocol: GRPC, loadBalancingScheme: INTERNAL_SELF_MANAGED, backends: [{{group: canary-neg, balancingMode: RATE, maxRate: 10}}]}}\n",
        grpc_config(&backends).replace(
            "  - name: who\n    defaultService: global/backendServices/who\n",
            "  - name: who\n    defaultService: global/backendServices/who\n    routeRules:\n    - priority: 1\n      matchRules:\n      - prefixMatch: /\n        headerMatches: [{headerName: x-canary, exactMatch: 'yes'}]\n      service: canary\n",
        ),
        canary.port()
    );
    let switchyard = Switchyard::start(&config).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "header-routing",
        "us-central1",
        "us-central1-a",
    );
    for library in [Library::Grpcio, Library::GrpcJs] {
        let mut client = GrpcClient::start(library, "xds:///who.example:8080", &node).await;
        let flagged = client.calls(50, Some("x-canary=yes"), 0).await;
        assert_eq!(
            flagged.tally.get("canary"),
            Some(&50),
            "{library:?}: {:?} {:?}",
            flagged.tally,
            flagged.errors
        );
        let plain = client.calls(50, Some("x-canary=no"), 0).await;
        assert!(
            plain.errors.is_empty() && !plain.tally.contains_key("canary"),
            "{library:?}: {:?}",
            plain.tally
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpcio_retries_as_the_route_says_and_takes_injected_faults() {
    let backends = four_backends().await;
    let calls = Arc::new(AtomicU64::new(0));
    let flaky = GrpcBackend::start_flaky("flaky", calls.clone()).await;
    let rules = |action: &str| {
        format!(
            "  - name: who\n    defaultService: global/backendServices/who\n    routeRules:\n    - priority: 1\n      matchRules:\n      - prefixMatch: /\n        headerMatches: [{{headerName: x-route, exactMatch: flaky}}]\n      service: flaky\n      routeAction:\n{action}"
        )
    };
    let with_action = |action: &str| {
        format!(
            "{}---\nnetworkEndpointGroups:\n- {{name: flaky-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {}}}]}}\nbackendServices:\n- {{name: flaky, protocol: GRPC, loadBalancingScheme: INTERNAL_SELF_MANAGED, backends: [{{group: flaky-neg, balancingMode: RATE, maxRate: 10}}]}}\n",
            grpc_config(&backends).replace(
                "  - name: who\n    defaultService: global/backendServices/who\n",
                &rules(action),
            ),
            flaky.port()
        )
    };
    // Every other call to `flaky` fails with UNAVAILABLE; one retry on `unavailable` hides it.
    let retrying =
        with_action("        retryPolicy: {retryConditions: [unavailable], numRetries: 1}\n");
    let switchyard = Switchyard::start(&retrying).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "retries",
        "us-central1",
        "us-central1-a",
    );
    let mut client = GrpcClient::start(Library::Grpcio, "xds:///who.example:8080", &node).await;
    let retried = client.calls(20, Some("x-route=flaky"), 0).await;
    assert_eq!(
        (retried.tally.get("flaky"), retried.errors.len()),
        (Some(&20), 0),
        "{:?} {:?}",
        retried.tally,
        retried.errors
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        40,
        "each call failed once and was retried once"
    );

    // An abort for every call: grpcio fails them itself (HTTP 503 → UNAVAILABLE) and the
    // backend sees none; calls on other routes are untouched.
    switchyard
        .edit(&with_action(
            "        faultInjectionPolicy: {abort: {httpStatus: 503, percentage: 100}}\n",
        ))
        .await;
    let before = calls.load(Ordering::SeqCst);
    // Polls until the edit reached the client (a condition, not a timing).
    let mut aborted = client.calls(10, Some("x-route=flaky"), 0).await;
    let started = std::time::Instant::now();
    while aborted.errors.get("UNAVAILABLE") != Some(&10) {
        assert!(
            started.elapsed() < PATIENCE,
            "grpcio never applied the fault: {:?} {:?}",
            aborted.tally,
            aborted.errors
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        aborted = client.calls(10, Some("x-route=flaky"), 0).await;
    }
    assert!(aborted.tally.is_empty());
    let untouched = client.calls(10, Some("x-route=other"), 0).await;
    assert!(untouched.errors.is_empty(), "{:?}", untouched.errors);
    // Calls made while the edit was arriving may still have reached the backend; none after.
    let settled = calls.load(Ordering::SeqCst);
    let more = client.calls(10, Some("x-route=flaky"), 0).await;
    assert_eq!(more.errors.get("UNAVAILABLE"), Some(&10));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        settled,
        "aborted calls never reach the backend (was {before} before the edit)"
    );
}
