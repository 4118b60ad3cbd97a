//! What a URL-map rule does: where it sends requests (a service, a weighted split or a
//! redirect) and its routeAction (timeout, urlRewrite, retryPolicy, and the request policies
//! of `route_policies`), and the headerAction every level of a URL map may carry. Read from
//! the GCP dialect; cloud fields not served yet are refused by name.

use std::sync::Arc;

use crate::config::reader::Fields;
use crate::config::yaml::Node;
use crate::model::{
    Diagnostics, HeaderAction, HeaderToAdd, RetryPolicy, RouteExtras, RouteTarget, UrlRedirect,
    UrlRewrite, WeightedService,
};

use super::durations::{positive_duration, STREAM_LIMIT_OF_ZERO};
use super::{reference, route_policies};

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

/// Where a rule sends requests — exactly one of `service`,
/// `routeAction.weightedBackendServices` and `urlRedirect` — and what its routeAction does
/// on the way (a urlRedirect takes no routeAction).
pub(super) fn rule_target(
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
        (_, _, Some(services)) => RouteTarget::Weighted {
            services,
            sticky_cookie: None,
        },
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
pub(super) fn route_action(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> (Option<Vec<WeightedService>>, RouteExtras) {
    let mut action = Fields::new(node, file, path, diagnostics);
    let weighted = action
        .get("weightedBackendServices")
        .is_some()
        .then(|| weighted_services(&mut action, diagnostics));
    let timeout = action.get("timeout").and_then(|timeout| {
        positive_duration(
            timeout,
            file,
            action.field_path("timeout"),
            "Envoy reads a route timeout of 0 as no timeout at all (leave timeout out to use \
             the backend services' timeoutSec)",
            diagnostics,
        )
    });
    let url_rewrite = action
        .get("urlRewrite")
        .map(|node| url_rewrite(node, file, action.field_path("urlRewrite"), diagnostics));
    let retry_policy = action
        .get("retryPolicy")
        .and_then(|node| retry_policy(node, file, action.field_path("retryPolicy"), diagnostics));
    let fault_injection = action.get("faultInjectionPolicy").and_then(|node| {
        let path = action.field_path("faultInjectionPolicy");
        route_policies::fault_injection(node, file, path, diagnostics)
    });
    let request_mirror = action.get("requestMirrorPolicy").and_then(|node| {
        let path = action.field_path("requestMirrorPolicy");
        route_policies::request_mirror(node, file, path, diagnostics)
    });
    let cors = action.get("corsPolicy").map(|node| {
        let path = action.field_path("corsPolicy");
        route_policies::cors_policy(node, file, path, diagnostics)
    });
    let max_stream_duration = action.get("maxStreamDuration").and_then(|node| {
        positive_duration(
            node,
            file,
            action.field_path("maxStreamDuration"),
            STREAM_LIMIT_OF_ZERO,
            diagnostics,
        )
    });
    action.finish(diagnostics);
    (
        weighted,
        RouteExtras {
            timeout,
            url_rewrite,
            retry_policy,
            header_action: HeaderAction::default(),
            fault_injection,
            request_mirror,
            cors,
            max_stream_duration,
        },
    )
}

fn weighted_services(
    action: &mut Fields<'_>,
    diagnostics: &mut Diagnostics,
) -> Vec<WeightedService> {
    let services = action.mappings("weightedBackendServices", diagnostics, weighted_service);
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
    let path_prefix_rewrite = bounded_text(&mut fields, "pathPrefixRewrite", 1024, diagnostics);
    let host_rewrite = bounded_text(&mut fields, "hostRewrite", 255, diagnostics);
    let path_template_rewrite = bounded_text(&mut fields, "pathTemplateRewrite", 1024, diagnostics);
    if path_prefix_rewrite.is_some() && path_template_rewrite.is_some() {
        diagnostics.error(
            &fields.loc_of("pathTemplateRewrite"),
            fields.field_path("pathTemplateRewrite"),
            "set only one of pathPrefixRewrite and pathTemplateRewrite",
        );
    }
    fields.finish(diagnostics);
    UrlRewrite {
        path_prefix_rewrite,
        host_rewrite,
        path_template_rewrite,
    }
}

pub(super) fn url_redirect(
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
        port_redirect: None,
        path_rewrite: None,
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
        positive_duration(
            timeout,
            file,
            fields.field_path("perTryTimeout"),
            "the cloud requires a timeout per retry that is not zero (leave perTryTimeout out \
             to use the route's timeout)",
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
pub(super) fn header_action(
    fields: &mut Fields<'_>,
    diagnostics: &mut Diagnostics,
) -> HeaderAction {
    fields
        .mapping("headerAction", diagnostics, |action, diagnostics| {
            Some(HeaderAction {
                request_headers_to_add: headers_to_add(action, "requestHeadersToAdd", diagnostics),
                request_headers_to_remove: headers_to_remove(
                    action,
                    "requestHeadersToRemove",
                    diagnostics,
                ),
                response_headers_to_add: headers_to_add(
                    action,
                    "responseHeadersToAdd",
                    diagnostics,
                ),
                response_headers_to_remove: headers_to_remove(
                    action,
                    "responseHeadersToRemove",
                    diagnostics,
                ),
            })
        })
        .unwrap_or_default()
}

fn weighted_service(
    weighted: &mut Fields<'_>,
    diagnostics: &mut Diagnostics,
) -> Option<WeightedService> {
    let backend_service = reference(
        weighted,
        "backendService",
        &["backendServices"],
        diagnostics,
    );
    let weight = weighted.integer("weight", 0, 1000, diagnostics);
    weighted.require("weight", diagnostics);
    let header_action = header_action(weighted, diagnostics);
    Some(WeightedService {
        service: backend_service?,
        weight: weight? as u32,
        header_action,
    })
}

fn headers_to_add(
    action: &mut Fields<'_>,
    key: &'static str,
    diagnostics: &mut Diagnostics,
) -> Vec<HeaderToAdd> {
    action.mappings(key, diagnostics, header_to_add)
}

fn header_to_add(header: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> Option<HeaderToAdd> {
    let name = header.required_string("headerName", diagnostics);
    let value = header
        .string("headerValue", diagnostics)
        .unwrap_or_default();
    let replace = header.bool("replace", false, diagnostics);
    if let Some(name) = &name {
        check_header_name(name, header, "headerName", diagnostics);
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        diagnostics.error(
            &header.loc_of("headerValue"),
            header.field_path("headerValue"),
            "a header value cannot hold control characters",
        );
    }
    Some(HeaderToAdd {
        header_name: name?,
        header_value: value,
        replace,
    })
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
