//! Every validation rule of the foundation, one test each, asserting the exact message a user
//! sees: file, line, resource path, the value and what is allowed.

use switchyard::config::{load, load_str};

/// A valid config whose lines the tests below break one at a time.
const VALID: &str = r#"networkEndpointGroups:
- name: neg-a
  zone: us-central1-a
  endpoints:
  - {ipAddress: 127.0.0.1, port: 8080}
instanceGroups:
- name: ig-a
  zone: us-central1-a
  namedPorts: [{name: http, port: 80}]
  instances: [{name: vm-1, ipAddress: 127.0.0.2}]
backendServices:
- name: web
  timeoutSec: 30
  backends:
  - group: zones/us-central1-a/networkEndpointGroups/neg-a
    balancingMode: RATE
    maxRatePerEndpoint: 10
    capacityScaler: 1.0
urlMaps:
- name: map
  defaultService: global/backendServices/web
targetHttpProxies:
- name: proxy
  urlMap: global/urlMaps/map
forwardingRules:
- name: fr
  portRange: "80"
  target: global/targetHttpProxies/proxy
"#;

/// The diagnostics of config `text` read as `file`, one per line.
fn diagnostics_of(text: &str, file: &str) -> Vec<String> {
    load_str(text, file)
        .diagnostics
        .items
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The diagnostics of VALID with `from` replaced by `to`, one per line.
fn diagnostics_after(from: &str, to: &str) -> Vec<String> {
    assert!(VALID.contains(from), "{from} is not in the config");
    diagnostics_of(&VALID.replacen(from, to, 1), "lb.yaml")
}

fn one_error(from: &str, to: &str) -> String {
    let found = diagnostics_after(from, to);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one diagnostic: {found:#?}"
    );
    found[0].clone()
}

#[test]
fn the_valid_config_is_valid() {
    assert_eq!(diagnostics_after("web", "web"), Vec::<String>::new());
}

#[test]
fn unknown_fields_get_a_suggestion() {
    assert_eq!(
        one_error("    capacityScaler: 1.0", "    capacityScalr: 1.0"),
        "error: lb.yaml:18: backendServices[web].backends[0].capacityScalr: unknown field `capacityScalr`; did you mean `capacityScaler`?"
    );
}

#[test]
fn unknown_fields_without_a_close_name_list_the_known_ones() {
    assert_eq!(
        one_error("  urlMap: global/urlMaps/map", "  urlMap: global/urlMaps/map\n  zzzzzz: 1"),
        "error: lb.yaml:25: targetHttpProxies[proxy].zzzzzz: unknown field `zzzzzz`; known fields: creationTimestamp, description, fingerprint, httpKeepAliveTimeoutSec, id, kind, name, proxyBind, region, selfLink, urlMap"
    );
}

#[test]
fn enum_values_must_be_allowed() {
    assert_eq!(
        one_error("balancingMode: RATE", "balancingMode: RAET"),
        "error: lb.yaml:16: backendServices[web].backends[0].balancingMode: `RAET` is not allowed (did you mean RATE?); allowed: RATE, UTILIZATION, CONNECTION"
    );
}

#[test]
fn capacity_scaler_is_zero_or_a_tenth_to_one() {
    assert_eq!(
        one_error("capacityScaler: 1.0", "capacityScaler: 0.05"),
        "error: lb.yaml:18: backendServices[web].backends[0].capacityScaler: 0.05 is not allowed; capacityScaler must be exactly 0.0 or between 0.1 and 1.0"
    );
    assert_eq!(
        one_error("capacityScaler: 1.0", "capacityScaler: 1.5"),
        "error: lb.yaml:18: backendServices[web].backends[0].capacityScaler: 1.5 is out of range; allowed: 0 to 1"
    );
    assert!(diagnostics_after("capacityScaler: 1.0", "capacityScaler: 0.0").is_empty());
}

#[test]
fn timeout_sec_is_one_to_the_cloud_maximum() {
    assert_eq!(
        one_error("timeoutSec: 30", "timeoutSec: 0"),
        "error: lb.yaml:13: backendServices[web].timeoutSec: 0 is out of range; allowed: 1 to 2147483647"
    );
    assert_eq!(
        one_error("timeoutSec: 30", "timeoutSec: thirty"),
        "error: lb.yaml:13: backendServices[web].timeoutSec: expected a whole number, found `thirty`"
    );
}

#[test]
fn dangling_references_name_what_exists() {
    assert_eq!(
        one_error("defaultService: global/backendServices/web", "defaultService: global/backendServices/wbe"),
        "error: lb.yaml:21: urlMaps[map].defaultService: `wbe` refers to no resource in backendServices; did you mean `web`?"
    );
    assert_eq!(
        one_error("  urlMap: global/urlMaps/map", "  urlMap: global/urlMaps/other"),
        "error: lb.yaml:24: targetHttpProxies[proxy].urlMap: `other` refers to no resource in urlMaps; defined urlMaps: map"
    );
}

#[test]
fn links_must_point_at_the_right_collection() {
    assert_eq!(
        one_error("target: global/targetHttpProxies/proxy", "target: global/urlMaps/map"),
        "error: lb.yaml:28: forwardingRules[fr].target: `global/urlMaps/map` links to a resource in urlMaps, but this field takes targetHttpProxies or targetHttpsProxies or targetTcpProxies or targetSslProxies or targetGrpcProxies"
    );
}

#[test]
fn names_are_unique_per_collection() {
    assert_eq!(
        one_error("- name: ig-a", "- name: neg-a"),
        "error: lb.yaml:7: instanceGroups and networkEndpointGroups[neg-a]: the name `neg-a` is already used at lb.yaml:2; names must be unique in instanceGroups and networkEndpointGroups"
    );
}

#[test]
fn balancing_mode_must_suit_the_backend_type() {
    assert_eq!(
        one_error("    balancingMode: RATE\n    maxRatePerEndpoint: 10\n", "    balancingMode: UTILIZATION\n"),
        "error: lb.yaml:15: backendServices[web].backends[0].balancingMode: UTILIZATION is not allowed for a backend of type GCE_VM_IP_PORT NEG behind an HTTP(S) proxy; allowed: RATE"
    );
    assert_eq!(
        one_error("    maxRatePerEndpoint: 10\n", ""),
        "error: lb.yaml:15: backendServices[web].backends[0].balancingMode: balancing mode RATE needs a target capacity: set maxRate or maxRatePerEndpoint"
    );
    assert_eq!(
        one_error("maxRatePerEndpoint: 10", "maxRatePerInstance: 10"),
        "error: lb.yaml:15: backendServices[web].backends[0].maxRatePerInstance: maxRatePerInstance does not apply to backends of type GCE_VM_IP_PORT NEG; use maxRate or maxRatePerEndpoint"
    );
}

#[test]
fn instance_groups_and_negs_do_not_mix() {
    let mixed = "    capacityScaler: 1.0\n  - {group: zones/us-central1-a/instanceGroups/ig-a, balancingMode: RATE, maxRate: 5}\n";
    assert_eq!(
        one_error("    capacityScaler: 1.0\n", mixed),
        "error: lb.yaml:12: backendServices[web].backends: a backend service may not mix instance groups and network endpoint groups"
    );
}

#[test]
fn port_name_must_exist_in_the_instance_group() {
    let on_group = "  - group: zones/us-central1-a/instanceGroups/ig-a\n    balancingMode: RATE\n    maxRatePerInstance: 10\n";
    let config = VALID
        .replace("  timeoutSec: 30\n", "  timeoutSec: 30\n  portName: grpc\n")
        .replace("  - group: zones/us-central1-a/networkEndpointGroups/neg-a\n    balancingMode: RATE\n    maxRatePerEndpoint: 10\n", on_group);
    let loaded = load_str(&config, "lb.yaml");
    let found: Vec<String> = loaded
        .diagnostics
        .items
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        vec!["error: lb.yaml:16: backendServices[web].backends[0].group: backend service `web` uses portName `grpc`, but instance group `ig-a` has no named port of that name (its namedPorts: http)"]
    );
}

