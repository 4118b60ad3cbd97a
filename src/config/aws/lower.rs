//! A CloudFormation template lowered into the model. A target group becomes a backend service
//! (its algorithm, stickiness, slow start, deregistration delay and anomaly mitigation as the
//! service's policies), one endpoint group per zone of its targets (region from the zone) and
//! a health check the centralized checker runs; a listener becomes a frontend on each family of
//! its load balancer (the addresses come from the load balancer's `Metadata.Switchyard`, the
//! only Switchyard-specific setting of the dialect) with a routing table of its rules in
//! priority order, its default action last. Resource names are the logical ids. Must not: know
//! xDS, or judge AWS input in GCP's words (everything AWS-specific is checked by the readers).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use crate::config::reader::Fields;
use crate::config::yaml::Node;
use crate::model::tls::Pem;
use crate::model::{
    Backend, BackendProtocol, BackendService, BalancingMode, ConsistentHash, Diagnostics, Endpoint,
    EndpointGroup, ForwardingRule, GroupKind, GrpcCheckCall, HealthCheck, HealthCheckProtocol,
    HostRule, HttpCookie, IpAddressSelectionPolicy, LoadBalancingScheme, Loc, LocalityLbPolicy,
    MinimumHealthy, Model, OutlierDetection, PathMatcher, PortSpecification, ProxyTarget, ProxyTls,
    Ref, RouteExtras, RouteRule, SessionAffinity, SslCertificate, SslPolicy, SslProfile,
    TargetProxy, TlsVersion, UrlMap,
};

use super::attributes::{Algorithm, CrossZone, Stickiness};
use super::health_check::{CheckPort, Matcher};
use super::listeners::{self, Listener, LoadBalancer, Rule};
use super::routes;
use super::target_groups::{self, Protocol, ProtocolVersion, TargetGroup};
use super::template::{self, Kind};

/// An ALB's idle timeout (60 s by default): the longest a request waits for its target.
const IDLE_TIMEOUT_SEC: u32 = 60;

/// The name of the cookie lb_cookie stickiness issues.
pub const LB_COOKIE: &str = "AWSALB";
/// The name of the cookie app_cookie stickiness issues beside the application's own.
pub const APP_COOKIE: &str = "AWSALBAPP-0";

/// Where a load balancer listens, from its `Metadata.Switchyard`.
struct Addresses {
    ipv4: IpAddr,
    /// Dualstack load balancers only.
    ipv6: Option<IpAddr>,
}

/// Reads one template into `model`.
pub fn read_document(
    document: &Node,
    file: &Arc<str>,
    model: &mut Model,
    diagnostics: &mut Diagnostics,
) {
    let template = template::read_template(document, file, diagnostics);
    let mut target_groups = Vec::new();
    let mut load_balancers = BTreeMap::new();
    let mut listeners = Vec::new();
    let mut proxyless_hosts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut rules = Vec::new();
    for resource in template.resources.values() {
        match resource.kind {
            Kind::TargetGroup => target_groups.extend(target_groups::read_target_group(
                &template,
                resource,
                file,
                diagnostics,
            )),
            Kind::LoadBalancer => {
                if let Some(load_balancer) =
                    listeners::read_load_balancer(resource, file, diagnostics)
                {
                    let addresses =
                        addresses(resource.metadata, &load_balancer, file, &resource.logical_id, diagnostics);
                    load_balancers.insert(load_balancer.logical_id.clone(), addresses);
                }
            }
            Kind::Listener => {
                listeners.extend(listeners::read_listener(&template, resource, file, diagnostics));
                let hosts = proxyless(resource.metadata, file, &resource.logical_id, diagnostics);
                proxyless_hosts.insert(resource.logical_id.clone(), hosts);
            }
            Kind::ListenerRule => {
                rules.extend(listeners::read_rule(&template, resource, file, diagnostics))
            }
            Kind::ListenerCertificate => diagnostics.error(
                &resource.loc,
                format!("Resources.{}.Type", resource.logical_id),
                "AWS::ElasticLoadBalancingV2::ListenerCertificate is not served yet; list the certificates in the listener's Certificates",
            ),
            Kind::Instance => {}
        }
    }
    listeners::check_priorities(&rules, diagnostics);
    let groups_by_id: BTreeMap<&str, &TargetGroup> = target_groups
        .iter()
        .map(|group| (group.logical_id.as_str(), group))
        .collect();
    check_protocol_versions(&listeners, &rules, &groups_by_id, diagnostics);
    for group in &target_groups {
        lower_target_group(group, model, diagnostics);
    }
    for listener in &listeners {
        let Some(addresses) = load_balancers.get(&listener.load_balancer) else {
            continue;
        };
        let listener_rules: Vec<&Rule> = rules
            .iter()
            .filter(|rule| rule.listener == listener.logical_id)
            .collect();
        lower_listener(
            listener,
            &listener_rules,
            addresses,
            file,
            model,
            diagnostics,
        );
        if let Some(hosts) = proxyless_hosts.get(&listener.logical_id) {
            serve_proxyless(listener, hosts, model, diagnostics);
        }
    }
}

