//! URL-map actions end to end, through Envoy and through the sidecar: urlRedirect and
//! defaultUrlRedirect (scheme, host, path, prefix, response code, stripQuery), urlRewrite
//! (path prefix and host), headerAction at the URL map, path matcher, route rule and weighted
//! backend service, regexMatch and queryParameterMatches — checked on what the client gets
//! and what the backend sees, with the target proxy's X-Forwarded-For / -Proto and Via; a retryPolicy on 5xx hides a failing endpoint through both.

use crate::common::echo::EchoBackend;
use crate::common::*;
use serde_json::Value;

fn config(listen: u16, first: u16, second: u16) -> String {
    format!(
        r#"
networkEndpointGroups:
- {{name: first-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {first}}}]}}
- {{name: second-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {second}}}]}}
backendServices:
- {{name: first, backends: [{{group: zones/us-central1-a/networkEndpointGroups/first-neg, balancingMode: RATE, maxRate: 100}}]}}
- {{name: second, backends: [{{group: zones/us-central1-a/networkEndpointGroups/second-neg, balancingMode: RATE, maxRate: 100}}]}}
urlMaps:
- name: lb
  defaultService: global/backendServices/first
  headerAction:
    responseHeadersToAdd: [{{headerName: x-lb, headerValue: "100%", replace: true}}]
  hostRules:
  - {{hosts: [old.example], pathMatcher: moved}}
  - {{hosts: ['*'], pathMatcher: main}}
  pathMatchers:
  - name: moved
    defaultUrlRedirect: {{hostRedirect: new.example, httpsRedirect: true, redirectResponseCode: PERMANENT_REDIRECT, stripQuery: true}}
  - name: main
    defaultService: global/backendServices/first
    headerAction:
      requestHeadersToAdd: [{{headerName: x-matcher, headerValue: main}}]
      requestHeadersToRemove: [x-secret]
    routeRules:
    - priority: 0
      matchRules: [{{prefixMatch: /legacy/}}]
      urlRedirect: {{prefixRedirect: /modern/, redirectResponseCode: FOUND}}
    - priority: 1
      matchRules: [{{prefixMatch: /v1/, queryParameterMatches: [{{name: debug, presentMatch: true}}]}}]
      service: global/backendServices/second
      headerAction:
        responseHeadersToAdd: [{{headerName: x-debug, headerValue: "on"}}]
    - priority: 2
      matchRules: [{{prefixMatch: /v1/}}]
      service: global/backendServices/first
      routeAction:
        urlRewrite: {{pathPrefixRewrite: /api/v1/, hostRewrite: api.internal}}
        retryPolicy: {{retryConditions: [connect-failure], numRetries: 3}}
    - priority: 3
      matchRules: [{{regexMatch: '/items/[0-9]+', queryParameterMatches: [{{name: v, regexMatch: '[ab]'}}]}}]
      routeAction:
        weightedBackendServices:
        - backendService: global/backendServices/second
          weight: 100
          headerAction:
            requestHeadersToAdd: [{{headerName: x-split, headerValue: second, replace: true}}]
        timeout: {{seconds: 7}}
targetHttpProxies:
- {{name: p, urlMap: global/urlMaps/lb}}
forwardingRules:
- {{name: f, IPAddress: 127.0.0.1, portRange: "{listen}", target: global/targetHttpProxies/p}}
"#
    )
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    seen: Value,
}

async fn get(
    client: &reqwest::Client,
    listen: u16,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = client
        .get(format!("http://127.0.0.1:{listen}{path}"))
        .header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the proxy answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let seen = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        seen,
    }
}

