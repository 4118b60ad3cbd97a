//! Where the model's references lead: whether a named resource exists (with a hint when it
//! does not), and which backend services a URL map sends to. Shared by the dialects' checks
//! and by translation. Must not: judge anything in a dialect's words.

use std::collections::{BTreeMap, BTreeSet};

use super::{Diagnostics, PathMatcher, Ref, RouteTarget, UrlMap};

/// Whether `reference` names a resource of `existing` (of `kind`, as the config calls that
/// collection); reports the dangling reference if not.
pub fn expect<T>(
    existing: &BTreeMap<String, T>,
    reference: &Ref,
    kind: &str,
    diagnostics: &mut Diagnostics,
) -> bool {
    if existing.contains_key(&reference.name) {
        return true;
    }
    let known: Vec<&str> = existing.keys().map(String::as_str).collect();
    let hint = match super::diagnostics::suggest(&reference.name, &known) {
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

/// The backend services a path matcher's route and path rules send to.
pub fn rule_targets(matcher: &PathMatcher) -> impl Iterator<Item = &Ref> {
    let actions = matcher
        .route_rules
        .iter()
        .map(|r| &r.action)
        .chain(matcher.path_rules.iter().map(|r| &r.action));
    actions.flat_map(|action| match action {
        RouteTarget::Service(service) => vec![service],
        RouteTarget::Weighted { services, .. } => {
            services.iter().map(|s| &s.backend_service).collect()
        }
        RouteTarget::Redirect(_) | RouteTarget::FixedResponse(_) => Vec::new(),
    })
}

/// The names of every backend service a URL map routes to.
pub fn services_of(url_map: &UrlMap) -> BTreeSet<&str> {
    let defaults = url_map.default_service.iter().chain(
        url_map
            .path_matchers
            .iter()
            .flat_map(|m| m.default_service.iter()),
    );
    let weighted_defaults = url_map
        .default_weighted
        .iter()
        .chain(
            url_map
                .path_matchers
                .iter()
                .flat_map(|m| m.default_weighted.iter()),
        )
        .flatten()
        .map(|w| &w.backend_service);
    defaults
        .chain(weighted_defaults)
        .chain(url_map.path_matchers.iter().flat_map(rule_targets))
        .map(|r| r.name.as_str())
        .collect()
}
