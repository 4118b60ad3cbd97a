//! URL maps in the GCP dialect: host rules, path matchers with path rules and route rules,
//! match rules (path, headers, query parameters), and what a rule does — a service, a
//! weighted split or a redirect — with its rewrite, timeout, retries and header actions at
//! every level the cloud has them. Cloud fields Switchyard cannot serve yet are refused by
//! name. Cross-resource rules (references, proxyless limits) live in `model::validate`.

use std::sync::Arc;

use crate::config::reader::Fields;
use crate::config::yaml::Node;
use crate::model::{
    Diagnostics, HeaderAction, HeaderMatch, HeaderMatchKind, HeaderToAdd, HostRule, MatchRule,
    PathMatch, PathMatcher, PathRule, QueryParameterMatch, QueryParameterMatchKind, Ref,
    RetryPolicy, RouteExtras, RouteRule, RouteTarget, UrlMap, UrlRedirect, UrlRewrite,
    WeightedService,
};

use super::{duration, open, reference};

/// Fields of a URL map or path matcher the cloud has and Switchyard does not serve yet.
const DEFAULTS_NOT_SERVED: &[&str] = &["defaultRouteAction", "defaultCustomErrorResponsePolicy"];
const ROUTE_RULE_NOT_SERVED: &[&str] = &[
    "customErrorResponsePolicy",
    "httpFilterConfigs",
    "httpFilterMetadata",
];
const ROUTE_ACTION_NOT_SERVED: &[&str] = &[
    "faultInjectionPolicy",
    "requestMirrorPolicy",
    "corsPolicy",
    "maxStreamDuration",
];
const MATCH_RULE_NOT_SERVED: &[&str] = &["pathTemplateMatch", "metadataFilters"];

