//! Rules that span resources: references that must resolve, names a URL map may use once,
//! backends that must agree with their group. Field-level checks (types, enums, ranges) happen
//! while a dialect is read, where the value's line is at hand.

use std::collections::{BTreeMap, BTreeSet};

use super::{BalancingMode, Diagnostics, GroupKind, Model, Ref, RouteTarget, UrlMap};

/// Checks a lowered model; appends to `diagnostics`.
pub fn check(model: &Model, diagnostics: &mut Diagnostics) {
    for service in model.backend_services.values() {
        check_backend_service(model, service, diagnostics);
    }
    for url_map in model.url_maps.values() {
        check_url_map(model, url_map, diagnostics);
    }
    for proxy in model.target_proxies.values() {
        expect(&model.url_maps, &proxy.url_map, "urlMaps", diagnostics);
    }
    check_forwarding_rules(model, diagnostics);
}

fn expect<T>(
    existing: &BTreeMap<String, T>,
    reference: &Ref,
    kind: &str,
    diagnostics: &mut Diagnostics,
) -> bool {
    if existing.contains_key(&reference.name) {
        return true;
    }
    let known: Vec<&str> = existing.keys().map(String::as_str).collect();
    let hint = match crate::config::suggest(&reference.name, &known) {
        Some(close) => format!("; did you mean `{close}`?"),
        None if known.is_empty() => format!("; the config defines no {kind}"),
        None => format!("; defined {kind}: {}", known.join(", ")),
    };
    diagnostics.error(
        &reference.loc,
        &reference.path,
        format!("`{}` refers to no resource in {kind}{hint}", reference.name),
    );
    false
}

