//! Unit tests of the pure translation, field by field: config text in, xDS messages out.

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType as SocketConfig;
use envoy_types::pb::envoy::config::core::v3::{address, socket_address::PortSpecifier};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment,
};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::route::v3::{
    route::Action, route_action::ClusterSpecifier, route_match::PathSpecifier, Route, RouteAction,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use prost::Message;
use switchyard::config::load_str;
use switchyard::translate::{translate, Resources};
use switchyard::xds::Snapshot;

const GROUPS: &str = r#"
networkEndpointGroups:
- name: neg-a
  zone: us-central1-a
  defaultPort: 8080
  endpoints:
  - {instance: vm-1, ipAddress: 10.0.0.2}
  - {instance: vm-2, ipAddress: 10.0.0.1, port: 9090}
  - {instance: vm-3, ipAddress: 10.0.0.3}
- name: neg-b
  zone: europe-west4-b
  networkEndpointType: NON_GCP_PRIVATE_IP_PORT
  endpoints:
  - {ipAddress: 192.168.0.1, port: 80}
instanceGroups:
- name: ig-c
  zone: us-east-1a
  namedPorts: [{name: http, port: 8000}, {name: admin, port: 9000}]
  instances:
  - {name: vm-c1, ipAddress: 10.1.0.1}
  - {name: vm-c2, ipAddress: 10.1.0.2}
"#;

fn resources(extra: &str) -> Resources {
    let loaded = load_str(&format!("{GROUPS}{extra}"), "t.yaml");
    assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
    translate(&loaded.model)
}

fn assignment<'a>(resources: &'a Resources, name: &str) -> &'a ClusterLoadAssignment {
    resources
        .endpoints
        .iter()
        .find(|e| e.cluster_name == name)
        .expect("assignment")
}

/// (sub_zone, weight, [ip:port]) per locality.
fn localities(assignment: &ClusterLoadAssignment) -> Vec<(String, u32, Vec<String>)> {
    assignment
        .endpoints
        .iter()
        .map(|l| {
            let addresses = l
                .lb_endpoints
                .iter()
                .map(|e| {
                    let Some(HostIdentifier::Endpoint(endpoint)) = &e.host_identifier else {
                        panic!()
                    };
                    let Some(address::Address::SocketAddress(socket)) =
                        &endpoint.address.as_ref().unwrap().address
                    else {
                        panic!()
                    };
                    let Some(PortSpecifier::PortValue(port)) = socket.port_specifier.clone() else {
                        panic!()
                    };
                    format!("{}:{port}", socket.address)
                })
                .collect();
            (
                l.locality.as_ref().unwrap().sub_zone.clone(),
                l.load_balancing_weight.unwrap().value,
                addresses,
            )
        })
        .collect()
}

#[test]
fn backends_become_weighted_localities_with_resolved_ports() {
    let out = resources(
        r#"
backendServices:
- name: neg-service
  backends:
  - {group: zones/us-central1-a/networkEndpointGroups/neg-a, balancingMode: RATE, maxRatePerEndpoint: 10}
  - {group: neg-b, balancingMode: RATE, maxRate: 20}
- name: ig-service
  portName: admin
  backends:
  - {group: zones/us-east-1a/instanceGroups/ig-c, balancingMode: UTILIZATION, maxUtilization: 0.5}
"#,
    );
    assert_eq!(
        localities(assignment(&out, "neg-service")),
        vec![
            ("neg-b".into(), 6667, vec!["192.168.0.1:80".into()]),
            (
                "neg-a".into(),
                10000,
                vec![
                    "10.0.0.1:9090".into(),
                    "10.0.0.2:8080".into(),
                    "10.0.0.3:8080".into()
                ]
            ),
        ],
        "3 endpoints × 10 rps against 20 rps is 3:2 (counting endpoints would give 3:1, \
         maxRatePerEndpoint read as the group's 1:2); NEG endpoints without a port use defaultPort"
    );
    let locality = assignment(&out, "neg-service").endpoints[1]
        .locality
        .clone()
        .unwrap();
    assert_eq!(
        (locality.region.as_str(), locality.zone.as_str()),
        ("us-central1", "us-central1-a")
    );
    let ig = assignment(&out, "ig-service");
    assert_eq!(
        localities(ig),
        vec![(
            "ig-c".into(),
            10000,
            vec!["10.1.0.1:9000".into(), "10.1.0.2:9000".into()]
        )]
    );
    assert_eq!(
        ig.endpoints[0].locality.as_ref().unwrap().region,
        "us-east-1",
        "an AWS-style zone implies its region"
    );
}

