//! The GCP resource graph, once checked, lowered into the neutral model: a forwarding rule and
//! its target proxy become a frontend; a URL map becomes a route table whose virtual hosts and
//! routes come in the order the cloud decides in (route rules by priority, then path rules
//! longest first, then the matcher's default); a backend service becomes a service whose
//! capacity, affinity cookie and timeouts are resolved from the cloud's fields (balancing
//! mode, load-balancing scheme, whole seconds). Must not: check anything (validation has).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::config::cipher_suites::{cipher_suite, profile_cipher_suites, SslProfile};
use crate::model::{
    Affinity, EndpointGroup as NeutralGroup, Frontend, FrontendTls, Handler, HttpCookie, MatchRule,
    Members, Model, PathMatch, ProxylessRouting, Route, RouteExtras, RouteTable, RouteTarget,
    Service, ServiceBackend, TlsVersion, VirtualHost,
};

use super::capacity::capacity;
use super::resources::{
    BackendService, EndpointGroup, ForwardingRule, GroupKind, LoadBalancingScheme, PathMatcher,
    ProxyTarget, ProxyTls, Resources, RouteDefaults, SessionAffinity, TargetProxy, UrlMap,
};

/// The model the resources stand for.
pub fn lower(resources: &Resources) -> Model {
    Model {
        health_checks: resources.health_checks.clone(),
        endpoint_groups: resources
            .endpoint_groups
            .values()
            .map(|group| (group.name.clone(), endpoint_group(group)))
            .collect(),
        services: resources
            .backend_services
            .values()
            .map(|service| (service.name.clone(), self::service(resources, service)))
            .collect(),
        route_tables: resources
            .url_maps
            .values()
            .map(|url_map| (url_map.name.clone(), route_table(url_map)))
            .collect(),
        frontends: resources
            .forwarding_rules
            .values()
            .filter_map(|rule| frontend(resources, rule))
            .map(|frontend| (frontend.name.clone(), frontend))
            .collect(),
        proxyless: resources
            .target_proxies
            .values()
            .filter_map(|proxy| proxyless(resources, proxy))
            .collect(),
        certificates: resources.ssl_certificates.clone(),
        region_order: resources.region_order.clone(),
        xds_clients: resources.xds_clients.clone(),
        inputs: Vec::new(),
    }
}

fn endpoint_group(group: &EndpointGroup) -> NeutralGroup {
    NeutralGroup {
        name: group.name.clone(),
        loc: group.loc.clone(),
        members: match group.kind {
            GroupKind::InstanceGroup => Members::Instances,
            GroupKind::GceVmIpPortNeg | GroupKind::NonGcpPrivateIpPortNeg => Members::Endpoints,
            GroupKind::InternetIpPortNeg => Members::InternetAddress,
            GroupKind::InternetFqdnPortNeg => Members::InternetName,
        },
        zone: group.zone.clone(),
        region: group.region.clone(),
        named_ports: group.named_ports.clone(),
        default_port: group.default_port,
        endpoints: group.endpoints.clone(),
    }
}

fn service(resources: &Resources, service: &BackendService) -> Service {
    Service {
        name: service.name.clone(),
        loc: service.loc.clone(),
        path: format!("backendServices[{}]", service.name),
        protocol: service.protocol,
        port_name: service.port_name.clone(),
        timeout: Duration::from_secs(u64::from(service.timeout_sec)),
        health_checks: service.health_checks.clone(),
        lb_policy: service.locality_lb_policy,
        minimum_ring_size: service.consistent_hash.minimum_ring_size,
        backends: service
            .backends
            .iter()
            .map(|backend| ServiceBackend {
                group: backend.group.clone(),
                loc: backend.loc.clone(),
                capacity: capacity(backend, resources.endpoint_groups.get(&backend.group.name)),
            })
            .collect(),
        affinity: affinity(service),
        draining_timeout: Duration::from_secs(u64::from(service.draining_timeout_sec)),
        ip_address_selection_policy: service.ip_address_selection_policy,
        max_stream_duration: service.max_stream_duration,
        circuit_breakers: service.circuit_breakers.clone(),
        custom_headers: service.custom_headers.clone(),
        outlier_detection: service.outlier_detection.clone(),
        log_sample_rate: service.log_sample_rate,
        slow_start: service.slow_start,
        sticky_cookie: service.sticky_cookie.clone(),
        minimum_healthy: service.minimum_healthy.clone(),
        prefer_client_zone: service.prefer_client_zone,
    }
}