/// `Metadata.Switchyard.ProxylessHosts` of a listener: the names proxyless gRPC clients dial
/// (`xds:///NAME` or `xds:///NAME:PORT`) to be routed by its rules.
fn proxyless(
    metadata: Option<&Node>,
    file: &Arc<str>,
    logical_id: &str,
    diagnostics: &mut Diagnostics,
) -> Vec<String> {
    let Some(metadata) = metadata else {
        return Vec::new();
    };
    let path = format!("Resources.{logical_id}.Metadata");
    let mut fields = Fields::new(metadata, file, &path, diagnostics);
    let Some(own) = fields.get("Switchyard") else {
        return Vec::new();
    };
    let mut fields = Fields::new(own, file, format!("{path}.Switchyard"), diagnostics);
    let hosts = fields.strings("ProxylessHosts", diagnostics);
    fields.finish(diagnostics);
    hosts
}

/// Serves a listener's routing to proxyless gRPC clients under `hosts` as well: a gRPC
/// frontend on the same routes, named by the hosts (Envoy is unaffected).
fn serve_proxyless(
    listener: &Listener,
    hosts: &[String],
    model: &mut Model,
    diagnostics: &mut Diagnostics,
) {
    if hosts.is_empty() {
        return;
    }
    let name = &listener.logical_id;
    let loc = &listener.loc;
    if let Some(url_map) = model.url_maps.get_mut(name) {
        url_map.host_rules.push(HostRule {
            loc: loc.clone(),
            hosts: hosts.to_vec(),
            path_matcher: "rules".to_string(),
        });
    }
    let proxy_name = format!("{name}-proxyless");
    let reference = |target: &str| Ref {
        name: target.to_string(),
        loc: loc.clone(),
        path: format!("Resources.{name}.Metadata.Switchyard.ProxylessHosts"),
    };
    let proxy = TargetProxy {
        name: proxy_name.clone(),
        loc: loc.clone(),
        target: ProxyTarget::Grpc {
            url_map: reference(name),
            validate_for_proxyless: false,
        },
        tls: None,
        proxy_header_v1: false,
    };
    insert(
        &mut model.target_proxies,
        proxy_name.clone(),
        proxy,
        loc,
        diagnostics,
    );
    let rule = ForwardingRule {
        name: proxy_name.clone(),
        loc: loc.clone(),
        ip_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: listener.port,
        target: reference(&proxy_name),
        freebind: false,
        load_balancing_scheme: None,
    };
    insert(
        &mut model.forwarding_rules,
        proxy_name,
        rule,
        loc,
        diagnostics,
    );
}

