//! Backend-service fields that were accepted and ignored (or refused with a misleading "did
//! you mean"), served through a real Envoy: maxStreamDuration ends a stream that runs too
//! long, logConfig on a TCP service writes the TCP proxy's access log, customRequestHeaders
//! and customResponseHeaders reach the backend and the client with the cloud's variables
//! filled in (over HTTP and HTTPS), every circuitBreakers field reaches the cluster and a
//! service at its limits turns requests away with 503, localityLbPolicies picks the policy, a
//! regional instance group serves each instance in its own zone, and CLIENT_IP and
//! GENERATED_COOKIE affinity stick on the classic EXTERNAL scheme with the default locality
//! policy.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::common::echo::EchoBackend;
use crate::common::*;

/// An HTTP backend whose `/sleep/<ms>` answers after that many milliseconds.
pub(crate) struct SlowBackend {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl SlowBackend {
    pub async fn start() -> SlowBackend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().route(
            "/sleep/{ms}",
            axum::routing::get(
                |axum::extract::Path(ms): axum::extract::Path<u64>| async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    "slept"
                },
            ),
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        SlowBackend { port, task }
    }
}

impl Drop for SlowBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A config of one service `svc` (whose extra fields are `service_fields`, YAML lines
/// indented by two spaces) on a NEG of `port`, behind an HTTP proxy on `listen`.
fn one_service(listen: u16, port: u16, service_fields: &str) -> String {
    format!(
        r#"
networkEndpointGroups:
- {{name: neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {port}}}]}}
backendServices:
- name: svc
  backends: [{{group: zones/us-central1-a/networkEndpointGroups/neg, balancingMode: RATE, maxRate: 1000}}]
{service_fields}
urlMaps:
- {{name: lb, defaultService: svc}}
targetHttpProxies:
- {{name: p, urlMap: lb}}
forwardingRules:
- {{name: f, IPAddress: 127.0.0.1, portRange: "{listen}", target: p}}
"#
    )
}

/// Switchyard serving `config` and an Envoy that has acknowledged it.
async fn serve(config: &str, node: &str) -> (Switchyard, Envoy) {
    let switchyard = Switchyard::start(config).await;
    let envoy = Envoy::start(switchyard.running.xds_addr, node).await;
    switchyard.wait_for_acks(node).await;
    (switchyard, envoy)
}

async fn envoy_dump(envoy: &Envoy, query: &str) -> Value {
    get_json(&format!("{}/config_dump{query}", envoy.admin))
        .await
        .unwrap()
}

/// The dynamic cluster `name` from Envoy's own /config_dump.
async fn envoy_cluster(envoy: &Envoy, name: &str) -> Value {
    let dump = envoy_dump(envoy, "?resource=dynamic_active_clusters").await;
    dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["cluster"].clone())
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("Envoy has no cluster {name}: {dump}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_stream_duration_ends_an_envoy_stream_that_runs_too_long() {
    let backend = SlowBackend::start().await;
    let listen = free_port();
    // One second allowed; the slow request takes five, well inside timeoutSec (30).
    let config = one_service(listen, backend.port, "  maxStreamDuration: {seconds: 1}");
    let (_switchyard, envoy) = serve(&config, "stream-envoy").await;
    let url = |ms: u64| format!("http://127.0.0.1:{listen}/sleep/{ms}");
    wait_for_body(&url(0), "slept").await;
    let status = http().get(url(5000)).send().await.unwrap().status();
    assert_eq!(status.as_u16(), 504, "the stream is ended, not answered");
    // A quick request still passes: the limit is on duration, not on every request.
    wait_for_body(&url(10), "slept").await;
    let routes = envoy_dump(&envoy, "?resource=dynamic_route_configs").await;
    let limit = &routes["configs"][0]["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
        ["max_stream_duration"]["max_stream_duration"];
    assert_eq!(limit, "1s", "{routes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_config_on_a_tcp_service_writes_the_tcp_proxy_access_log() {
    let logged = TcpBackend::start("logged").await;
    let quiet = TcpBackend::start("quiet").await;
    let (logged_listen, quiet_listen) = (free_port(), free_port());
    let config = format!(
        r#"
networkEndpointGroups:
- {{name: logged-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {logged}}}]}}
- {{name: quiet-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {quiet}}}]}}
backendServices:
- name: logged
  protocol: TCP
  logConfig: {{enable: true, sampleRate: 1.0}}
  backends: [{{group: zones/us-central1-a/networkEndpointGroups/logged-neg, balancingMode: CONNECTION, maxConnections: 100}}]