#[test]
fn capacity_scaler_scales_and_zero_leaves_rotation() {
    let config = |scaler: &str| {
        format!(
            r#"
backendServices:
- name: s
  backends:
  - {{group: neg-a, balancingMode: RATE, maxRate: 10, capacityScaler: {scaler}}}
  - {{group: neg-b, balancingMode: RATE, maxRate: 10}}
"#
        )
    };
    // 10 against 10 for groups of 3 and 1: A at 0.5 weighs half of B. Ignoring the scaler
    // gives 1:1, counting endpoints 3:2, maxRate read per endpoint 15:10. The full table of
    // misreadings is in capacity_splits.rs.
    let halved = resources(&config("0.5"));
    let weights: Vec<(String, u32)> = localities(assignment(&halved, "s"))
        .into_iter()
        .map(|(z, w, _)| (z, w))
        .collect();
    assert_eq!(
        weights,
        vec![("neg-b".into(), 10000), ("neg-a".into(), 5000)]
    );
    let drained = resources(&config("0.0"));
    let zones: Vec<String> = localities(assignment(&drained, "s"))
        .into_iter()
        .map(|(z, ..)| z)
        .collect();
    assert_eq!(
        zones,
        vec!["neg-b".to_string()],
        "capacityScaler 0 removes the locality instead of weighting it 0"
    );
}

#[test]
fn backend_services_become_eds_clusters_with_their_lb_policy() {
    let out = resources(
        r#"
backendServices:
- name: plain
  backends: [{group: neg-a, balancingMode: RATE, maxRate: 1}]
- name: h2
  protocol: H2C
  localityLbPolicy: LEAST_REQUEST
- name: h2-tls
  protocol: HTTP2
- name: https
  protocol: HTTPS
- name: hashed
  localityLbPolicy: RING_HASH
- name: random
  localityLbPolicy: RANDOM
- name: maglev
  localityLbPolicy: MAGLEV
"#,
    );
    let cluster = |name: &str| {
        out.clusters
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .clone()
    };
    let plain = cluster("plain");
    assert_eq!(
        plain.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
    );
    assert_eq!(
        plain.eds_cluster_config.as_ref().unwrap().service_name,
        "plain"
    );
    assert_eq!(plain.lb_policy, LbPolicy::RoundRobin as i32);
    assert!(
        plain
            .common_lb_config
            .unwrap()
            .locality_config_specifier
            .is_some(),
        "locality weights are honoured"
    );
    // Every HTTP cluster keeps connections to backends for the cloud's 600 s of idleness.
    let options = &plain.typed_extension_protocol_options
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    let options =
        envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions::decode(
            options.value.as_slice(),
        )
        .unwrap();
    assert_eq!(
        options
            .common_http_protocol_options
            .unwrap()
            .idle_timeout
            .unwrap()
            .seconds,
        600
    );
    let h2 = cluster("h2");
    assert_eq!(h2.lb_policy, LbPolicy::LeastRequest as i32);
    assert!(h2
        .typed_extension_protocol_options
        .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"));
    assert!(h2.transport_socket.is_none(), "H2C is HTTP/2 in cleartext");
    assert!(plain.transport_socket.is_none());
    // HTTP2 is HTTP/2 over TLS, as the cloud speaks it; HTTPS is HTTP/1.1 over TLS.
    for (name, alpn) in [("h2-tls", "h2"), ("https", "http/1.1")] {
        let socket = cluster(name).transport_socket.expect("TLS to the backends");
        assert_eq!(socket.name, "envoy.transport_sockets.tls");
        let Some(SocketConfig::TypedConfig(any)) = socket.config_type else {
            panic!()
        };
        let context = UpstreamTlsContext::decode(any.value.as_slice()).unwrap();
        let common = context.common_tls_context.unwrap();
        assert_eq!(common.alpn_protocols, [alpn], "{name}");
        assert!(
            common.validation_context_type.is_none(),
            "the backend's certificate is not verified, as behind the cloud"
        );
    }
    assert_eq!(cluster("hashed").lb_policy, LbPolicy::RingHash as i32);
    assert_eq!(cluster("random").lb_policy, LbPolicy::Random as i32);
    assert_eq!(cluster("maglev").lb_policy, LbPolicy::Maglev as i32);
    let names: Vec<&str> = out.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["h2", "h2-tls", "hashed", "https", "maglev", "plain", "random"],
        "sorted by name"
    );
}

const FRONTEND: &str = r#"
backendServices:
- name: web
  timeoutSec: 45
- name: api
- name: static
  timeoutSec: 5
targetHttpProxies:
- name: proxy
  urlMap: https://www.googleapis.com/compute/v1/projects/p/global/urlMaps/map
forwardingRules:
- name: fr
  IPAddress: 10.9.8.7
  portRange: 8080-8080
  target: global/targetHttpProxies/proxy
"#;

fn routes_of(url_map: &str) -> Resources {
    resources(&format!("{FRONTEND}urlMaps:\n{url_map}"))
}

