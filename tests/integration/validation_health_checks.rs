//! `healthChecks` as the cloud defines them (001, 004): every type with its own details
//! object, the cloud's defaults and ranges, and which port a check probes — one rule per
//! assertion, with the exact message.

use switchyard::config::load_str;
use switchyard::model::{HealthCheckProtocol, PortSelection};

fn lines(text: &str) -> Vec<String> {
    load_str(text, "hc.yaml")
        .diagnostics
        .items
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn defaults_are_the_clouds() {
    let loaded = load_str(
        "healthChecks:\n- {name: basic, type: TCP}\n- name: web\n  type: HTTP\n  httpHealthCheck: {port: 8080, host: www.example.test, response: ok, proxyHeader: PROXY_V1}\n- name: rpc\n  type: GRPC\n  grpcHealthCheck: {portName: grpc, grpcServiceName: who}\n- name: tls\n  type: SSL\n  sslHealthCheck: {request: PING, response: PONG}\n",
        "hc.yaml",
    );
    assert!(
        loaded.diagnostics.items.is_empty(),
        "{:?}",
        loaded.diagnostics.items
    );
    let checks = &loaded.model.health_checks;
    let basic = &checks["basic"];
    assert_eq!(
        (
            basic.check_interval_sec,
            basic.timeout_sec,
            basic.healthy_threshold,
            basic.unhealthy_threshold
        ),
        (5, 5, 2, 2)
    );
    assert_eq!(basic.port_selection, PortSelection::Serving);
    let web = &checks["web"];
    assert_eq!(web.port_selection, PortSelection::Fixed);
    assert_eq!(web.request_path, "/");
    assert_eq!(web.host.as_deref(), Some("www.example.test"));
    assert!(web.proxy_header_v1);
    let rpc = &checks["rpc"];
    assert_eq!(rpc.port_selection, PortSelection::Named);
    assert_eq!(rpc.grpc_service_name.as_deref(), Some("who"));
    let tls = &checks["tls"];
    assert_eq!(tls.protocol, HealthCheckProtocol::Ssl);
    assert_eq!(
        (tls.request.as_deref(), tls.response.as_deref()),
        (Some("PING"), Some("PONG"))
    );
}

#[test]
fn each_type_takes_its_own_details_and_port_rules() {
    assert_eq!(
        lines("healthChecks:\n- name: hc\n  type: HTTP\n  tcpHealthCheck: {port: 80}\n"),
        ["error: hc.yaml:4: healthChecks[hc].tcpHealthCheck: a check of type HTTP takes httpHealthCheck, not tcpHealthCheck"]
    );
    assert_eq!(
        lines("healthChecks:\n- name: hc\n  type: HTTP\n  httpHealthCheck: {portSpecification: USE_FIXED_PORT}\n"),
        ["error: hc.yaml:4: healthChecks[hc].httpHealthCheck.portSpecification: USE_FIXED_PORT needs `port`"]
    );
    assert_eq!(
        lines("healthChecks:\n- name: hc\n  type: TCP\n  tcpHealthCheck: {portSpecification: USE_SERVING_PORT, port: 80}\n"),
        ["error: hc.yaml:4: healthChecks[hc].tcpHealthCheck.portSpecification: USE_SERVING_PORT probes each endpoint's own port; remove `port` and `portName`"]
    );
    assert_eq!(
        lines("healthChecks:\n- name: hc\n  type: HTTP\n  httpHealthCheck: {requestPath: healthz}\n"),
        ["error: hc.yaml:4: healthChecks[hc].httpHealthCheck.requestPath: requestPath starts with `/`"]
    );
    // A field of another type's details is unknown to this one.
    let grpc =
        lines("healthChecks:\n- name: hc\n  type: GRPC\n  grpcHealthCheck: {requestPath: /x}\n");
    assert!(
        grpc.len() == 1
            && grpc[0].contains("grpcHealthCheck.requestPath: unknown field `requestPath`"),
        "{grpc:#?}"
    );
}

#[test]
fn timings_keep_the_clouds_ranges() {
    assert_eq!(
        lines("healthChecks:\n- {name: hc, type: TCP, checkIntervalSec: 0}\n"),
        ["error: hc.yaml:2: healthChecks[hc].checkIntervalSec: 0 is out of range; allowed: 1 to 300"]
    );
    assert_eq!(
        lines("healthChecks:\n- {name: hc, type: TCP, unhealthyThreshold: 11}\n"),
        ["error: hc.yaml:2: healthChecks[hc].unhealthyThreshold: 11 is out of range; allowed: 1 to 10"]
    );
    assert_eq!(
        lines("healthChecks:\n- {name: hc, type: TCP, checkIntervalSec: 2, timeoutSec: 3}\n"),
        ["error: hc.yaml:2: healthChecks[hc].timeoutSec: 3 is longer than checkIntervalSec (2); timeoutSec must not exceed it"]
    );
}

#[test]
fn which_backend_services_take_a_check_follows_the_cloud() {
    let base = "healthChecks:\n- {name: hc, type: HTTP}\n- {name: named, type: TCP, tcpHealthCheck: {portName: http}}\n\
                networkEndpointGroups:\n- {name: neg, zone: us-central1-a, endpoints: [{ipAddress: 10.0.0.1, port: 80}]}\n\
                - {name: out, networkEndpointType: INTERNET_FQDN_PORT, endpoints: [{fqdn: api.example.test, port: 443}]}\n\
                backendServices:\n";
    assert_eq!(
        lines(&format!("{base}- name: two\n  healthChecks: [hc, named]\n  backends: [{{group: neg, balancingMode: RATE, maxRate: 1}}]\n")),
        ["error: hc.yaml:9: backendServices[two].healthChecks: 2 health checks are listed; a backend service takes at most one"]
    );
    assert_eq!(
        lines(&format!("{base}- name: ext\n  protocol: HTTPS\n  healthChecks: [hc]\n  backends: [{{group: out}}]\n")),
        ["error: hc.yaml:10: backendServices[ext].healthChecks: a backend service with an INTERNET_FQDN_PORT NEG backend must not reference a health check (the cloud does not check internet endpoints)"]
    );
    assert_eq!(
        lines(&format!("{base}- name: neg-named\n  healthChecks: [named]\n  backends: [{{group: neg, balancingMode: RATE, maxRate: 1}}]\n")),
        ["error: hc.yaml:9: backendServices[neg-named].healthChecks: health check `named` uses USE_NAMED_PORT, which needs instance group backends (they have named ports); this service has a GCE_VM_IP_PORT NEG backend: use USE_SERVING_PORT or a fixed port"]
    );
    // One check, or none: valid; without one the endpoints are served unchecked, and a note
    // (neither error nor warning) says the cloud would have required one.
    let text = format!("{base}- name: one\n  healthChecks: [hc]\n  backends: [{{group: neg, balancingMode: RATE, maxRate: 1}}]\n- name: none\n  backends: [{{group: neg, balancingMode: RATE, maxRate: 1}}]\n");
    assert!(lines(&text).is_empty());
    let notes: Vec<String> = load_str(&text, "hc.yaml")
        .diagnostics
        .notes
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        notes,
        ["note: hc.yaml:11: backendServices[none].healthChecks: no health check: the cloud requires one for a backend service with GCE_VM_IP_PORT NEG backends; Switchyard serves these endpoints unchecked, every one taking traffic"]
    );
}
