//! Centralized health checking end to end: Switchyard probes real loopback backends and real
//! Envoy and grpcio clients follow the EDS health it publishes. An endpoint whose check fails
//! (HTTP 500, grpc.health.v1 NOT_SERVING, a closed TCP port) leaves rotation after the
//! unhealthy threshold's failed probes and comes back after it recovers, with no listener,
//! route or cluster re-sent; a dual-stack endpoint stays in while either family answers; a
//! region with no healthy endpoint hands its traffic to the next; none healthy anywhere gives a
//! fast 503 / UNAVAILABLE; and an endpoint shared by three services is probed once per round.
//! Checks run every second here (the cloud's minimum) to keep the tests short.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

use crate::common::checked::Checked;
use crate::common::grpc::{bootstrap, GrpcBackend, GrpcClient, Library};
use crate::common::*;

/// A port that is free on every one of `ips` (a fixed health-check port shared by "VMs").
async fn port_free_on(ips: &[&str]) -> u16 {
    loop {
        let port = free_port();
        let mut all = true;
        for ip in ips {
            let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
            all &= tokio::net::TcpListener::bind(addr).await.is_ok();
        }
        if all {
            return port;
        }
    }
}

/// examples/health-checks.yaml with the test's ports, probing every second.
fn example_config(c1: &Checked, c2: &Checked, e1: &Checked, listen: u16) -> String {
    std::fs::read_to_string(repo_root().join("examples/health-checks.yaml"))
        .unwrap()
        .replace("checkIntervalSec: 2", "checkIntervalSec: 1")
        .replace("port: 8081}", &format!("port: {}}}", c1.addr.port()))
        .replace("port: 8082}", &format!("port: {}}}", c2.addr.port()))
        .replace("port: 8083}", &format!("port: {}}}", e1.addr.port()))
        .replace("portRange: \"10000\"", &format!("portRange: \"{listen}\""))
}

/// The endpoints of `service` in /health: address → (state, the JSON entry).
async fn health(switchyard: &Switchyard, service: &str) -> BTreeMap<String, (String, Value)> {
    let answer = get_json(&switchyard.admin_url(&format!("/health?service={service}")))
        .await
        .unwrap_or_default();
    answer["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|endpoint| {
            (
                endpoint["address"].as_str().unwrap_or("").to_string(),
                (
                    endpoint["state"].as_str().unwrap_or("").to_string(),
                    endpoint.clone(),
                ),
            )
        })
        .collect()
}

/// Waits until /health gives `address` of `service` the `state`.
async fn wait_for_health(switchyard: &Switchyard, service: &str, address: SocketAddr, state: &str) {
    wait_for(
        &format!("/health to call {service} {address} {state}"),
        || async {
            let endpoints = health(switchyard, service).await;
            (endpoints.get(&address.to_string())?.0 == state).then_some(())
        },
    )
    .await;
}

/// Waits until Envoy's /clusters gives `address` of `cluster` the EDS health `status`.
async fn wait_for_envoy_host(envoy: &Envoy, cluster: &str, address: SocketAddr, status: &str) {
    wait_for(
        &format!("Envoy to see {address} of {cluster} as {status}"),
        || async {
            // /clusters writes an IPv6 address without brackets.
            let host_name = format!("{}:{}", address.ip(), address.port());
            let hosts = envoy.hosts(cluster).await;
            hosts
                .iter()
                .any(|(host, health)| *host == host_name && health == status)
                .then_some(())
        },
    )
    .await;
}

/// xDS responses sent so far, by type, from Switchyard's /metrics.
async fn responses_by_type(switchyard: &Switchyard) -> BTreeMap<String, u64> {
    let text = get_text(&switchyard.admin_url("/metrics"))
        .await
        .unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("switchyard_xds_responses_total{type=\"")?;
            let (kind, count) = rest.split_once("\"} ")?;
            Some((kind.to_string(), count.trim().parse().ok()?))
        })
        .collect()
}

