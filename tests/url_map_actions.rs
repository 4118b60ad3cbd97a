//! URL-map actions end to end, through Envoy and through the sidecar: urlRedirect and
//! defaultUrlRedirect (scheme, host, path, prefix, response code, stripQuery), urlRewrite
//! (path prefix and host), headerAction at the URL map, path matcher, route rule and weighted
//! backend service, regexMatch and queryParameterMatches — checked on what the client gets
//! and what the backend sees.

mod common;

use common::echo::EchoBackend;
use common::*;
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
        &[("x-secret", "s")],
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