/// `Metadata.Switchyard.Ipv4Address` / `Ipv6Address`: where the load balancer listens
/// (0.0.0.0 and, when dualstack, `::` unless written).
fn addresses(
    metadata: Option<&Node>,
    load_balancer: &LoadBalancer,
    file: &Arc<str>,
    logical_id: &str,
    diagnostics: &mut Diagnostics,
) -> Addresses {
    let mut addresses = Addresses {
        ipv4: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ipv6: load_balancer
            .dualstack
            .then_some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    };
    let Some(metadata) = metadata else {
        return addresses;
    };
    let path = format!("Resources.{logical_id}.Metadata");
    let mut fields = Fields::new(metadata, file, &path, diagnostics);
    // Other metadata belongs to other tools: the rest is not checked.
    let own = fields.get("Switchyard");
    let Some(own) = own else {
        return addresses;
    };
    let mut fields = Fields::new(own, file, format!("{path}.Switchyard"), diagnostics);
    let mut address = |key: &'static str, v6: bool, diagnostics: &mut Diagnostics| {
        let text = fields.string(key, diagnostics)?;
        match text.parse::<IpAddr>() {
            Ok(ip) if ip.is_ipv6() == v6 => Some(ip),
            _ => {
                diagnostics.error(
                    &fields.loc_of(key),
                    fields.field_path(key),
                    format!(
                        "`{text}` is not an {} address",
                        if v6 { "IPv6" } else { "IPv4" }
                    ),
                );
                None
            }
        }
    };
    if let Some(ipv4) = address("Ipv4Address", false, diagnostics) {
        addresses.ipv4 = ipv4;
    }
    let ipv6 = address("Ipv6Address", true, diagnostics);
    if ipv6.is_some() && !load_balancer.dualstack {
        diagnostics.error(
            &fields.loc_of("Ipv6Address"),
            fields.field_path("Ipv6Address"),
            "an IPv6 address needs a dualstack load balancer (IpAddressType: dualstack)",
        );
    } else if let Some(ipv6) = ipv6 {
        addresses.ipv6 = Some(ipv6);
    }
    fields.finish(diagnostics);
    addresses
}

/// 002: target groups of protocol version HTTP2 or GRPC are reached only through HTTPS
/// listeners, and only by forward actions.
fn check_protocol_versions(
    listeners: &[Listener],
    rules: &[Rule],
    groups: &BTreeMap<&str, &TargetGroup>,
    diagnostics: &mut Diagnostics,
) {
    let https: BTreeMap<&str, bool> = listeners
        .iter()
        .map(|listener| (listener.logical_id.as_str(), listener.https))
        .collect();
    let actions = listeners
        .iter()
        .map(|l| {
            (
                &l.default_action,
                l.logical_id.as_str(),
                &l.loc,
                format!("Resources.{}.Properties.DefaultActions", l.logical_id),
            )
        })
        .chain(rules.iter().map(|r| {
            (
                &r.action,
                r.listener.as_str(),
                &r.priority_loc,
                format!("Resources.{}.Properties.Actions", r.logical_id),
            )
        }));
    for (action, listener, loc, path) in actions {
        let super::actions::Action::Forward {
            groups: forwarded, ..
        } = action
        else {
            continue;
        };
        for group in forwarded {
            let Some(target_group) = groups.get(group.target_group.as_str()) else {
                continue;
            };
            if target_group.protocol_version == ProtocolVersion::Http1 {
                continue;
            }
            if !https.get(listener).copied().unwrap_or(false) {
                diagnostics.error(
                    loc,
                    &path,
                    format!(
                        "target group {} has protocol version {}, which an ALB reaches only through HTTPS listeners; listener {listener} is HTTP",
                        target_group.logical_id,
                        match target_group.protocol_version {
                            ProtocolVersion::Http2 => "HTTP2",
                            _ => "GRPC",
                        }
                    ),
                );
            }
        }
    }
}