fn describe(route: &Route) -> String {
    let matched = route.r#match.as_ref().unwrap();
    let path = match matched.path_specifier.as_ref().unwrap() {
        PathSpecifier::Prefix(p) => format!("prefix {p}"),
        PathSpecifier::Path(p) => format!("path {p}"),
        other => format!("{other:?}"),
    };
    let case = if matched.case_sensitive.map(|b| !b.value).unwrap_or(false) {
        " (any case)"
    } else {
        ""
    };
    let Some(Action::Route(RouteAction {
        cluster_specifier: Some(target),
        timeout,
        ..
    })) = &route.action
    else {
        panic!()
    };
    let target = match target {
        ClusterSpecifier::Cluster(c) => c.clone(),
        ClusterSpecifier::WeightedClusters(w) => w
            .clusters
            .iter()
            .map(|c| format!("{}={}", c.name, c.weight.unwrap().value))
            .collect::<Vec<_>>()
            .join(","),
        other => format!("{other:?}"),
    };
    format!("{path}{case} -> {target} {}s", timeout.unwrap().seconds)
}

#[test]
fn forwarding_rules_become_listeners_routing_over_rds() {
    let out = routes_of("- name: map\n  defaultService: web\n");
    assert_eq!(out.listeners.len(), 1);
    let listener = &out.listeners[0];
    assert_eq!(listener.name, "fr");
    let Some(address::Address::SocketAddress(socket)) = &listener.address.as_ref().unwrap().address
    else {
        panic!()
    };
    assert_eq!(
        (socket.address.as_str(), socket.port_specifier.clone()),
        ("10.9.8.7", Some(PortSpecifier::PortValue(8080)))
    );
    let filter = &listener.filter_chains[0].filters[0];
    let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
        panic!()
    };
    let manager = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    let Some(RouteSpecifier::Rds(rds)) = manager.route_specifier else {
        panic!()
    };
    assert_eq!(rds.route_config_name, "map");
    assert_eq!(manager.http_filters[0].name, "envoy.filters.http.router");
}

#[test]
fn path_rules_match_longest_first_and_fall_back_to_the_default() {
    let out = routes_of(
        r#"
- name: map
  defaultService: web
  hostRules:
  - {hosts: [example.com, '*.example.com'], pathMatcher: site}
  pathMatchers:
  - name: site
    defaultService: global/backendServices/web
    pathRules:
    - {paths: ['/static/*'], service: static}
    - {paths: [/api, '/api/*', /api/v1/special], service: api}
"#,
    );
    let config = &out.routes[0];
    assert_eq!(config.name, "map");
    let hosts: Vec<(&str, Vec<String>)> = config
        .virtual_hosts
        .iter()
        .map(|v| (v.name.as_str(), v.domains.clone()))
        .collect();
    assert_eq!(
        hosts,
        vec![
            (
                "site-0",
                vec!["example.com".to_string(), "*.example.com".to_string()]
            ),
            ("default", vec!["*".to_string()])
        ],
        "host rules first, then the URL map's default service for any other host"
    );
    let routes: Vec<String> = config.virtual_hosts[0]
        .routes
        .iter()
        .map(describe)
        .collect();
    assert_eq!(
        routes,
        vec![
            "path /api/v1/special -> api 30s",
            "prefix /static/ -> static 5s",
            "prefix /api/ -> api 30s",
            "path /api -> api 30s",
            "prefix  -> web 45s",
        ]
    );
}

#[test]
fn route_rules_follow_priority_and_split_by_weight() {
    let out = routes_of(
        r#"
- name: map
  defaultService: global/backendServices/web
  hostRules:
  - hosts: ['*']
    pathMatcher: matcher1
  pathMatchers:
  - defaultService: global/backendServices/web
    name: matcher1
    routeRules:
    - matchRules:
      - prefixMatch: ''
      priority: 10
      routeAction:
        weightedBackendServices:
        - backendService: global/backendServices/web
          weight: 95
        - backendService: global/backendServices/static
          weight: 5
    - priority: 1
      matchRules:
      - {fullPathMatch: /Exact, ignoreCase: true}
      - {prefixMatch: /p/}
      service: api
    - priority: 2
      matchRules: [{prefixMatch: /zero}]
      routeAction:
        timeout: {seconds: 7}
        weightedBackendServices:
        - {backendService: web, weight: 0}
        - {backendService: api, weight: 1000}
"#,
    );
    let config = &out.routes[0];
    assert_eq!(
        config.virtual_hosts.len(),
        1,
        "a `*` host rule replaces the default virtual host"
    );
    let routes: Vec<String> = config.virtual_hosts[0]
        .routes
        .iter()
        .map(describe)
        .collect();
    assert_eq!(
        routes,
        vec![
            "path /Exact (any case) -> api 30s",
            "prefix /p/ -> api 30s",
            "prefix /zero -> api=1000 7s",
            "prefix  -> web=95,static=5 45s",
            "prefix  -> web 45s",
        ],
        "priority order; a weight of 0 drops the service; the split's timeout is the longest timeoutSec"
    );
}

