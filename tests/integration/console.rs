//! The console on the admin port's `/`, in headless Chromium against a real Switchyard and a
//! real Envoy: the page loads with no console error, shows the connected Envoy's node id and
//! the endpoint health found by real health checks, draws where traffic goes, follows the
//! locality chooser, and — with no reload — shows a rejected edit's diagnostic. The test saves
//! a screenshot in a temporary folder; SWITCHYARD_CONSOLE_SCREENSHOT=PATH keeps a copy (that
//! is how docs/console.png was made).

use crate::common::browser::Browser;
use crate::common::*;

/// One service in two regions: us-central1-a has a live backend and a closed port (the
/// health check takes it out), us-east1-b one live backend. Checks run every second.
fn console_config(
    listen: u16,
    live_central: u16,
    closed: u16,
    live_east: u16,
    east: &str,
) -> String {
    format!(
        r#"healthChecks:
- name: web-check
  type: HTTP
  checkIntervalSec: 1
  timeoutSec: 1
  healthyThreshold: 1
  unhealthyThreshold: 1
  httpHealthCheck: {{portSpecification: USE_SERVING_PORT, requestPath: /healthz}}
networkEndpointGroups:
- name: web-central
  zone: us-central1-a
  endpoints:
  - {{ipAddress: 127.0.0.1, port: {live_central}}}
  - {{ipAddress: 127.0.0.1, port: {closed}}}
- name: web-east
  zone: us-east1-b
  endpoints:
  - {{ipAddress: 127.0.0.1, port: {live_east}}}
backendServices:
- name: web
  loadBalancingScheme: EXTERNAL_MANAGED
  protocol: HTTP
  healthChecks: [global/healthChecks/web-check]
  backends:
  - {{group: zones/us-central1-a/networkEndpointGroups/web-central, balancingMode: RATE, maxRatePerEndpoint: 100}}
  - {{group: zones/us-east1-b/networkEndpointGroups/{east}, balancingMode: RATE, maxRatePerEndpoint: 100}}
urlMaps:
- name: web-map
  defaultService: global/backendServices/web
targetHttpProxies:
- name: web-proxy
  urlMap: global/urlMaps/web-map
forwardingRules:
- name: web-http
  IPAddress: 127.0.0.1
  portRange: "{listen}"
  target: global/targetHttpProxies/web-proxy
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_clients_health_traffic_and_a_rejected_edit_without_a_reload() {
    let (central, east) = (
        Backend::start("central").await,
        Backend::start("east").await,
    );
    let (listen, closed) = (free_port(), free_port());
    let config =
        |east_group: &str| console_config(listen, central.port(), closed, east.port(), east_group);
    let switchyard = Switchyard::start(&config("web-east")).await;
    let envoy = Envoy::start(switchyard.running.xds_addr, "console-envoy").await;
    switchyard.wait_for_acks("console-envoy").await;

    let mut page = Browser::open(&switchyard.admin_url("/")).await;
    // The connected Envoy, its locality and per-type status.
    page.wait_for_text("console-envoy").await;
    page.wait_for_text("us-central1 / us-central1-a").await;
    page.wait_for_text("Cluster SYNCED").await;
    // The closed port fails its check (1 of 2 healthy, the failing one named), and an Envoy in us-central1-a is sent everything to its own region, which stays first
    // while any endpoint there is healthy (Switchyard's overprovisioning factor is 1000×).
    page.wait_for_text(&format!("127.0.0.1:{closed} UNHEALTHY"))
        .await;
    page.wait_for_text("1/2 healthy").await;
    // Each locality row's locality, priority, health and share cells.
    let rows = page
        .eval(
            "[...document.querySelectorAll('#services tbody tr')].map(r => [0, 1, 2, 4].map(i => \
             r.cells[i].innerText.split('\\n')[0]))",
        )
        .await;
    assert_eq!(
        rows,
        serde_json::json!([
            ["us-central1 / us-central1-a", "0", "1/2 healthy", "100.0%"],
            ["us-east1 / us-east1-b", "1", "1/1 healthy", "0.0%"],
        ])
    );
    assert_eq!(
        page.eval("document.querySelectorAll('svg.traffic line.flow').length")
            .await,
        1,
        "one line carries traffic in the picture"
    );

    // Seen from us-east1-b, the east backend takes it all.
    page.eval(
        "(() => { const c = document.getElementById('from'); c.value = 'us-east1/us-east1-b'; \
         c.dispatchEvent(new Event('change')); return true; })()",
    )
    .await;
    page.wait_for_text("Services, as a client in us-east1 / us-east1-b is served")
        .await;

    // A mark on the page that a reload would wipe.
    page.eval("window.consoleMark = 'kept'").await;
    switchyard.edit(&config("web-missing")).await;
    let diagnostic = switchyard
        .running
        .status
        .read()
        .unwrap()
        .diagnostics
        .errors()
        .next()
        .expect("the edit is rejected with a diagnostic")
        .to_string();
    assert!(diagnostic.contains("web-missing"), "{diagnostic}");
    page.wait_for_text(&diagnostic).await;
    page.wait_for_text("rejected; the last good config keeps serving")
        .await;
    assert_eq!(
        page.eval("window.consoleMark").await,
        "kept",
        "the page changed by itself, without a reload"
    );

    let shots = tempfile::tempdir().unwrap();
    let shot = shots.path().join("console.png");
    page.screenshot(&shot).await;
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    if let Some(keep) = std::env::var_os("SWITCHYARD_CONSOLE_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    assert_eq!(page.errors().await, Vec::<String>::new(), "console errors");
    drop(envoy);
}