#[test]
fn a_forwarding_rule_for_http_takes_one_port() {
    assert_eq!(
        one_error("portRange: \"80\"", "portRange: 80-90"),
        "error: lb.yaml:27: forwardingRules[fr].portRange: `80-90` is not allowed; a forwarding rule for an HTTP proxy takes one port from 1 to 65535 (e.g. 80 or 8080-8080)"
    );
}

#[test]
fn yaml_syntax_errors_name_the_line() {
    let found = diagnostics_after(
        "  zone: us-central1-a\n  endpoints:",
        "  zone: [us-central1-a\n  endpoints:",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("error: lb.yaml:4: : YAML syntax error:"),
        "{}",
        found[0]
    );
}

#[test]
fn every_example_validates() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let loaded = load(&path);
            assert!(
                !loaded.diagnostics.has_errors(),
                "{}:\n{}",
                path.display(),
                loaded.diagnostics
            );
            assert!(
                !(loaded.model.frontends.is_empty() && loaded.model.proxyless.is_empty()),
                "{} serves nothing",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn a_directory_of_files_is_one_config() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, rest) = VALID.split_at(VALID.find("backendServices:").unwrap());
    std::fs::write(dir.path().join("10-groups.yaml"), groups).unwrap();
    std::fs::write(dir.path().join("20-services.yml"), rest).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not config").unwrap();
    let loaded = load(dir.path());
    assert!(loaded.diagnostics.is_empty(), "{}", loaded.diagnostics);
    assert_eq!(loaded.model.services.len(), 1);
    assert_eq!(loaded.model.endpoint_groups.len(), 2);
}