#[test]
fn translation_is_deterministic_and_versions_are_content_hashes() {
    use switchyard::xds::server::cache::{Audience, ViewKey};
    use switchyard::xds::types::TypeUrl;
    let snapshot_of = |text: &str, file: &str, previous: Option<&Snapshot>| {
        let model = load_str(text, file).model;
        let resources = translate(&model);
        Snapshot::build(
            switchyard::publish::content_of(&model, resources, &[]),
            previous,
        )
    };
    let text = format!("{GROUPS}{FRONTEND}urlMaps:\n- name: map\n  defaultService: web\n");
    let first = snapshot_of(&text, "a.yaml", None);
    let second = snapshot_of(&text, "b.yaml", None);
    assert_eq!(
        first.version, second.version,
        "same config, same bytes and versions, whatever the file name"
    );
    let changed = snapshot_of(
        &text.replace("timeoutSec: 45", "timeoutSec: 46"),
        "a.yaml",
        Some(&first),
    );
    assert_ne!(first.version, changed.version);
    let route_of = |s: &Snapshot| {
        s.view_by_key(TypeUrl::Route, &ViewKey::Audience(Audience::Envoy))
            .unwrap()
            .resources["map"]
            .version
            .clone()
    };
    let cluster_of = |s: &Snapshot| {
        s.view_by_key(TypeUrl::Cluster, &ViewKey::Shared)
            .unwrap()
            .resources["web"]
            .clone()
    };
    assert_ne!(
        route_of(&first),
        route_of(&changed),
        "the route timeout changed"
    );
    assert!(
        std::sync::Arc::ptr_eq(&cluster_of(&first), &cluster_of(&changed)),
        "an unchanged resource is shared, not re-encoded"
    );
}

mod backend_services {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::LbConfig;
    use envoy_types::pb::envoy::config::core::v3::HealthStatus;
    use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::PolicySpecifier;
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
    use switchyard::model::DrainingEndpoint;
    use switchyard::translate::endpoints::{assignment_for, OVERPROVISIONING_PERCENT};

    fn model(extra: &str) -> switchyard::model::Model {
        let loaded = load_str(&format!("{GROUPS}{extra}"), "t.yaml");
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        loaded.model
    }

    /// (priority, sub_zone) of each locality as a client in `region` sees `service`.
    fn priorities(model: &switchyard::model::Model, region: Option<&str>) -> Vec<(u32, String)> {
        let service = &model.services["svc"];
        assignment_for(model, service, region, &[])
            .endpoints
            .iter()
            .map(|l| (l.priority, l.locality.as_ref().unwrap().sub_zone.clone()))
            .collect()
    }

    const THREE_REGIONS: &str = r#"
backendServices:
- name: svc
  backends:
  - {group: neg-a, balancingMode: RATE, maxRate: 10}
  - {group: neg-b, balancingMode: RATE, maxRate: 10}
  - {group: neg-c, balancingMode: RATE, maxRate: 10}
---
networkEndpointGroups:
- name: neg-c
  zone: us-east1-b
  endpoints: [{ipAddress: 10.3.0.1, port: 80}]
"#;

    #[test]
    fn regions_become_priorities_in_the_clients_failover_order() {
        let m = model(THREE_REGIONS);
        assert_eq!(
            priorities(&m, Some("us-central1")),
            vec![
                (0, "neg-a".into()),
                (1, "neg-c".into()),
                (2, "neg-b".into())
            ],
            "own region, then the same continent (us-east1), then anywhere"
        );
        assert_eq!(
            priorities(&m, Some("europe-west4")),
            vec![
                (0, "neg-b".into()),
                (1, "neg-a".into()),
                (1, "neg-c".into())
            ]
        );
        assert_eq!(
            priorities(&m, None),
            vec![
                (0, "neg-b".into()),
                (0, "neg-a".into()),
                (0, "neg-c".into())
            ],
            "a client without a region sees one priority"
        );
        let ordered = model(&format!(
            "{THREE_REGIONS}regionOrder:\n  us-central1: [europe-west4]\n"
        ));
        assert_eq!(
            priorities(&ordered, Some("us-central1")),
            vec![
                (0, "neg-a".into()),
                (1, "neg-b".into()),
                (2, "neg-c".into())
            ],
            "regionOrder goes before the continent rule"
        );
        let assignment = assignment_for(&m, &m.services["svc"], None, &[]);
        assert_eq!(
            assignment
                .policy
                .unwrap()
                .overprovisioning_factor
                .unwrap()
                .value,
            OVERPROVISIONING_PERCENT
        );
    }

