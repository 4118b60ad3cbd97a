//! URL map → RouteConfiguration. Host rules become virtual hosts; a path matcher's route rules
//! (by priority) or path rules (longest path first, as the cloud picks the longest match)
//! become routes, ending in the matcher's default service. Weighted backend services become
//! weighted clusters. The route timeout is the backend service's timeoutSec.

use envoy_types::pb::envoy::config::route::v3::{
    route::Action, route_action::ClusterSpecifier, route_action::HashPolicy,
    route_match::PathSpecifier, weighted_cluster::ClusterWeight, Route, RouteAction,
    RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster,
};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};

use crate::model::{Model, PathMatch, PathMatcher, Ref, RouteTarget, UrlMap};

use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, HeaderMatcher, RetryPolicy,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher};

use super::affinity::route_hash_policies;
use super::seconds;

pub fn route_configurations_for(model: &Model) -> Vec<RouteConfiguration> {
    model
        .url_maps
        .values()
        .map(|url_map| route_configuration_for(model, url_map))
        .collect()
}

pub fn route_configuration_for(model: &Model, url_map: &UrlMap) -> RouteConfiguration {
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
        let fallback = matcher
            .default_service
            .as_ref()
            .or(url_map.default_service.as_ref());
        virtual_hosts.push(VirtualHost {
            name: format!("{}-{index}", matcher.name),
            domains: rule.hosts.clone(),
            routes: routes_for(model, matcher, fallback),
            retry_policy: Some(get_retry_policy()),
            ..Default::default()
        });
    }
    if !claims_any_host {
        if let Some(default) = &url_map.default_service {
            virtual_hosts.push(VirtualHost {
                name: "default".to_string(),
                domains: vec!["*".to_string()],
                routes: vec![route(prefix(""), action_to_service(model, default))],
                retry_policy: Some(get_retry_policy()),
                ..Default::default()
            });
        }
    }
    RouteConfiguration {
        name: url_map.name.clone(),
        virtual_hosts,
        ..Default::default()
    }
}

/// How many times a GET is retried.
pub const GET_RETRIES: u32 = 2;

/// As the cloud's proxies do: a GET is retried (at most twice) when the backend refuses or
/// resets the connection before answering; other methods are never retried.
pub fn get_retry_policy() -> RetryPolicy {
    RetryPolicy {
        retry_on: "connect-failure,reset,refused-stream".to_string(),
        num_retries: Some(UInt32Value { value: GET_RETRIES }),
        retriable_request_headers: vec![HeaderMatcher {
            name: ":method".to_string(),
            header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
                match_pattern: Some(MatchPattern::Exact("GET".to_string())),
                ..Default::default()
            })),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn routes_for(model: &Model, matcher: &PathMatcher, fallback: Option<&Ref>) -> Vec<Route> {
    let mut routes = Vec::new();
    let mut route_rules: Vec<_> = matcher.route_rules.iter().collect();
    route_rules.sort_by_key(|rule| rule.priority);
    for rule in route_rules {
        let action = action_for(model, &rule.action);
        for matched in &rule.match_rules {
            let mut route_match = match &matched.path {
                PathMatch::Prefix(p) => prefix(p),
                PathMatch::Full(p) => exact(p),
            };
            if matched.ignore_case {
                route_match.case_sensitive = Some(BoolValue { value: false });
            }
            routes.push(route(route_match, action.clone()));
        }
        if rule.match_rules.is_empty() {
            routes.push(route(prefix(""), action));
        }
    }
    let mut path_routes: Vec<(&str, &RouteTarget)> = matcher
        .path_rules
        .iter()
        .flat_map(|rule| {
            rule.paths
                .iter()
                .map(move |path| (path.as_str(), &rule.action))
        })
        .collect();
    // Longest pattern first; for equal length an exact path before a `/*` prefix.
    path_routes.sort_by_key(|(path, _)| {
        (
            std::cmp::Reverse(path.trim_end_matches('*').len()),
            path.ends_with('*'),
        )
    });
    for (path, target) in path_routes {
        let route_match = match path.strip_suffix('*') {
            Some(stem) => prefix(stem),
            None => exact(path),
        };
        routes.push(route(route_match, action_for(model, target)));
    }
    if let Some(fallback) = fallback {
        routes.push(route(prefix(""), action_to_service(model, fallback)));
    }
    routes
}

fn prefix(path: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix(path.to_string())),
        ..Default::default()
    }
}

fn exact(path: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Path(path.to_string())),
        ..Default::default()
    }
}

fn route(route_match: RouteMatch, action: RouteAction) -> Route {
    Route {
        r#match: Some(route_match),
        action: Some(Action::Route(action)),
        ..Default::default()
    }
}

fn timeout_sec_of(model: &Model, service: &Ref) -> u32 {
    model
        .backend_services
        .get(&service.name)
        .map(|s| s.timeout_sec)
        .unwrap_or(30)
}

fn hash_policies_of(model: &Model, service: &Ref) -> Vec<HashPolicy> {
    model
        .backend_services
        .get(&service.name)
        .map(route_hash_policies)
        .unwrap_or_default()
}

fn action_to_service(model: &Model, service: &Ref) -> RouteAction {
    RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(service.name.clone())),
        timeout: Some(seconds(u64::from(timeout_sec_of(model, service)))),
        hash_policy: hash_policies_of(model, service),
        ..Default::default()
    }
}

fn action_for(model: &Model, target: &RouteTarget) -> RouteAction {
    match target {
        RouteTarget::Service(service) => action_to_service(model, service),
        RouteTarget::Weighted {
            services,
            timeout_sec,
        } => {
            // A weighted split is one route, so it has one timeout: routeAction.timeout when
            // set, else the longest timeoutSec among the services it splits across.
            let timeout = timeout_sec.unwrap_or_else(|| {
                services
                    .iter()
                    .map(|s| timeout_sec_of(model, &s.backend_service))
                    .max()
                    .unwrap_or(30)
            });
            let clusters = services
                .iter()
                .filter(|s| s.weight > 0)
                .map(|s| ClusterWeight {
                    name: s.backend_service.name.clone(),
                    weight: Some(UInt32Value { value: s.weight }),
                    ..Default::default()
                })
                .collect();
            // The split is drawn per request, so it wins over affinity; affinity still holds
            // inside the chosen service when every service of the split hashes alike.
            let policies: Vec<Vec<HashPolicy>> = services
                .iter()
                .map(|s| hash_policies_of(model, &s.backend_service))
                .collect();
            let shared = policies.windows(2).all(|pair| pair[0] == pair[1]);
            RouteAction {
                cluster_specifier: Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
                    clusters,
                    ..Default::default()
                })),
                timeout: Some(seconds(u64::from(timeout))),
                hash_policy: if shared {
                    policies.into_iter().next().unwrap_or_default()
                } else {
                    Vec::new()
                },
                ..Default::default()
            }
        }
    }
}