/// The retry conditions the cloud documents, all of which Envoy knows by the same names.
const RETRY_CONDITIONS: &[&str] = &[
    "5xx",
    "gateway-error",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

pub(super) fn url_map(
    node: &Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<UrlMap> {
    let (mut fields, name) = open(node, file, "urlMaps", diagnostics)?;
    fields.not_served(DEFAULTS_NOT_SERVED, diagnostics);
    let (default_service, default_url_redirect) = defaults(&mut fields, diagnostics);
    let header_action = header_action(&mut fields, diagnostics);
    let mut host_rules = Vec::new();
    for (index, item) in fields
        .list("hostRules", diagnostics)
        .into_iter()
        .enumerate()
    {
        let mut rule = Fields::new(
            item,
            file,
            format!("{}.hostRules[{index}]", fields.path),
            diagnostics,
        );
        rule.ignore(&["description"]);
        let hosts = rule.strings("hosts", diagnostics);
        if hosts.is_empty() {
            diagnostics.error(
                &rule.loc(),
                rule.field_path("hosts"),
                "a host rule needs at least one host",
            );
        }
        let path_matcher = rule
            .required_string("pathMatcher", diagnostics)
            .unwrap_or_default();
        let loc = rule.loc();
        rule.finish(diagnostics);
        host_rules.push(HostRule {
            loc,
            hosts,
            path_matcher,
        });
    }
    let mut path_matchers = Vec::new();
    for (index, item) in fields
        .list("pathMatchers", diagnostics)
        .into_iter()
        .enumerate()
    {
        let path = format!("{}.pathMatchers[{index}]", fields.path);
        if let Some(matcher) = path_matcher(item, file, path, diagnostics) {
            path_matchers.push(matcher);
        }
    }
    let loc = fields.loc();
    fields.finish(diagnostics);
    Some(UrlMap {
        name,
        loc,
        default_service,
        default_url_redirect,
        host_rules,
        path_matchers,
        header_action,
    })
}

/// `defaultService` or `defaultUrlRedirect` (at most one).
fn defaults(
    fields: &mut Fields<'_>,
    diagnostics: &mut Diagnostics,
) -> (Option<Ref>, Option<UrlRedirect>) {
    let service = reference(fields, "defaultService", &["backendServices"], diagnostics);
    let file = fields.file().clone();
    let redirect = fields.get("defaultUrlRedirect").and_then(|node| {
        url_redirect(
            node,
            &file,
            fields.field_path("defaultUrlRedirect"),
            diagnostics,
        )
    });
    if service.is_some() && redirect.is_some() {
        diagnostics.error(
            &fields.loc_of("defaultUrlRedirect"),
            fields.field_path("defaultUrlRedirect"),
            "set only one of defaultService and defaultUrlRedirect",
        );
        return (service, None);
    }
    (service, redirect)
}

fn path_matcher(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> Option<PathMatcher> {
    let mut fields = Fields::new(node, file, path, diagnostics);
    fields.ignore(&["description"]);
    let name = fields.required_string("name", diagnostics)?;
    fields.path = format!(
        "{}[{name}]",
        fields
            .path
            .rsplit_once('[')
            .map(|(head, _)| head)
            .unwrap_or("")
    );
    fields.not_served(DEFAULTS_NOT_SERVED, diagnostics);
    let (default_service, default_url_redirect) = defaults(&mut fields, diagnostics);
    let header_action = header_action(&mut fields, diagnostics);
    let mut path_rules = Vec::new();
    for (index, item) in fields
        .list("pathRules", diagnostics)
        .into_iter()
        .enumerate()
    {
        let mut rule = Fields::new(
            item,
            file,
            format!("{}.pathRules[{index}]", fields.path),
            diagnostics,
        );
        let paths = rule.strings("paths", diagnostics);
        for (path_index, path) in paths.iter().enumerate() {
            check_path_pattern(path, &rule, path_index, diagnostics);
        }
        if paths.is_empty() {
            diagnostics.error(
                &rule.loc(),
                rule.field_path("paths"),
                "a path rule needs at least one path",
            );
        }
        let target = rule_target(&mut rule, diagnostics);
        rule.finish(diagnostics);
        if let Some((action, extras)) = target {
            path_rules.push(PathRule {
                paths,
                action,
                extras,
            });
        }
    }
    let mut route_rules = Vec::new();
    for (index, item) in fields
        .list("routeRules", diagnostics)
        .into_iter()
        .enumerate()
    {
        let path = format!("{}.routeRules[{index}]", fields.path);
        if let Some(rule) = route_rule(item, file, path, diagnostics) {
            route_rules.push(rule);
        }
    }
    let loc = fields.loc();
    fields.finish(diagnostics);
    Some(PathMatcher {
        name,
        loc,
        default_service,
        default_url_redirect,
        path_rules,
        route_rules,
        header_action,
    })
}

fn route_rule(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> Option<RouteRule> {
    let mut rule = Fields::new(node, file, path, diagnostics);
    rule.ignore(&["description"]);
    rule.not_served(ROUTE_RULE_NOT_SERVED, diagnostics);
    let priority = rule.integer("priority", 0, 2_147_483_647, diagnostics);
    rule.require("priority", diagnostics);
    let mut match_rules = Vec::new();
    for (index, item) in rule.list("matchRules", diagnostics).into_iter().enumerate() {
        let path = format!("{}.matchRules[{index}]", rule.path);
        if let Some(matched) = match_rule(item, file, path, diagnostics) {
            match_rules.push(matched);
        }
    }
    let header_action = header_action(&mut rule, diagnostics);
    let target = rule_target(&mut rule, diagnostics);
    if let Some((target, extras)) = &target {
        let rewrites_prefix = extras
            .url_rewrite
            .as_ref()
            .is_some_and(|r| r.path_prefix_rewrite.is_some())
            || matches!(target, RouteTarget::Redirect(r) if r.prefix_redirect.is_some());
        if rewrites_prefix
            && match_rules
                .iter()
                .any(|m| matches!(m.path, PathMatch::Regex(_)))
        {
            diagnostics.error(
                &rule.loc(),
                rule.path.clone(),
                "pathPrefixRewrite and prefixRedirect replace the matched prefix, which a \
                 regexMatch does not have; use prefixMatch or fullPathMatch",
            );
        }
    }
    rule.finish(diagnostics);
    let (action, mut extras) = target?;
    extras.header_action = header_action;
    Some(RouteRule {
        priority: priority? as u32,
        match_rules,
        action,
        extras,
    })
}

/// Path rule patterns: start with `/`; `*` only as the final segment (`/a/*`).
fn check_path_pattern(path: &str, rule: &Fields<'_>, index: usize, diagnostics: &mut Diagnostics) {
    let star_ok = !path.contains('*') || (path.ends_with("/*") && path.matches('*').count() == 1);
    if !path.starts_with('/') || !star_ok {
        diagnostics.error(
            &rule.loc_of("paths"),
            format!("{}[{index}]", rule.field_path("paths")),
            format!("`{path}` is not a valid path pattern; it must start with `/` and may end with `/*`"),
        );
    }
}

fn match_rule(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> Option<MatchRule> {
    let mut fields = Fields::new(node, file, path, diagnostics);
    fields.not_served(MATCH_RULE_NOT_SERVED, diagnostics);
    let mut paths = Vec::new();
    if let Some(prefix) = fields.string("prefixMatch", diagnostics) {
        paths.push(PathMatch::Prefix(prefix));
    }
    if let Some(full) = fields.string("fullPathMatch", diagnostics) {
        paths.push(PathMatch::Full(full));
    }
    if let Some(pattern) = fields.string("regexMatch", diagnostics) {
        if check_regex(&pattern, &fields, "regexMatch", diagnostics) {
            paths.push(PathMatch::Regex(pattern));
        }
    }
    let ignore_case = fields.bool("ignoreCase", false, diagnostics);
    let mut headers = Vec::new();
    for (index, item) in fields
        .list("headerMatches", diagnostics)
        .into_iter()
        .enumerate()
    {
        let path = format!("{}.headerMatches[{index}]", fields.path);
        if let Some(header) = header_match(item, fields.file(), path, diagnostics) {
            headers.push(header);
        }
    }
    let mut query_parameters = Vec::new();
    for (index, item) in fields
        .list("queryParameterMatches", diagnostics)
        .into_iter()
        .enumerate()
    {
        let path = format!("{}.queryParameterMatches[{index}]", fields.path);
        if let Some(parameter) = query_parameter_match(item, fields.file(), path, diagnostics) {
            query_parameters.push(parameter);
        }
    }
    let matched = match paths.len() {
        0 => Some(PathMatch::Prefix(String::new())),
        1 => paths.pop(),
        _ => {
            diagnostics.error(
                &fields.loc(),
                fields.path.clone(),
                "set only one of prefixMatch, fullPathMatch and regexMatch",
            );
            None
        }
    };
    fields.finish(diagnostics);
    Some(MatchRule {
        path: matched?,
        ignore_case,
        headers,
        query_parameters,
    })
}

/// Whether `pattern` compiles (RE2 syntax; Envoy and gRPC run RE2); an error if not.
fn check_regex(
    pattern: &str,
    fields: &Fields<'_>,
    key: &str,
    diagnostics: &mut Diagnostics,
) -> bool {
    match regex::Regex::new(pattern) {
        Ok(_) => true,
        Err(error) => {
            let reason = error.to_string();
            let first_line = reason.lines().last().unwrap_or("").trim();
            let first_line = first_line.strip_prefix("error: ").unwrap_or(first_line);
            diagnostics.error(
                &fields.loc_of(key),
                fields.field_path(key),
                format!("`{pattern}` is not a valid RE2 regular expression: {first_line}"),
            );
            false
        }
    }
}

/// One `headerMatches` entry: a header name and exactly one way to match it.
fn header_match(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> Option<HeaderMatch> {
    let mut fields = Fields::new(node, file, path, diagnostics);
    let header_name = fields.required_string("headerName", diagnostics);
    let invert_match = fields.bool("invertMatch", false, diagnostics);
    let mut kinds = Vec::new();
    for (key, make) in [
        (
            "exactMatch",
            HeaderMatchKind::Exact as fn(String) -> HeaderMatchKind,
        ),
        ("prefixMatch", HeaderMatchKind::Prefix),
        ("suffixMatch", HeaderMatchKind::Suffix),
        ("regexMatch", HeaderMatchKind::Regex),
    ] {
        if let Some(value) = fields.string(key, diagnostics) {
            kinds.push(make(value));
        }
    }
    if fields.get("presentMatch").is_some() {
        kinds.push(HeaderMatchKind::Present(fields.bool(
            "presentMatch",
            true,
            diagnostics,
        )));
    }
    if let Some(range) = fields.get("rangeMatch") {
        let mut bounds = Fields::new(range, file, fields.field_path("rangeMatch"), diagnostics);
        let start = bounds.integer("rangeStart", i64::MIN, i64::MAX, diagnostics);
        let end = bounds.integer("rangeEnd", i64::MIN, i64::MAX, diagnostics);
        bounds.finish(diagnostics);
        if let (Some(start), Some(end)) = (start, end) {
            kinds.push(HeaderMatchKind::Range(start, end));
        }
    }
    let loc = fields.loc();
    let path = fields.path.clone();
    fields.finish(diagnostics);
    if kinds.len() != 1 {
        diagnostics.error(
            &loc,
            path,
            format!(
                "a header match needs exactly one of exactMatch, prefixMatch, suffixMatch, \
                 regexMatch, presentMatch or rangeMatch; found {}",
                kinds.len()
            ),
        );
        return None;
    }
    Some(HeaderMatch {
        header_name: header_name?,
        kind: kinds.pop()?,
        invert_match,
    })
}

/// One `queryParameterMatches` entry: a name and exactly one of exactMatch, regexMatch or
/// presentMatch (true).
fn query_parameter_match(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> Option<QueryParameterMatch> {
    let mut fields = Fields::new(node, file, path, diagnostics);
    let name = fields.required_string("name", diagnostics);
    let mut kinds = Vec::new();
    if let Some(value) = fields.string("exactMatch", diagnostics) {
        kinds.push(QueryParameterMatchKind::Exact(value));
    }
    if let Some(pattern) = fields.string("regexMatch", diagnostics) {
        if check_regex(&pattern, &fields, "regexMatch", diagnostics) {
            kinds.push(QueryParameterMatchKind::Regex(pattern));
        }
    }
    if fields.get("presentMatch").is_some() {
        if fields.bool("presentMatch", true, diagnostics) {
            kinds.push(QueryParameterMatchKind::Present);
        } else {
            diagnostics.error(
                &fields.loc_of("presentMatch"),
                fields.field_path("presentMatch"),
                "presentMatch can only be true (a parameter that must be absent cannot be matched)",
            );
            return None;
        }
    }
    let loc = fields.loc();
    let path = fields.path.clone();
    fields.finish(diagnostics);
    if kinds.len() != 1 {
        diagnostics.error(
            &loc,
            path,
            format!(
                "a query parameter match needs exactly one of exactMatch, regexMatch or \
                 presentMatch; found {}",
                kinds.len()
            ),
        );
        return None;
    }
    Some(QueryParameterMatch {
        name: name?,
        kind: kinds.pop()?,
    })
}

/// Where a rule sends requests — exactly one of `service`,
/// `routeAction.weightedBackendServices` and `urlRedirect` — and what its routeAction does
/// on the way (a urlRedirect takes no routeAction).
fn rule_target(
    rule: &mut Fields<'_>,
    diagnostics: &mut Diagnostics,
) -> Option<(RouteTarget, RouteExtras)> {
    let file = rule.file().clone();
    let service = reference(rule, "service", &["backendServices"], diagnostics);
    let redirect = rule
        .get("urlRedirect")
        .map(|node| url_redirect(node, &file, rule.field_path("urlRedirect"), diagnostics));
    let action = rule.get("routeAction");
    let (weighted, extras) = match action {
        Some(node) => route_action(node, &file, rule.field_path("routeAction"), diagnostics),
        None => (None, RouteExtras::default()),
    };
    if redirect.is_some() && action.is_some() {
        diagnostics.error(
            &rule.loc_of("urlRedirect"),
            rule.field_path("urlRedirect"),
            "a rule with urlRedirect takes no routeAction: the request is not forwarded",
        );
        return None;
    }
    let chosen = [service.is_some(), redirect.is_some(), weighted.is_some()]
        .iter()
        .filter(|set| **set)
        .count();
    if chosen > 1 {
        diagnostics.error(
            &rule.loc(),
            rule.path.clone(),
            "set only one of service, routeAction.weightedBackendServices and urlRedirect",
        );
        return None;
    }
    let target = match (service, redirect, weighted) {
        (Some(service), _, _) => RouteTarget::Service(service),
        (_, Some(redirect), _) => RouteTarget::Redirect(redirect?),
        (_, _, Some(services)) => RouteTarget::Weighted { services },
        _ => {
            if rule.get("service").is_none() {
                diagnostics.error(
                    &rule.loc(),
                    rule.field_path("service"),
                    "the rule needs one of service, routeAction.weightedBackendServices and urlRedirect",
                );
            }
            return None;
        }
    };
    Some((target, extras))
}

/// `routeAction`: weightedBackendServices (weights 0..1000, not all 0), timeout, urlRewrite,
/// retryPolicy.
fn route_action(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> (Option<Vec<WeightedService>>, RouteExtras) {
    let mut action = Fields::new(node, file, path, diagnostics);
    action.not_served(ROUTE_ACTION_NOT_SERVED, diagnostics);
    let weighted = action
        .get("weightedBackendServices")
        .is_some()
        .then(|| weighted_services(&mut action, diagnostics));
    let timeout_sec = action.get("timeout").and_then(|timeout| {
        duration(timeout, file, action.field_path("timeout"), diagnostics)
            .map(|d| d.as_secs().min(u64::from(u32::MAX)) as u32)
    });
    let url_rewrite = action
        .get("urlRewrite")
        .map(|node| url_rewrite(node, file, action.field_path("urlRewrite"), diagnostics));
    let retry_policy = action
        .get("retryPolicy")
        .and_then(|node| retry_policy(node, file, action.field_path("retryPolicy"), diagnostics));
    action.finish(diagnostics);
    (
        weighted,
        RouteExtras {
            timeout_sec,
            url_rewrite,
            retry_policy,
            header_action: HeaderAction::default(),
        },
    )
}

fn weighted_services(
    action: &mut Fields<'_>,
    diagnostics: &mut Diagnostics,
) -> Vec<WeightedService> {
    let file = action.file().clone();
    let mut services = Vec::new();
    for (index, item) in action
        .list("weightedBackendServices", diagnostics)
        .into_iter()
        .enumerate()
    {
        let mut weighted = Fields::new(
            item,
            &file,
            format!("{}.weightedBackendServices[{index}]", action.path),
            diagnostics,
        );
        let backend_service = reference(
            &mut weighted,
            "backendService",
            &["backendServices"],
            diagnostics,
        );
        let weight = weighted.integer("weight", 0, 1000, diagnostics);
        weighted.require("weight", diagnostics);
        let header_action = header_action(&mut weighted, diagnostics);
        weighted.finish(diagnostics);
        if let (Some(backend_service), Some(weight)) = (backend_service, weight) {
            services.push(WeightedService {
                backend_service,
                weight: weight as u32,
                header_action,
            });
        }
    }
    if services.is_empty() {
        diagnostics.error(
            &action.loc_of("weightedBackendServices"),
            action.field_path("weightedBackendServices"),
            "weightedBackendServices needs at least one backend service",
        );
    } else if services.iter().all(|s| s.weight == 0) {
        diagnostics.error(
            &action.loc_of("weightedBackendServices"),
            action.field_path("weightedBackendServices"),
            "every weight is 0; at least one backend service needs a weight above 0",
        );
    }
    services
}

fn url_rewrite(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> UrlRewrite {
    let mut fields = Fields::new(node, file, path, diagnostics);
    fields.not_served(&["pathTemplateRewrite"], diagnostics);
    let path_prefix_rewrite = bounded_text(&mut fields, "pathPrefixRewrite", 1024, diagnostics);
    let host_rewrite = bounded_text(&mut fields, "hostRewrite", 255, diagnostics);
    fields.finish(diagnostics);
    UrlRewrite {
        path_prefix_rewrite,
        host_rewrite,
    }
}

fn url_redirect(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> Option<UrlRedirect> {
    let mut fields = Fields::new(node, file, path, diagnostics);
    let host_redirect = bounded_text(&mut fields, "hostRedirect", 255, diagnostics);
    let path_redirect = bounded_text(&mut fields, "pathRedirect", 1024, diagnostics);
    let prefix_redirect = bounded_text(&mut fields, "prefixRedirect", 1024, diagnostics);
    let https_redirect = fields.bool("httpsRedirect", false, diagnostics);
    let strip_query = fields.bool("stripQuery", false, diagnostics);
    let response_code = fields
        .choice(
            "redirectResponseCode",
            &[
                ("MOVED_PERMANENTLY_DEFAULT", 301),
                ("FOUND", 302),
                ("SEE_OTHER", 303),
                ("TEMPORARY_REDIRECT", 307),
                ("PERMANENT_REDIRECT", 308),
            ],
            diagnostics,
        )
        .unwrap_or(301);
    let both_paths = path_redirect.is_some() && prefix_redirect.is_some();
    if both_paths {
        diagnostics.error(
            &fields.loc_of("prefixRedirect"),
            fields.field_path("prefixRedirect"),
            "set only one of pathRedirect and prefixRedirect",
        );
    }
    fields.finish(diagnostics);
    (!both_paths).then_some(UrlRedirect {
        host_redirect,
        path_redirect,
        prefix_redirect,
        https_redirect,
        response_code,
        strip_query,
    })
}

fn retry_policy(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> Option<RetryPolicy> {
    let mut fields = Fields::new(node, file, path, diagnostics);
    let retry_conditions = fields.strings("retryConditions", diagnostics);
    let mut known = true;
    for (index, condition) in retry_conditions.iter().enumerate() {
        if !RETRY_CONDITIONS.contains(&condition.as_str()) {
            known = false;
            diagnostics.error(
                &fields.loc_of("retryConditions"),
                format!("{}[{index}]", fields.field_path("retryConditions")),
                format!(
                    "`{condition}` is not a retry condition; allowed: {}",
                    RETRY_CONDITIONS.join(", ")
                ),
            );
        }
    }
    let num_retries = fields.integer("numRetries", 1, 2_147_483_647, diagnostics);
    let per_try_timeout = fields.get("perTryTimeout").and_then(|timeout| {
        duration(
            timeout,
            file,
            fields.field_path("perTryTimeout"),
            diagnostics,
        )
    });
    fields.finish(diagnostics);
    known.then_some(RetryPolicy {
        retry_conditions,
        num_retries: num_retries.unwrap_or(1) as u32,
        per_try_timeout,
    })
}

/// `headerAction` of the mapping being read (empty when absent).
fn header_action(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> HeaderAction {
    let file = fields.file().clone();
    let Some(node) = fields.get("headerAction") else {
        return HeaderAction::default();
    };
    let mut action = Fields::new(node, &file, fields.field_path("headerAction"), diagnostics);
    let request_headers_to_add = headers_to_add(&mut action, "requestHeadersToAdd", diagnostics);
    let request_headers_to_remove =
        headers_to_remove(&mut action, "requestHeadersToRemove", diagnostics);
    let response_headers_to_add = headers_to_add(&mut action, "responseHeadersToAdd", diagnostics);
    let response_headers_to_remove =
        headers_to_remove(&mut action, "responseHeadersToRemove", diagnostics);
    action.finish(diagnostics);
    HeaderAction {
        request_headers_to_add,
        request_headers_to_remove,
        response_headers_to_add,
        response_headers_to_remove,
    }
}

fn headers_to_add(
    action: &mut Fields<'_>,
    key: &'static str,
    diagnostics: &mut Diagnostics,
) -> Vec<HeaderToAdd> {
    let file = action.file().clone();
    let mut headers = Vec::new();
    for (index, item) in action.list(key, diagnostics).into_iter().enumerate() {
        let mut header = Fields::new(
            item,
            &file,
            format!("{}[{index}]", action.field_path(key)),
            diagnostics,
        );
        let name = header.required_string("headerName", diagnostics);
        let value = header
            .string("headerValue", diagnostics)
            .unwrap_or_default();
        let replace = header.bool("replace", false, diagnostics);
        if let Some(name) = &name {
            check_header_name(name, &header, "headerName", diagnostics);
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            diagnostics.error(
                &header.loc_of("headerValue"),
                header.field_path("headerValue"),
                "a header value cannot hold control characters",
            );
        }
        header.finish(diagnostics);
        if let Some(header_name) = name {
            headers.push(HeaderToAdd {
                header_name,
                header_value: value,
                replace,
            });
        }
    }
    headers
}

fn headers_to_remove(
    action: &mut Fields<'_>,
    key: &'static str,
    diagnostics: &mut Diagnostics,
) -> Vec<String> {
    let names = action.strings(key, diagnostics);
    for (index, name) in names.iter().enumerate() {
        check_header_name(name, action, &format!("{key}[{index}]"), diagnostics);
    }
    names
}

/// A header a URL map may change: a valid name, and not Host or a pseudo-header (which
/// Envoy refuses to change).
fn check_header_name(name: &str, fields: &Fields<'_>, key: &str, diagnostics: &mut Diagnostics) {
    let problem = if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
        Some("Host and pseudo-headers cannot be changed by a header action")
    } else if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        Some("not a valid header name")
    } else {
        None
    };
    if let Some(problem) = problem {
        diagnostics.error(
            &fields.loc_of(key.split('[').next().unwrap_or(key)),
            fields.field_path(key),
            format!("`{name}`: {problem}"),
        );
    }
}

/// A string field of at most `limit` characters (and at least one) when present.
fn bounded_text(
    fields: &mut Fields<'_>,
    key: &'static str,
    limit: usize,
    diagnostics: &mut Diagnostics,
) -> Option<String> {
    let text = fields.string(key, diagnostics)?;
    if text.is_empty() || text.len() > limit {
        diagnostics.error(
            &fields.loc_of(key),
            fields.field_path(key),
            format!("must be 1 to {limit} characters long, found {}", text.len()),
        );
        return None;
    }
    Some(text)
}