    #[test]
    fn a_region_without_capacity_gives_its_priority_to_the_next() {
        let m = model(&THREE_REGIONS.replace(
            "{group: neg-a, balancingMode: RATE, maxRate: 10}",
            "{group: neg-a, balancingMode: RATE, maxRate: 10, capacityScaler: 0}",
        ));
        assert_eq!(
            priorities(&m, Some("us-central1")),
            vec![(0, "neg-c".into()), (1, "neg-b".into())],
            "priorities stay contiguous from 0"
        );
    }

    #[test]
    fn draining_endpoints_are_listed_as_draining() {
        let m = model(THREE_REGIONS);
        let draining = [
            DrainingEndpoint {
                service: "svc".into(),
                group: "neg-a".into(),
                region: "us-central1".into(),
                zone: "us-central1-a".into(),
                address: "10.0.0.9:8080".parse().unwrap(),
            },
            DrainingEndpoint {
                service: "svc".into(),
                group: "gone".into(),
                region: "asia-east1".into(),
                zone: "asia-east1-a".into(),
                address: "10.9.9.9:80".parse().unwrap(),
            },
        ];
        let assignment = assignment_for(&m, &m.services["svc"], Some("us-central1"), &draining);
        let neg_a = &assignment.endpoints[0];
        assert_eq!(neg_a.lb_endpoints.len(), 4);
        assert_eq!(
            neg_a.lb_endpoints[3].health_status,
            HealthStatus::Draining as i32
        );
        let last = assignment.endpoints.last().unwrap();
        assert_eq!(
            (
                last.priority,
                last.locality.as_ref().unwrap().sub_zone.as_str()
            ),
            (3, "gone")
        );
        assert_eq!(
            last.lb_endpoints[0].health_status,
            HealthStatus::Draining as i32
        );
    }

    #[test]
    fn hashing_policies_carry_capacity_in_endpoint_weights() {
        let m = model(
            r#"
backendServices:
- name: svc
  localityLbPolicy: RING_HASH
  consistentHash: {minimumRingSize: 4096}
  backends:
  - {group: neg-a, balancingMode: RATE, maxRatePerEndpoint: 10}
  - {group: neg-b, balancingMode: RATE, maxRate: 10}
- name: weighted
  localityLbPolicy: WEIGHTED_MAGLEV
  backends:
  - {group: neg-w, balancingMode: RATE, maxRate: 10}
---
networkEndpointGroups:
- name: neg-w
  zone: us-central1-c
  endpoints:
  - {ipAddress: 10.5.0.1, port: 80, weight: 3}
  - {ipAddress: 10.5.0.2, port: 80}
"#,
        );
        let assignment = assignment_for(&m, &m.services["svc"], None, &[]);
        let weights: Vec<Vec<u32>> = assignment
            .endpoints
            .iter()
            .map(|l| {
                l.lb_endpoints
                    .iter()
                    .map(|e| e.load_balancing_weight.unwrap().value)
                    .collect()
            })
            .collect();
        assert_eq!(
            weights,
            vec![vec![3333], vec![3333, 3333, 3333]],
            "each endpoint carries an equal share of capacity"
        );
        let weighted = assignment_for(&m, &m.services["weighted"], None, &[]);
        let weights: Vec<u32> = weighted.endpoints[0]
            .lb_endpoints
            .iter()
            .map(|e| e.load_balancing_weight.unwrap().value)
            .collect();
        assert_eq!(
            weights,
            vec![7500, 2500],
            "WEIGHTED_MAGLEV honours endpoint weights"
        );
        let out = translate(&m);
        let ring = out.clusters.iter().find(|c| c.name == "svc").unwrap();
        let Some(LbConfig::RingHashLbConfig(config)) = &ring.lb_config else {
            panic!("{ring:?}")
        };
        assert_eq!(config.minimum_ring_size.unwrap().value, 4096);
        assert!(
            ring.common_lb_config
                .as_ref()
                .is_some_and(|common| common.locality_config_specifier.is_none()),
            "no locality weighting with a hashing policy"
        );
    }

    fn policy_of(affinity: &str) -> Option<PolicySpecifier> {
        let policy = if affinity.contains("localityLbPolicy") {
            ""
        } else {
            "  localityLbPolicy: RING_HASH\n"
        };
        let out = resources(&format!(
            "backendServices:\n- name: web\n{policy}{affinity}\n{}",
            "urlMaps:\n- name: map\n  defaultService: web\n"
        ));
        let route = &out.routes[0].virtual_hosts[0].routes[0];
        let Some(Action::Route(action)) = &route.action else {
            panic!()
        };
        action
            .hash_policy
            .first()
            .and_then(|p| p.policy_specifier.clone())
    }

