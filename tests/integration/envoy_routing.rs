//! End to end through a real Envoy: YAML → Switchyard → ADS → Envoy → HTTP backends on
//! 127.0.0.1. Covers routing, a live weight change, a rejected edit, and an Envoy NACK.

use crate::common::*;

/// A load balancer on 127.0.0.1:`listen`: `/api…` → `api`; everything else is split between
/// `blue` and `green` by weight.
fn config(
    listen: u16,
    api: u16,
    blue: u16,
    green: u16,
    blue_weight: u32,
    green_weight: u32,
) -> String {
    format!(
        r#"
networkEndpointGroups:
- name: api-neg
  zone: us-central1-a
  endpoints: [{{ipAddress: 127.0.0.1, port: {api}}}]
- name: blue-neg
  zone: us-central1-a
  endpoints: [{{ipAddress: 127.0.0.1, port: {blue}}}]
- name: green-neg
  zone: us-central1-b
  endpoints: [{{ipAddress: 127.0.0.1, port: {green}}}]
backendServices:
- name: api
  backends: [{{group: zones/us-central1-a/networkEndpointGroups/api-neg, balancingMode: RATE, maxRate: 100}}]
- name: blue
  backends: [{{group: zones/us-central1-a/networkEndpointGroups/blue-neg, balancingMode: RATE, maxRate: 100}}]
- name: green
  backends: [{{group: zones/us-central1-b/networkEndpointGroups/green-neg, balancingMode: RATE, maxRate: 100}}]
urlMaps:
- name: lb
  defaultService: global/backendServices/blue
  hostRules:
  - hosts: ['*']
    pathMatcher: main
  pathMatchers:
  - name: main
    defaultService: global/backendServices/blue
    routeRules:
    - priority: 1
      matchRules: [{{prefixMatch: /api}}]
      service: global/backendServices/api
    - priority: 2
      matchRules: [{{prefixMatch: /}}]
      routeAction:
        weightedBackendServices:
        - backendService: global/backendServices/blue
          weight: {blue_weight}
        - backendService: global/backendServices/green
          weight: {green_weight}
targetHttpProxies:
- name: lb-proxy
  urlMap: global/urlMaps/lb
forwardingRules:
- name: lb-http
  IPAddress: 127.0.0.1
  portRange: "{listen}"
  target: global/targetHttpProxies/lb-proxy
"#
    )
}

struct Setup {
    switchyard: Switchyard,
    envoy: Envoy,
    api: Backend,
    blue: Backend,
    green: Backend,
    listen: u16,
}

impl Setup {
    async fn start(node_id: &str, blue_weight: u32, green_weight: u32) -> Setup {
        let (api, blue, green) = (
            Backend::start("api").await,
            Backend::start("blue").await,
            Backend::start("green").await,
        );
        let listen = free_port();
        let switchyard = Switchyard::start(&config(
            listen,
            api.port(),
            blue.port(),
            green.port(),
            blue_weight,
            green_weight,
        ))
        .await;
        let envoy = Envoy::start(switchyard.running.xds_addr, node_id).await;
        switchyard.wait_for_acks(node_id).await;
        wait_for_body(&format!("http://127.0.0.1:{listen}/api/ready"), "api").await;
        Setup {
            switchyard,
            envoy,
            api,
            blue,
            green,
            listen,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.listen)
    }