/// The backend protocol of a target group's protocol and version.
fn backend_protocol(group: &TargetGroup) -> BackendProtocol {
    match (group.protocol, group.protocol_version) {
        (Protocol::Http, ProtocolVersion::Http1) => BackendProtocol::Http,
        (Protocol::Https, ProtocolVersion::Http1) => BackendProtocol::Https,
        (Protocol::Http, ProtocolVersion::Http2) => BackendProtocol::H2c,
        (Protocol::Http, ProtocolVersion::Grpc) => BackendProtocol::Grpc,
        // HTTP/2 over TLS carries gRPC as well.
        (Protocol::Https, ProtocolVersion::Http2 | ProtocolVersion::Grpc) => BackendProtocol::Http2,
    }
}

fn lower_target_group(group: &TargetGroup, model: &mut Model, diagnostics: &mut Diagnostics) {
    let name = &group.logical_id;
    let attributes = &group.attributes;
    let mut zones: BTreeMap<&str, Vec<&target_groups::Target>> = BTreeMap::new();
    for target in &group.targets {
        zones.entry(target.zone.as_str()).or_default().push(target);
    }
    let mut backends = Vec::new();
    for (zone, targets) in &zones {
        let group_name = if zone.is_empty() {
            name.clone()
        } else {
            format!("{name}-{zone}")
        };
        let endpoint_group = EndpointGroup {
            name: group_name.clone(),
            loc: group.loc.clone(),
            kind: GroupKind::Targets,
            zone: zone.to_string(),
            region: targets[0].region().to_string(),
            named_ports: BTreeMap::new(),
            default_port: Some(group.port),
            endpoints: targets.iter().map(|target| endpoint(target)).collect(),
        };
        insert(
            &mut model.endpoint_groups,
            group_name.clone(),
            endpoint_group,
            &group.loc,
            diagnostics,
        );
        backends.push(Backend {
            group: Ref {
                name: group_name,
                loc: group.loc.clone(),
                path: format!("Resources.{name}.Properties.Targets"),
            },
            loc: group.loc.clone(),
            // One equal share per target, whatever its zone, as an ALB spreads requests.
            balancing_mode: BalancingMode::Rate,
            max_rate: None,
            max_rate_per_instance: None,
            max_rate_per_endpoint: Some(1.0),
            max_connections: None,
            max_connections_per_instance: None,
            max_connections_per_endpoint: None,
            max_utilization: None,
            capacity_scaler: 1.0,
        });
    }
    let mut health_checks = Vec::new();
    if group.health_check.enabled {
        let check = health_check(group);
        health_checks.push(Ref {
            name: name.clone(),
            loc: group.loc.clone(),
            path: format!("Resources.{name}.Properties.HealthCheckEnabled"),
        });
        insert(
            &mut model.health_checks,
            name.clone(),
            check,
            &group.loc,
            diagnostics,
        );
    }
    let service = BackendService {
        name: name.clone(),
        loc: group.loc.clone(),
        load_balancing_scheme: LoadBalancingScheme::InternalSelfManaged,
        protocol: backend_protocol(group),
        port_name: "http".to_string(),
        timeout_sec: IDLE_TIMEOUT_SEC,
        health_checks,
        locality_lb_policy: match attributes.algorithm {
            Algorithm::RoundRobin => LocalityLbPolicy::RoundRobin,
            Algorithm::LeastOutstandingRequests => LocalityLbPolicy::LeastRequest,
            Algorithm::WeightedRandom => LocalityLbPolicy::Random,
        },
        backends,
        session_affinity: SessionAffinity::None,
        affinity_cookie_ttl_sec: 0,
        consistent_hash: ConsistentHash::default(),
        draining_timeout_sec: attributes.deregistration_delay_seconds,
        subsetting: false,
        ip_address_selection_policy: if group.ipv6 {
            IpAddressSelectionPolicy::Ipv6Only
        } else {
            IpAddressSelectionPolicy::Ipv4Only
        },
        timeout_sec_written: false,
        max_stream_duration: None,
        max_requests: None,
        outlier_detection: attributes.anomaly_mitigation.then(anomaly_mitigation),
        log_sample_rate: None,
        slow_start: (attributes.slow_start_seconds > 0)
            .then(|| std::time::Duration::from_secs(u64::from(attributes.slow_start_seconds))),
        sticky_cookie: attributes.stickiness.as_ref().map(sticky_cookie),
        prefer_client_zone: attributes.cross_zone == CrossZone::Disabled,
        minimum_healthy: Some(MinimumHealthy {
            count: attributes.minimum_healthy_count,
            percentage: attributes.minimum_healthy_percentage,
        }),
        field_locs: BTreeMap::new(),
    };
    insert(
        &mut model.backend_services,
        name.clone(),
        service,
        &group.loc,
        diagnostics,
    );
}

