//! Half a second written as `{nanos: 500000000}` is half a second where it is applied: a real
//! Envoy holds a 0.500s route timeout and answers 504 for a backend that never answers (so
//! does the sidecar), and grpcio holds a 0.500s stream limit and cuts slow calls. (Every field, value by value:
//! durations.rs.)

use std::net::SocketAddr;

use serde_json::Value;

use crate::common::grpc::{bootstrap, GrpcBackend, GrpcClient, Library};
use crate::common::*;

/// A backend that accepts connections and reads requests but never answers, so only a
/// timeout ends a request to it.
struct SilentBackend {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl SilentBackend {
    async fn start() -> SilentBackend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut buffer = [0u8; 4096];
                    while matches!(stream.read(&mut buffer).await, Ok(read) if read > 0) {}
                });
            }
        });
        SilentBackend { addr, task }
    }
}

impl Drop for SilentBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `/silent` goes to the silent backend with a route timeout of half a second; everything
/// else to `quick`, whose answer says the listener is up.
fn envoy_config(listen: u16, quick: u16, silent: u16) -> String {
    format!(
        r#"networkEndpointGroups:
- {{name: quick-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {quick}}}]}}
- {{name: silent-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {silent}}}]}}
backendServices:
- {{name: quick, backends: [{{group: zones/us-central1-a/networkEndpointGroups/quick-neg, balancingMode: RATE, maxRate: 100}}]}}
- {{name: silent, timeoutSec: 30, backends: [{{group: zones/us-central1-a/networkEndpointGroups/silent-neg, balancingMode: RATE, maxRate: 100}}]}}
urlMaps:
- name: lb
  defaultService: global/backendServices/quick
  hostRules: [{{hosts: ['*'], pathMatcher: m}}]
  pathMatchers:
  - name: m
    defaultService: global/backendServices/quick
    routeRules:
    - priority: 1
      matchRules: [{{prefixMatch: /silent}}]
      service: global/backendServices/silent
      routeAction:
        timeout: {{nanos: 500000000}}
targetHttpProxies: [{{name: p, urlMap: global/urlMaps/lb}}]
forwardingRules: [{{name: f, IPAddress: 127.0.0.1, portRange: '{listen}', target: global/targetHttpProxies/p}}]
"#
    )
}

/// The routes of Envoy's dynamic route configurations, from its admin /config_dump.
async fn envoy_routes(admin: &str) -> Vec<Value> {
    let dump = get_json(&format!(
        "{admin}/config_dump?resource=dynamic_route_configs"
    ))
    .await
    .unwrap();
    dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|config| config["route_config"]["virtual_hosts"].as_array().unwrap())
        .flat_map(|host| host["routes"].as_array().unwrap().clone())
        .collect()
}

/// Serves the config through `through` and checks that a request to the silent backend
/// ends in the proxy's 504 for a route timeout; returns the proxy, still running.
async fn silent_request_times_out(through: Through, node: &str) -> (Switchyard, Proxy) {
    let quick = Backend::start("quick").await;
    let silent = SilentBackend::start().await;
    let listen = free_port();
    let config = envoy_config(listen, quick.port(), silent.addr.port());
    let (switchyard, proxy) = serve_through(through, node, &config).await;
    wait_for_body(&format!("http://127.0.0.1:{listen}/"), "quick").await;

    // The client gives up after 10 s (common::http): a route without a timeout (what 0s
    // means to Envoy and the sidecar) would leave this request hanging that long.
    let response = http()
        .get(format!("http://127.0.0.1:{listen}/silent"))
        .send()
        .await
        .unwrap_or_else(|error| panic!("{through:?} answers before the client gives up: {error}"));
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(
        (status, body.trim_end()),
        (504, "upstream request timeout"),
        "{through:?}: the route timeout ended the request"
    );
    (switchyard, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_times_a_half_second_route_timeout_out_at_half_a_second() {
    let (_switchyard, proxy) = silent_request_times_out(Through::Envoy, "durations-envoy").await;
    let Proxy::Envoy(envoy) = proxy else {
        unreachable!()
    };
    let routes = envoy_routes(&envoy.admin).await;
    let silent_route = routes
        .iter()
        .find(|route| route["match"]["prefix"] == "/silent")
        .expect("Envoy holds the /silent route");
    assert_eq!(
        silent_route["route"]["timeout"], "0.500s",
        "{{nanos: 500000000}} reaches Envoy as half a second: {silent_route}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_times_a_half_second_route_timeout_out_too() {
    silent_request_times_out(Through::Sidecar, "durations-sidecar").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpcio_holds_a_half_second_stream_limit_and_cuts_slow_calls() {
    let mut backends = Vec::new();
    for name in ["a1", "a2", "a3", "b1"] {
        backends.push(GrpcBackend::start(name).await);
    }
    let example = std::fs::read_to_string(repo_root().join("examples/grpc.yaml")).unwrap();
    let limited = "  maxStreamDuration:\n    nanos: 500000000\n";
    let config = crate::proxyless_grpc::with_ports(
        example.replace("  maxStreamDuration:\n    seconds: 5\n", limited),
        &backends,
    );
    assert!(
        config.contains(limited),
        "the example writes maxStreamDuration"
    );
    let switchyard = Switchyard::start(&config).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "durations-grpc",
        "us-central1",
        "us-central1-a",
    );
    let mut client = GrpcClient::start(Library::Grpcio, "xds:///who.example:8080", &node).await;

    // Calls the backend holds for 8 s, under the client's own 20 s deadline: only the
    // stream limit can end them, by the client (DEADLINE_EXCEEDED) or by the backend that
    // reads the same deadline from grpc-timeout (CANCELLED). A limit of 0 (no limit) would
    // let all three through.
    let slow = client.calls(3, None, 8000).await;
    let cut: usize = ["DEADLINE_EXCEEDED", "CANCELLED"]
        .iter()
        .filter_map(|status| slow.errors.get(*status))
        .sum();
    assert_eq!(
        (cut, slow.tally.len()),
        (3, 0),
        "{:?} {:?}",
        slow.tally,
        slow.errors
    );

    let routes = client.routes().await;
    let limits: Vec<&Value> = routes
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|config| config["virtualHosts"].as_array().unwrap())
        .flat_map(|host| host["routes"].as_array().unwrap())
        .map(|route| &route["route"]["maxStreamDuration"]["maxStreamDuration"])
        .collect();
    assert!(
        !limits.is_empty() && limits.iter().all(|limit| *limit == "0.500s"),
        "grpcio holds every route with half a second: {routes}"
    );
}
