//! The GCP dialect's rules for what faces clients, in the cloud's words: URL maps (their
//! references, host rules, path matchers and priorities), what proxyless gRPC clients accept
//! behind a target gRPC proxy, target proxies' certificates and policies, and forwarding
//! rules' schemes and ports. Must not: judge backends (validate.rs does).

use std::collections::{BTreeMap, BTreeSet};

use crate::config::gcp::resources::{rule_targets, services_of};
use crate::config::gcp::resources::{
    LoadBalancingScheme, ProxyTarget, Resources, SessionAffinity, UrlMap,
};
use crate::model::references::expect;
use crate::model::{Diagnostics, Ref, RouteTarget};

use super::validate::expect_service;

pub(super) fn check_url_map(model: &Resources, url_map: &UrlMap, diagnostics: &mut Diagnostics) {
    let base = format!("urlMaps[{}]", url_map.name);
    let service = |reference: &Ref, diagnostics: &mut Diagnostics| {
        expect_service(model, reference, true, diagnostics);
    };
    for default in url_map.defaults.services() {
        service(default, diagnostics);
    }
    let mirrors = url_map.path_matchers.iter().flat_map(|matcher| {
        let rules = matcher.route_rules.iter().map(|r| &r.extras);
        rules.chain(matcher.path_rules.iter().map(|r| &r.extras))
    });
    for extras in mirrors {
        if let Some(mirror) = &extras.request_mirror {
            service(&mirror.service, diagnostics);
        }
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
        for default in matcher.defaults.services() {
            service(default, diagnostics);
        }
        if matcher.defaults.is_empty()
            && !matcher.route_rules.iter().any(|r| r.match_rules.is_empty())
            && url_map.defaults.is_empty()
        {
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
        }
        for reference in rule_targets(matcher) {
            service(reference, diagnostics);
        }
    }
    if url_map.defaults.is_empty() && url_map.host_rules.is_empty() {
        diagnostics.error(
            &url_map.loc,
            format!("{base}.defaultService"),
            "a URL map needs a defaultService",
        );
    }
}

/// What a proxyless gRPC client would NACK or ignore in the services a gRPC proxy routes to:
/// errors with validateForProxyless, warnings without it.
pub(super) fn check_proxyless(
    model: &Resources,
    proxy: &crate::config::gcp::resources::TargetProxy,
    url_map: &UrlMap,
    validate: bool,
    diagnostics: &mut Diagnostics,
) {
    let mut report = |loc: &crate::model::Loc, path: String, problem: String| {
        let consequence = if validate {
            "(targetGrpcProxies[{proxy}] has validateForProxyless)"
        } else {
            "(served anyway, since targetGrpcProxies[{proxy}] does not set validateForProxyless)"
        };
        let message = format!("{problem} {}", consequence.replace("{proxy}", &proxy.name));
        if validate {
            diagnostics.error(loc, path, message);
        } else {
            diagnostics.warning(loc, path, message);
        }
    };
    if url_map.host_rules.is_empty() {
        report(
            &url_map.loc,
            format!("urlMaps[{}].hostRules", url_map.name),
            "proxyless clients look up the host they dial; add hostRules naming those hosts".into(),
        );
    }
    for (path, problem) in proxyless_rule_problems(url_map) {
        report(&url_map.loc, path, problem);
    }
    let mut cookie_services = Vec::new();
    for name in services_of(url_map) {
        let Some(service) = model.backend_services.get(name) else {
            continue;
        };
        let base = format!("backendServices[{name}]");
        let policy = service.locality_lb_policy;
        if !matches!(
            policy,
            crate::model::BalancingPolicy::RoundRobin | crate::model::BalancingPolicy::RingHash
        ) {
            report(
                service.loc_of("localityLbPolicy"),
                format!("{base}.localityLbPolicy"),
                format!(
                    "{} is not supported by proxyless gRPC clients, which reject the cluster; use ROUND_ROBIN or RING_HASH",
                    policy.as_str()
                ),
            );
        }
        if service.protocol.uses_tls() {
            report(
                service.loc_of("protocol"),
                format!("{base}.protocol"),
                format!(
                    "protocol {} means TLS to the backends, which proxyless gRPC clients only do \
                     with xDS security certificates; use GRPC or H2C",
                    service.protocol.as_str()
                ),
            );
        }
        if service.timeout_sec_written {
            report(
                service.loc_of("timeoutSec"),
                format!("{base}.timeoutSec"),
                "proxyless gRPC clients do not support timeoutSec; set maxStreamDuration instead"
                    .into(),
            );
        }
        if matches!(
            service.session_affinity,
            SessionAffinity::GeneratedCookie | SessionAffinity::HttpCookie
        ) {
            cookie_services.push(service);
        }
    }
    // Honoured by gRPC C-core clients through stateful sessions (gRFC A55), ignored by
    // others: a warning whatever validateForProxyless asks, since it is not an error.
    for service in cookie_services {
        diagnostics.warning(
            service.loc_of("sessionAffinity"),
            format!("backendServices[{}].sessionAffinity", service.name),
            format!(
                "{} reaches proxyless clients as a stateful-session cookie: gRPC C-core clients \
                 (grpcio, C++) honour it when the application sends the cookie back; grpc-js and \
                 others ignore it (used by targetGrpcProxies[{}])",
                service.session_affinity.as_str(),
                proxy.name
            ),
        );
    }
}

