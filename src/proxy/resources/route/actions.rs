//! The action half of a route: forwarding (clusters, timeout, retries, hashing, rewrites),
//! redirects and direct responses. Conversion only; the data plane applies them
//! (proxy/rewrite.rs).

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::route::v3::{
    redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier},
    route::Action as XdsAction,
    route_action::{hash_policy::PolicySpecifier, ClusterSpecifier, HostRewriteSpecifier},
    RedirectAction, RetryPolicy, RouteAction,
};
use http::HeaderValue;

use super::super::{Fault, Problem};
use super::duration;
use super::headers::{header_change_fields, header_changes, HeaderChanges};
use super::matchers::{header_match, HeaderMatch, PathMatch};
use super::policies::{self, Mirror, RegexRewrite};
use super::templates::TemplateRewrite;

#[derive(Clone, Debug)]
pub enum Action {
    Forward(Forward),
    Redirect(Redirect),
    Direct { status: u16, body: String },
}

#[derive(Clone, Debug)]
pub struct Forward {
    /// Clusters with their weights (one cluster: weight 1).
    pub clusters: Vec<WeightedCluster>,
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
    pub hash: Vec<HashPolicy>,
    /// Replaces the part of the path the route matched.
    pub prefix_rewrite: Option<String>,
    /// Replaces the Host (:authority) sent upstream.
    pub host_rewrite: Option<String>,
    /// Rebuilds the path from the variables of the route's URI template.
    pub template_rewrite: Option<TemplateRewrite>,
    /// The whole stream's deadline; set (even to zero, no deadline), it replaces `timeout`.
    pub max_stream_duration: Option<Duration>,
    /// Shadow clusters the request is copied to, answers ignored.
    pub mirrors: Vec<Mirror>,
}

#[derive(Clone, Debug)]
pub struct WeightedCluster {
    pub name: String,
    pub weight: u32,
    pub headers: HeaderChanges,
}

#[derive(Clone, Debug)]
pub struct Retry {
    pub retry_on: Vec<String>,
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
    /// Only requests with these headers (e.g. `:method: GET`) are retried.
    pub only_with: Vec<HeaderMatch>,
}

#[derive(Clone, Debug)]
pub enum HashPolicy {
    Header(String),
    Cookie {
        name: String,
        path: String,
        ttl: Option<Duration>,
    },
    SourceIp,
}

/// Where a redirect sends the client; unset parts keep the request's own.
#[derive(Clone, Debug, Default)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// Replaces the whole path (a query in it replaces the request's query).
    pub path: Option<String>,
    /// Replaces the part of the path the route matched.
    pub prefix_rewrite: Option<String>,
    /// Rewrites the path (not the query) by regex.
    pub regex_rewrite: Option<RegexRewrite>,
    pub status: u16,
    pub strip_query: bool,
}

/// The fields of a RouteAction, RedirectAction and DirectResponseAction the sidecar applies,
/// under `route` (`virtual_hosts.routes`).
pub fn action_fields(route: &str) -> Vec<String> {
    let mut fields: Vec<String> = [
        "route.cluster",
        "route.weighted_clusters.clusters.name",
        "route.weighted_clusters.clusters.weight",
        "route.weighted_clusters.total_weight",
        "route.timeout",
        "route.prefix_rewrite",
        "route.host_rewrite_literal",
        "route.hash_policy.header.header_name",
        "route.hash_policy.cookie.name",
        "route.hash_policy.cookie.path",
        "route.hash_policy.cookie.ttl",
        "route.hash_policy.connection_properties.source_ip",
        "redirect.https_redirect",
        "redirect.scheme_redirect",
        "redirect.host_redirect",
        "redirect.port_redirect",
        "redirect.path_redirect",
        "redirect.prefix_rewrite",
        "redirect.response_code",
        "redirect.strip_query",
        "direct_response.status",
        "direct_response.body.inline_string",
    ]
    .iter()
    .map(|field| format!("{route}.{field}"))
    .collect();
    fields.extend(retry_fields(&format!("{route}.route.retry_policy")));
    fields.extend(policies::policy_fields(route));
    fields.extend(header_change_fields(&format!(
        "{route}.route.weighted_clusters.clusters"
    )));
    fields
}