fn endpoint(target: &target_groups::Target) -> Endpoint {
    let (ipv4, ipv6) = match target.address {
        IpAddr::V4(v4) => (Some(v4), None),
        IpAddr::V6(v6) => (None, Some(v6)),
    };
    Endpoint {
        instance: None,
        ipv4,
        ipv6,
        fqdn: None,
        port: Some(target.port),
        weight: None,
    }
}

/// Anomaly mitigation: a target whose requests fail (5xx, failed connections) far more often
/// than its peers' is taken out of rotation for a while, given at least three targets.
fn anomaly_mitigation() -> OutlierDetection {
    OutlierDetection {
        consecutive_errors: 5,
        consecutive_gateway_failure: 5,
        enforcing_consecutive_errors: 0,
        enforcing_consecutive_gateway_failure: 0,
        enforcing_success_rate: 100,
        interval: std::time::Duration::from_secs(5),
        base_ejection_time: std::time::Duration::from_secs(30),
        max_ejection_percent: 50,
        success_rate_minimum_hosts: 3,
        success_rate_request_volume: 20,
        success_rate_stdev_factor: 1900,
        enforcing_failure_percentage: 100,
        failure_percentage_threshold: 50,
        failure_percentage_minimum_hosts: 3,
        failure_percentage_request_volume: 20,
    }
}

fn sticky_cookie(stickiness: &Stickiness) -> HttpCookie {
    let (name, seconds) = match stickiness {
        Stickiness::LbCookie { duration_seconds } => (LB_COOKIE, *duration_seconds),
        Stickiness::AppCookie {
            duration_seconds, ..
        } => (APP_COOKIE, *duration_seconds),
    };
    HttpCookie {
        name: name.to_string(),
        path: None,
        ttl_sec: Some(u64::from(seconds)),
    }
}

/// The target group's health check as the centralized checker runs it.
fn health_check(group: &TargetGroup) -> HealthCheck {
    let check = &group.health_check;
    let (protocol, success_codes, grpc_call) = match &check.matcher {
        Matcher::Http(codes) => (
            if check.protocol == Protocol::Https {
                HealthCheckProtocol::Https
            } else {
                HealthCheckProtocol::Http
            },
            codes.clone(),
            None,
        ),
        Matcher::Grpc(codes) => (
            HealthCheckProtocol::Grpc,
            Vec::new(),
            Some(GrpcCheckCall {
                path: check.path.clone(),
                codes: codes.clone(),
                tls: check.protocol == Protocol::Https,
            }),
        ),
    };
    let (port_specification, port) = match check.port {
        CheckPort::TrafficPort => (PortSpecification::UseServingPort, None),
        CheckPort::Port(port) => (PortSpecification::UseFixedPort, Some(port)),
    };
    HealthCheck {
        name: group.logical_id.clone(),
        loc: group.loc.clone(),
        protocol,
        port_specification,
        port,
        port_name: None,
        request_path: check.path.clone(),
        host: None,
        request: None,
        response: None,
        proxy_header_v1: false,
        grpc_service_name: None,
        check_interval_sec: check.interval_seconds,
        timeout_sec: check.timeout_seconds,
        healthy_threshold: check.healthy_threshold,
        unhealthy_threshold: check.unhealthy_threshold,
        success_codes,
        grpc_call,
    }
}