    #[test]
    fn session_affinity_becomes_a_route_hash_policy() {
        let Some(PolicySpecifier::Cookie(cookie)) =
            policy_of("  sessionAffinity: GENERATED_COOKIE\n  affinityCookieTtlSec: 60")
        else {
            panic!()
        };
        assert_eq!(
            (
                cookie.name.as_str(),
                cookie.ttl.unwrap().seconds,
                cookie.path.as_str()
            ),
            ("GCLB", 60, "/"),
            "the default scheme is EXTERNAL: GCLB"
        );
        let Some(PolicySpecifier::Cookie(session)) =
            policy_of("  sessionAffinity: GENERATED_COOKIE")
        else {
            panic!()
        };
        assert_eq!(
            session.ttl.unwrap().seconds,
            0,
            "ttl 0: a session cookie, still generated"
        );
        // Behind an internal scheme the cloud names the cookie GCILB.
        let Some(PolicySpecifier::Cookie(internal)) = policy_of(
            "  loadBalancingScheme: INTERNAL_SELF_MANAGED\n  sessionAffinity: GENERATED_COOKIE",
        ) else {
            panic!()
        };
        assert_eq!(internal.name, "GCILB");
        let Some(PolicySpecifier::Cookie(cookie)) = policy_of("  sessionAffinity: HTTP_COOKIE\n  consistentHash:\n    httpCookie: {name: sid, path: /app, ttl: {seconds: 5}}") else { panic!() };
        assert_eq!(
            (
                cookie.name.as_str(),
                cookie.ttl.unwrap().seconds,
                cookie.path.as_str()
            ),
            ("sid", 5, "/app")
        );
        let Some(PolicySpecifier::Header(header)) = policy_of(
            "  sessionAffinity: HEADER_FIELD\n  consistentHash: {httpHeaderName: x-user}",
        ) else {
            panic!()
        };
        assert_eq!(header.header_name, "x-user");
        let Some(PolicySpecifier::ConnectionProperties(properties)) =
            policy_of("  sessionAffinity: CLIENT_IP")
        else {
            panic!()
        };
        assert!(properties.source_ip);
        assert_eq!(policy_of("  sessionAffinity: NONE"), None);
        assert_eq!(
            policy_of("  localityLbPolicy: ROUND_ROBIN\n  sessionAffinity: CLIENT_IP").map(|_| ()),
            None,
            "not honoured without hashing"
        );
    }

    #[test]
    fn tcp_proxies_become_tcp_proxy_listeners_and_original_destination_clusters_take_no_eds() {
        let out = resources(
            r#"
backendServices:
- name: tcp
  protocol: TCP
  timeoutSec: 90
  localityLbPolicy: MAGLEV
  sessionAffinity: CLIENT_IP
- name: passthrough
  localityLbPolicy: ORIGINAL_DESTINATION
targetTcpProxies:
- {name: tp, service: tcp}
forwardingRules:
- {name: fr-tcp, IPAddress: 127.0.0.1, portRange: '5432', target: global/targetTcpProxies/tp}
"#,
        );
        let filter = &out.listeners[0].filter_chains[0].filters[0];
        assert_eq!(filter.name, "envoy.filters.network.tcp_proxy");
        let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
            panic!()
        };
        let proxy = TcpProxy::decode(any.value.as_slice()).unwrap();
        assert_eq!(
            proxy.idle_timeout.unwrap().seconds,
            90,
            "timeoutSec is the TCP idle timeout"
        );
        assert_eq!(
            proxy.hash_policy.len(),
            1,
            "CLIENT_IP hashes the source address"
        );
        let passthrough = out
            .clusters
            .iter()
            .find(|c| c.name == "passthrough")
            .unwrap();
        assert_eq!(
            passthrough.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(
                DiscoveryType::OriginalDst as i32
            ))
        );
        assert_eq!(passthrough.lb_policy, LbPolicy::ClusterProvided as i32);
        assert!(passthrough.eds_cluster_config.is_none());
    }
}

mod dual_stack {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::upstream_connection_options::FirstAddressFamilyVersion;
    use switchyard::translate::routes::GET_RETRIES;

    const DUAL: &str = r#"
---
networkEndpointGroups:
- name: dual
  zone: us-central1-a
  endpoints:
  - 'instance=vm-1,ip=10.0.0.1,ipv6=fd00::1,port=80'
  - {instance: vm-2, ipAddress: 10.0.0.2, port: 80}
  - {instance: vm-3, ipv6Address: 'fd00::3', port: 80}
"#;