/// Asserts that between `before` and `after` only endpoints were sent.
fn assert_only_endpoints_sent(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) {
    for kind in ["Cluster", "Listener", "RouteConfiguration", "Secret"] {
        assert_eq!(
            before.get(kind),
            after.get(kind),
            "no {kind} may be re-sent for a health change: before {before:?}, after {after:?}"
        );
    }
    assert!(
        after.get("ClusterLoadAssignment") > before.get("ClusterLoadAssignment"),
        "endpoints are re-sent: before {before:?}, after {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn envoy_stops_sending_to_an_endpoint_failing_its_http_check_and_takes_it_back() {
    let (c1, c2, e1) = (
        Checked::start("c1").await,
        Checked::start("c2").await,
        Checked::start("e1").await,
    );
    let listen = free_port();
    let switchyard = Switchyard::start(&example_config(&c1, &c2, &e1, listen)).await;
    let envoy = Envoy::start(switchyard.running.xds_addr, "health-envoy").await;
    switchyard.wait_for_acks("health-envoy").await;
    // Envoy shows an endpoint of UNKNOWN health (before its first probe) as HEALTHY too:
    // wait for the checker's own verdict.
    for backend in [&c1, &c2] {
        wait_for_health(&switchyard, "web", backend.addr, "HEALTHY").await;
        wait_for_envoy_host(&envoy, "web", backend.addr, "HEALTHY").await;
    }
    let url = format!("http://127.0.0.1:{listen}/");
    let seen = tally(&url, 100).await;
    assert!(
        seen.contains_key("c1") && seen.contains_key("c2") && seen.len() == 2,
        "both central endpoints serve, the other region none: {seen:?}"
    );
    let before = responses_by_type(&switchyard).await;

    c1.set_healthy(false);
    wait_for_envoy_host(&envoy, "web", c1.addr, "UNHEALTHY").await;
    let failed_probes = c1.failed();
    // unhealthyThreshold 2: out after the second failed probe (one more may be under way).
    assert!(
        (2..=3).contains(&failed_probes),
        "taken out after {failed_probes} failed probes: {:?}",
        health(&switchyard, "web").await
    );
    let seen = tally(&url, 100).await;
    assert_eq!(seen, BTreeMap::from([("c2".to_string(), 100)]));

    let passed_before = c1.passed();
    c1.set_healthy(true);
    wait_for_envoy_host(&envoy, "web", c1.addr, "HEALTHY").await;
    let passed_probes = c1.passed() - passed_before;
    assert!(
        (2..=3).contains(&passed_probes),
        "back after {passed_probes} passing probes (healthyThreshold 2)"
    );
    let seen = tally(&url, 100).await;
    assert!(seen.get("c1").is_some_and(|n| *n > 20), "{seen:?}");
    assert_only_endpoints_sent(&before, &responses_by_type(&switchyard).await);

    // /health tells what happened.
    let endpoints = health(&switchyard, "web").await;
    let family = &endpoints[&c1.addr.to_string()].1["families"][0];
    assert_eq!(family["state"], "HEALTHY");
    assert_eq!(family["last_result"], "pass");
    assert_eq!(
        family["last_error"],
        "answered `HTTP/1.1 500 Internal Server Error`, expected 200"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpcio_stops_calling_an_endpoint_failing_its_http_check_and_takes_it_back() {
    // Two "VMs" on their own loopback addresses: gRPC on any port, the health check on one
    // fixed port of each (as the cloud probes a fixed port of every endpoint).
    let ips = ["127.0.0.21", "127.0.0.22"];
    let check_port = port_free_on(&ips).await;
    let mut servers = Vec::new();
    let mut checks = Vec::new();
    for (index, ip) in ips.iter().enumerate() {
        let name = format!("g{}", index + 1);
        let ip: IpAddr = ip.parse().unwrap();
        servers.push(GrpcBackend::start_on(&name, SocketAddr::new(ip, 0)).await);
        checks.push(Checked::start_on(&name, SocketAddr::new(ip, check_port)).await);
    }
    let config = format!(
        "healthChecks:\n- {{name: hc, type: HTTP, checkIntervalSec: 1, timeoutSec: 1, httpHealthCheck: {{port: {check_port}, requestPath: /healthz}}}}\n\
         networkEndpointGroups:\n- name: who\n  zone: us-central1-a\n  endpoints:\n  - {{ipAddress: 127.0.0.21, port: {}}}\n  - {{ipAddress: 127.0.0.22, port: {}}}\n\
         backendServices:\n- name: who\n  loadBalancingScheme: INTERNAL_SELF_MANAGED\n  protocol: GRPC\n  healthChecks: [hc]\n  backends:\n  - {{group: who, balancingMode: RATE, maxRatePerEndpoint: 10}}\n\
         urlMaps:\n- name: who-map\n  defaultService: who\n  hostRules: [{{hosts: [who.example], pathMatcher: who}}]\n  pathMatchers: [{{name: who, defaultService: who}}]\n\
         targetGrpcProxies:\n- {{name: who-proxy, urlMap: who-map}}\n\
         forwardingRules:\n- {{name: who-grpc, loadBalancingScheme: INTERNAL_SELF_MANAGED, IPAddress: 0.0.0.0, portRange: '8080', target: who-proxy}}\n",
        servers[0].port(),
        servers[1].port()
    );
    let switchyard = Switchyard::start(&config).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "health-grpcio",
        "us-central1",
        "us-central1-a",
    );
    let mut client = GrpcClient::start(Library::Grpcio, "xds:///who.example:8080", &node).await;
    let g1 = servers[0].addr;
    wait_for_health(&switchyard, "who", g1, "HEALTHY").await;
    let calls = client.calls(100, None, 0).await;
    assert!(calls.errors.is_empty(), "{:?}", calls.errors);
    assert!(
        calls.tally.contains_key("g1") && calls.tally.contains_key("g2"),
        "{:?}",
        calls.tally
    );
    let before = responses_by_type(&switchyard).await;

    checks[0].set_healthy(false);
    wait_for_health(&switchyard, "who", g1, "UNHEALTHY").await;
    let only_g2 = wait_for_only(&mut client, "g2").await;
    assert!(only_g2.errors.is_empty(), "{:?}", only_g2.errors);

    checks[0].set_healthy(true);
    wait_for_health(&switchyard, "who", g1, "HEALTHY").await;
    wait_for_some(&mut client, "g1").await;
    assert_only_endpoints_sent(&before, &responses_by_type(&switchyard).await);
}

/// Waits until a batch of calls all reach `name`, then makes 100 more and returns them
/// (every one must reach `name`).
async fn wait_for_only(client: &mut GrpcClient, name: &str) -> crate::common::grpc::Calls {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let calls = client.calls(20, None, 0).await;
        if calls.tally.keys().all(|k| k == name) && calls.errors.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "calls never reached only {name}: {:?}",
            calls.tally
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let calls = client.calls(100, None, 0).await;
    assert_eq!(
        calls.tally,
        BTreeMap::from([(name.to_string(), 100)]),
        "every call goes to {name}"
    );
    calls
}

/// Waits until a batch of calls reaches `name` again.
async fn wait_for_some(client: &mut GrpcClient, name: &str) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let calls = client.calls(20, None, 0).await;
        if calls.tally.contains_key(name) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "calls never reached {name} again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A proxyless config: service `who` (GRPC, INTERNAL_SELF_MANAGED) over `groups` (YAML of
/// networkEndpointGroups items), with `check` (YAML of one healthChecks item, named hc).
fn proxyless_config(check: &str, groups: &str, backends: &str) -> String {
    format!(
        "healthChecks:\n- {check}\n\
         networkEndpointGroups:\n{groups}\
         backendServices:\n- name: who\n  loadBalancingScheme: INTERNAL_SELF_MANAGED\n  protocol: GRPC\n  healthChecks: [hc]\n  backends:\n{backends}\
         urlMaps:\n- name: who-map\n  defaultService: who\n  hostRules: [{{hosts: [who.example], pathMatcher: who}}]\n  pathMatchers: [{{name: who, defaultService: who}}]\n\
         targetGrpcProxies:\n- {{name: who-proxy, urlMap: who-map}}\n\
         forwardingRules:\n- {{name: who-grpc, loadBalancingScheme: INTERNAL_SELF_MANAGED, IPAddress: 0.0.0.0, portRange: '8080', target: who-proxy}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_health_not_serving_takes_an_endpoint_out() {
    let (a, b) = (GrpcBackend::start("a").await, GrpcBackend::start("b").await);
    let config = proxyless_config(
        "{name: hc, type: GRPC, checkIntervalSec: 1, timeoutSec: 1, grpcHealthCheck: {portSpecification: USE_SERVING_PORT, grpcServiceName: switchyard.test.Who}}",
        &format!(
            "- name: who\n  zone: us-central1-a\n  endpoints:\n  - {{ipAddress: 127.0.0.1, port: {}}}\n  - {{ipAddress: 127.0.0.1, port: {}}}\n",
            a.port(),
            b.port()
        ),
        "  - {group: who, balancingMode: RATE, maxRatePerEndpoint: 10}\n",
    );
    let switchyard = Switchyard::start(&config).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "health-grpc-check",
        "us-central1",
        "us-central1-a",
    );
    let mut client = GrpcClient::start(Library::Grpcio, "xds:///who.example:8080", &node).await;
    wait_for_health(&switchyard, "who", a.addr, "HEALTHY").await;
    wait_for_health(&switchyard, "who", b.addr, "HEALTHY").await;
    wait_for_some(&mut client, "a").await;
    a.set_serving(false);
    wait_for_health(&switchyard, "who", a.addr, "UNHEALTHY").await;
    wait_for_only(&mut client, "b").await;
    let endpoints = health(&switchyard, "who").await;
    assert_eq!(
        endpoints[&a.addr.to_string()].1["families"][0]["last_error"],
        "status NOT_SERVING"
    );
    a.set_serving(true);
    wait_for_some(&mut client, "a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_closed_tcp_check_port_takes_an_endpoint_out() {
    // The endpoints serve HTTP on their own ports; the TCP check probes a fixed port of each
    // "VM". Closing the check port alone takes the endpoint out though it still serves.
    let ips = ["127.0.0.31", "127.0.0.32"];
    let check_port = port_free_on(&ips).await;
    let mut web = Vec::new();
    let mut listeners = Vec::new();
    for (index, ip) in ips.iter().enumerate() {
        let ip: IpAddr = ip.parse().unwrap();
        web.push(Checked::start_on(&format!("t{}", index + 1), SocketAddr::new(ip, 0)).await);
        listeners.push(Some(
            TcpListenerTask::start(SocketAddr::new(ip, check_port)).await,
        ));
    }
    let listen = free_port();
    let config = format!(
        "healthChecks:\n- {{name: hc, type: TCP, checkIntervalSec: 1, timeoutSec: 1, tcpHealthCheck: {{port: {check_port}}}}}\n\
         networkEndpointGroups:\n- name: web\n  zone: us-central1-a\n  endpoints:\n  - {{ipAddress: 127.0.0.31, port: {}}}\n  - {{ipAddress: 127.0.0.32, port: {}}}\n\
         backendServices:\n- name: web\n  protocol: HTTP\n  healthChecks: [hc]\n  backends:\n  - {{group: web, balancingMode: RATE, maxRatePerEndpoint: 10}}\n\
         urlMaps:\n- {{name: web-map, defaultService: web}}\n\
         targetHttpProxies:\n- {{name: web-proxy, urlMap: web-map}}\n\
         forwardingRules:\n- {{name: web-http, IPAddress: 127.0.0.1, portRange: '{listen}', target: web-proxy}}\n",
        web[0].addr.port(),
        web[1].addr.port()
    );
    let switchyard = Switchyard::start(&config).await;
    let envoy = Envoy::start(switchyard.running.xds_addr, "health-tcp").await;
    switchyard.wait_for_acks("health-tcp").await;
    for backend in &web {
        wait_for_health(&switchyard, "web", backend.addr, "HEALTHY").await;
    }
    let url = format!("http://127.0.0.1:{listen}/");
    let seen = tally(&url, 60).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    listeners[0].take();
    wait_for_envoy_host(&envoy, "web", web[0].addr, "UNHEALTHY").await;
    assert_eq!(
        tally(&url, 60).await,
        BTreeMap::from([("t2".to_string(), 60)])
    );
    let endpoints = health(&switchyard, "web").await;
    let error = endpoints[&web[0].addr.to_string()].1["families"][0]["last_error"].clone();
    assert!(
        error.as_str().is_some_and(|e| e.starts_with("connect: ")),
        "{error}"
    );
}

/// A TCP listener accepting (and dropping) connections until dropped.
struct TcpListenerTask(tokio::task::JoinHandle<()>);

impl TcpListenerTask {
    async fn start(addr: SocketAddr) -> TcpListenerTask {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        TcpListenerTask(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        }))
    }
}

impl Drop for TcpListenerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prefer_ipv6_endpoint_stays_healthy_while_either_family_answers() {
    assert!(
        has_ipv6_loopback(),
        "this test needs the IPv6 loopback ::1, which this machine lacks"
    );
    let mut dual = DualStackBackend::start("d1").await;
    let other = Checked::start("v4-only").await;
    let listen = free_port();
    let config = format!(
        "healthChecks:\n- {{name: hc, type: HTTP, checkIntervalSec: 1, timeoutSec: 1, httpHealthCheck: {{portSpecification: USE_SERVING_PORT, requestPath: /healthz}}}}\n\
         networkEndpointGroups:\n- name: web\n  zone: us-central1-a\n  endpoints:\n  - 'instance=vm-d1,ip=127.0.0.1,ipv6=::1,port={}'\n  - {{ipAddress: 127.0.0.1, port: {}}}\n\
         backendServices:\n- name: web\n  protocol: HTTP\n  ipAddressSelectionPolicy: PREFER_IPV6\n  healthChecks: [hc]\n  backends:\n  - {{group: web, balancingMode: RATE, maxRatePerEndpoint: 10}}\n\
         urlMaps:\n- {{name: web-map, defaultService: web}}\n\
         targetHttpProxies:\n- {{name: web-proxy, urlMap: web-map}}\n\
         forwardingRules:\n- {{name: web-http, IPAddress: 127.0.0.1, portRange: '{listen}', target: web-proxy}}\n",
        dual.port,
        other.addr.port()
    );
    let switchyard = Switchyard::start(&config).await;
    let envoy = Envoy::start(switchyard.running.xds_addr, "health-dual").await;
    switchyard.wait_for_acks("health-dual").await;
    let endpoint: SocketAddr = format!("[::1]:{}", dual.port).parse().unwrap();
    wait_for_health(&switchyard, "web", endpoint, "HEALTHY").await;
    let families = |endpoints: &BTreeMap<String, (String, Value)>| -> Vec<(String, String)> {
        endpoints[&endpoint.to_string()].1["families"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["family"].as_str().unwrap().to_string(),
                    f["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let url = format!("http://127.0.0.1:{listen}/");
    assert!(tally(&url, 40).await.contains_key("d1 ipv6"));

    dual.close_ipv6().await;
    wait_for("the IPv6 side to be unhealthy", || async {
        let endpoints = health(&switchyard, "web").await;
        (families(&endpoints)
            == [
                ("IPv6".to_string(), "UNHEALTHY".to_string()),
                ("IPv4".to_string(), "HEALTHY".to_string()),
            ])
        .then_some(())
    })
    .await;
    let endpoints = health(&switchyard, "web").await;
    assert_eq!(
        endpoints[&endpoint.to_string()].0,
        "HEALTHY",
        "IPv4 still answers"
    );
    let seen = tally(&url, 40).await;
    assert!(
        seen.contains_key("d1 ipv4") && !seen.keys().any(|k| k.starts_with('<')),
        "served over IPv4, nothing lost: {seen:?}"
    );

    drop(dual);
    wait_for_health(&switchyard, "web", endpoint, "UNHEALTHY").await;
    wait_for_envoy_host(&envoy, "web", endpoint, "UNHEALTHY").await;
    assert_eq!(
        tally(&url, 40).await,
        BTreeMap::from([("v4-only".to_string(), 40)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_region_without_healthy_endpoints_fails_over_and_none_anywhere_fails_fast() {
    fails_over_and_fails_fast_through(Through::Envoy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sidecar_follows_health_the_same_way() {
    fails_over_and_fails_fast_through(Through::Sidecar).await;
}

/// Waits until `proxy` gives `address` of `cluster` the EDS health `status`.
async fn wait_for_proxy_host(proxy: &Proxy, cluster: &str, address: SocketAddr, status: &str) {
    let host_name = format!("{}:{}", address.ip(), address.port());
    wait_for(
        &format!("the proxy to see {address} as {status}"),
        || async {
            let hosts = proxy.hosts(cluster).await;
            hosts
                .iter()
                .any(|(host, health)| *host == host_name && health == status)
                .then_some(())
        },
    )
    .await;
}

async fn fails_over_and_fails_fast_through(through: Through) {
    let (c1, c2, e1) = (
        Checked::start("c1").await,
        Checked::start("c2").await,
        Checked::start("e1").await,
    );
    let listen = free_port();
    let config = example_config(&c1, &c2, &e1, listen);
    let (switchyard, proxy) = serve_through(through, "health-failover", &config).await;
    for backend in [&c1, &c2, &e1] {
        wait_for_health(&switchyard, "web", backend.addr, "HEALTHY").await;
    }
    let url = format!("http://127.0.0.1:{listen}/");
    assert!(
        !tally(&url, 50).await.contains_key("e1"),
        "us-central1 first"
    );
    c1.set_healthy(false);
    c2.set_healthy(false);
    wait_for_proxy_host(&proxy, "web", c1.addr, "UNHEALTHY").await;
    wait_for_proxy_host(&proxy, "web", c2.addr, "UNHEALTHY").await;
    assert_eq!(
        tally(&url, 50).await,
        BTreeMap::from([("e1".to_string(), 50)]),
        "the next region takes everything"
    );
    // `explain --admin` shows each endpoint's health next to its capacity.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["explain", switchyard.config.to_str().unwrap(), "web"])
        .args(["--client-locality", "us-central1/us-central1-a", "--admin"])
        .arg(switchyard.running.admin_addr.to_string())
        .output()
        .unwrap();
    let explained = String::from_utf8(output.stdout).unwrap();
    assert!(
        explained.contains(&format!(
            "    vm-c1: {} over IPv4 (IPV4_ONLY); health UNHEALTHY (IPv4 UNHEALTHY: answered `HTTP/1.1 500 Internal Server Error`, expected 200)\n",
            c1.addr
        )) && explained.contains(&format!(
            "    vm-e1: {} over IPv4 (IPV4_ONLY); health HEALTHY (IPv4 HEALTHY)\n",
            e1.addr
        )) && explained.contains("health check web-check (HTTP on the serving port, every 1s, timeout 1s)"),
        "{explained}"
    );
    e1.set_healthy(false);
    wait_for_proxy_host(&proxy, "web", e1.addr, "UNHEALTHY").await;
    // No panic mode: the proxy answers 503 at once instead of trying unhealthy endpoints.
    let response = http().get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.text().await.unwrap(), "no healthy upstream");
    assert_eq!(
        tally(&url, 20).await,
        BTreeMap::from([("<503>".to_string(), 20)])
    );
    c2.set_healthy(true);
    wait_for_proxy_host(&proxy, "web", c2.addr, "HEALTHY").await;
    assert_eq!(
        tally(&url, 20).await,
        BTreeMap::from([("c2".to_string(), 20)]),
        "back to the client's region"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpcio_fails_over_by_region_and_gets_unavailable_with_nothing_healthy() {
    let (central, east) = (
        GrpcBackend::start("central").await,
        GrpcBackend::start("east").await,
    );
    let config = proxyless_config(
        "{name: hc, type: GRPC, checkIntervalSec: 1, timeoutSec: 1, grpcHealthCheck: {portSpecification: USE_SERVING_PORT}}",
        &format!(
            "- name: who-central\n  zone: us-central1-a\n  endpoints: [{{ipAddress: 127.0.0.1, port: {}}}]\n- name: who-east\n  zone: us-east1-b\n  endpoints: [{{ipAddress: 127.0.0.1, port: {}}}]\n",
            central.port(),
            east.port()
        ),
        "  - {group: who-central, balancingMode: RATE, maxRatePerEndpoint: 10}\n  - {group: who-east, balancingMode: RATE, maxRatePerEndpoint: 10}\n",
    );
    let switchyard = Switchyard::start(&config).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "health-grpc-failover",
        "us-central1",
        "us-central1-a",
    );
    let mut client = GrpcClient::start(Library::Grpcio, "xds:///who.example:8080", &node).await;
    wait_for_health(&switchyard, "who", central.addr, "HEALTHY").await;
    wait_for_health(&switchyard, "who", east.addr, "HEALTHY").await;
    wait_for_only(&mut client, "central").await;
    central.set_serving(false);
    wait_for_only(&mut client, "east").await;
    east.set_serving(false);
    wait_for_health(&switchyard, "who", east.addr, "UNHEALTHY").await;
    let deadline = std::time::Instant::now() + PATIENCE;
    while client.calls_fail_fast(5).await.errors.get("UNAVAILABLE") != Some(&5) {
        assert!(
            std::time::Instant::now() < deadline,
            "calls never failed with UNAVAILABLE"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let calls = client.calls_fail_fast(20).await;
    assert_eq!(
        calls.errors,
        BTreeMap::from([("UNAVAILABLE".to_string(), 20)])
    );
    assert!(calls.tally.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endpoint_shared_by_three_services_is_probed_once_per_round() {
    let shared = Checked::start("shared").await;
    let port = shared.addr.port();
    // Two checks of one definition under different names, used by three services.
    let check = "type: HTTP, checkIntervalSec: 1, timeoutSec: 1, httpHealthCheck: {portSpecification: USE_SERVING_PORT, requestPath: /healthz}";
    let mut config = format!(
        "healthChecks:\n- {{name: hc-a, {check}}}\n- {{name: hc-b, {check}}}\n\
         networkEndpointGroups:\n- name: neg\n  zone: us-central1-a\n  endpoints: [{{ipAddress: 127.0.0.1, port: {port}}}]\n\
         backendServices:\n"
    );
    for (service, check) in [("one", "hc-a"), ("two", "hc-a"), ("three", "hc-b")] {
        config.push_str(&format!(
            "- name: {service}\n  protocol: HTTP\n  healthChecks: [{check}]\n  backends: [{{group: neg, balancingMode: RATE, maxRatePerEndpoint: 10}}]\n"
        ));
    }
    let switchyard = Switchyard::start(&config).await;
    let endpoint = shared.addr;
    wait_for("five probe rounds", || async {
        let endpoints = health(&switchyard, "one").await;
        let probes = endpoints.get(&endpoint.to_string())?.1["families"][0]["probes"].as_u64()?;
        (probes >= 5).then_some(())
    })
    .await;
    let counted_by_switchyard = |endpoints: &BTreeMap<String, (String, Value)>| {
        endpoints[&endpoint.to_string()].1["families"][0]["probes"]
            .as_u64()
            .unwrap()
    };
    let mut seen = Vec::new();
    for service in ["one", "two", "three"] {
        let endpoints = health(&switchyard, service).await;
        let family = &endpoints[&endpoint.to_string()].1["families"][0];
        assert_eq!(family["checks"], serde_json::json!(["hc-a", "hc-b"]));
        seen.push(counted_by_switchyard(&endpoints));
    }
    let at_backend = shared.probes();
    let probes = counted_by_switchyard(&health(&switchyard, "one").await);
    // Each service reports the one target's count, and the backend saw that many probes, not
    // three times as many (one more may be under way while reading).
    assert!(
        seen.iter().all(|n| *n + 1 >= seen[0] && *n <= seen[0] + 1),
        "{seen:?}"
    );
    assert!(
        at_backend >= seen[2] && at_backend <= probes + 1,
        "backend saw {at_backend} probes, Switchyard made {probes}"
    );
    let metrics = get_text(&switchyard.admin_url("/metrics")).await.unwrap();
    assert!(
        metrics.contains("switchyard_health_targets 1\n"),
        "{metrics}"
    );
}