fn lower_listener(
    listener: &Listener,
    rules: &[&Rule],
    addresses: &Addresses,
    file: &Arc<str>,
    model: &mut Model,
    diagnostics: &mut Diagnostics,
) {
    let name = &listener.logical_id;
    let loc = &listener.loc;
    let mut route_rules = Vec::new();
    for rule in rules {
        let path = format!("Resources.{}.Properties", rule.logical_id);
        let matched = routes::match_rule(
            &rule.conditions,
            &rule.priority_loc,
            &format!("{path}.Conditions"),
            diagnostics,
        );
        let target = routes::route_target(
            &rule.action,
            &rule.priority_loc,
            &format!("{path}.Actions"),
            diagnostics,
        );
        if let (Some(matched), Some(action)) = (matched, target) {
            route_rules.push(RouteRule {
                priority: rule.priority,
                match_rules: vec![matched],
                action,
                extras: RouteExtras::default(),
            });
        }
    }
    // The default action takes what no rule took: a rule after all others, matching everything.
    if let Some(action) = routes::route_target(
        &listener.default_action,
        loc,
        &format!("Resources.{name}.Properties.DefaultActions"),
        diagnostics,
    ) {
        route_rules.push(RouteRule {
            priority: u32::MAX,
            match_rules: Vec::new(),
            action,
            extras: RouteExtras::default(),
        });
    }
    let url_map = UrlMap {
        name: name.clone(),
        loc: loc.clone(),
        default_service: None,
        default_url_redirect: None,
        default_weighted: None,
        default_extras: RouteExtras::default(),
        host_rules: vec![HostRule {
            loc: loc.clone(),
            hosts: vec!["*".to_string()],
            path_matcher: "rules".to_string(),
        }],
        path_matchers: vec![PathMatcher {
            name: "rules".to_string(),
            loc: loc.clone(),
            default_service: None,
            default_url_redirect: None,
            default_weighted: None,
            default_extras: RouteExtras::default(),
            path_rules: Vec::new(),
            route_rules,
            header_action: Default::default(),
        }],
        header_action: Default::default(),
    };
    insert(&mut model.url_maps, name.clone(), url_map, loc, diagnostics);
    let tls = listener
        .https
        .then(|| listener_tls(listener, file, model, diagnostics));
    let proxy = TargetProxy {
        name: name.clone(),
        loc: loc.clone(),
        target: ProxyTarget::UrlMap(Ref {
            name: name.clone(),
            loc: loc.clone(),
            path: format!("Resources.{name}"),
        }),
        tls,
        proxy_header_v1: false,
    };
    insert(
        &mut model.target_proxies,
        name.clone(),
        proxy,
        loc,
        diagnostics,
    );
    let frontends = std::iter::once((name.clone(), addresses.ipv4))
        .chain(addresses.ipv6.map(|ip| (format!("{name}-ipv6"), ip)));
    for (rule_name, ip_address) in frontends {
        let rule = ForwardingRule {
            name: rule_name.clone(),
            loc: loc.clone(),
            ip_address,
            port: listener.port,
            target: Ref {
                name: name.clone(),
                loc: loc.clone(),
                path: format!("Resources.{name}"),
            },
            freebind: false,
            load_balancing_scheme: None,
        };
        insert(
            &mut model.forwarding_rules,
            rule_name,
            rule,
            loc,
            diagnostics,
        );
    }
}

