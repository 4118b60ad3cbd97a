//! RouteConfiguration → the sidecar's route table: virtual hosts by domain, routes with path,
//! header and query matches, and what each route does (forward to one cluster or a weighted
//! set, with timeout, retries and hash policies; redirect; answer directly).

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    route::Action as XdsAction, route_action::hash_policy::PolicySpecifier,
    route_action::ClusterSpecifier, route_match::PathSpecifier, HeaderMatcher, RouteConfiguration,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher};

use super::{decode_checked, duration, Unsupported};
use crate::xds::types::TypeUrl;

#[derive(Clone, Debug)]
pub struct RouteTable {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
}

#[derive(Clone, Debug)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
    pub retry: Option<Retry>,
}

#[derive(Clone, Debug)]
pub struct Route {
    pub path: PathMatch,
    pub case_sensitive: bool,
    pub headers: Vec<HeaderMatch>,
    pub query: Vec<QueryMatch>,
    pub action: Action,
}

#[derive(Clone, Debug)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    Regex(regex::Regex),
    SeparatedPrefix(String),
}

#[derive(Clone, Debug)]
pub enum TextMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(regex::Regex),
}

#[derive(Clone, Debug)]
pub struct HeaderMatch {
    pub name: String,
    pub test: HeaderTest,
    pub invert: bool,
}

#[derive(Clone, Debug)]
pub enum HeaderTest {
    Text {
        matcher: TextMatch,
        ignore_case: bool,
    },
    Present(bool),
    Range {
        start: i64,
        end: i64,
    },
}

#[derive(Clone, Debug)]
pub struct QueryMatch {
    pub name: String,
    /// None: the parameter must be present.
    pub matcher: Option<(TextMatch, bool)>,
}

#[derive(Clone, Debug)]
pub enum Action {
    Forward(Forward),
    Direct { status: u16, body: String },
}