async fn url_map_actions_through(through: Through) {
    let first = EchoBackend::start_named("first").await;
    let second = EchoBackend::start_named("second").await;
    let listen = free_port();
    let node = format!("url-map-actions-{through:?}").to_lowercase();
    let (_switchyard, _proxy) =
        serve_through(through, &node, &config(listen, first.port(), second.port())).await;
    wait_for_body_status(listen).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let header = |answer: &Answer, name: &str| {
        answer
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };

    // defaultUrlRedirect of a path matcher: https, new host, query stripped, 308.
    let moved = get(&client, listen, "old.example", "/anything?x=1", &[]).await;
    assert_eq!(moved.status, 308);
    assert_eq!(
        header(&moved, "location").as_deref(),
        Some("https://new.example/anything")
    );
    assert_eq!(
        header(&moved, "x-lb").as_deref(),
        Some("100%"),
        "URL-map headerAction on a redirect"
    );

    // urlRedirect with prefixRedirect: the matched prefix replaced, the query kept, 302.
    let legacy = get(&client, listen, "shop.example", "/legacy/page?q=1", &[]).await;
    assert_eq!(legacy.status, 302);
    assert_eq!(
        header(&legacy, "location").as_deref(),
        Some("http://shop.example/modern/page?q=1")
    );

    // urlRewrite and the path matcher's headerAction.
    let rewritten = get(
        &client,
        listen,
        "shop.example",
        "/v1/users?id=3",
        &[
            ("x-secret", "s"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert_eq!(rewritten.status, 200);
    assert_eq!(rewritten.seen["backend"], "first");
    assert_eq!(rewritten.seen["path"], "/api/v1/users?id=3");
    assert_eq!(rewritten.seen["headers"]["host"], "api.internal");
    assert_eq!(rewritten.seen["headers"]["x-matcher"], "main");
    assert!(
        rewritten.seen["headers"]["x-secret"].is_null(),
        "x-secret removed"
    );
    assert_eq!(header(&rewritten, "x-lb").as_deref(), Some("100%"));
    assert_eq!(header(&rewritten, "x-debug"), None);
    // The target proxy's headers: X-Forwarded-For is <supplied>,<client>,<load balancer>
    // (Envoy writes its host's own address for a loopback client, the sidecar the client's),
    // X-Forwarded-Proto the scheme the client used, Via both ways.
    let forwarded: Vec<&str> = rewritten.seen["headers"]["x-forwarded-for"]
        .as_str()
        .unwrap_or("")
        .split(',')
        .collect();
    assert_eq!(forwarded.len(), 3, "{forwarded:?}");
    assert_eq!(forwarded[0], "203.0.113.9");
    assert!(
        forwarded[1].parse::<std::net::IpAddr>().is_ok(),
        "{forwarded:?}"
    );
    if through == Through::Sidecar {
        assert_eq!(forwarded[1], "127.0.0.1");
    }
    assert_eq!(forwarded[2], "127.0.0.1", "the forwarding rule's address");
    assert_eq!(rewritten.seen["headers"]["x-forwarded-proto"], "http");
    assert_eq!(rewritten.seen["headers"]["via"], "1.1 p");
    assert_eq!(header(&rewritten, "via").as_deref(), Some("1.1 p"));

    // queryParameterMatches presentMatch, with the route rule's response headerAction.
    let debug = get(&client, listen, "shop.example", "/v1/users?debug", &[]).await;
    assert_eq!(debug.seen["backend"], "second");
    assert_eq!(
        debug.seen["path"], "/v1/users?debug",
        "no rewrite on this rule"
    );
    assert_eq!(header(&debug, "x-debug").as_deref(), Some("on"));

    // regexMatch with a regex query match; the weighted backend's headerAction.
    let item = get(&client, listen, "shop.example", "/items/42?v=a", &[]).await;
    assert_eq!(item.seen["backend"], "second");
    assert_eq!(item.seen["headers"]["x-split"], "second");
    for (path, why) in [
        ("/items/42?v=c", "the query does not match"),
        ("/items/4x?v=a", "the regex must match the whole path"),
    ] {
        let other = get(&client, listen, "shop.example", path, &[]).await;
        assert_eq!(other.seen["backend"], "first", "{path}: {why}");
        assert!(other.seen["headers"]["x-split"].is_null(), "{path}");
    }
}

async fn wait_for_body_status(listen: u16) {
    wait_for("the listener", || async move {
        let response = http()
            .get(format!("http://127.0.0.1:{listen}/"))
            .send()
            .await
            .ok()?;
        response.status().is_success().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn url_map_actions_through_envoy() {
    url_map_actions_through(Through::Envoy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn url_map_actions_through_the_sidecar() {
    url_map_actions_through(Through::Sidecar).await;
}

/// A service of one endpoint that answers 500 and one that answers 200; `/retried/` carries
/// a retryPolicy on 5xx, everything else has only the cloud's GET retries (on connection
/// failures).
fn retry_config(listen: u16, failing: u16, healthy: u16) -> String {
    format!(
        r#"
networkEndpointGroups:
- {{name: mixed-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {failing}}}, {{ipAddress: 127.0.0.1, port: {healthy}}}]}}
backendServices:
- {{name: mixed, localityLbPolicy: ROUND_ROBIN, backends: [{{group: zones/us-central1-a/networkEndpointGroups/mixed-neg, balancingMode: RATE, maxRatePerEndpoint: 100}}]}}
urlMaps:
- name: lb
  defaultService: global/backendServices/mixed
  hostRules: [{{hosts: ['*'], pathMatcher: main}}]
  pathMatchers:
  - name: main
    defaultService: global/backendServices/mixed
    routeRules:
    - priority: 1
      matchRules: [{{prefixMatch: /retried/}}]
      service: global/backendServices/mixed
      routeAction:
        retryPolicy: {{retryConditions: [5xx], numRetries: 3, perTryTimeout: {{seconds: 5}}}}
targetHttpProxies:
- {{name: p, urlMap: global/urlMaps/lb}}
forwardingRules:
- {{name: f, IPAddress: 127.0.0.1, portRange: "{listen}", target: global/targetHttpProxies/p}}
"#
    )
}

async fn retry_policy_through(through: Through) {
    let failing = Backend::start_failing("failing").await;
    let healthy = Backend::start("healthy").await;
    let listen = free_port();
    let node = format!("url-map-retries-{through:?}").to_lowercase();
    let (_switchyard, _proxy) = serve_through(
        through,
        &node,
        &retry_config(listen, failing.port(), healthy.port()),
    )
    .await;
    wait_for("both endpoints in use", || async move {
        let status = http()
            .get(format!("http://127.0.0.1:{listen}/retried/x"))
            .send()
            .await
            .ok()?
            .status();
        (status == 200).then_some(())
    })
    .await;
    let statuses = |path: &'static str| async move {
        let mut failed = 0;
        for _ in 0..40 {
            let response = http()
                .get(format!("http://127.0.0.1:{listen}{path}"))
                .send()
                .await
                .unwrap();
            if response.status() != 200 {
                failed += 1;
            }
        }
        failed
    };
    // Round robin over one failing and one healthy endpoint: every 5xx is retried on the
    // other endpoint under the policy; without one, about half the requests fail.
    assert_eq!(statuses("/retried/x").await, 0, "retried on 5xx");
    assert!(
        statuses("/plain").await >= 10,
        "no retry on 5xx without the policy"
    );
    assert!(
        *failing.hits.lock().unwrap() >= 20,
        "the failing endpoint was tried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_policy_retries_5xx_through_envoy() {
    retry_policy_through(Through::Envoy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_policy_retries_5xx_through_the_sidecar() {
    retry_policy_through(Through::Sidecar).await;
}

/// A backend that reads each request's head, counts it by method, and closes the connection
/// without answering: a reset before headers.
struct ResettingBackend {
    port: u16,
    counts: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ResettingBackend {
    async fn start() -> ResettingBackend {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let counts = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
        let seen = counts.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => head.extend_from_slice(&buffer[..read]),
                        }
                    }
                    let method = String::from_utf8_lossy(&head)
                        .split(' ')
                        .next()
                        .unwrap_or("")
                        .to_string();
                    *seen.lock().unwrap().entry(method).or_insert(0) += 1;
                    // Closed with the request unanswered: to the proxy, a connection reset
                    // before any response header.
                    drop(stream);
                });
            }
        });
        ResettingBackend { port, counts, task }
    }

    fn count(&self, method: &str) -> usize {
        self.counts
            .lock()
            .unwrap()
            .get(method)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for ResettingBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The cloud's proxies retry a GET at most twice when the backend resets before answering,
/// and never retry a POST: counted at the backend.
async fn resets_retry_get_only_through(through: Through) {
    let backend = ResettingBackend::start().await;
    let listen = free_port();
    let node = format!("resets-{through:?}").to_lowercase();
    let port = backend.port;
    let config = retry_config(listen, port, port).replace(
        &format!("{{ipAddress: 127.0.0.1, port: {port}}}, {{ipAddress: 127.0.0.1, port: {port}}}"),
        &format!("{{ipAddress: 127.0.0.1, port: {port}}}"),
    );
    assert!(!config.contains(&format!("{port}}}, ")), "one endpoint");
    let (_switchyard, _proxy) = serve_through(through, &node, &config).await;
    let url = format!("http://127.0.0.1:{listen}/plain");
    // Until the listener routes, requests are refused before reaching the backend.
    wait_for("the first GET to reach the backend", || {
        let url = url.clone();
        let backend = &backend;
        async move {
            let _ = http().get(&url).send().await;
            (backend.count("GET") > 0).then_some(())
        }
    })
    .await;
    let gets_before = backend.count("GET");
    for _ in 0..5 {
        let status = http().get(&url).send().await.unwrap().status().as_u16();
        assert!(status >= 500, "a reset becomes a 5xx answer, got {status}");
    }
    assert_eq!(
        backend.count("GET") - gets_before,
        15,
        "each GET tried once and retried twice"
    );
    for _ in 0..5 {
        let status = http()
            .post(&url)
            .body("payload")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert!(status >= 500, "got {status}");
    }
    assert_eq!(backend.count("POST"), 5, "a POST is never retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resets_retry_get_only_through_envoy() {
    resets_retry_get_only_through(Through::Envoy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resets_retry_get_only_through_the_sidecar() {
    resets_retry_get_only_through(Through::Sidecar).await;
}