/// Name of the cookie GENERATED_COOKIE affinity issues: `GCLB` behind the global external
/// schemes, `GCILB` behind the internal ones and Traffic Director, as the cloud names it.
fn generated_cookie_name(scheme: LoadBalancingScheme) -> &'static str {
    match scheme {
        LoadBalancingScheme::External | LoadBalancingScheme::ExternalManaged => "GCLB",
        _ => "GCILB",
    }
}

/// sessionAffinity with its cookie or header resolved.
fn affinity(service: &BackendService) -> Affinity {
    match service.session_affinity {
        SessionAffinity::None => Affinity::None,
        SessionAffinity::ClientIp => Affinity::ClientAddress,
        // A ttl of 0 makes a session cookie.
        SessionAffinity::GeneratedCookie => Affinity::Cookie(HttpCookie {
            name: generated_cookie_name(service.load_balancing_scheme).to_string(),
            path: Some("/".to_string()),
            ttl: Some(Duration::from_secs(u64::from(
                service.affinity_cookie_ttl_sec,
            ))),
        }),
        SessionAffinity::HeaderField => Affinity::Header(
            service
                .consistent_hash
                .http_header_name
                .clone()
                .unwrap_or_default(),
        ),
        SessionAffinity::HttpCookie => {
            let cookie = service.consistent_hash.http_cookie.as_ref();
            Affinity::Cookie(HttpCookie {
                name: cookie.map(|c| c.name.clone()).unwrap_or_default(),
                path: Some(
                    cookie
                        .and_then(|c| c.path.clone())
                        .unwrap_or_else(|| "/".to_string()),
                ),
                ttl: Some(cookie.and_then(|c| c.ttl).unwrap_or_default()),
            })
        }
    }
}

/// A URL map as an ordered route table: a virtual host per host rule (named after its path
/// matcher and position), and one for every other host when no rule claims `*` and the map
/// has a default.
fn route_table(url_map: &UrlMap) -> RouteTable {
    let mut virtual_hosts = Vec::new();
    let mut claims_any_host = false;
    for (index, rule) in url_map.host_rules.iter().enumerate() {
        let Some(matcher) = url_map
            .path_matchers
            .iter()
            .find(|m| m.name == rule.path_matcher)
        else {
            continue;
        };
        claims_any_host |= rule.hosts.iter().any(|h| h == "*");
        let fallback = default_of(&matcher.defaults).or_else(|| default_of(&url_map.defaults));
        virtual_hosts.push(VirtualHost {
            name: format!("{}-{index}", matcher.name),
            domains: rule.hosts.clone(),
            routes: routes_for(matcher, fallback),
            header_action: matcher.header_action.clone(),
        });
    }
    if !claims_any_host {
        if let Some((target, extras)) = default_of(&url_map.defaults) {
            virtual_hosts.push(VirtualHost {
                name: "default".into(),
                domains: vec!["*".into()],
                routes: vec![default_route(target, extras)],
                header_action: Default::default(),
            });
        }
    }
    RouteTable {
        name: url_map.name.clone(),
        loc: url_map.loc.clone(),
        virtual_hosts,
        header_action: url_map.header_action.clone(),
        frontend: url_map.frontend.clone(),
    }
}

/// A path matcher's routes: route rules by priority (each match rule a route; none matches
/// every path), then path rules, longest pattern first (an exact path before a `/*` prefix of
/// the same length, as the cloud picks the longest match), then the default.
fn routes_for(matcher: &PathMatcher, fallback: Option<(RouteTarget, &RouteExtras)>) -> Vec<Route> {
    let mut routes = Vec::new();
    let mut route_rules: Vec<_> = matcher.route_rules.iter().collect();
    route_rules.sort_by_key(|rule| rule.priority);
    for rule in route_rules {
        for matched in &rule.match_rules {
            routes.push(Route {
                matches: matched.clone(),
                target: rule.action.clone(),
                extras: rule.extras.clone(),
            });
        }
        if rule.match_rules.is_empty() {
            routes.push(Route {
                matches: path_only(PathMatch::Prefix(String::new())),
                target: rule.action.clone(),
                extras: rule.extras.clone(),
            });
        }
    }
    let mut path_routes: Vec<(&str, &super::resources::PathRule)> = matcher
        .path_rules
        .iter()
        .flat_map(|rule| rule.paths.iter().map(move |path| (path.as_str(), rule)))
        .collect();
    path_routes.sort_by_key(|(path, _)| {
        (
            std::cmp::Reverse(path.trim_end_matches('*').len()),
            path.ends_with('*'),
        )
    });
    for (path, rule) in path_routes {
        let path = match path.strip_suffix('*') {
            Some(stem) => PathMatch::Prefix(stem.to_string()),
            None => PathMatch::Full(path.to_string()),
        };
        routes.push(Route {
            matches: path_only(path),
            target: rule.action.clone(),
            extras: rule.extras.clone(),
        });
    }
    if let Some((target, extras)) = fallback {
        routes.push(default_route(target, extras));
    }
    routes
}

