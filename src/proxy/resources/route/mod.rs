//! RouteConfiguration → the sidecar's route table: virtual hosts by domain, routes with path,
//! header and query matches, and what each route does (forward to one cluster or a weighted
//! set, with timeout, retries, hash policies and rewrites; redirect; answer directly), with
//! the header changes of each level.

mod actions;
mod matchers;

use std::sync::LazyLock;

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;

pub use actions::{
    Action, AddMode, Forward, HashPolicy, HeaderAddition, HeaderChanges, HeaderEdits, HeaderText,
    Redirect, Retry, TextPart, WeightedCluster,
};
pub use matchers::{HeaderMatch, HeaderTest, PathMatch, QueryMatch, TextMatch};

use super::{decode_checked, duration, Unsupported};
use crate::xds::types::TypeUrl;

#[derive(Clone, Debug)]
pub struct RouteTable {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
    pub headers: HeaderChanges,
}

#[derive(Clone, Debug)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
    pub retry: Option<Retry>,
    pub headers: HeaderChanges,
}

#[derive(Clone, Debug)]
pub struct Route {
    pub path: PathMatch,
    pub case_sensitive: bool,
    pub headers: Vec<HeaderMatch>,
    pub query: Vec<QueryMatch>,
    pub action: Action,
    pub header_changes: HeaderChanges,
}

/// Where in a route a conversion failed (a path suffix such as `.route.timeout`), and why.
type Failure = (String, String);

/// Every RouteConfiguration field the sidecar applies; anything else is NACKed by path.
static FIELDS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut fields: Vec<String> = [
        "name",
        "virtual_hosts.name",
        "virtual_hosts.domains",
        "virtual_hosts.routes.name",
        "virtual_hosts.routes.match.prefix",
        "virtual_hosts.routes.match.path",
        "virtual_hosts.routes.match.safe_regex.regex",
        "virtual_hosts.routes.match.safe_regex.google_re2",
        "virtual_hosts.routes.match.path_separated_prefix",
        "virtual_hosts.routes.match.case_sensitive",
        "virtual_hosts.routes.match.query_parameters.name",
        "virtual_hosts.routes.match.query_parameters.string_match.exact",
        "virtual_hosts.routes.match.query_parameters.string_match.prefix",
        "virtual_hosts.routes.match.query_parameters.string_match.suffix",
        "virtual_hosts.routes.match.query_parameters.string_match.contains",
        "virtual_hosts.routes.match.query_parameters.string_match.safe_regex.regex",
        "virtual_hosts.routes.match.query_parameters.string_match.ignore_case",
        "virtual_hosts.routes.match.query_parameters.present_match",
    ]
    .iter()
    .map(|field| field.to_string())
    .collect();
    fields.extend(matchers::header_matcher_fields(
        "virtual_hosts.routes.match.headers",
    ));
    fields.extend(actions::retry_fields("virtual_hosts.retry_policy"));
    fields.extend(actions::action_fields("virtual_hosts.routes"));
    for level in ["", "virtual_hosts", "virtual_hosts.routes"] {
        fields.extend(actions::header_change_fields(level));
    }
    fields
});

/// The RouteConfiguration fields the sidecar applies.
pub fn supported_fields() -> Vec<String> {
    FIELDS.clone()
}

fn fail(name: &str, reason: String) -> Unsupported {
    Unsupported {
        type_url: TypeUrl::Route,
        name: name.to_string(),
        reason,
    }
}

/// Converts one RouteConfiguration resource.
pub fn convert(name: &str, bytes: &[u8]) -> Result<RouteTable, Unsupported> {
    let supported: Vec<&str> = FIELDS.iter().map(String::as_str).collect();
    let config: RouteConfiguration = decode_checked(TypeUrl::Route, name, bytes, &supported)?;
    let mut virtual_hosts = Vec::new();
    for (host_index, host) in config.virtual_hosts.iter().enumerate() {
        let at = |what: String| format!("virtual_hosts[{host_index}].{what}");
        let mut routes = Vec::new();
        for (route_index, route) in host.routes.iter().enumerate() {
            let at = |what: &str| at(format!("routes[{route_index}]{what}"));
            routes.push(
                convert_route(route)
                    .map_err(|(what, reason)| fail(name, format!("{}: {reason}", at(&what))))?,
            );
        }
        let retry = host
            .retry_policy
            .as_ref()
            .map(actions::retry)
            .transpose()
            .map_err(|reason| fail(name, format!("{}: {reason}", at("retry_policy".into()))))?;
        let headers = actions::header_changes(
            &host.request_headers_to_add,
            &host.request_headers_to_remove,
            &host.response_headers_to_add,
            &host.response_headers_to_remove,
        )
        .map_err(|reason| fail(name, at(reason)))?;
        virtual_hosts.push(VirtualHost {
            name: host.name.clone(),
            domains: host
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            routes,
            retry,
            headers,
        });
    }
    let headers = actions::header_changes(
        &config.request_headers_to_add,
        &config.request_headers_to_remove,
        &config.response_headers_to_add,
        &config.response_headers_to_remove,
    )
    .map_err(|reason| fail(name, reason))?;
    Ok(RouteTable {
        name: name.to_string(),
        virtual_hosts,
        headers,
    })
}

fn convert_route(
    route: &envoy_types::pb::envoy::config::route::v3::Route,
) -> Result<Route, Failure> {
    let matcher = route
        .r#match
        .as_ref()
        .ok_or((String::new(), "a match is required".to_string()))?;
    let path = matchers::path_match(matcher)?;
    let headers = matcher
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| matchers::header_match(h).map_err(|e| (format!(".match.headers[{i}]"), e)))
        .collect::<Result<_, _>>()?;
    let query = matchers::query_matches(matcher)?;
    let action = actions::action(route, &path)?;
    let header_changes = actions::header_changes(
        &route.request_headers_to_add,
        &route.request_headers_to_remove,
        &route.response_headers_to_add,
        &route.response_headers_to_remove,
    )
    .map_err(|e| split_reason(&format!(".{e}")))?;
    Ok(Route {
        path,
        case_sensitive: matcher.case_sensitive.as_ref().is_none_or(|c| c.value),
        headers,
        query,
        action,
        header_changes,
    })
}

/// `.request_headers_to_add[0]: why` → (`.request_headers_to_add[0]`, `why`).
fn split_reason(text: &str) -> Failure {
    match text.split_once(": ") {
        Some((what, why)) => (what.to_string(), why.to_string()),
        None => (text.to_string(), String::new()),
    }
}
