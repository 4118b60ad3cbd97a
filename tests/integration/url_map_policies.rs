//! URL-map request policies through a real Envoy: a path matcher's defaultRouteAction (a
//! weighted split with a rewrite), pathTemplateMatch with pathTemplateRewrite, faultInjectionPolicy (an abort for every
//! request, a delay for every request), requestMirrorPolicy (the mirror service receives a
//! copy, the client gets the primary's answer) and corsPolicy (a preflight answered by the
//! proxy, the allow-origin header on the actual answer).

use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::common::echo::EchoBackend;
use crate::common::*;

/// An HTTP backend that records the path of every request it gets.
struct RecordingBackend {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingBackend {
    async fn start() -> RecordingBackend {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let record = seen.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push(uri.to_string());
                "mirror"
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        RecordingBackend { port, seen, task }
    }
}

impl Drop for RecordingBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn config(listen: u16, primary: u16, mirror: u16) -> String {
    format!(
        r#"
networkEndpointGroups:
- {{name: primary-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {primary}}}]}}
- {{name: mirror-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {mirror}}}]}}
backendServices:
- {{name: primary, backends: [{{group: zones/us-central1-a/networkEndpointGroups/primary-neg, balancingMode: RATE, maxRate: 100}}]}}
- {{name: shadow, backends: [{{group: zones/us-central1-a/networkEndpointGroups/mirror-neg, balancingMode: RATE, maxRate: 100}}]}}
urlMaps:
- name: lb
  defaultService: global/backendServices/primary
  hostRules:
  - {{hosts: ['*'], pathMatcher: main}}
  - {{hosts: [split.example.test], pathMatcher: split}}
  pathMatchers:
  - name: split
    defaultRouteAction:
      weightedBackendServices: [{{backendService: global/backendServices/primary, weight: 100}}]
      urlRewrite: {{pathPrefixRewrite: /v2/}}
  - name: main
    defaultService: global/backendServices/primary
    routeRules:
    - priority: 1
      matchRules: [{{prefixMatch: /broken/}}]
      service: global/backendServices/primary
      routeAction:
        faultInjectionPolicy: {{abort: {{httpStatus: 418, percentage: 100}}}}
    - priority: 2
      matchRules: [{{prefixMatch: /slow/}}]
      service: global/backendServices/primary
      routeAction:
        faultInjectionPolicy: {{delay: {{fixedDelay: {{nanos: 200000000}}, percentage: 100}}}}
    - priority: 3
      matchRules: [{{prefixMatch: /copied/}}]
      service: global/backendServices/primary
      routeAction:
        requestMirrorPolicy: {{backendService: global/backendServices/shadow}}
    - priority: 5
      matchRules: [{{pathTemplateMatch: '/users/{{id}}/posts/{{post=**}}'}}]
      service: global/backendServices/primary
      routeAction:
        urlRewrite: {{pathTemplateRewrite: '/p/{{post}}/u/{{id}}'}}
    - priority: 4
      matchRules: [{{prefixMatch: /api/}}]
      service: global/backendServices/primary
      routeAction:
        corsPolicy:
          allowOrigins: [https://app.example.test]
          allowOriginRegexes: ['https://.*\.partner\.test']
          allowMethods: [GET, POST]
          allowHeaders: [x-token]
          exposeHeaders: [x-backend]
          maxAge: 600
          allowCredentials: true
targetHttpProxies:
- {{name: p, urlMap: global/urlMaps/lb}}
forwardingRules:
- {{name: f, IPAddress: 127.0.0.1, portRange: "{listen}", target: global/targetHttpProxies/p}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_mirrors_and_cors_act_as_the_url_map_says() {
    let primary = EchoBackend::start_named("primary").await;
    let mirror = RecordingBackend::start().await;
    let listen = free_port();
    let switchyard = Switchyard::start(&config(listen, primary.port(), mirror.port)).await;
    let envoy = Envoy::start(switchyard.running.xds_addr, "policies-envoy").await;
    switchyard.wait_for_acks("policies-envoy").await;
    let url = |path: &str| format!("http://127.0.0.1:{listen}{path}");
    wait_for("the listener to route to the primary", || async {
        let answer = get_json(&url("/")).await?;
        (answer["backend"] == "primary").then_some(())
    })
    .await;

    // A path matcher's defaultRouteAction: its split and its rewrite.
    let answer: Value = http()
        .get(url("/items/1"))
        .header("host", "split.example.test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (answer["backend"].as_str(), answer["path"].as_str()),
        (Some("primary"), Some("/v2/items/1"))
    );

    // A path template and its rewrite: the backend sees the path rebuilt from the variables.
    let answer: Value = http()
        .get(url("/users/7/posts/2026/hello"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["path"], "/p/2026/hello/u/7");

    // An abort for 100% of requests: answered by the proxy, never reaching the backend.
    for _ in 0..20 {
        let response = http().get(url("/broken/x")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 418);
    }
    assert_eq!(envoy.stat("http.f.fault.aborts_injected").await, Some(20));

    // A delay for 100% of requests: they still arrive, each delayed (counted by Envoy).
    for _ in 0..5 {
        let answer: Value = http()
            .get(url("/slow/y"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["backend"], "primary");
    }
    assert_eq!(envoy.stat("http.f.fault.delays_injected").await, Some(5));

    // A mirrored request: the client gets the primary's answer, the mirror gets a copy.
    for index in 0..10 {
        let answer: Value = http()
            .get(url(&format!("/copied/{index}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["backend"], "primary");
    }
    let copies = wait_for("the mirror to receive ten copies", || async {
        let seen = mirror.seen.lock().unwrap().clone();
        (seen.len() >= 10).then_some(seen)
    })
    .await;
    let mut copies = copies;
    copies.sort();
    let expected: Vec<String> = (0..10).map(|i| format!("/copied/{i}")).collect();
    assert_eq!(
        copies, expected,
        "one copy of each mirrored request, no other"
    );

    // CORS: the proxy answers an allowed preflight itself ...
    let preflight = http()
        .request(reqwest::Method::OPTIONS, url("/api/items"))
        .header("origin", "https://shop.partner.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status().as_u16(), 200);
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(
        header(&preflight, "access-control-allow-origin").as_deref(),
        Some("https://shop.partner.test")
    );
    assert_eq!(
        header(&preflight, "access-control-allow-methods").as_deref(),
        Some("GET,POST")
    );
    assert_eq!(
        header(&preflight, "access-control-max-age").as_deref(),
        Some("600")
    );
    assert_eq!(
        header(&preflight, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    // ... and marks the actual answer; an origin it does not allow gets no CORS headers.
    let actual = http()
        .get(url("/api/items"))
        .header("origin", "https://app.example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&actual, "access-control-allow-origin").as_deref(),
        Some("https://app.example.test")
    );
    assert_eq!(
        header(&actual, "access-control-expose-headers").as_deref(),
        Some("x-backend")
    );
    let stranger = http()
        .get(url("/api/items"))
        .header("origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&stranger, "access-control-allow-origin"), None);
}

/// Two services, one with logConfig on.
fn logging_config(listen: u16, backend: u16) -> String {
    format!(
        r#"
networkEndpointGroups:
- {{name: neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {backend}}}]}}
backendServices:
- {{name: logged, logConfig: {{enable: true, sampleRate: 1.0}}, backends: [{{group: neg, balancingMode: RATE, maxRate: 100}}]}}
- {{name: quiet, logConfig: {{enable: false}}, backends: [{{group: neg, balancingMode: RATE, maxRate: 100}}]}}
urlMaps:
- name: lb
  defaultService: quiet
  hostRules: [{{hosts: ['*'], pathMatcher: main}}]
  pathMatchers:
  - name: main
    defaultService: quiet
    pathRules: [{{paths: ['/logged/*'], service: logged}}]
targetHttpProxies:
- {{name: p, urlMap: lb}}
forwardingRules:
- {{name: f, IPAddress: 127.0.0.1, portRange: "{listen}", target: p}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_config_writes_an_access_log_line_for_its_service_only() {
    let backend = EchoBackend::start_named("echo").await;
    let listen = free_port();
    let switchyard = Switchyard::start(&logging_config(listen, backend.port())).await;
    let envoy = Envoy::start(switchyard.running.xds_addr, "logging-envoy").await;
    switchyard.wait_for_acks("logging-envoy").await;
    let url = |path: &str| format!("http://127.0.0.1:{listen}{path}");
    wait_for("the listener to route", || async {
        get_json(&url("/quiet/first")).await.map(drop)
    })
    .await;
    for index in 0..3 {
        http()
            .get(url(&format!("/logged/item-{index}")))
            .send()
            .await
            .unwrap();
        http()
            .get(url(&format!("/quiet/item-{index}")))
            .send()
            .await
            .unwrap();
    }
    // Envoy flushes its access logs on a timer: wait for the lines, never for a time.
    wait_for("three access log lines for the logged service", || async {
        let log = envoy.log();
        (0..3)
            .all(|i| log.contains(&format!("\"GET /logged/item-{i} HTTP/1.1\" 200")))
            .then_some(())
    })
    .await;
    assert!(
        !envoy.log().contains("/quiet/item-"),
        "a service without logConfig is not logged"
    );
}
