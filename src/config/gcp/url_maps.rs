//! URL maps in the GCP dialect: host rules, path matchers with path rules and route rules,
//! and match rules (path, headers, query parameters). What a rule does — service, split or
//! redirect, its routeAction and headerAction — is read in `route_actions`. Cloud fields
//! Switchyard cannot serve yet are refused by name. Cross-resource rules (references,
//! proxyless limits) live in `validate_frontends`.

use std::sync::Arc;

use crate::config::gcp::resources::{
    HostRule, PathMatcher, PathRule, RouteDefaults, RouteRule, UrlMap,
};
use crate::config::reader::Fields;
use crate::config::yaml::Node;
use crate::model::{
    Diagnostics, HeaderMatch, HeaderMatchKind, MatchRule, PathMatch, QueryParameterMatch,
    QueryParameterMatchKind, RouteExtras, RouteTarget,
};

use super::fields::classify;
use super::route_actions::{header_action, route_action, rule_target, url_redirect};
use super::{open, reference};

pub(super) fn url_map(
    node: &Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<UrlMap> {
    let (mut fields, name) = open(node, file, "urlMaps", diagnostics)?;
    let defaults = defaults(&mut fields, diagnostics);
    let header_action = header_action(&mut fields, diagnostics);
    let host_rules = fields.mappings("hostRules", diagnostics, host_rule);
    let path_matchers = fields.items("pathMatchers", diagnostics, |item, path, diagnostics| {
        path_matcher(item, file, path, diagnostics)
    });
    let loc = fields.loc();
    fields.finish(diagnostics);
    Some(UrlMap {
        name,
        loc,
        defaults,
        host_rules,
        path_matchers,
        header_action,
        frontend: Default::default(),
    })
}

fn host_rule(rule: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> Option<HostRule> {
    classify(rule, "HostRule", diagnostics);
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
    Some(HostRule {
        loc: rule.loc(),
        hosts,
        path_matcher,
    })
}

/// `defaultService`, `defaultUrlRedirect` or `defaultRouteAction.weightedBackendServices` (at
/// most one), and the rest of `defaultRouteAction` (which a redirect does not take).
fn defaults(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> RouteDefaults {
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
    let (weighted, extras) = match fields.get("defaultRouteAction") {
        Some(node) => route_action(
            node,
            &file,
            fields.field_path("defaultRouteAction"),
            diagnostics,
        ),
        None => (None, RouteExtras::default()),
    };
    let mut defaults = RouteDefaults {
        service,
        redirect,
        weighted,
        extras,
    };
    if defaults.redirect.is_some() && fields.get("defaultRouteAction").is_some() {
        diagnostics.error(
            &fields.loc_of("defaultRouteAction"),
            fields.field_path("defaultRouteAction"),
            "defaultUrlRedirect takes no defaultRouteAction: redirected requests are not forwarded",
        );
        defaults.extras = RouteExtras::default();
    }
    let chosen = [
        defaults.service.is_some(),
        defaults.redirect.is_some(),
        defaults.weighted.is_some(),
    ];
    if chosen.iter().filter(|set| **set).count() > 1 {
        let second = if defaults.redirect.is_some() {
            "defaultUrlRedirect"
        } else {
            "defaultRouteAction"
        };
        diagnostics.error(
            &fields.loc_of(second),
            fields.field_path(second),
            "set only one of defaultService, defaultUrlRedirect and defaultRouteAction.weightedBackendServices",
        );
        defaults.redirect = None;
        defaults.weighted = None;
    }
    defaults
}

fn path_matcher(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> Option<PathMatcher> {
    let mut fields = Fields::new(node, file, path, diagnostics);
    let name = fields.required_string("name", diagnostics)?;
    fields.path = format!(
        "{}[{name}]",
        fields
            .path
            .rsplit_once('[')
            .map(|(head, _)| head)
            .unwrap_or("")
    );
    classify(&mut fields, "PathMatcher", diagnostics);
    let defaults = defaults(&mut fields, diagnostics);
    let header_action = header_action(&mut fields, diagnostics);
    let path_rules = fields.mappings("pathRules", diagnostics, path_rule);
    let route_rules = fields.mappings("routeRules", diagnostics, route_rule);
    let loc = fields.loc();
    fields.finish(diagnostics);
    Some(PathMatcher {
        name,
        loc,
        defaults,
        path_rules,
        route_rules,
        header_action,
    })
}

fn path_rule(rule: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> Option<PathRule> {
    let paths = rule.strings("paths", diagnostics);
    for (path_index, path) in paths.iter().enumerate() {
        check_path_pattern(path, rule, path_index, diagnostics);
    }
    if paths.is_empty() {
        diagnostics.error(
            &rule.loc(),
            rule.field_path("paths"),
            "a path rule needs at least one path",
        );
    }
    let (action, extras) = rule_target(rule, diagnostics)?;
    Some(PathRule {
        paths,
        action,
        extras,
    })
}

fn route_rule(rule: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> Option<RouteRule> {
    classify(rule, "HttpRouteRule", diagnostics);
    let priority = rule.integer("priority", 0, 2_147_483_647, diagnostics);
    rule.require("priority", diagnostics);
    let match_rules = rule.mappings("matchRules", diagnostics, match_rule);
    let header_action = header_action(rule, diagnostics);
    let target = rule_target(rule, diagnostics);
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
        let template_rewrite = extras
            .url_rewrite
            .as_ref()
            .and_then(|r| r.path_template_rewrite.as_deref());
        if let Some(template) = template_rewrite {
            check_template_rewrite(template, &match_rules, rule, diagnostics);
        }
    }
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

/// A pathTemplateRewrite rebuilds the path from the variables of the rule's
/// pathTemplateMatch: every match rule must be one, and capture what the rewrite uses.
fn check_template_rewrite(
    template: &str,
    match_rules: &[MatchRule],
    rule: &Fields<'_>,
    diagnostics: &mut Diagnostics,
) {
    let path = format!("{}.routeAction.urlRewrite.pathTemplateRewrite", rule.path);
    for matched in match_rules {
        let PathMatch::Template(match_template) = &matched.path else {
            diagnostics.error(
                &rule.loc(),
                path.clone(),
                "pathTemplateRewrite needs every matchRule to be a pathTemplateMatch",
            );
            return;
        };
        let variables = super::path_templates::match_variables(match_template).unwrap_or_default();
        if let Err(problem) = super::path_templates::check_rewrite(template, &variables) {
            diagnostics.error(
                &rule.loc(),
                path.clone(),
                format!("`{template}`: {problem}"),
            );
            return;
        }
    }
}

fn match_rule(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> Option<MatchRule> {
    classify(fields, "HttpRouteRuleMatch", diagnostics);
    let mut paths = Vec::new();
    if let Some(prefix) = fields.string("prefixMatch", diagnostics) {
        paths.push(PathMatch::Prefix(prefix));
    }
    if let Some(full) = fields.string("fullPathMatch", diagnostics) {
        paths.push(PathMatch::Full(full));
    }
    if let Some(pattern) = fields.string("regexMatch", diagnostics) {
        if check_regex(&pattern, fields, "regexMatch", diagnostics) {
            paths.push(PathMatch::Regex(pattern));
        }
    }
    if let Some(template) = fields.string("pathTemplateMatch", diagnostics) {
        match super::path_templates::match_variables(&template) {
            Ok(_) => paths.push(PathMatch::Template(template)),
            Err(problem) => diagnostics.error(
                &fields.loc_of("pathTemplateMatch"),
                fields.field_path("pathTemplateMatch"),
                format!("`{template}`: {problem}"),
            ),
        }
    }
    let ignore_case = fields.bool("ignoreCase", false, diagnostics);
    let headers = fields.mappings("headerMatches", diagnostics, header_match);
    let file = fields.file().clone();
    let query_parameters = fields.items(
        "queryParameterMatches",
        diagnostics,
        |item, path, diagnostics| query_parameter_match(item, &file, path, diagnostics),
    );
    let matched = match paths.len() {
        0 => Some(PathMatch::Prefix(String::new())),
        1 => paths.pop(),
        _ => {
            diagnostics.error(
                &fields.loc(),
                fields.path.clone(),
                "set only one of prefixMatch, fullPathMatch, regexMatch and pathTemplateMatch",
            );
            None
        }
    };
    Some(MatchRule {
        path: matched?,
        ignore_case,
        headers,
        query_parameters,
        source_blocks: Vec::new(),
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
fn header_match(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> Option<HeaderMatch> {
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
    let range = fields.mapping("rangeMatch", diagnostics, |bounds, diagnostics| {
        let start = bounds.integer("rangeStart", i64::MIN, i64::MAX, diagnostics);
        let end = bounds.integer("rangeEnd", i64::MIN, i64::MAX, diagnostics);
        Some(HeaderMatchKind::Range(start?, end?))
    });
    kinds.extend(range);
    if kinds.len() != 1 {
        diagnostics.error(
            &fields.loc(),
            fields.path.clone(),
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