/// Diagnostics of a config with a NEG, an instance group and the given backend services.
fn services_diagnostics(services: &str) -> Vec<String> {
    let config = format!(
        r#"networkEndpointGroups:
- name: neg-a
  zone: us-central1-a
  endpoints: [{{ipAddress: 127.0.0.1, port: 8080}}]
instanceGroups:
- name: ig-a
  zone: us-central1-a
  namedPorts: [{{name: http, port: 80}}]
  instances: [{{name: vm-1, ipAddress: 127.0.0.2}}]
backendServices:
{services}"#
    );
    let loaded = load_str(&config, "svc.yaml");
    loaded
        .diagnostics
        .items
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn affinity_without_a_hashing_policy_is_a_warning_naming_the_service() {
    assert_eq!(
        services_diagnostics(
            "- name: web\n  loadBalancingScheme: EXTERNAL_MANAGED\n  sessionAffinity: CLIENT_IP\n"
        ),
        vec!["warning: svc.yaml:13: backendServices[web].sessionAffinity: CLIENT_IP is honoured only with localityLbPolicy RING_HASH or MAGLEV; backend service `web` uses ROUND_ROBIN, so its requests will not stick"]
    );
}

#[test]
fn affinity_and_subsetting_exclude_each_other() {
    assert_eq!(
        services_diagnostics("- name: web\n  localityLbPolicy: RING_HASH\n  sessionAffinity: CLIENT_IP\n  subsetting: {policy: CONSISTENT_HASH_SUBSETTING}\n"),
        vec!["error: svc.yaml:14: backendServices[web].subsetting: backend subsetting needs sessionAffinity NONE, but it is CLIENT_IP; use one or the other"]
    );
    assert_eq!(
        services_diagnostics("- name: web\n  subsetting: {policy: CONSISTENT_HASH_SUBSETTING}\n"),
        vec!["warning: svc.yaml:12: backendServices[web].subsetting: CONSISTENT_HASH_SUBSETTING is accepted but not applied: every proxy gets every endpoint"]
    );
}

#[test]
fn header_and_cookie_affinity_need_what_they_hash() {
    assert_eq!(
        services_diagnostics("- name: web\n  localityLbPolicy: MAGLEV\n  sessionAffinity: HEADER_FIELD\n"),
        vec!["error: svc.yaml:13: backendServices[web].consistentHash.httpHeaderName: HEADER_FIELD affinity needs consistentHash.httpHeaderName: the header to hash"]
    );
    assert_eq!(
        services_diagnostics("- name: web\n  localityLbPolicy: MAGLEV\n  sessionAffinity: HTTP_COOKIE\n"),
        vec!["error: svc.yaml:13: backendServices[web].consistentHash.httpCookie: HTTP_COOKIE affinity needs consistentHash.httpCookie with the cookie's name"]
    );
    assert_eq!(
        services_diagnostics("- name: web\n  consistentHash:\n    httpCookie: {path: /}\n"),
        vec!["error: svc.yaml:13: backendServices[web].consistentHash.httpCookie.name: this field is required"]
    );
}

#[test]
fn a_tcp_service_can_only_have_client_ip_affinity() {
    assert_eq!(
        services_diagnostics("- name: tcp\n  protocol: TCP\n  localityLbPolicy: RING_HASH\n  sessionAffinity: GENERATED_COOKIE\n"),
        vec!["error: svc.yaml:14: backendServices[tcp].sessionAffinity: GENERATED_COOKIE needs an HTTP protocol; a TCP backend service allows NONE or CLIENT_IP"]
    );
}

#[test]
fn affinity_with_utilization_is_a_warning() {
    assert_eq!(
        services_diagnostics("- name: web\n  localityLbPolicy: RING_HASH\n  sessionAffinity: CLIENT_IP\n  backends:\n  - {group: ig-a, balancingMode: UTILIZATION}\n"),
        vec!["warning: svc.yaml:15: backendServices[web].backends[0].balancingMode: session affinity CLIENT_IP with balancing mode UTILIZATION is not recommended: changes in load break affinity; prefer RATE or CONNECTION"]
    );
}

#[test]
fn affinity_ranges_are_enforced() {
    assert_eq!(
        services_diagnostics("- name: web\n  affinityCookieTtlSec: 86401\n"),
        vec!["error: svc.yaml:12: backendServices[web].affinityCookieTtlSec: 86401 is out of range; allowed: 0 to 86400"]
    );
    assert_eq!(
        services_diagnostics("- name: web\n  consistentHash: {minimumRingSize: 0}\n"),
        vec!["error: svc.yaml:12: backendServices[web].consistentHash.minimumRingSize: 0 is out of range; allowed: 1 to 8388608"]
    );
}

#[test]
fn draining_timeout_is_zero_to_an_hour() {
    assert_eq!(
        services_diagnostics("- name: web\n  connectionDraining: {drainingTimeoutSec: 3601}\n"),
        vec!["error: svc.yaml:12: backendServices[web].connectionDraining.drainingTimeoutSec: 3601 is out of range; allowed: 0 to 3600"]
    );
}

#[test]
fn a_shared_instance_group_needs_compatible_balancing_modes() {
    let services = "- name: one\n  backends:\n  - {group: ig-a, balancingMode: RATE, maxRate: 10}\n- name: two\n  backends:\n  - {group: ig-a, balancingMode: UTILIZATION}\n";
    assert_eq!(
        services_diagnostics(services),
        vec!["error: svc.yaml:16: backendServices[two].backends[0].balancingMode: instance group `ig-a` is also a backend of `one` with balancing mode RATE; UTILIZATION is not compatible with it (a shared instance group needs the same mode, or CONNECTION with RATE)"]
    );
    let compatible = "- name: one\n  backends:\n  - {group: ig-a, balancingMode: RATE, maxRate: 10}\n- name: two\n  protocol: TCP\n  backends:\n  - {group: ig-a, balancingMode: CONNECTION, maxConnections: 10}\n";
    assert_eq!(
        services_diagnostics(compatible),
        Vec::<String>::new(),
        "CONNECTION with RATE is compatible"
    );
}

#[test]
fn capacities_must_fit_the_mode() {
    assert_eq!(
        services_diagnostics("- name: web\n  backends:\n  - {group: neg-a, balancingMode: RATE, maxRate: 5, maxConnections: 10}\n"),
        vec!["error: svc.yaml:13: backendServices[web].backends[0].maxConnections: maxConnections does not apply to balancing mode RATE; with RATE set maxRate or maxRatePerEndpoint"]
    );
    assert_eq!(
        services_diagnostics("- name: web\n  backends:\n  - {group: ig-a, balancingMode: UTILIZATION, maxConnectionsPerInstance: 3}\n"),
        vec!["error: svc.yaml:13: backendServices[web].backends[0].maxConnectionsPerInstance: maxConnectionsPerInstance does not apply to balancing mode UTILIZATION; with UTILIZATION set maxRate or maxRatePerInstance or maxUtilization"]
    );
    assert_eq!(
        services_diagnostics("- name: tcp\n  protocol: TCP\n  backends:\n  - {group: neg-a, balancingMode: CONNECTION}\n"),
        vec!["error: svc.yaml:14: backendServices[tcp].backends[0].balancingMode: balancing mode CONNECTION needs a target capacity: set maxConnections or maxConnectionsPerEndpoint"]
    );
    assert_eq!(
        services_diagnostics("- name: web\n  backends:\n  - {group: ig-a, balancingMode: CONNECTION, maxConnections: 5}\n"),
        vec!["error: svc.yaml:13: backendServices[web].backends[0].balancingMode: CONNECTION is not allowed for a backend of type instance group behind an HTTP(S) proxy; allowed: RATE, UTILIZATION"]
    );
    assert_eq!(
        services_diagnostics("- name: web\n  backends:\n  - {group: ig-a, balancingMode: UTILIZATION, maxUtilization: 1.5}\n"),
        vec!["error: svc.yaml:13: backendServices[web].backends[0].maxUtilization: 1.5 is out of range; allowed: 0 to 1"]
    );
}

#[test]
fn proxies_need_services_of_their_protocol() {
    let config = VALID
        .replace("  timeoutSec: 30\n", "  timeoutSec: 30\n  protocol: TCP\n")
        .replace(
            "    balancingMode: RATE\n    maxRatePerEndpoint: 10\n",
            "    balancingMode: CONNECTION\n    maxConnectionsPerEndpoint: 10\n",
        );
    let found: Vec<String> = load_str(&config, "lb.yaml")
        .diagnostics
        .items
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        vec!["error: lb.yaml:22: urlMaps[map].defaultService: backend service `web` has protocol TCP, but a URL map needs protocol HTTP, HTTPS, HTTP2, H2C or GRPC"]
    );
    let tcp_proxy = VALID
        .replace(
            "targetHttpProxies:\n- name: proxy\n  urlMap: global/urlMaps/map\n",
            "targetTcpProxies:\n- name: proxy\n  service: global/backendServices/web\n",
        )
        .replace(
            "global/targetHttpProxies/proxy",
            "global/targetTcpProxies/proxy",
        );
    let found: Vec<String> = load_str(&tcp_proxy, "lb.yaml")
        .diagnostics
        .items
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        vec!["error: lb.yaml:24: targetTcpProxies[proxy].service: backend service `web` has protocol HTTP, but a target TCP or SSL proxy needs protocol TCP or SSL"]
    );
}

