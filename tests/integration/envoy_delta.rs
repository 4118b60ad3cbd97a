//! Real clients over delta and state-of-the-world xDS from one server: an Envoy on delta ADS
//! routes and follows edits (including a changed cluster, which Envoy keeps warming until its
//! endpoints arrive); a SotW Envoy, a delta Envoy and a grpcio client are served at once; and
//! an Envoy handed from one replica to another (same files, content-hash versions) rebuilds
//! nothing.

use std::net::SocketAddr;

use crate::common::grpc::{bootstrap, GrpcBackend, GrpcClient, Library};
use crate::common::*;
use switchyard::serve::{self, ServeOptions};

/// An HTTP load balancer on 127.0.0.1:`listen`: `/` goes to `web` on `web_port`, `/api` to
/// `api`; `policy` is web's localityLbPolicy (a cluster-level setting).
fn http_config(listen: u16, web_port: u16, api_port: u16, policy: &str) -> String {
    format!(
        r#"
networkEndpointGroups:
- name: web-neg
  zone: us-central1-a
  endpoints: [{{ipAddress: 127.0.0.1, port: {web_port}}}]
- name: api-neg
  zone: us-central1-a
  endpoints: [{{ipAddress: 127.0.0.1, port: {api_port}}}]
backendServices:
- name: web
  localityLbPolicy: {policy}
  backends: [{{group: web-neg, balancingMode: RATE, maxRate: 100}}]
- name: api
  backends: [{{group: api-neg, balancingMode: RATE, maxRate: 100}}]
urlMaps:
- name: lb
  defaultService: web
  hostRules: [{{hosts: ['*'], pathMatcher: m}}]
  pathMatchers:
  - name: m
    defaultService: web
    pathRules: [{{paths: [/api, /api/*], service: api}}]
targetHttpProxies:
- {{name: proxy, urlMap: lb}}
forwardingRules:
- {{name: fr, IPAddress: 127.0.0.1, portRange: '{listen}', target: proxy}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delta_envoy_routes_follows_edits_and_warms_changed_clusters() {
    let (one, two, api) = (
        Backend::start("one").await,
        Backend::start("two").await,
        Backend::start("api").await,
    );
    let listen = free_port();
    let switchyard =
        Switchyard::start(&http_config(listen, one.port(), api.port(), "ROUND_ROBIN")).await;
    let envoy = Envoy::start_delta(switchyard.running.xds_addr, "delta-envoy").await;
    switchyard.wait_for_acks("delta-envoy").await;
    let url = |path: &str| format!("http://127.0.0.1:{listen}{path}");
    wait_for_body(&url("/"), "one").await;
    wait_for_body(&url("/api/x"), "api").await;
    let status = switchyard.client("delta-envoy").await.unwrap();
    assert_eq!(status["protocol"], "delta");
    assert_eq!(status["kind"], "envoy");

    // An endpoint change.
    switchyard
        .edit(&http_config(listen, two.port(), api.port(), "ROUND_ROBIN"))
        .await;
    wait_for_body(&url("/"), "two").await;
    // A cluster change: Envoy warms the new cluster until its (unchanged) endpoints come.
    switchyard
        .edit(&http_config(
            listen,
            two.port(),
            api.port(),
            "LEAST_REQUEST",
        ))
        .await;
    switchyard.wait_for_acks("delta-envoy").await;
    wait_for("the changed cluster to finish warming", || async {
        (envoy.stat("cluster_manager.warming_clusters").await == Some(0)
            && envoy.stat("cluster_manager.cluster_modified").await >= Some(1))
        .then_some(())
    })
    .await;
    let seen = tally(&url("/"), 50).await;
    assert_eq!(seen.get("two"), Some(&50), "{seen:?}");
    // A removal: /api goes to web once api's route and cluster are gone.
    let without_api = http_config(listen, two.port(), api.port(), "LEAST_REQUEST")
        .replace(
            "    pathRules: [{paths: [/api, /api/*], service: api}]\n",
            "",
        )
        .replace(
            "- name: api\n  backends: [{group: api-neg, balancingMode: RATE, maxRate: 100}]\n",
            "",
        );
    switchyard.edit(&without_api).await;
    wait_for_body(&url("/api/x"), "two").await;
    wait_for("Envoy to drop the api cluster", || async {
        envoy.hosts("api").await.is_empty().then_some(())
    })
    .await;
    for stat in [
        "cluster_manager.cds.update_rejected",
        "listener_manager.lds.update_rejected",
    ] {
        assert_eq!(envoy.stat(stat).await, Some(0), "{stat}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_server_serves_a_sotw_envoy_a_delta_envoy_and_grpcio_at_once() {
    let (web, moved) = (Backend::start("web").await, Backend::start("moved").await);
    let who = GrpcBackend::start("who").await;
    let listen = free_port();
    let grpc_part = format!(
        r#"
---
networkEndpointGroups:
- name: who-neg
  zone: us-central1-a
  endpoints: [{{ipAddress: 127.0.0.1, port: {}}}]
backendServices:
- name: who
  loadBalancingScheme: INTERNAL_SELF_MANAGED
  protocol: GRPC
  backends: [{{group: who-neg, balancingMode: RATE, maxRate: 100}}]
urlMaps:
- name: who-map
  defaultService: who
  hostRules: [{{hosts: [who.example], pathMatcher: who}}]
  pathMatchers: [{{name: who, defaultService: who}}]
targetGrpcProxies:
- {{name: who-proxy, urlMap: who-map}}
forwardingRules:
- {{name: who-grpc, loadBalancingScheme: INTERNAL_SELF_MANAGED, IPAddress: 0.0.0.0, portRange: '8080', target: who-proxy}}
"#,
        who.port()
    );
    let config =
        |web_port: u16| http_config(listen, web_port, web_port, "ROUND_ROBIN") + &grpc_part;
    let switchyard = Switchyard::start(&config(web.port())).await;
    let xds = switchyard.running.xds_addr;
    let _sotw = Envoy::start(xds, "sotw-envoy").await;
    let _delta = Envoy::start_delta(xds, "delta-envoy").await;
    let node = bootstrap(xds, "grpcio", "us-central1", "us-central1-a");
    let mut grpc = GrpcClient::start(Library::Grpcio, "xds:///who.example:8080", &node).await;
    for node in ["sotw-envoy", "delta-envoy"] {
        switchyard.wait_for_acks(node).await;
    }
    wait_for_body(&format!("http://127.0.0.1:{listen}/"), "web").await;
    let calls = grpc.calls(50, None, 0).await;
    assert_eq!(calls.tally.get("who"), Some(&50), "{:?}", calls.errors);

    switchyard.edit(&config(moved.port())).await;
    for node in ["sotw-envoy", "delta-envoy"] {
        switchyard.wait_for_acks(node).await;
    }
    wait_for_body(&format!("http://127.0.0.1:{listen}/"), "moved").await;
    let calls = grpc.calls(50, None, 0).await;
    assert_eq!(calls.tally.get("who"), Some(&50), "{:?}", calls.errors);
    let protocols: Vec<(String, String)> =
        get_json(&switchyard.admin_url("/clients")).await.unwrap()["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["kind"].as_str().unwrap().to_string(),
                    c["protocol"].as_str().unwrap().to_string(),
                )
            })
            .collect();
    for expected in [("envoy", "sotw"), ("envoy", "delta"), ("grpc", "sotw")] {
        assert!(
            protocols
                .iter()
                .any(|(k, p)| (k.as_str(), p.as_str()) == expected),
            "{protocols:?}"
        );
    }
    let metrics = get_text(&switchyard.admin_url("/metrics")).await.unwrap();
    for line in [
        r#"switchyard_xds_clients{kind="envoy",protocol="delta"} 1"#,
        r#"switchyard_xds_clients{kind="envoy",protocol="sotw"} 1"#,
        r#"switchyard_xds_clients{kind="grpc",protocol="sotw"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

/// Two `serve` processes (in this process) on the same file: replicas.
async fn replicas(config: &str) -> (tempfile::TempDir, [serve::Running; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.yaml");
    std::fs::write(&file, config).unwrap();
    let start = || {
        serve::start(ServeOptions::new(
            file.clone(),
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        ))
    };
    let first = start().await.unwrap();
    let second = start().await.unwrap();
    assert_eq!(
        first.status.read().unwrap().serving_version,
        second.status.read().unwrap().serving_version,
        "replicas serve identical versions"
    );
    (dir, [first, second])
}

/// Whether `node_id` is connected to the replica with admin address `admin`, every type
/// ACKed.
async fn synced_on(admin: SocketAddr, node_id: &str) -> bool {
    let Some(clients) = get_json(&format!("http://{admin}/clients")).await else {
        return false;
    };
    clients["clients"].as_array().is_some_and(|all| {
        all.iter().any(|c| {
            c["node_id"] == node_id
                && c["types"]
                    .as_object()
                    .is_some_and(|t| t.len() == 4 && t.values().all(|s| s["status"] == "SYNCED"))
        })
    })
}

async fn replicas_hand_over_an_envoy_without_rebuilding(bootstrap: &str, node_id: &str) {
    let web = Backend::start("web").await;
    let listen = free_port();
    let (_dir, [first, second]) =
        replicas(&http_config(listen, web.port(), web.port(), "ROUND_ROBIN")).await;
    let envoy = Envoy::start_with(
        bootstrap,
        &[first.xds_addr, second.xds_addr],
        node_id,
        "us-central1",
        "us-central1-a",
    )
    .await;
    let (connected, other) = wait_for("the Envoy to sync with a replica", || async {
        if synced_on(first.admin_addr, node_id).await {
            Some((0, 1))
        } else if synced_on(second.admin_addr, node_id).await {
            Some((1, 0))
        } else {
            None
        }
    })
    .await;
    wait_for_body(&format!("http://127.0.0.1:{listen}/"), "web").await;
    let watched = [
        "cluster_manager.cluster_added",
        "cluster_manager.cluster_modified",
        "cluster_manager.cluster_removed",
        "listener_manager.listener_added",
        "listener_manager.listener_modified",
        "listener_manager.listener_removed",
    ];
    let mut before = Vec::new();
    for stat in watched {
        before.push(envoy.stat(stat).await);
    }
    let mut servers = [Some(first), Some(second)];
    let stopping = servers[connected].take().unwrap();
    stopping.shutdown().await;
    let taking_over = servers[other].as_ref().unwrap();
    let admin = taking_over.admin_addr;
    wait_for("the Envoy to sync with the other replica", || async {
        synced_on(admin, node_id).await.then_some(())
    })
    .await;
    for (stat, was) in watched.iter().zip(before) {
        assert_eq!(envoy.stat(stat).await, was, "{stat} after the handover");
    }
    let seen = tally(&format!("http://127.0.0.1:{listen}/"), 20).await;
    assert_eq!(seen.get("web"), Some(&20), "{seen:?}");
    if bootstrap.contains("delta") {
        let metrics = get_text(&format!("http://{admin}/metrics")).await.unwrap();
        let sent: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("switchyard_xds_resources_sent_total{"))
            .collect();
        assert!(
            sent.iter().all(|l| l.ends_with(" 0")),
            "the second replica sent nothing the Envoy listed in initial_resource_versions: {sent:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_hand_over_a_sotw_envoy_without_rebuilding() {
    replicas_hand_over_an_envoy_without_rebuilding("envoy-bootstrap.yaml", "replicated-sotw").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_hand_over_a_delta_envoy_without_rebuilding() {
    replicas_hand_over_an_envoy_without_rebuilding(
        "envoy-bootstrap-delta.yaml",
        "replicated-delta",
    )
    .await;
}