- name: quiet
  protocol: TCP
  backends: [{{group: zones/us-central1-a/networkEndpointGroups/quiet-neg, balancingMode: CONNECTION, maxConnections: 100}}]
targetTcpProxies:
- {{name: logged-proxy, service: logged}}
- {{name: quiet-proxy, service: quiet}}
forwardingRules:
- {{name: logged-rule, IPAddress: 127.0.0.1, portRange: "{logged_listen}", target: logged-proxy}}
- {{name: quiet-rule, IPAddress: 127.0.0.1, portRange: "{quiet_listen}", target: quiet-proxy}}
"#,
        logged = logged.addr.port(),
        quiet = quiet.addr.port(),
    );
    let (_switchyard, envoy) = serve(&config, "tcp-log-envoy").await;
    let addr = |port: u16| format!("127.0.0.1:{port}");
    let first = wait_for("the TCP listeners to answer", || async {
        let seen = tally_tcp(&addr(logged_listen), 1).await;
        seen.contains_key("logged").then_some(seen)
    })
    .await;
    assert_eq!(first.len(), 1);
    let logged_seen = tally_tcp(&addr(logged_listen), 3).await;
    assert_eq!(logged_seen.get("logged"), Some(&3), "{logged_seen:?}");
    let quiet_seen = tally_tcp(&addr(quiet_listen), 3).await;
    assert_eq!(quiet_seen.get("quiet"), Some(&3), "{quiet_seen:?}");
    // One line per connection to the logged service, naming its backend; Envoy flushes on a
    // timer, so wait for the lines, never for a time.
    let upstream = format!("\"{}\"", logged.addr);
    wait_for(
        "four TCP access log lines for the logged service",
        || async {
            let lines = envoy
                .log()
                .lines()
                .filter(|l| l.contains(&upstream))
                .count();
            (lines >= 4).then_some(())
        },
    )
    .await;
    assert!(
        !envoy.log().contains(&quiet.addr.to_string()),
        "a TCP service without logConfig is not logged:\n{}",
        envoy.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_headers_carry_the_cloud_variables_to_the_backend_and_the_client() {
    let backend = EchoBackend::start().await;
    let listen = free_port();
    let config = one_service(
        listen,
        backend.port(),
        r#"  customRequestHeaders:
  - 'X-Client: {client_ip_address}:{client_port}'
  - 'X-Server: {server_ip_address}:{server_port}'
  - 'X-Protocol: {client_protocol}'
  - 'X-Encrypted: {client_encrypted}'
  - 'X-Literal: {{not a variable}} 100%'
  customResponseHeaders:
  - 'Access-Control-Allow-Origin: {origin_request_header}'
  - 'X-Served-By: switchyard'"#,
    );
    let (_switchyard, _envoy) = serve(&config, "headers-envoy").await;
    let url = format!("http://127.0.0.1:{listen}/who");
    wait_for("the route to answer", || async { get_json(&url).await }).await;
    let response = http()
        .get(&url)
        .header("origin", "https://app.example.test")
        .send()
        .await
        .unwrap();
    let answered = response.headers().clone();
    let body: Value = response.json().await.unwrap();
    let saw = &body["headers"];
    let client = saw["x-client"].as_str().unwrap_or_default();
    let (ip, port) = client.rsplit_once(':').unwrap_or(("", ""));
    assert_eq!(ip, "127.0.0.1", "{saw}");
    let port: u16 = port
        .parse()
        .unwrap_or_else(|_| panic!("client port in {saw}"));
    assert_ne!(port, listen, "the client's port, not the listener's");
    assert_eq!(saw["x-server"], format!("127.0.0.1:{listen}"));
    assert_eq!(saw["x-protocol"], "HTTP/1.1");
    assert_eq!(saw["x-encrypted"], "false");
    assert_eq!(saw["x-literal"], "{not a variable} 100%");
    assert_eq!(
        answered["access-control-allow-origin"],
        "https://app.example.test"
    );
    assert_eq!(answered["x-served-by"], "switchyard");
}

/// The JSON an echo backend answers to GET / over TLS to 127.0.0.1:`port` with SNI `host`,
/// trusting the PEM certificates in `ca_pem`.
async fn echo_over_tls(port: u16, host: &str, ca_pem: &str) -> Option<Value> {
    use http_body_util::{BodyExt, Empty};
    use tokio_rustls::rustls::{pki_types::CertificateDer, ClientConfig, RootCertStore};
    let mut roots = RootCertStore::empty();
    for block in x509_parser::pem::Pem::iter_from_buffer(ca_pem.as_bytes()).flatten() {
        roots.add(CertificateDer::from(block.contents)).ok()?;
    }
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let name = host.to_string().try_into().ok()?;
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .ok()?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .ok()?;
    tokio::spawn(connection);
    let request = hyper::Request::get("/")
        .header("host", host)
        .body(Empty::<hyper::body::Bytes>::new())
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    let body = response.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&body).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_headers_carry_the_tls_facts_of_an_https_connection() {
    let backend = EchoBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::common::pki::Authority::new(dir.path(), "headers-ca");
    let (cert, key) = ca.issue("www.example.test", &["www.example.test"], &[]);
    let ca_pem = std::fs::read_to_string(dir.path().join("headers-ca.pem")).unwrap();
    let listen = free_port();
    let config = format!(
        r#"
networkEndpointGroups:
- {{name: neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {port}}}]}}
backendServices:
- name: svc
  backends: [{{group: zones/us-central1-a/networkEndpointGroups/neg, balancingMode: RATE, maxRate: 1000}}]
  customRequestHeaders:
  - 'X-Encrypted: {{client_encrypted}}'
  - 'X-Sni: {{tls_sni_hostname}}'
  - 'X-Tls: {{tls_version}} {{tls_cipher_suite}}'