#[derive(Clone, Debug)]
pub struct Forward {
    /// Clusters with their weights (one cluster: weight 1).
    pub clusters: Vec<(String, u32)>,
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
    pub hash: Vec<HashPolicy>,
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

const FIELDS: &[&str] = &[
    "name",
    "virtual_hosts.name",
    "virtual_hosts.domains",
    "virtual_hosts.retry_policy.retry_on",
    "virtual_hosts.retry_policy.num_retries",
    "virtual_hosts.retry_policy.per_try_timeout",
    "virtual_hosts.retry_policy.retriable_request_headers.name",
    "virtual_hosts.retry_policy.retriable_request_headers.string_match.exact",
    "virtual_hosts.retry_policy.retriable_request_headers.string_match.prefix",
    "virtual_hosts.retry_policy.retriable_request_headers.string_match.suffix",
    "virtual_hosts.retry_policy.retriable_request_headers.string_match.contains",
    "virtual_hosts.retry_policy.retriable_request_headers.string_match.safe_regex.regex",
    "virtual_hosts.retry_policy.retriable_request_headers.string_match.ignore_case",
    "virtual_hosts.retry_policy.retriable_request_headers.exact_match",
    "virtual_hosts.retry_policy.retriable_request_headers.prefix_match",
    "virtual_hosts.retry_policy.retriable_request_headers.suffix_match",
    "virtual_hosts.retry_policy.retriable_request_headers.contains_match",
    "virtual_hosts.retry_policy.retriable_request_headers.safe_regex_match.regex",
    "virtual_hosts.retry_policy.retriable_request_headers.present_match",
    "virtual_hosts.retry_policy.retriable_request_headers.range_match",
    "virtual_hosts.retry_policy.retriable_request_headers.invert_match",
    "virtual_hosts.routes.name",
    "virtual_hosts.routes.match.prefix",
    "virtual_hosts.routes.match.path",
    "virtual_hosts.routes.match.safe_regex.regex",
    "virtual_hosts.routes.match.safe_regex.google_re2",
    "virtual_hosts.routes.match.path_separated_prefix",
    "virtual_hosts.routes.match.case_sensitive",
    "virtual_hosts.routes.match.headers.name",
    "virtual_hosts.routes.match.headers.string_match.exact",
    "virtual_hosts.routes.match.headers.string_match.prefix",
    "virtual_hosts.routes.match.headers.string_match.suffix",
    "virtual_hosts.routes.match.headers.string_match.contains",
    "virtual_hosts.routes.match.headers.string_match.safe_regex.regex",
    "virtual_hosts.routes.match.headers.string_match.ignore_case",
    "virtual_hosts.routes.match.headers.exact_match",
    "virtual_hosts.routes.match.headers.prefix_match",
    "virtual_hosts.routes.match.headers.suffix_match",
    "virtual_hosts.routes.match.headers.contains_match",
    "virtual_hosts.routes.match.headers.safe_regex_match.regex",
    "virtual_hosts.routes.match.headers.present_match",
    "virtual_hosts.routes.match.headers.range_match",
    "virtual_hosts.routes.match.headers.invert_match",
    "virtual_hosts.routes.match.query_parameters.name",
    "virtual_hosts.routes.match.query_parameters.string_match.exact",
    "virtual_hosts.routes.match.query_parameters.string_match.prefix",
    "virtual_hosts.routes.match.query_parameters.string_match.suffix",
    "virtual_hosts.routes.match.query_parameters.string_match.contains",
    "virtual_hosts.routes.match.query_parameters.string_match.safe_regex.regex",
    "virtual_hosts.routes.match.query_parameters.string_match.ignore_case",
    "virtual_hosts.routes.match.query_parameters.present_match",
    "virtual_hosts.routes.route.cluster",
    "virtual_hosts.routes.route.weighted_clusters.clusters.name",
    "virtual_hosts.routes.route.weighted_clusters.clusters.weight",
    "virtual_hosts.routes.route.weighted_clusters.total_weight",
    "virtual_hosts.routes.route.timeout",
    "virtual_hosts.routes.route.retry_policy.retry_on",
    "virtual_hosts.routes.route.retry_policy.num_retries",
    "virtual_hosts.routes.route.retry_policy.per_try_timeout",
    "virtual_hosts.routes.route.retry_policy.retriable_request_headers.name",
    "virtual_hosts.routes.route.retry_policy.retriable_request_headers.string_match.exact",
    "virtual_hosts.routes.route.retry_policy.retriable_request_headers.string_match.prefix",
    "virtual_hosts.routes.route.retry_policy.retriable_request_headers.string_match.suffix",
    "virtual_hosts.routes.route.retry_policy.retriable_request_headers.string_match.contains",
    "virtual_hosts.routes.route.retry_policy.retriable_request_headers.string_match.safe_regex.regex",
    "virtual_hosts.routes.route.retry_policy.retriable_request_headers.string_match.ignore_case",
    "virtual_hosts.routes.route.retry_policy.retriable_request_headers.exact_match",
    "virtual_hosts.routes.route.retry_policy.retriable_request_headers.prefix_match",
    "virtual_hosts.routes.route.retry_policy.retriable_request_headers.suffix_match",
    "virtual_hosts.routes.route.retry_policy.retriable_request_headers.contains_match",
    "virtual_hosts.routes.route.retry_policy.retriable_request_headers.safe_regex_match.regex",
    "virtual_hosts.routes.route.retry_policy.retriable_request_headers.present_match",
    "virtual_hosts.routes.route.retry_policy.retriable_request_headers.range_match",
    "virtual_hosts.routes.route.retry_policy.retriable_request_headers.invert_match",
    "virtual_hosts.routes.route.hash_policy.header.header_name",
    "virtual_hosts.routes.route.hash_policy.cookie.name",
    "virtual_hosts.routes.route.hash_policy.cookie.path",
    "virtual_hosts.routes.route.hash_policy.cookie.ttl",
    "virtual_hosts.routes.route.hash_policy.connection_properties.source_ip",
    "virtual_hosts.routes.direct_response.status",
    "virtual_hosts.routes.direct_response.body.inline_string",
];

fn fail(name: &str, reason: String) -> Unsupported {
    Unsupported {
        type_url: TypeUrl::Route,
        name: name.to_string(),
        reason,
    }
}

/// Converts one RouteConfiguration resource.
pub fn convert(name: &str, bytes: &[u8]) -> Result<RouteTable, Unsupported> {
    let config: RouteConfiguration = decode_checked(TypeUrl::Route, name, bytes, FIELDS)?;
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
            .map(retry)
            .transpose()
            .map_err(|reason| fail(name, format!("{}: {reason}", at("retry_policy".into()))))?;
        virtual_hosts.push(VirtualHost {
            name: host.name.clone(),
            domains: host
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            routes,
            retry,
        });
    }
    Ok(RouteTable {
        name: name.to_string(),
        virtual_hosts,
    })
}

type Failure = (String, String);

