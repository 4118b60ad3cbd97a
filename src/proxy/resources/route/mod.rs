//! RouteConfiguration → the sidecar's route table: virtual hosts by domain, routes with path,
//! header and query matches, and what each route does (forward to one cluster or a weighted
//! set, with timeout, retries, hash policies and rewrites; redirect; answer directly), with
//! the header changes of each level.

mod actions;
mod headers;
mod matchers;
mod policies;
mod templates;

use std::sync::LazyLock;

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;

pub use actions::{Action, Forward, HashPolicy, Redirect, Retry, WeightedCluster};
pub(crate) use headers::header_changes;
pub use headers::{AddMode, HeaderAddition, HeaderChanges, HeaderEdits, HeaderText, TextPart};
pub use matchers::{HeaderMatch, HeaderTest, PathMatch, QueryMatch, TextMatch};
pub use policies::{Mirror, RegexRewrite};
pub use templates::{PathTemplate, TemplateRewrite};

pub(crate) use headers::known_variables;
pub(crate) use matchers::text_match;

use super::{decode_checked, duration, Fault, Problem, ResourceError};
use crate::proxy::filters::{read_route_configs, RouteFilterConfigs};
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
    /// `typed_per_filter_config`, read by each filter's own module.
    pub filter_configs: RouteFilterConfigs,
}

#[derive(Clone, Debug)]
pub struct Route {
    pub path: PathMatch,
    pub case_sensitive: bool,
    pub headers: Vec<HeaderMatch>,
    pub query: Vec<QueryMatch>,
    pub action: Action,
    pub header_changes: HeaderChanges,
    /// `typed_per_filter_config`, read by each filter's own module.
    pub filter_configs: RouteFilterConfigs,
}

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
        // Checked by its converter (the URI template matcher, by its type).
        "virtual_hosts.routes.match.path_match_policy",
        "virtual_hosts.routes.match.case_sensitive",
        "virtual_hosts.routes.match.query_parameters.name",
        "virtual_hosts.routes.match.query_parameters.string_match.exact",
        "virtual_hosts.routes.match.query_parameters.string_match.prefix",
        "virtual_hosts.routes.match.query_parameters.string_match.suffix",
        "virtual_hosts.routes.match.query_parameters.string_match.contains",
        "virtual_hosts.routes.match.query_parameters.string_match.safe_regex.regex",
        "virtual_hosts.routes.match.query_parameters.string_match.ignore_case",
        "virtual_hosts.routes.match.query_parameters.present_match",
        // Each entry is checked by its filter's module (proxy/filters/).
        "virtual_hosts.typed_per_filter_config",
        "virtual_hosts.routes.typed_per_filter_config",
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
        fields.extend(headers::header_change_fields(level));
    }
    fields
});

/// The RouteConfiguration fields the sidecar applies.
pub fn supported_fields() -> Vec<String> {
    FIELDS.clone()
}

/// Converts one RouteConfiguration resource.
pub fn convert(name: &str, bytes: &[u8]) -> Result<RouteTable, ResourceError> {
    read(name, bytes).map_err(|fault| fault.of(TypeUrl::Route, name))
}

fn read(name: &str, bytes: &[u8]) -> Result<RouteTable, Fault> {
    let supported: Vec<&str> = FIELDS.iter().map(String::as_str).collect();
    let config: RouteConfiguration = decode_checked(bytes, &supported)?;
    let mut virtual_hosts = Vec::new();
    for (host_index, host) in config.virtual_hosts.iter().enumerate() {
        let at = format!("virtual_hosts[{host_index}]");
        virtual_hosts.push(virtual_host(host).map_err(|fault| fault.under(&at))?);
    }
    let headers = headers::header_changes(
        &config.request_headers_to_add,
        &config.request_headers_to_remove,
        &config.response_headers_to_add,
        &config.response_headers_to_remove,
    )?;
    Ok(RouteTable {
        name: name.to_string(),
        virtual_hosts,
        headers,
    })
}

fn virtual_host(
    host: &envoy_types::pb::envoy::config::route::v3::VirtualHost,
) -> Result<VirtualHost, Fault> {
    let mut routes = Vec::new();
    for (route_index, route) in host.routes.iter().enumerate() {
        routes.push(convert_route(route).map_err(|f| f.under(&format!("routes[{route_index}]")))?);
    }
    let retry = host
        .retry_policy
        .as_ref()
        .map(actions::retry)
        .transpose()
        .map_err(|problem| Fault::at("retry_policy", problem))?;
    let headers = headers::header_changes(
        &host.request_headers_to_add,
        &host.request_headers_to_remove,
        &host.response_headers_to_add,
        &host.response_headers_to_remove,
    )?;
    let filter_configs = read_route_configs(&host.typed_per_filter_config)?;
    Ok(VirtualHost {
        filter_configs,
        name: host.name.clone(),
        domains: host
            .domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
        routes,
        retry,
        headers,
    })
}

fn convert_route(route: &envoy_types::pb::envoy::config::route::v3::Route) -> Result<Route, Fault> {
    let matcher = route
        .r#match
        .as_ref()
        .ok_or(Problem::Missing { what: "a match" })?;
    let path = matchers::path_match(matcher)?;
    let headers = matcher
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            matchers::header_match(h).map_err(|p| Fault::at(format!("match.headers[{i}]"), p))
        })
        .collect::<Result<_, _>>()?;
    let query = matchers::query_matches(matcher)?;
    let action = actions::action(route, &path)?;
    let header_changes = headers::header_changes(
        &route.request_headers_to_add,
        &route.request_headers_to_remove,
        &route.response_headers_to_add,
        &route.response_headers_to_remove,
    )?;
    let filter_configs = read_route_configs(&route.typed_per_filter_config)?;
    Ok(Route {
        filter_configs,
        path,
        case_sensitive: matcher.case_sensitive.as_ref().is_none_or(|c| c.value),
        headers,
        query,
        action,
        header_changes,
    })
}