/// URL-map actions proxyless gRPC clients cannot apply: redirects fail their calls; rewrites,
/// header actions, CORS and mirroring are ignored. (Weighted splits, header matches, retries,
/// fault injection and maxStreamDuration they honour.)
fn proxyless_rule_problems(url_map: &UrlMap) -> Vec<(String, String)> {
    let base = format!("urlMaps[{}]", url_map.name);
    let mut problems = Vec::new();
    let mut note = |path: String, what: &str| {
        problems.push((
            path,
            format!("{what} is not supported by proxyless gRPC clients"),
        ));
    };
    if url_map.defaults.redirect.is_some() {
        note(format!("{base}.defaultUrlRedirect"), "defaultUrlRedirect");
    }
    if !url_map.header_action.is_empty() {
        note(format!("{base}.headerAction"), "headerAction");
    }
    for matcher in &url_map.path_matchers {
        let at = format!("{base}.pathMatchers[{}]", matcher.name);
        if matcher.defaults.redirect.is_some() {
            note(format!("{at}.defaultUrlRedirect"), "defaultUrlRedirect");
        }
        if !matcher.header_action.is_empty() {
            note(format!("{at}.headerAction"), "headerAction");
        }
        let rules = matcher
            .route_rules
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("{at}.routeRules[{i}]"), &r.action, &r.extras))
            .chain(
                matcher
                    .path_rules
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (format!("{at}.pathRules[{i}]"), &r.action, &r.extras)),
            );
        for (rule, action, extras) in rules {
            if matches!(action, RouteTarget::Redirect(_)) {
                note(format!("{rule}.urlRedirect"), "urlRedirect");
            }
            let weighted_headers = matches!(action, RouteTarget::Weighted { services, .. }
                if services.iter().any(|s| !s.header_action.is_empty()));
            if !extras.header_action.is_empty() || weighted_headers {
                note(format!("{rule}.headerAction"), "headerAction");
            }
            for (field, what) in unsupported_route_actions(extras) {
                note(format!("{rule}.routeAction.{field}"), what);
            }
        }
        for (index, rule) in matcher.route_rules.iter().enumerate() {
            for (match_index, matched) in rule.match_rules.iter().enumerate() {
                if matches!(matched.path, crate::model::PathMatch::Template(_)) {
                    note(
                        format!(
                            "{at}.routeRules[{index}].matchRules[{match_index}].pathTemplateMatch"
                        ),
                        "pathTemplateMatch",
                    );
                }
            }
        }
        for (field, what) in unsupported_route_actions(&matcher.defaults.extras) {
            note(format!("{at}.defaultRouteAction.{field}"), what);
        }
    }
    for (field, what) in unsupported_route_actions(&url_map.defaults.extras) {
        note(format!("{base}.defaultRouteAction.{field}"), what);
    }
    problems
}