fn check_backend_service(
    model: &Model,
    service: &super::BackendService,
    diagnostics: &mut Diagnostics,
) {
    let base = format!("backendServices[{}]", service.name);
    for check in &service.health_checks {
        expect(&model.health_checks, check, "healthChecks", diagnostics);
    }
    let mut kinds = BTreeSet::new();
    for (index, backend) in service.backends.iter().enumerate() {
        let path = format!("{base}.backends[{index}]");
        if !expect(
            &model.endpoint_groups,
            &backend.group,
            "instanceGroups or networkEndpointGroups",
            diagnostics,
        ) {
            continue;
        }
        let group = &model.endpoint_groups[&backend.group.name];
        kinds.insert(group.kind.is_instance_group());
        check_balancing_mode(backend, group.kind, &path, diagnostics);
        if group.kind.is_instance_group() && !group.named_ports.contains_key(&service.port_name) {
            let known: Vec<&str> = group.named_ports.keys().map(String::as_str).collect();
            diagnostics.error(
                &backend.group.loc,
                format!("{path}.group"),
                format!(
                    "backend service `{}` uses portName `{}`, but instance group `{}` has no \
                     named port of that name (its namedPorts: {})",
                    service.name,
                    service.port_name,
                    group.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
        if !group.kind.is_instance_group() && group.default_port.is_none() {
            for (endpoint_index, endpoint) in group.endpoints.iter().enumerate() {
                if endpoint.port.is_none() {
                    diagnostics.error(
                        &group.loc,
                        format!(
                            "networkEndpointGroups[{}].endpoints[{endpoint_index}].port",
                            group.name
                        ),
                        "the endpoint has no port and its NEG has no defaultPort; set one of them",
                    );
                }
            }
        }
    }
    if kinds.len() > 1 {
        diagnostics.error(
            &service.loc,
            format!("{base}.backends"),
            "a backend service may not mix instance groups and network endpoint groups",
        );
    }
}

/// Balancing modes and target capacities allowed for proxy (HTTP) load balancers.
fn check_balancing_mode(
    backend: &super::Backend,
    kind: GroupKind,
    path: &str,
    diagnostics: &mut Diagnostics,
) {
    let mode = backend.balancing_mode;
    let allowed: &[BalancingMode] = match kind {
        GroupKind::InstanceGroup => &[BalancingMode::Rate, BalancingMode::Utilization],
        _ => &[BalancingMode::Rate],
    };
    if !allowed.contains(&mode) {
        diagnostics.error(
            &backend.loc,
            format!("{path}.balancingMode"),
            format!(
                "{} is not allowed for a backend of type {} behind an HTTP(S) proxy; allowed: {}",
                mode.as_str(),
                kind.as_str(),
                allowed
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return;
    }
    let per_member_field = if kind.is_instance_group() {
        "maxRatePerInstance"
    } else {
        "maxRatePerEndpoint"
    };
    let wrong_member_field = match kind {
        GroupKind::InstanceGroup => backend.max_rate_per_endpoint.map(|_| "maxRatePerEndpoint"),
        _ => backend.max_rate_per_instance.map(|_| "maxRatePerInstance"),
    };
    if let Some(field) = wrong_member_field {
        diagnostics.error(
            &backend.loc,
            format!("{path}.{field}"),
            format!(
                "{field} does not apply to backends of type {}; use maxRate or {per_member_field}",
                kind.as_str()
            ),
        );
    }
    let rate_fields = [
        backend.max_rate,
        backend.max_rate_per_instance,
        backend.max_rate_per_endpoint,
    ]
    .iter()
    .filter(|v| v.is_some())
    .count();
    if mode == BalancingMode::Rate && rate_fields == 0 {
        diagnostics.error(
            &backend.loc,
            format!("{path}.balancingMode"),
            format!(
                "balancing mode RATE needs a target capacity: set maxRate or {per_member_field}"
            ),
        );
    }
    if rate_fields > 1 {
        diagnostics.error(
            &backend.loc,
            format!("{path}.maxRate"),
            format!("set only one of maxRate and {per_member_field}"),
        );
    }
}

fn check_url_map(model: &Model, url_map: &UrlMap, diagnostics: &mut Diagnostics) {
    let base = format!("urlMaps[{}]", url_map.name);
    if let Some(default) = &url_map.default_service {
        expect(
            &model.backend_services,
            default,
            "backendServices",
            diagnostics,
        );
    }
    let matchers: BTreeSet<&str> = url_map
        .path_matchers
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    let mut hosts_seen = BTreeSet::new();
    for (index, rule) in url_map.host_rules.iter().enumerate() {
        if !matchers.contains(rule.path_matcher.as_str()) {
            let known: Vec<&str> = matchers.iter().copied().collect();
            diagnostics.error(
                &rule.loc,
                format!("{base}.hostRules[{index}].pathMatcher"),
                format!(
                    "`{}` names no pathMatcher of this URL map (defined: {})",
                    rule.path_matcher,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
        for host in &rule.hosts {
            if !hosts_seen.insert(host.to_ascii_lowercase()) {
                diagnostics.error(
                    &rule.loc,
                    format!("{base}.hostRules[{index}].hosts"),
                    format!("host `{host}` appears in more than one host rule; each host may be used once"),
                );
            }
        }
    }
    for matcher in &url_map.path_matchers {
        let path = format!("{base}.pathMatchers[{}]", matcher.name);
        if let Some(default) = &matcher.default_service {
            expect(
                &model.backend_services,
                default,
                "backendServices",
                diagnostics,
            );
        } else if url_map.default_service.is_none() {
            diagnostics.error(
                &matcher.loc,
                format!("{path}.defaultService"),
                "a path matcher needs a defaultService when the URL map has none",
            );
        }
        if !matcher.path_rules.is_empty() && !matcher.route_rules.is_empty() {
            diagnostics.error(
                &matcher.loc,
                path.clone(),
                "a path matcher may have pathRules or routeRules, not both",
            );
        }
        let mut priorities = BTreeSet::new();
        for (index, rule) in matcher.route_rules.iter().enumerate() {
            if !priorities.insert(rule.priority) {
                diagnostics.error(
                    &matcher.loc,
                    format!("{path}.routeRules[{index}].priority"),
                    format!(
                        "priority {} is used by another route rule; priorities must be unique",
                        rule.priority
                    ),
                );
            }
            check_target(model, &rule.action, diagnostics);
        }
        for rule in &matcher.path_rules {
            check_target(model, &rule.action, diagnostics);
        }
    }
    if url_map.default_service.is_none() && url_map.host_rules.is_empty() {
        diagnostics.error(
            &url_map.loc,
            format!("{base}.defaultService"),
            "a URL map needs a defaultService",
        );
    }
}

fn check_target(model: &Model, target: &RouteTarget, diagnostics: &mut Diagnostics) {
    match target {
        RouteTarget::Service(service) => {
            expect(
                &model.backend_services,
                service,
                "backendServices",
                diagnostics,
            );
        }
        RouteTarget::Weighted { services, .. } => {
            for weighted in services {
                expect(
                    &model.backend_services,
                    &weighted.backend_service,
                    "backendServices",
                    diagnostics,
                );
            }
        }
    }
}

fn check_forwarding_rules(model: &Model, diagnostics: &mut Diagnostics) {
    let mut frontends: BTreeMap<(std::net::IpAddr, u16), &str> = BTreeMap::new();
    for rule in model.forwarding_rules.values() {
        let path = format!("forwardingRules[{}]", rule.name);
        expect(
            &model.target_proxies,
            &rule.target,
            "targetHttpProxies",
            diagnostics,
        );
        if let Some(other) = frontends.insert((rule.ip_address, rule.port), &rule.name) {
            diagnostics.error(
                &rule.loc,
                format!("{path}.portRange"),
                format!(
                    "{}:{} is already used by forwarding rule `{other}`; an address and port pair \
                     may front one target",
                    rule.ip_address, rule.port
                ),
            );
        }
    }
}