    fn config(&self, blue_weight: u32, green_weight: u32) -> String {
        config(
            self.listen,
            self.api.port(),
            self.blue.port(),
            self.green.port(),
            blue_weight,
            green_weight,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn envoy_acks_everything_and_routes_by_path() {
    let setup = Setup::start("routing", 50, 50).await;
    let client = setup
        .switchyard
        .client("routing")
        .await
        .expect("Envoy is listed in /clients");
    for kind in [
        "Cluster",
        "ClusterLoadAssignment",
        "Listener",
        "RouteConfiguration",
    ] {
        assert!(
            client["types"][kind]["last_nack"].is_null(),
            "{kind} was NACKed: {client}"
        );
    }
    let api = tally(&setup.url("/api/users"), 50).await;
    assert_eq!(
        api.get("api"),
        Some(&50),
        "every /api request reaches api: {api:?}"
    );
    let root = tally(&setup.url("/"), 200).await;
    assert_eq!(
        root.get("blue").unwrap_or(&0) + root.get("green").unwrap_or(&0),
        200,
        "/ reaches blue or green only: {root:?}"
    );
    assert!(
        root.contains_key("blue") && root.contains_key("green"),
        "a 50/50 split reaches both: {root:?}"
    );
    assert_eq!(
        *setup.api.hits.lock().unwrap(),
        51,
        "the readiness probe plus 50 requests hit api"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn editing_weights_changes_the_split_without_restarting_envoy() {
    // Binomial standard deviation at n=4000 is at most 0.79%; ±4% is over 5 of them, so a
    // right split fails about once in two million runs. (At n=2000 it was 3.6 of them, one
    // failure in three thousand runs: CI met it once.)
    const REQUESTS: usize = 4000;
    const TOLERANCE: f64 = 0.04;
    let setup = Setup::start("weights", 50, 50).await;
    let before = tally(&setup.url("/"), REQUESTS).await;
    // Rejects failed requests on either side of the edit: a share counts failures in its
    // total, so a 50/50 split whose green half fails still measures 0.5 for blue.
    assert_no_errors(&before, "before the edit");
    let blue = share(&before, "blue");
    assert!(
        (blue - 0.5).abs() <= TOLERANCE,
        "50/50 expected, blue got {blue:.3}: {before:?}"
    );

    setup.switchyard.edit(&setup.config(90, 10)).await;
    setup.switchyard.wait_for_acks("weights").await;
    let after = tally(&setup.url("/"), REQUESTS).await;
    assert_no_errors(&after, "after the edit");
    let blue = share(&after, "blue");
    assert!(
        (blue - 0.9).abs() <= TOLERANCE,
        "90/10 expected, blue got {blue:.3}: {after:?}"
    );
    assert_eq!(
        setup.envoy.stat("control_plane.connected_state").await,
        Some(1),
        "Envoy stayed connected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_edit_is_rejected_and_the_old_config_keeps_serving() {
    let setup = Setup::start("bad-edit", 100, 0).await;
    let version = setup.switchyard.serving_version();
    let broken = setup.config(100, 0).replace(
        "defaultService: global/backendServices/blue\n  hostRules",
        "defaultService: global/backendServices/bleu\n  hostRules",
    );
    assert_ne!(broken, setup.config(100, 0));
    setup.switchyard.edit(&broken).await;

    let status = get_json(&setup.switchyard.admin_url("/config_status"))
        .await
        .unwrap();
    assert_eq!(status["last_load_accepted"], false);
    assert_eq!(
        status["serving_version"],
        version.as_str(),
        "the previous snapshot is still served"
    );
    let errors: Vec<&serde_json::Value> = status["diagnostics"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{status}");
    let error = errors[0];
    let line = broken
        .lines()
        .position(|l| l.contains("backendServices/bleu"))
        .unwrap()
        + 1;
    assert_eq!(error["file"], setup.switchyard.config.display().to_string());
    assert_eq!(error["line"], line);
    assert_eq!(error["path"], "urlMaps[lb].defaultService");
    assert_eq!(
        error["message"],
        "`bleu` refers to no resource in backendServices; did you mean `blue`?"
    );

    let seen = tally(&setup.url("/"), 50).await;
    assert_eq!(
        seen.get("blue"),
        Some(&50),
        "Envoy keeps routing with the old config: {seen:?}"
    );
    let client = setup.switchyard.client("bad-edit").await.unwrap();
    for (kind, status) in client["types"].as_object().unwrap() {
        assert!(
            status["last_nack"].is_null(),
            "{kind} shows a NACK: {status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_envoy_nack_is_recorded_and_not_resent() {
    let setup = Setup::start("nack", 100, 0).await;
    // A port some other process holds: Switchyard cannot know, Envoy cannot bind it.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let second_rule = format!(
        "- name: lb-http-taken\n  IPAddress: 127.0.0.1\n  portRange: \"{taken}\"\n  target: global/targetHttpProxies/lb-proxy\n"
    );
    setup
        .switchyard
        .edit(&(setup.config(100, 0) + &second_rule))
        .await;

    let nack = wait_for("Envoy to NACK the listener it cannot bind", || async {
        let client = setup.switchyard.client("nack").await?;
        let nack = client["types"]["Listener"]["last_nack"].clone();
        (!nack.is_null()).then_some(nack)
    })
    .await;
    let detail = nack["error_detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("127.0.0.1:{taken}")),
        "Envoy's error_detail names the address: {detail}"
    );
    let listener_sends = |client: &serde_json::Value| {
        client["types"]["Listener"]["responses_sent"]
            .as_u64()
            .unwrap()
    };
    let sent_after_nack = listener_sends(&setup.switchyard.client("nack").await.unwrap());

    // Another change goes through (an endpoint edit); the rejected listeners are not re-sent.
    let moved = setup.config(100, 0).replace(
        &format!("port: {}}}]", setup.blue.port()),
        &format!("port: {}}}]", setup.green.port()),
    ) + &second_rule;
    setup.switchyard.edit(&moved).await;
    wait_for_body(&setup.url("/"), "green").await;
    let client = setup.switchyard.client("nack").await.unwrap();
    assert_eq!(
        listener_sends(&client),
        sent_after_nack,
        "the NACKed listeners were sent again: {client}"
    );
    assert_eq!(
        setup
            .envoy
            .stat("listener_manager.lds.update_rejected")
            .await,
        Some(1)
    );
    assert!(client["types"]["ClusterLoadAssignment"]["last_nack"].is_null());
    // The listener Envoy could bind keeps serving.
    assert_eq!(tally(&setup.url("/api/x"), 10).await.get("api"), Some(&10));
    drop(squatter);
}