/// The fields of a RetryPolicy the sidecar applies, under `prefix`.
pub fn retry_fields(prefix: &str) -> Vec<String> {
    let mut fields: Vec<String> = ["retry_on", "num_retries", "per_try_timeout"]
        .iter()
        .map(|field| format!("{prefix}.{field}"))
        .collect();
    fields.extend(super::matchers::header_matcher_fields(&format!(
        "{prefix}.retriable_request_headers"
    )));
    fields
}

/// What a route does, given the path matcher it matched with.
pub fn action(
    route: &envoy_types::pb::envoy::config::route::v3::Route,
    path: &PathMatch,
) -> Result<Action, Fault> {
    Ok(match &route.action {
        Some(XdsAction::Route(action)) => Action::Forward(forward(action, path)?),
        Some(XdsAction::Redirect(redirect_action)) => {
            Action::Redirect(redirect(redirect_action, path)?)
        }
        Some(XdsAction::DirectResponse(direct)) => Action::Direct {
            status: u16::try_from(direct.status).unwrap_or(500),
            body: direct
                .body
                .as_ref()
                .and_then(|b| match &b.specifier {
                    Some(Specifier::InlineString(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default(),
        },
        _ => return Err(Problem::RouteActionKind.into()),
    })
}

fn forward(action: &RouteAction, path: &PathMatch) -> Result<Forward, Fault> {
    let clusters = match &action.cluster_specifier {
        Some(ClusterSpecifier::Cluster(name)) => vec![WeightedCluster {
            name: name.clone(),
            weight: 1,
            headers: HeaderChanges::default(),
        }],
        Some(ClusterSpecifier::WeightedClusters(weighted)) => weighted
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Ok(WeightedCluster {
                    name: c.name.clone(),
                    weight: c.weight.as_ref().map_or(0, |w| w.value),
                    headers: header_changes(
                        &c.request_headers_to_add,
                        &c.request_headers_to_remove,
                        &c.response_headers_to_add,
                        &c.response_headers_to_remove,
                    )
                    .map_err(|f| f.under(&format!("route.weighted_clusters.clusters[{i}]")))?,
                })
            })
            .collect::<Result<_, Fault>>()?,
        _ => {
            return Err(Fault::at(
                "route",
                Problem::Missing {
                    what: "a cluster or weighted_clusters",
                },
            ))
        }
    };
    let mut hash = Vec::new();
    for (i, policy) in action.hash_policy.iter().enumerate() {
        hash.push(match &policy.policy_specifier {
            Some(PolicySpecifier::Header(header)) => {
                HashPolicy::Header(header.header_name.to_ascii_lowercase())
            }
            Some(PolicySpecifier::Cookie(cookie)) => HashPolicy::Cookie {
                name: cookie.name.clone(),
                path: cookie.path.clone(),
                ttl: cookie.ttl.as_ref().map(duration),
            },
            Some(PolicySpecifier::ConnectionProperties(p)) if p.source_ip => HashPolicy::SourceIp,
            _ => {
                return Err(Fault::at(
                    format!("route.hash_policy[{i}]"),
                    Problem::HashPolicy,
                ))
            }
        });
    }
    let prefix_rewrite = non_empty(&action.prefix_rewrite);
    if prefix_rewrite.is_some() {
        rewritable(path).map_err(|p| Fault::at("route.prefix_rewrite", p))?;
    }
    let host_rewrite = match &action.host_rewrite_specifier {
        Some(HostRewriteSpecifier::HostRewriteLiteral(host)) => Some(
            HeaderValue::from_str(host)
                .map_err(|_| {
                    Fault::at(
                        "route.host_rewrite_literal",
                        Problem::NotValid {
                            value: host.clone(),
                            expected: "a valid host",
                        },
                    )
                })?
                .to_str()
                .unwrap_or_default()
                .to_string(),
        ),
        _ => None,
    };
    let template_rewrite = policies::template_rewrite(action.path_rewrite_policy.as_ref(), path)?;
    Ok(Forward {
        template_rewrite,
        max_stream_duration: policies::max_stream_duration(action.max_stream_duration.as_ref()),
        mirrors: policies::mirrors(&action.request_mirror_policies)?,
        clusters,
        timeout: action.timeout.as_ref().map(duration),
        retry: action
            .retry_policy
            .as_ref()
            .map(retry)
            .transpose()
            .map_err(|p| Fault::at("route.retry_policy", p))?,
        hash,
        prefix_rewrite,
        host_rewrite,
    })
}

fn redirect(action: &RedirectAction, path: &PathMatch) -> Result<Redirect, Fault> {
    let scheme = match &action.scheme_rewrite_specifier {
        Some(SchemeRewriteSpecifier::HttpsRedirect(true)) => Some("https".to_string()),
        Some(SchemeRewriteSpecifier::SchemeRedirect(scheme)) if !scheme.is_empty() => {
            Some(scheme.to_ascii_lowercase())
        }
        _ => None,
    };
    let port =
        match action.port_redirect {
            0 => None,
            port => Some(u16::try_from(port).map_err(|_| {
                Fault::at("redirect.port_redirect", Problem::PortOutOfRange { port })
            })?),
        };
    let (path_redirect, prefix_rewrite) = match &action.path_rewrite_specifier {
        Some(PathRewriteSpecifier::PathRedirect(p)) => (non_empty(p), None),
        Some(PathRewriteSpecifier::PrefixRewrite(p)) => {
            rewritable(path).map_err(|p| Fault::at("redirect.prefix_rewrite", p))?;
            (None, Some(p.clone()))
        }
        _ => (None, None),
    };
    let regex_rewrite = match &action.path_rewrite_specifier {
        Some(PathRewriteSpecifier::RegexRewrite(rewrite)) => {
            Some(policies::regex_rewrite(rewrite)?)
        }
        _ => None,
    };
    let status = match RedirectResponseCode::try_from(action.response_code) {
        Ok(RedirectResponseCode::MovedPermanently) => 301,
        Ok(RedirectResponseCode::Found) => 302,
        Ok(RedirectResponseCode::SeeOther) => 303,
        Ok(RedirectResponseCode::TemporaryRedirect) => 307,
        Ok(RedirectResponseCode::PermanentRedirect) => 308,
        Err(_) => {
            return Err(Fault::at(
                "redirect.response_code",
                Problem::UnknownCode {
                    field: "response code",
                    value: action.response_code,
                },
            ))
        }
    };
    Ok(Redirect {
        scheme,
        host: non_empty(&action.host_redirect),
        port,
        path: path_redirect,
        prefix_rewrite,
        regex_rewrite,
        status,
        strip_query: action.strip_query,
    })
}

/// A prefix rewrite needs to know which part of the path the route matched.
fn rewritable(path: &PathMatch) -> Result<(), Problem> {
    match path {
        PathMatch::Regex(_) | PathMatch::Template(_) => Err(Problem::PrefixRewriteOfRegex),
        _ => Ok(()),
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

/// A retry policy; what can be wrong is a header matcher (no index is named).
pub fn retry(policy: &RetryPolicy) -> Result<Retry, Problem> {
    Ok(Retry {
        retry_on: policy
            .retry_on
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        num_retries: policy.num_retries.as_ref().map_or(1, |n| n.value),
        per_try_timeout: policy.per_try_timeout.as_ref().map(duration),
        only_with: policy
            .retriable_request_headers
            .iter()
            .map(header_match)
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_rewrite_needs_a_match_it_can_replace() {
        let action = RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster("c".into())),
            prefix_rewrite: "/new".into(),
            ..Default::default()
        };
        let regex = PathMatch::Regex(regex::Regex::new("/x").unwrap());
        assert_eq!(
            forward(&action, &regex).unwrap_err(),
            Fault::at("route.prefix_rewrite", Problem::PrefixRewriteOfRegex)
        );
        assert!(forward(&action, &PathMatch::Prefix("/old".into())).is_ok());
    }
}