#[test]
fn protocols_and_backends_must_suit_the_scheme() {
    assert_eq!(
        services_diagnostics("- name: tcp\n  loadBalancingScheme: EXTERNAL_MANAGED\n  protocol: TCP\n"),
        vec!["error: svc.yaml:13: backendServices[tcp].protocol: protocol TCP is not offered with loadBalancingScheme EXTERNAL_MANAGED (HTTP, HTTPS or HTTP2 only); use EXTERNAL, INTERNAL_MANAGED or INTERNAL_SELF_MANAGED"]
    );
    let hybrid = "- name: tcp\n  protocol: TCP\n  backends:\n  - {group: hybrid, balancingMode: CONNECTION, maxConnections: 5}\n---\nnetworkEndpointGroups:\n- {name: hybrid, zone: us-central1-a, networkEndpointType: NON_GCP_PRIVATE_IP_PORT, endpoints: [{ipAddress: 10.0.0.1, port: 80}]}\n";
    assert_eq!(
        services_diagnostics(hybrid),
        vec!["error: svc.yaml:14: backendServices[tcp].backends[0].group: a NON_GCP_PRIVATE_IP_PORT NEG can back a TCP proxy only with loadBalancingScheme INTERNAL_MANAGED (the regional internal TCP proxy)"]
    );
    assert!(services_diagnostics(&hybrid.replace(
        "  protocol: TCP\n",
        "  protocol: TCP\n  loadBalancingScheme: INTERNAL_MANAGED\n"
    ))
    .is_empty());
}