    /// (address, additional addresses) of each endpoint of the service `svc` with `policy`.
    fn addresses(policy: &str) -> (Vec<(String, Vec<String>)>, Resources) {
        let out = resources(&format!(
            "backendServices:\n- name: svc\n  ipAddressSelectionPolicy: {policy}\n  backends:\n  - {{group: dual, balancingMode: RATE, maxRate: 5}}\n{DUAL}"
        ));
        let assignment = assignment(&out, "svc");
        let socket = |address: &envoy_types::pb::envoy::config::core::v3::Address| {
            let Some(address::Address::SocketAddress(s)) = &address.address else {
                panic!()
            };
            s.address.clone()
        };
        let list = assignment.endpoints[0]
            .lb_endpoints
            .iter()
            .map(|e| {
                let Some(HostIdentifier::Endpoint(endpoint)) = &e.host_identifier else {
                    panic!()
                };
                let extra = endpoint
                    .additional_addresses
                    .iter()
                    .map(|a| socket(a.address.as_ref().unwrap()))
                    .collect();
                (socket(endpoint.address.as_ref().unwrap()), extra)
            })
            .collect();
        (list, out)
    }

    #[test]
    fn each_policy_sends_its_family() {
        let (v4, out) = addresses("IPV4_ONLY");
        assert_eq!(
            v4,
            vec![("10.0.0.1".into(), vec![]), ("10.0.0.2".into(), vec![])]
        );
        assert!(out.clusters[0].upstream_connection_options.is_none());
        let (v6, _) = addresses("IPV6_ONLY");
        assert_eq!(
            v6,
            vec![("fd00::1".into(), vec![]), ("fd00::3".into(), vec![])]
        );
        let (prefer, out) = addresses("PREFER_IPV6");
        assert_eq!(
            prefer,
            vec![
                ("10.0.0.2".into(), vec![]),
                ("fd00::1".into(), vec!["10.0.0.1".into()]),
                ("fd00::3".into(), vec![]),
            ],
            "IPv6 first with the IPv4 address as fallback; single-stack endpoints as they are"
        );
        let eyeballs = out.clusters[0]
            .upstream_connection_options
            .unwrap()
            .happy_eyeballs_config
            .unwrap();
        assert_eq!(
            eyeballs.first_address_family_version,
            FirstAddressFamilyVersion::V6 as i32
        );
    }

    #[test]
    fn ipv6_frontends_freebind_and_get_retries() {
        let out = resources(&format!(
            "{FRONTEND}- {{name: fr6, ipVersion: IPV6, portRange: '80', freebind: true, target: proxy}}\nurlMaps:\n- name: map\n  defaultService: web\n"
        )
        .replace("forwardingRules:\n", "forwardingRules:\n"));
        let v6 = out.listeners.iter().find(|l| l.name == "fr6").unwrap();
        let Some(address::Address::SocketAddress(socket)) = &v6.address.as_ref().unwrap().address
        else {
            panic!()
        };
        assert_eq!(
            socket.address, "::",
            "ipVersion IPV6 without an address listens on ::"
        );
        assert!(v6.freebind.unwrap().value);
        let v4 = out.listeners.iter().find(|l| l.name == "fr").unwrap();
        assert!(v4.freebind.is_none());
        let retry = out.routes[0].virtual_hosts[0].retry_policy.clone().unwrap();
        assert_eq!(retry.retry_on, "connect-failure,reset,refused-stream");
        assert_eq!(retry.num_retries.unwrap().value, GET_RETRIES);
        assert_eq!(
            retry.retriable_request_headers[0].name, ":method",
            "only GET is retried"
        );
    }
}

mod proxyless {
    use super::*;
    use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::PolicySpecifier;

    fn proxyless_resources(extra: &str) -> Resources {
        resources(&format!(
            r#"
backendServices:
- name: who
  protocol: GRPC
  localityLbPolicy: RING_HASH
  sessionAffinity: CLIENT_IP
  maxStreamDuration: {{seconds: 4, nanos: 500000000}}
  circuitBreakers: {{maxRequests: 100}}
  backends: [{{group: neg-a, balancingMode: RATE, maxRate: 10}}]
urlMaps:
- name: who-map
  defaultService: who
  hostRules:
  - {{hosts: [who.example, 'api.example:9000'], pathMatcher: m}}
  pathMatchers: [{{name: m, defaultService: who}}]
targetGrpcProxies:
- {{name: gp, urlMap: who-map, validateForProxyless: true}}
forwardingRules:
- {{name: g1, IPAddress: 0.0.0.0, portRange: '8080', target: global/targetGrpcProxies/gp}}
{extra}"#
        ))
    }

    #[test]
    fn grpc_proxies_become_api_listeners_named_by_what_clients_dial() {
        let out = proxyless_resources("");
        assert!(
            out.listeners.is_empty(),
            "Envoy gets no listener for a gRPC proxy"
        );
        let names: Vec<&str> = out
            .proxyless_listeners
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(
            names,
            vec!["api.example:9000", "who.example", "who.example:8080"]
        );
        let api = out.proxyless_listeners[1]
            .api_listener
            .as_ref()
            .unwrap()
            .api_listener
            .as_ref()
            .unwrap();
        let manager = HttpConnectionManager::decode(api.value.as_slice()).unwrap();
        let Some(RouteSpecifier::Rds(rds)) = manager.route_specifier else {
            panic!()
        };
        assert_eq!(rds.route_config_name, "who-map");
        assert_eq!(
            manager.http_filters[0].name, "envoy.filters.http.router",
            "gRPC requires the router filter"
        );
    }