sslCertificates:
- {{name: www, certificateFile: '{cert}', privateKeyFile: '{key}'}}
urlMaps:
- {{name: lb, defaultService: svc}}
targetHttpsProxies:
- {{name: p, urlMap: lb, sslCertificates: [www]}}
forwardingRules:
- {{name: f, IPAddress: 127.0.0.1, portRange: "{listen}", target: p}}
"#,
        port = backend.port(),
        cert = cert.display(),
        key = key.display(),
    );
    let (_switchyard, _envoy) = serve(&config, "tls-headers-envoy").await;
    let body = wait_for("the HTTPS listener to answer", || {
        echo_over_tls(listen, "www.example.test", &ca_pem)
    })
    .await;
    let saw = &body["headers"];
    assert_eq!(saw["x-encrypted"], "true", "{saw}");
    assert_eq!(saw["x-sni"], "www.example.test", "{saw}");
    let tls = saw["x-tls"].as_str().unwrap_or_default();
    let (version, cipher) = tls.split_once(' ').unwrap_or_default();
    assert!(version.starts_with("TLSv1."), "{saw}");
    assert!(!cipher.is_empty() && cipher != "-", "{saw}");
}

#[test]
fn custom_headers_that_only_the_cloud_can_fill_are_refused_by_name() {
    let text = one_service(
        80,
        8080,
        "  customRequestHeaders: ['X-Geo: {client_city}', 'X-Rtt: {client_rtt_msec}', 'X-Typo: {client_ip_adress}', 'no colon']",
    );
    let found: Vec<String> = switchyard::config::load_str(&text, "lb.yaml")
        .diagnostics
        .items
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(
        found[0].contains("customRequestHeaders[0]: `{client_city}` is known only to the cloud"),
        "{}",
        found[0]
    );
    assert!(
        found[1]
            .contains("customRequestHeaders[1]: `{client_rtt_msec}` is known only to the cloud"),
        "{}",
        found[1]
    );
    assert!(found[2].contains("customRequestHeaders[2]: `{client_ip_adress}` is not a variable (did you mean {client_ip_address}?)"), "{}", found[2]);
    assert!(
        found[3].contains("customRequestHeaders[3]: `no colon` is not `Name: value`"),
        "{}",
        found[3]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_circuit_breaker_reaches_the_cluster_and_a_full_service_overflows() {
    let backend = SlowBackend::start().await;
    let (limits_listen, narrow_listen) = (free_port(), free_port());
    // `limits` gives every threshold a different value, so that a swapped one shows; `narrow`
    // takes one request at a time and queues one more.
    let config = format!(
        r#"
networkEndpointGroups:
- {{name: neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {port}}}]}}
backendServices:
- name: limits
  circuitBreakers: {{maxConnections: 7, maxPendingRequests: 3, maxRequests: 5, maxRequestsPerConnection: 11, maxRetries: 2}}
  backends: [{{group: zones/us-central1-a/networkEndpointGroups/neg, balancingMode: RATE, maxRate: 1000}}]
- name: narrow
  circuitBreakers: {{maxConnections: 1, maxPendingRequests: 1}}
  backends: [{{group: zones/us-central1-a/networkEndpointGroups/neg, balancingMode: RATE, maxRate: 1000}}]
urlMaps:
- {{name: limits-map, defaultService: limits}}
- {{name: narrow-map, defaultService: narrow}}
targetHttpProxies:
- {{name: limits-proxy, urlMap: limits-map}}
- {{name: narrow-proxy, urlMap: narrow-map}}
forwardingRules:
- {{name: limits-rule, IPAddress: 127.0.0.1, portRange: "{limits_listen}", target: limits-proxy}}
- {{name: narrow-rule, IPAddress: 127.0.0.1, portRange: "{narrow_listen}", target: narrow-proxy}}
"#,
        port = backend.port,
    );
    let (_switchyard, envoy) = serve(&config, "breakers-envoy").await;
    let url = |listen: u16, ms: u64| format!("http://127.0.0.1:{listen}/sleep/{ms}");
    wait_for_body(&url(limits_listen, 0), "slept").await;
    wait_for_body(&url(narrow_listen, 0), "slept").await;
    let cluster = envoy_cluster(&envoy, "limits").await;
    let thresholds = &cluster["circuit_breakers"]["thresholds"][0];
    assert_eq!(thresholds["max_connections"], 7, "{cluster}");
    assert_eq!(thresholds["max_pending_requests"], 3, "{cluster}");
    assert_eq!(thresholds["max_requests"], 5, "{cluster}");
    assert_eq!(thresholds["max_retries"], 2, "{cluster}");
    let options = &cluster["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(
        options["common_http_protocol_options"]["max_requests_per_connection"], 11,
        "{cluster}"
    );
    // Eight requests at once, each held for two seconds: one connection serves one, one
    // waits for it, and the rest are turned away at once with 503 and Envoy's overload mark
    // (without the limits all eight would pass).
    let client = http();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (client.clone(), url(narrow_listen, 2000));
            tokio::spawn(async move {
                let response = client.get(url).send().await.unwrap();
                let overloaded = response.headers().contains_key("x-envoy-overloaded");
                (response.status().as_u16(), overloaded)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    let passed = answers.iter().filter(|(status, _)| *status == 200).count();
    let overflowed = answers.iter().filter(|a| **a == (503, true)).count();
    assert!(passed >= 1, "{answers:?}");
    assert!(overflowed >= 4, "{answers:?}");
    assert_eq!(passed + overflowed, 8, "{answers:?}");
    let pending_overflow = envoy
        .stat("cluster.narrow.upstream_rq_pending_overflow")
        .await;
    assert_eq!(pending_overflow, Some(overflowed as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locality_lb_policies_pick_the_first_policy_and_its_affinity_sticks() {
    let (port, backends) = instances("vm", 1, 3).await;
    let listen = free_port();
    let config = format!(
        r#"
instanceGroups:
- name: ig
  zone: us-central1-a
  namedPorts: [{{name: http, port: {port}}}]
  instances: [{{name: vm1, ipAddress: 127.0.0.1}}, {{name: vm2, ipAddress: 127.0.0.2}}, {{name: vm3, ipAddress: 127.0.0.3}}]
backendServices:
- name: svc
  localityLbPolicies: [{{policy: {{name: RING_HASH}}}}, {{policy: {{name: ROUND_ROBIN}}}}]
  sessionAffinity: HEADER_FIELD
  consistentHash: {{httpHeaderName: x-user}}
  backends: [{{group: zones/us-central1-a/instanceGroups/ig, balancingMode: RATE, maxRatePerInstance: 100}}]
urlMaps:
- {{name: lb, defaultService: svc}}
targetHttpProxies:
- {{name: p, urlMap: lb}}
forwardingRules:
- {{name: f, IPAddress: 127.0.0.1, portRange: "{listen}", target: p}}
"#
    );
    let (_switchyard, envoy) = serve(&config, "policies-list-envoy").await;
    let url = format!("http://127.0.0.1:{listen}/");
    wait_for("every instance to be served", || async {
        (envoy.hosts("svc").await.len() == 3).then_some(())
    })
    .await;
    wait_for("the route to answer", || async { get_text(&url).await }).await;
    assert_eq!(envoy_cluster(&envoy, "svc").await["lb_policy"], "RING_HASH");
    // Each user sticks to one instance over 20 requests; 12 users land on more than one
    // instance (all on one would mean nothing is hashed: 3 × (1/3)^12 ≈ 6e-6).
    let mut chosen = BTreeSet::new();
    for user in 0..12 {
        let mut seen = BTreeSet::new();
        for _ in 0..20 {
            let body = http()
                .get(&url)
                .header("x-user", format!("user-{user}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            seen.insert(body);
        }
        assert_eq!(seen.len(), 1, "user-{user} moved: {seen:?}");
        chosen.extend(seen);
    }
    assert!(chosen.len() > 1, "every user on {chosen:?}");
    drop(backends);
}

#[test]
fn a_custom_locality_policy_is_refused_by_name() {
    let text = one_service(
        80,
        8080,
        "  localityLbPolicies: [{customPolicy: {name: org.example.MyLb, data: '{}'}}, {policy: {name: ROUND_ROBIN}}]",
    );
    let found: Vec<String> = switchyard::config::load_str(&text, "lb.yaml")
        .diagnostics
        .items
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("error: lb.yaml:7: backendServices[svc].localityLbPolicies[0].customPolicy: `customPolicy` names a policy implementation"),
        "{}",
        found[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regional_instance_group_serves_each_instance_in_its_zone() {
    let (port, _backends) = instances("zoned", 1, 2).await;
    let listen = free_port();
    let config = format!(
        r#"
instanceGroups:
- name: web-mig
  region: https://www.googleapis.com/compute/v1/projects/p/regions/us-central1
  namedPorts: [{{name: http, port: {port}}}]
  instances:
  - {{name: zoned-a, ipAddress: 127.0.0.1, zone: us-central1-a}}
  - {{name: zoned-b, ipAddress: 127.0.0.2, zone: zones/us-central1-b}}
backendServices:
- name: svc
  backends: [{{group: regions/us-central1/instanceGroups/web-mig, balancingMode: RATE, maxRatePerInstance: 100}}]
urlMaps:
- {{name: lb, defaultService: svc}}
targetHttpProxies:
- {{name: p, urlMap: lb}}
forwardingRules:
- {{name: f, IPAddress: 127.0.0.1, portRange: "{listen}", target: p}}
"#
    );
    let (_switchyard, envoy) = serve(&config, "regional-envoy").await;
    let url = format!("http://127.0.0.1:{listen}/");
    wait_for("both instances to be served", || async {
        (envoy.hosts("svc").await.len() == 2).then_some(())
    })
    .await;
    let dump = envoy_dump(&envoy, "?include_eds").await;
    let mut zones = BTreeSet::new();
    for config in dump["configs"].as_array().unwrap() {
        for endpoint in config["dynamic_endpoint_configs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for locality in endpoint["endpoint_config"]["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let zone = locality["locality"]["zone"].as_str().unwrap_or_default();
                for host in locality["lb_endpoints"].as_array().into_iter().flatten() {
                    let address = host["endpoint"]["address"]["socket_address"]["address"]
                        .as_str()
                        .unwrap_or_default();
                    zones.insert(format!("{address} in {zone}"));
                }
            }
        }
    }
    assert_eq!(
        zones,
        BTreeSet::from([
            "127.0.0.1 in us-central1-a".into(),
            "127.0.0.2 in us-central1-b".into()
        ])
    );
    // Equal capacity per zone (one instance each at 100/s): both take traffic.
    let seen = tally(&url, 40).await;
    assert_no_errors(&seen, "the regional group");
    assert!(
        seen.contains_key("zoned1") && seen.contains_key("zoned2"),
        "{seen:?}"
    );
}

/// GET `url` from the client address `from`, with `cookie` when given; the body and the
/// Set-Cookie header.
async fn get_from(url: &str, from: &str, cookie: Option<&str>) -> (String, Option<String>) {
    let client = reqwest::Client::builder()
        .local_address(from.parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut request = client.get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    (response.text().await.unwrap(), set_cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affinity_sticks_on_the_external_scheme_with_the_default_policy() {
    let (port, _backends) = instances("ext", 1, 3).await;
    let (by_ip_listen, by_cookie_listen) = (free_port(), free_port());
    let config = format!(
        r#"
instanceGroups:
- name: ig
  zone: us-central1-a
  namedPorts: [{{name: http, port: {port}}}]
  instances: [{{name: ext1, ipAddress: 127.0.0.1}}, {{name: ext2, ipAddress: 127.0.0.2}}, {{name: ext3, ipAddress: 127.0.0.3}}]
backendServices:
- name: by-ip
  loadBalancingScheme: EXTERNAL
  sessionAffinity: CLIENT_IP
  backends: [{{group: zones/us-central1-a/instanceGroups/ig, balancingMode: RATE, maxRatePerInstance: 100}}]
- name: by-cookie
  loadBalancingScheme: EXTERNAL
  sessionAffinity: GENERATED_COOKIE
  affinityCookieTtlSec: 600
  backends: [{{group: zones/us-central1-a/instanceGroups/ig, balancingMode: RATE, maxRatePerInstance: 100}}]
urlMaps:
- {{name: ip-map, defaultService: by-ip}}
- {{name: cookie-map, defaultService: by-cookie}}
targetHttpProxies:
- {{name: ip-proxy, urlMap: ip-map}}
- {{name: cookie-proxy, urlMap: cookie-map}}
forwardingRules:
- {{name: ip-rule, IPAddress: 127.0.0.1, portRange: "{by_ip_listen}", target: ip-proxy}}
- {{name: cookie-rule, IPAddress: 127.0.0.1, portRange: "{by_cookie_listen}", target: cookie-proxy}}
"#
    );
    let loaded = switchyard::config::load_str(&config, "lb.yaml");
    assert!(
        loaded.diagnostics.warnings().next().is_none(),
        "affinity on EXTERNAL needs no hashing policy: {}",
        loaded.diagnostics
    );
    let (_switchyard, envoy) = serve(&config, "external-affinity-envoy").await;
    for service in ["by-ip", "by-cookie"] {
        wait_for("every instance to be served", || async {
            (envoy.hosts(service).await.len() == 3).then_some(())
        })
        .await;
    }
    let ip_url = format!("http://127.0.0.1:{by_ip_listen}/");
    wait_for("the by-ip route to answer", || async {
        get_text(&ip_url).await
    })
    .await;
    // Each of three client addresses sticks to one instance over 20 requests (round robin
    // would give each all three).
    for from in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        let mut seen = BTreeSet::new();
        for _ in 0..20 {
            seen.insert(get_from(&ip_url, from, None).await.0);
        }
        assert_eq!(seen.len(), 1, "client {from} moved: {seen:?}");
    }
    // The first answer sets GCLB; 20 requests carrying it reach the instance that set it.
    let cookie_url = format!("http://127.0.0.1:{by_cookie_listen}/");
    let (first, set_cookie) = wait_for("the cookie route to answer with a cookie", || async {
        let answer = get_from(&cookie_url, "127.0.0.1", None).await;
        answer.1.is_some().then_some(answer)
    })
    .await;
    let set_cookie = set_cookie.unwrap();
    assert!(set_cookie.starts_with("GCLB="), "{set_cookie}");
    assert!(set_cookie.contains("Max-Age=600"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    for _ in 0..20 {
        assert_eq!(
            get_from(&cookie_url, "127.0.0.1", Some(&cookie)).await.0,
            first
        );
    }
}