/// Diagnostics of a config with one NEG whose endpoint is written as `endpoint`.
fn endpoint_diagnostics(kind: &str, endpoint: &str) -> Vec<String> {
    let config = format!("networkEndpointGroups:\n- name: neg\n  zone: us-central1-a\n  networkEndpointType: {kind}\n  endpoints:\n  - {endpoint}\n");
    diagnostics_of(&config, "ds.yaml")
}

#[test]
fn the_gcloud_endpoint_form_reads_like_the_mapping() {
    let text = "networkEndpointGroups:\n- name: neg\n  zone: us-central1-a\n  endpoints:\n  - 'instance=vm-a1,ip=10.0.0.1, ipv6=fd00::1,port=80'\n";
    let loaded = load_str(text, "ds.yaml");
    assert!(loaded.diagnostics.is_empty(), "{}", loaded.diagnostics);
    let endpoint = &loaded.model.endpoint_groups["neg"].endpoints[0];
    assert_eq!(endpoint.instance.as_deref(), Some("vm-a1"));
    assert_eq!(endpoint.ipv4, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(endpoint.ipv6, Some("fd00::1".parse().unwrap()));
    assert_eq!(endpoint.port, Some(80));
    assert_eq!(
        endpoint_diagnostics("GCE_VM_IP_PORT", "'instance=vm-a1,ipp=10.0.0.1,port=80'"),
        vec![
            "error: ds.yaml:6: networkEndpointGroups[neg].endpoints[0].ipAddress: an endpoint needs ipAddress, ipv6Address or both",
            "error: ds.yaml:6: networkEndpointGroups[neg].endpoints[0].ipp: unknown field `ipp`; known fields: annotations, fqdn, instance, ipAddress, ipv6Address, port, weight",
        ]
    );
}

#[test]
fn addresses_must_be_of_their_family() {
    assert_eq!(
        endpoint_diagnostics("GCE_VM_IP_PORT", "{ipAddress: 'fd00::1', port: 80}"),
        vec!["error: ds.yaml:6: networkEndpointGroups[neg].endpoints[0].ipAddress: ipAddress takes an IPv4 address; write an IPv6 address in ipv6Address"]
    );
    assert_eq!(
        endpoint_diagnostics("GCE_VM_IP_PORT", "{ipv6Address: 10.0.0.1, port: 80}"),
        vec!["error: ds.yaml:6: networkEndpointGroups[neg].endpoints[0].ipv6Address: ipv6Address takes an IPv6 address; write an IPv4 address in ipAddress"]
    );
}

#[test]
fn only_instance_groups_and_gce_vm_ip_port_negs_are_dual_stack() {
    assert_eq!(
        endpoint_diagnostics("NON_GCP_PRIVATE_IP_PORT", "{ipAddress: 10.0.0.1, ipv6Address: 'fd00::1', port: 80}"),
        vec!["error: ds.yaml:6: networkEndpointGroups[neg].endpoints[0].ipv6Address: only instance groups and GCE_VM_IP_PORT NEGs may be dual stack; a NON_GCP_PRIVATE_IP_PORT endpoint takes ipAddress or ipv6Address, not both"]
    );
    assert!(endpoint_diagnostics(
        "NON_GCP_PRIVATE_IP_PORT",
        "{ipv6Address: 'fd00::1', port: 80}"
    )
    .is_empty());
    assert!(endpoint_diagnostics(
        "GCE_VM_IP_PORT",
        "{ipAddress: 10.0.0.1, ipv6Address: 'fd00::1', port: 80}"
    )
    .is_empty());
}

#[test]
fn a_selection_policy_that_leaves_endpoints_out_warns() {
    let services = "- name: web\n  backends:\n  - {group: mixed, balancingMode: RATE, maxRate: 5}\n---\nnetworkEndpointGroups:\n- {name: mixed, zone: us-central1-a, endpoints: [{ipAddress: 10.0.0.1, port: 80}, {ipv6Address: 'fd00::2', port: 80}]}\n";
    assert_eq!(
        services_diagnostics(services),
        vec!["warning: svc.yaml:13: backendServices[web].backends[0].group: 1 of the 2 endpoints of GCE_VM_IP_PORT NEG `mixed` have no IPv4 address; with ipAddressSelectionPolicy IPV4_ONLY they get no traffic"]
    );
    let preferring = services.replace(
        "- name: web\n",
        "- name: web\n  ipAddressSelectionPolicy: PREFER_IPV6\n",
    );
    assert!(
        services_diagnostics(&preferring).is_empty(),
        "PREFER_IPV6 reaches both"
    );
}

#[test]
fn ip_version_must_match_the_address() {
    assert_eq!(
        one_error("portRange: \"80\"", "portRange: \"80\"\n  ipVersion: IPV6\n  IPAddress: 10.0.0.5"),
        "error: lb.yaml:29: forwardingRules[fr].IPAddress: 10.0.0.5 is an IPv4 address, but ipVersion is IPV6"
    );
}

#[test]
fn validate_for_proxyless_rejects_what_grpc_cannot_use() {
    let config = |validate: bool| {
        format!(
            "networkEndpointGroups:\n- {{name: neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: 80}}]}}\nbackendServices:\n- name: svc\n  timeoutSec: 10\n  sessionAffinity: GENERATED_COOKIE\n  localityLbPolicy: LEAST_REQUEST\nurlMaps:\n- {{name: map, defaultService: svc}}\ntargetGrpcProxies:\n- {{name: gp, urlMap: map, validateForProxyless: {validate}}}\n"
        )
    };
    let found = |validate: bool| -> Vec<String> {
        load_str(&config(validate), "g.yaml")
            .diagnostics
            .items
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        found(true),
        vec![
            "error: g.yaml:4: backendServices[svc].timeoutSec: proxyless gRPC clients do not support timeoutSec; set maxStreamDuration instead (targetGrpcProxies[gp] has validateForProxyless)",
            "warning: g.yaml:6: backendServices[svc].sessionAffinity: GENERATED_COOKIE is honoured only with localityLbPolicy RING_HASH or MAGLEV; backend service `svc` uses LEAST_REQUEST, so its requests will not stick",
            "warning: g.yaml:6: backendServices[svc].sessionAffinity: GENERATED_COOKIE reaches proxyless clients as a stateful-session cookie: gRPC C-core clients (grpcio, C++) honour it when the application sends the cookie back; grpc-js and others ignore it (used by targetGrpcProxies[gp])",
            "error: g.yaml:7: backendServices[svc].localityLbPolicy: LEAST_REQUEST is not supported by proxyless gRPC clients, which reject the cluster; use ROUND_ROBIN or RING_HASH (targetGrpcProxies[gp] has validateForProxyless)",
            "error: g.yaml:9: urlMaps[map].hostRules: proxyless clients look up the host they dial; add hostRules naming those hosts (targetGrpcProxies[gp] has validateForProxyless)",
        ]
    );
    assert!(
        found(false).iter().all(|d| d.starts_with("warning:")),
        "without validateForProxyless: warnings only"
    );
}

#[test]
fn route_timeouts_that_proxyless_clients_never_read_are_named() {
    let config = "networkEndpointGroups:\n- {name: neg, zone: us-central1-a, endpoints: [{ipAddress: 127.0.0.1, port: 80}]}\nbackendServices:\n- {name: svc, backends: [{group: neg, balancingMode: RATE, maxRatePerEndpoint: 5}]}\nurlMaps:\n- name: map\n  defaultService: svc\n  hostRules: [{hosts: [who], pathMatcher: m}]\n  pathMatchers:\n  - name: m\n    defaultService: svc\n    routeRules:\n    - priority: 1\n      service: svc\n      matchRules: [{prefixMatch: /}]\n      routeAction:\n        timeout: {nanos: 500000000}\n        retryPolicy: {numRetries: 2, retryConditions: [unavailable], perTryTimeout: {seconds: 1}}\ntargetGrpcProxies:\n- {name: gp, urlMap: map}\n";
    let found: Vec<String> = load_str(config, "t.yaml")
        .diagnostics
        .items
        .iter()
        .map(ToString::to_string)
        .filter(|d| d.contains("routeAction"))
        .collect();
    assert_eq!(
        found,
        vec![
            "warning: t.yaml:6: urlMaps[map].pathMatchers[m].routeRules[0].routeAction.retryPolicy.perTryTimeout: retryPolicy.perTryTimeout is not supported by proxyless gRPC clients (served anyway, since targetGrpcProxies[gp] does not set validateForProxyless)",
            "warning: t.yaml:6: urlMaps[map].pathMatchers[m].routeRules[0].routeAction.timeout: timeout (use maxStreamDuration) is not supported by proxyless gRPC clients (served anyway, since targetGrpcProxies[gp] does not set validateForProxyless)",
        ]
    );
}

#[test]
fn a_header_match_takes_exactly_one_way_to_match() {
    let config = |matches: &str| {
        format!("backendServices:\n- name: svc\nurlMaps:\n- name: map\n  defaultService: svc\n  hostRules: [{{hosts: ['*'], pathMatcher: m}}]\n  pathMatchers:\n  - name: m\n    defaultService: svc\n    routeRules:\n    - priority: 1\n      service: svc\n      matchRules:\n      - headerMatches:\n        - {matches}\n")
    };
    let found = |matches: &str| -> Vec<String> {
        load_str(&config(matches), "h.yaml")
            .diagnostics
            .items
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert!(found("{headerName: x-a, exactMatch: b}").is_empty());
    assert_eq!(
        found("{headerName: x-a, exactMatch: b, prefixMatch: c}"),
        vec!["error: h.yaml:15: urlMaps[map].pathMatchers[m].routeRules[0].matchRules[0].headerMatches[0]: a header match needs exactly one of exactMatch, prefixMatch, suffixMatch, regexMatch, presentMatch or rangeMatch; found 2"]
    );
    assert_eq!(
        found("{exactMatch: b}"),
        vec!["error: h.yaml:15: urlMaps[map].pathMatchers[m].routeRules[0].matchRules[0].headerMatches[0].headerName: this field is required"]
    );
}

/// VALID with an `xdsClients` rule whose body is `rule`.
fn rule_diagnostics(rule: &str) -> Vec<String> {
    let text = format!("{VALID}xdsClients:\n- name: edge\n{rule}");
    diagnostics_of(&text, "lb.yaml")
}

#[test]
fn xds_client_rules_need_identities_and_node_ids_and_real_references() {
    assert_eq!(
        rule_diagnostics("  identities: ['spiffe://t/*']\n  targetProxies: [prox]\n"),
        [
            "error: lb.yaml:30: xdsClients[edge].nodeIds: list at least one pattern: the node ids its clients may claim (`*` matches any run of characters)",
            "error: lb.yaml:32: xdsClients[edge].targetProxies[0]: `prox` refers to no resource in target proxies; did you mean `proxy`?",
        ]
    );
    assert_eq!(
        rule_diagnostics(
            "  identities: ['']\n  nodeIds: ['*']\n  backendServices: [global/urlMaps/map]\n  listeners: [fr]\n"
        ),
        [
            "error: lb.yaml:31: xdsClients[edge].identities[0]: an empty pattern matches nothing; write a name, or `*` for any",
            "error: lb.yaml:33: xdsClients[edge].backendServices[0]: `global/urlMaps/map` links to a resource in urlMaps, but this field takes backendServices",
        ]
    );
    assert_eq!(
        rule_diagnostics("  identities: ['*']\n  nodeIds: ['*']\n"),
        ["warning: lb.yaml:30: xdsClients[edge]: the rule names no listeners, clusters, targetProxies or backendServices: its clients are admitted and receive nothing"]
    );
}