/// The parts of a routeAction proxyless clients ignore, by field name.
fn unsupported_route_actions(
    extras: &crate::model::RouteExtras,
) -> Vec<(&'static str, &'static str)> {
    let mut found = Vec::new();
    if extras.url_rewrite.is_some() {
        found.push(("urlRewrite", "urlRewrite"));
    }
    if extras.cors.is_some() {
        found.push(("corsPolicy", "corsPolicy"));
    }
    if extras.request_mirror.is_some() {
        found.push(("requestMirrorPolicy", "requestMirrorPolicy"));
    }
    // gRPC bounds a call by maxStreamDuration (gRFC A31) and never reads the route timeout or
    // a retry's per-try timeout (A44): said, rather than dropped in silence.
    if extras.timeout.is_some() {
        found.push(("timeout", "timeout (use maxStreamDuration)"));
    }
    if extras
        .retry_policy
        .as_ref()
        .is_some_and(|retry| retry.per_try_timeout.is_some())
    {
        found.push(("retryPolicy.perTryTimeout", "retryPolicy.perTryTimeout"));
    }
    found
}

/// The cloud's rules for a forwarding rule's scheme and port by target (004): an external
/// rule to a target HTTP proxy listens on 80 or 8080, to a target HTTPS proxy on 443; targetGrpcProxies serve proxyless
/// clients, which only INTERNAL_SELF_MANAGED reaches. A rule that does not write its scheme
/// is served as Traffic Director serves INTERNAL_SELF_MANAGED: on any port.
fn check_scheme_and_port(
    rule: &crate::config::gcp::resources::ForwardingRule,
    proxy: &crate::config::gcp::resources::TargetProxy,
    diagnostics: &mut Diagnostics,
) {
    let Some(scheme) = rule.load_balancing_scheme else {
        return;
    };
    let path = format!("forwardingRules[{}]", rule.name);
    let external = matches!(
        scheme,
        LoadBalancingScheme::External | LoadBalancingScheme::ExternalManaged
    );
    match &proxy.target {
        ProxyTarget::UrlMap(_) if external && proxy.tls.is_some() && rule.port != 443 => {
            diagnostics.error(
                &rule.loc,
                format!("{path}.portRange"),
                format!(
                    "an {} forwarding rule to a target HTTPS proxy listens on port 443, not {}; \
                     for another port use loadBalancingScheme INTERNAL_SELF_MANAGED",
                    scheme.as_str(),
                    rule.port
                ),
            );
        }
        ProxyTarget::UrlMap(_)
            if external && proxy.tls.is_none() && ![80, 8080].contains(&rule.port) =>
        {
            diagnostics.error(
                &rule.loc,
                format!("{path}.portRange"),
                format!(
                    "an {} forwarding rule to a target HTTP proxy listens on port 80 or 8080, \
                     not {}; for another port use loadBalancingScheme INTERNAL_SELF_MANAGED",
                    scheme.as_str(),
                    rule.port
                ),
            );
        }
        ProxyTarget::Grpc { .. } if scheme != LoadBalancingScheme::InternalSelfManaged => {
            diagnostics.error(
                &rule.loc,
                format!("{path}.loadBalancingScheme"),
                format!(
                    "{} cannot reach a target gRPC proxy; proxyless clients are served under \
                     INTERNAL_SELF_MANAGED",
                    scheme.as_str()
                ),
            );
        }
        _ => {}
    }
}

pub(super) fn check_forwarding_rules(model: &Resources, diagnostics: &mut Diagnostics) {
    let mut frontends: BTreeMap<(std::net::IpAddr, u16), (&str, &crate::model::Loc)> =
        BTreeMap::new();
    for rule in model.forwarding_rules.values() {
        let path = format!("forwardingRules[{}]", rule.name);
        expect(
            &model.target_proxies,
            &rule.target,
            "target proxies",
            diagnostics,
        );
        if let Some(proxy) = model.target_proxies.get(&rule.target.name) {
            check_scheme_and_port(rule, proxy, diagnostics);
        }
        let this = (rule.name.as_str(), &rule.loc);
        if let Some((other, other_loc)) = frontends.insert((rule.ip_address, rule.port), this) {
            diagnostics.clash(
                &rule.loc,
                other_loc,
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

/// The references of a target HTTPS or SSL proxy resolve.
pub(super) fn check_proxy_tls(
    model: &Resources,
    tls: &crate::config::gcp::resources::ProxyTls,
    diagnostics: &mut Diagnostics,
) {
    for certificate in &tls.certificates {
        expect(
            &model.ssl_certificates,
            certificate,
            "sslCertificates",
            diagnostics,
        );
    }
    if let Some(policy) = &tls.ssl_policy {
        expect(&model.ssl_policies, policy, "sslPolicies", diagnostics);
    }
}