    #[test]
    fn proxyless_routes_match_the_dialed_authority_and_carry_the_stream_deadline() {
        let out = proxyless_resources("");
        let config = &out.proxyless_routes[0];
        assert_eq!(
            config.virtual_hosts[0].domains,
            vec!["who.example", "who.example:8080", "api.example:9000"]
        );
        assert!(
            config.virtual_hosts[0].retry_policy.is_none(),
            "no HTTP retry policy for gRPC"
        );
        let Some(Action::Route(action)) = &config.virtual_hosts[0].routes[0].action else {
            panic!()
        };
        let deadline = action
            .max_stream_duration
            .as_ref()
            .unwrap()
            .max_stream_duration
            .unwrap();
        assert_eq!((deadline.seconds, deadline.nanos), (4, 500_000_000));
        assert!(
            action.timeout.is_none(),
            "gRPC takes maxStreamDuration, not timeoutSec"
        );
        let Some(PolicySpecifier::FilterState(state)) = &action.hash_policy[0].policy_specifier
        else {
            panic!()
        };
        assert_eq!(
            state.key, "io.grpc.channel_id",
            "CLIENT_IP becomes channel affinity"
        );
        let cluster = &out.clusters[0];
        assert_eq!(
            cluster.circuit_breakers.as_ref().unwrap().thresholds[0]
                .max_requests
                .unwrap()
                .value,
            100
        );
        assert!(
            cluster.lrs_server.is_some(),
            "clients report load to this server"
        );
    }
}

#[test]
fn outlier_detection_takes_the_clouds_defaults() {
    let out = resources("backendServices:\n- name: svc\n  outlierDetection: {consecutiveErrors: 7, interval: {seconds: 10}}\n- name: plain\n");
    let cluster = |name: &str| {
        out.clusters
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .clone()
    };
    let outliers = cluster("svc").outlier_detection.unwrap();
    assert_eq!(outliers.consecutive_5xx.unwrap().value, 7);
    assert_eq!(outliers.interval.unwrap().seconds, 10);
    assert_eq!(outliers.base_ejection_time.unwrap().seconds, 30);
    assert_eq!(outliers.max_ejection_percent.unwrap().value, 50);
    assert_eq!(
        outliers.enforcing_consecutive_5xx.unwrap().value,
        0,
        "the cloud does not enforce consecutive errors unless asked"
    );
    assert_eq!(outliers.success_rate_stdev_factor.unwrap().value, 1900);
    assert!(cluster("plain").outlier_detection.is_none());
}

#[test]
fn header_matches_become_route_header_matchers() {
    use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
    let out = routes_of(
        r#"
- name: map
  defaultService: web
  hostRules: [{hosts: ['*'], pathMatcher: m}]
  pathMatchers:
  - name: m
    defaultService: web
    routeRules:
    - priority: 1
      matchRules:
      - prefixMatch: /
        headerMatches:
        - {headerName: x-canary, exactMatch: 'true'}
        - {headerName: x-debug, presentMatch: true, invertMatch: true}
        - {headerName: x-version, rangeMatch: {rangeStart: 2, rangeEnd: 5}}
        - {headerName: x-user, regexMatch: '^a.*'}
      service: api
"#,
    );
    let headers = &out.routes[0].virtual_hosts[0].routes[0]
        .r#match
        .as_ref()
        .unwrap()
        .headers;
    assert_eq!(headers.len(), 4);
    let Some(HeaderMatchSpecifier::StringMatch(exact)) = &headers[0].header_match_specifier else {
        panic!()
    };
    assert_eq!(
        exact.match_pattern,
        Some(MatchPattern::Exact("true".into()))
    );
    assert_eq!(
        (headers[1].name.as_str(), headers[1].invert_match),
        ("x-debug", true)
    );
    assert_eq!(
        headers[1].header_match_specifier,
        Some(HeaderMatchSpecifier::PresentMatch(true))
    );
    let Some(HeaderMatchSpecifier::RangeMatch(range)) = &headers[2].header_match_specifier else {
        panic!()
    };
    assert_eq!((range.start, range.end), (2, 5));
    let Some(HeaderMatchSpecifier::StringMatch(regex)) = &headers[3].header_match_specifier else {
        panic!()
    };
    assert!(matches!(&regex.match_pattern, Some(MatchPattern::SafeRegex(r)) if r.regex == "^a.*"));
}