/// An HTTPS listener's certificates (PEM files beside the template) and security policy.
fn listener_tls(
    listener: &Listener,
    file: &Arc<str>,
    model: &mut Model,
    diagnostics: &mut Diagnostics,
) -> ProxyTls {
    let base = Path::new(file.as_ref()).parent().unwrap_or(Path::new(""));
    let name = &listener.logical_id;
    let mut certificates = Vec::new();
    for (index, files) in listener.certificates.iter().enumerate() {
        let path = format!("Resources.{name}.Properties.Certificates[{index}]");
        let pem = |written: &str, key: &str| Pem {
            text: String::new(),
            file: Some(base.join(written)),
            loc: files.loc.clone(),
            path: format!("{path}.{key}"),
        };
        let certificate_name = format!("{name}-certificate-{index}");
        let certificate = SslCertificate {
            name: certificate_name.clone(),
            loc: files.loc.clone(),
            certificate: pem(&files.certificate_file, "CertificateFile"),
            private_key: pem(&files.private_key_file, "PrivateKeyFile"),
            dns_names: Vec::new(),
        };
        insert(
            &mut model.ssl_certificates,
            certificate_name.clone(),
            certificate,
            &files.loc,
            diagnostics,
        );
        certificates.push(Ref {
            name: certificate_name,
            loc: files.loc.clone(),
            path,
        });
    }
    let ssl_policy = listener.ssl_policy.as_ref().map(|policy| {
        let policy_name = format!("{name}-policy");
        let lowered = SslPolicy {
            name: policy_name.clone(),
            loc: listener.loc.clone(),
            min_tls_version: minimum_tls_version(policy),
            profile: if policy.contains("TLS13") {
                SslProfile::Modern
            } else {
                SslProfile::Compatible
            },
            custom_features: Vec::new(),
        };
        insert(
            &mut model.ssl_policies,
            policy_name.clone(),
            lowered,
            &listener.loc,
            diagnostics,
        );
        Ref {
            name: policy_name,
            loc: listener.loc.clone(),
            path: format!("Resources.{name}.Properties.SslPolicy"),
        }
    });
    ProxyTls {
        certificates,
        ssl_policy,
    }
}

/// The lowest TLS version an ELB security policy accepts, from its name
/// (`ELBSecurityPolicy-TLS13-1-2-2021-06` → 1.2; the 2016-08 default → 1.0).
fn minimum_tls_version(policy: &str) -> TlsVersion {
    let rest = policy
        .trim_start_matches("ELBSecurityPolicy-")
        .trim_start_matches("TLS13-")
        .trim_start_matches("FS-")
        .trim_start_matches("TLS-");
    if rest.starts_with("1-3") {
        TlsVersion::Tls13
    } else if rest.starts_with("1-2") {
        TlsVersion::Tls12
    } else if rest.starts_with("1-1") {
        TlsVersion::Tls11
    } else {
        TlsVersion::Tls10
    }
}

/// Adds a lowered resource; a name already used (by another file, of either dialect) is
/// reported and the first one kept.
fn insert<T>(
    map: &mut BTreeMap<String, T>,
    name: String,
    value: T,
    loc: &Loc,
    diagnostics: &mut Diagnostics,
) {
    if map.contains_key(&name) {
        diagnostics.error(
            loc,
            format!("Resources.{name}"),
            format!("the name `{name}` is already used by another resource of the config (in this or another file); logical ids must not repeat names used elsewhere"),
        );
        return;
    }
    map.insert(name, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_policies_give_their_lowest_version() {
        assert_eq!(
            minimum_tls_version("ELBSecurityPolicy-2016-08"),
            TlsVersion::Tls10
        );
        assert_eq!(
            minimum_tls_version("ELBSecurityPolicy-TLS13-1-2-2021-06"),
            TlsVersion::Tls12
        );
        assert_eq!(
            minimum_tls_version("ELBSecurityPolicy-TLS13-1-3-2021-06"),
            TlsVersion::Tls13
        );
        assert_eq!(
            minimum_tls_version("ELBSecurityPolicy-TLS-1-1-2017-01"),
            TlsVersion::Tls11
        );
        assert_eq!(
            minimum_tls_version("ELBSecurityPolicy-FS-1-2-Res-2020-10"),
            TlsVersion::Tls12
        );
    }
}