/// A match on the path alone.
fn path_only(path: PathMatch) -> MatchRule {
    MatchRule {
        path,
        ignore_case: false,
        headers: Vec::new(),
        query_parameters: Vec::new(),
        source_blocks: Vec::new(),
    }
}

/// The route of a default: every path. With a pathPrefixRewrite it matches `/`, so the
/// rewrite replaces the leading slash (`/a` → `/v2/a`) as the cloud's does.
fn default_route(target: RouteTarget, extras: &RouteExtras) -> Route {
    let rewrites_prefix = extras
        .url_rewrite
        .as_ref()
        .is_some_and(|r| r.path_prefix_rewrite.is_some());
    let prefix = if rewrites_prefix { "/" } else { "" };
    Route {
        matches: path_only(PathMatch::Prefix(prefix.to_string())),
        target,
        extras: extras.clone(),
    }
}

/// What a URL map or path matcher does with requests no rule takes (its default service,
/// redirect or weighted split), and its defaultRouteAction.
fn default_of(defaults: &RouteDefaults) -> Option<(RouteTarget, &RouteExtras)> {
    let target = defaults
        .service
        .as_ref()
        .map(|s| RouteTarget::Service(s.clone()))
        .or_else(|| {
            defaults
                .redirect
                .as_ref()
                .map(|r| RouteTarget::Redirect(r.clone()))
        })
        .or_else(|| {
            defaults
                .weighted
                .as_ref()
                .map(|services| RouteTarget::Weighted {
                    services: services.clone(),
                    sticky_cookie: None,
                })
        })?;
    Some((target, &defaults.extras))
}

/// A forwarding rule to a target HTTP(S), TCP or SSL proxy as a frontend (rules to target
/// gRPC proxies serve proxyless clients, which need no listener of their own).
fn frontend(resources: &Resources, rule: &ForwardingRule) -> Option<Frontend> {
    let proxy = resources.target_proxies.get(&rule.target.name)?;
    let handler = match &proxy.target {
        ProxyTarget::UrlMap(url_map) => {
            resources.url_maps.get(&url_map.name)?;
            Handler::Http {
                route_table: url_map.clone(),
            }
        }
        ProxyTarget::Service(service) => {
            resources.backend_services.get(&service.name)?;
            Handler::Tcp {
                service: service.clone(),
                proxy_header_v1: proxy.proxy_header_v1,
            }
        }
        ProxyTarget::Grpc { .. } => return None,
    };
    Some(Frontend {
        name: rule.name.clone(),
        loc: rule.loc.clone(),
        address: rule.ip_address,
        port: rule.port,
        freebind: rule.freebind,
        proxy: proxy.name.clone(),
        handler,
        tls: proxy.tls.as_ref().map(|tls| frontend_tls(resources, tls)),
    })
}

/// A proxy's certificates and SSL policy (the cloud's default without one: TLS 1.0 to 1.3
/// with the COMPATIBLE suites), resolved to versions and suites.
fn frontend_tls(resources: &Resources, tls: &ProxyTls) -> FrontendTls {
    let policy = tls
        .ssl_policy
        .as_ref()
        .and_then(|p| resources.ssl_policies.get(&p.name));
    let (min_version, suites) = match policy {
        Some(policy) => (policy.min_tls_version, policy.cipher_suites()),
        None => (
            TlsVersion::Tls10,
            profile_cipher_suites(SslProfile::Compatible),
        ),
    };
    FrontendTls {
        certificates: tls.certificates.clone(),
        min_version,
        cipher_suites: suites
            .into_iter()
            .filter_map(cipher_suite)
            .map(|suite| suite.envoy_name.to_string())
            .collect(),
    }
}

/// A target gRPC proxy whose URL map exists, with the ports of the rules that reach it.
fn proxyless(resources: &Resources, proxy: &TargetProxy) -> Option<(String, ProxylessRouting)> {
    let ProxyTarget::Grpc { url_map, .. } = &proxy.target else {
        return None;
    };
    resources.url_maps.get(&url_map.name)?;
    let ports: BTreeSet<u16> = resources
        .forwarding_rules
        .values()
        .filter(|rule| rule.target.name == proxy.name)
        .map(|rule| rule.port)
        .collect();
    Some((
        proxy.name.clone(),
        ProxylessRouting {
            route_table: url_map.clone(),
            ports,
        },
    ))
}