fn convert_route(
    route: &envoy_types::pb::envoy::config::route::v3::Route,
) -> Result<Route, Failure> {
    let matcher = route
        .r#match
        .as_ref()
        .ok_or((String::new(), "a match is required".to_string()))?;
    let path = match &matcher.path_specifier {
        Some(PathSpecifier::Prefix(prefix)) => PathMatch::Prefix(prefix.clone()),
        Some(PathSpecifier::Path(path)) => PathMatch::Exact(path.clone()),
        Some(PathSpecifier::SafeRegex(regex)) => PathMatch::Regex(
            full_regex(&regex.regex).map_err(|e| (".match.safe_regex".to_string(), e))?,
        ),
        Some(PathSpecifier::PathSeparatedPrefix(prefix)) => {
            PathMatch::SeparatedPrefix(prefix.clone())
        }
        _ => {
            return Err((
                ".match".into(),
                "a prefix, path, safe_regex or path_separated_prefix is required".into(),
            ))
        }
    };
    let headers = matcher
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| header_match(h).map_err(|e| (format!(".match.headers[{i}]"), e)))
        .collect::<Result<_, _>>()?;
    let mut query = Vec::new();
    for (i, parameter) in matcher.query_parameters.iter().enumerate() {
        let at = format!(".match.query_parameters[{i}]");
        let matcher = match &parameter.query_parameter_match_specifier {
            Some(QueryParameterMatchSpecifier::StringMatch(m)) => {
                Some(text_match(m).map_err(|e| (at.clone(), e))?)
            }
            Some(QueryParameterMatchSpecifier::PresentMatch(true)) => None,
            _ => {
                return Err((
                    at,
                    "only string_match and present_match are supported".into(),
                ))
            }
        };
        query.push(QueryMatch {
            name: parameter.name.clone(),
            matcher,
        });
    }
    let action = match &route.action {
        Some(XdsAction::Route(action)) => Action::Forward(forward(action)?),
        Some(XdsAction::DirectResponse(direct)) => Action::Direct {
            status: u16::try_from(direct.status).unwrap_or(500),
            body: direct
                .body
                .as_ref()
                .and_then(|b| match &b.specifier {
                    Some(envoy_types::pb::envoy::config::core::v3::data_source::Specifier::InlineString(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default(),
        },
        _ => return Err((String::new(), "the action must be route or direct_response".into())),
    };
    Ok(Route {
        path,
        case_sensitive: matcher.case_sensitive.as_ref().is_none_or(|c| c.value),
        headers,
        query,
        action,
    })
}

fn forward(
    action: &envoy_types::pb::envoy::config::route::v3::RouteAction,
) -> Result<Forward, Failure> {
    let clusters = match &action.cluster_specifier {
        Some(ClusterSpecifier::Cluster(name)) => vec![(name.clone(), 1)],
        Some(ClusterSpecifier::WeightedClusters(weighted)) => weighted
            .clusters
            .iter()
            .map(|c| (c.name.clone(), c.weight.as_ref().map_or(0, |w| w.value)))
            .collect(),
        _ => {
            return Err((
                ".route".into(),
                "a cluster or weighted_clusters is required".into(),
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
                return Err((
                    format!(".route.hash_policy[{i}]"),
                    "only header, cookie and source_ip hashing are supported".into(),
                ))
            }
        });
    }
    Ok(Forward {
        clusters,
        timeout: action.timeout.as_ref().map(duration),
        retry: action
            .retry_policy
            .as_ref()
            .map(retry)
            .transpose()
            .map_err(|e| (".route.retry_policy".to_string(), e))?,
        hash,
    })
}

fn retry(policy: &envoy_types::pb::envoy::config::route::v3::RetryPolicy) -> Result<Retry, String> {
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

fn header_match(header: &HeaderMatcher) -> Result<HeaderMatch, String> {
    #[allow(deprecated)]
    let test = match &header.header_match_specifier {
        Some(HeaderMatchSpecifier::StringMatch(m)) => {
            let (matcher, ignore_case) = text_match(m)?;
            HeaderTest::Text {
                matcher,
                ignore_case,
            }
        }
        Some(HeaderMatchSpecifier::ExactMatch(v)) => HeaderTest::Text {
            matcher: TextMatch::Exact(v.clone()),
            ignore_case: false,
        },
        Some(HeaderMatchSpecifier::PrefixMatch(v)) => HeaderTest::Text {
            matcher: TextMatch::Prefix(v.clone()),
            ignore_case: false,
        },
        Some(HeaderMatchSpecifier::SuffixMatch(v)) => HeaderTest::Text {
            matcher: TextMatch::Suffix(v.clone()),
            ignore_case: false,
        },
        Some(HeaderMatchSpecifier::ContainsMatch(v)) => HeaderTest::Text {
            matcher: TextMatch::Contains(v.clone()),
            ignore_case: false,
        },
        Some(HeaderMatchSpecifier::SafeRegexMatch(r)) => HeaderTest::Text {
            matcher: TextMatch::Regex(full_regex(&r.regex)?),
            ignore_case: false,
        },
        Some(HeaderMatchSpecifier::PresentMatch(present)) => HeaderTest::Present(*present),
        Some(HeaderMatchSpecifier::RangeMatch(range)) => HeaderTest::Range {
            start: range.start,
            end: range.end,
        },
        None => HeaderTest::Present(true),
    };
    Ok(HeaderMatch {
        name: header.name.to_ascii_lowercase(),
        test,
        invert: header.invert_match,
    })
}

fn text_match(matcher: &StringMatcher) -> Result<(TextMatch, bool), String> {
    let text = match &matcher.match_pattern {
        Some(MatchPattern::Exact(v)) => TextMatch::Exact(v.clone()),
        Some(MatchPattern::Prefix(v)) => TextMatch::Prefix(v.clone()),
        Some(MatchPattern::Suffix(v)) => TextMatch::Suffix(v.clone()),
        Some(MatchPattern::Contains(v)) => TextMatch::Contains(v.clone()),
        Some(MatchPattern::SafeRegex(r)) => TextMatch::Regex(full_regex(&r.regex)?),
        _ => return Err("this string matcher is not supported".into()),
    };
    Ok((text, matcher.ignore_case))
}

/// A regex that must match the whole text, as Envoy's safe_regex does.
fn full_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("the regex `{pattern}` does not compile: {e}"))
}
