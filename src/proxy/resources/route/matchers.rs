//! The match half of a route: path, header and query-parameter matchers, converted from their
//! xDS forms (current and deprecated) into the few shapes the router evaluates.

use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    route_match::PathSpecifier, HeaderMatcher, RouteMatch,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher};

use super::super::{Fault, Problem};
use super::templates::PathTemplate;

#[derive(Clone, Debug)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    Regex(regex::Regex),
    SeparatedPrefix(String),
    /// `path_match_policy`: Envoy's URI template matcher.
    Template(PathTemplate),
}

/// The extension that matches paths with a URI template, and the type of its config.
const URI_TEMPLATE_MATCHER: &str =
    "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig";

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

/// The fields of a HeaderMatcher the sidecar evaluates, under `prefix`.
pub fn header_matcher_fields(prefix: &str) -> Vec<String> {
    [
        "name",
        "string_match.exact",
        "string_match.prefix",
        "string_match.suffix",
        "string_match.contains",
        "string_match.safe_regex.regex",
        "string_match.ignore_case",
        "exact_match",
        "prefix_match",
        "suffix_match",
        "contains_match",
        "safe_regex_match.regex",
        "present_match",
        "range_match",
        "invert_match",
    ]
    .iter()
    .map(|field| format!("{prefix}.{field}"))
    .collect()
}

/// The path matcher of a route's match.
pub fn path_match(matcher: &RouteMatch) -> Result<PathMatch, Fault> {
    Ok(match &matcher.path_specifier {
        Some(PathSpecifier::Prefix(prefix)) => PathMatch::Prefix(prefix.clone()),
        Some(PathSpecifier::Path(path)) => PathMatch::Exact(path.clone()),
        Some(PathSpecifier::SafeRegex(regex)) => PathMatch::Regex(
            full_regex(&regex.regex).map_err(|p| Fault::at("match.safe_regex", p))?,
        ),
        Some(PathSpecifier::PathSeparatedPrefix(prefix)) => {
            PathMatch::SeparatedPrefix(prefix.clone())
        }
        Some(PathSpecifier::PathMatchPolicy(policy)) => PathMatch::Template(
            path_template(policy).map_err(|p| Fault::at("match.path_match_policy", p))?,
        ),
        _ => {
            return Err(Fault::at(
                "match",
                Problem::Missing {
                    what: "a prefix, path, safe_regex, path_separated_prefix or path_match_policy",
                },
            ))
        }
    })
}

/// A `path_match_policy`: Envoy's URI template matcher is the one there is.
fn path_template(
    policy: &envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig,
) -> Result<PathTemplate, Problem> {
    use envoy_types::pb::envoy::extensions::path::r#match::uri_template::v3::UriTemplateMatchConfig;
    use prost::Message;
    let config = policy.typed_config.as_ref().ok_or(Problem::NoTypedConfig)?;
    if config.type_url != URI_TEMPLATE_MATCHER {
        return Err(Problem::NotValid {
            value: config.type_url.clone(),
            expected: "envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
        });
    }
    let template =
        UriTemplateMatchConfig::decode(config.value.as_slice()).map_err(Problem::Undecodable)?;
    PathTemplate::parse(&template.path_template)
}

/// The query-parameter matchers of a route's match.
pub fn query_matches(matcher: &RouteMatch) -> Result<Vec<QueryMatch>, Fault> {
    let mut query = Vec::new();
    for (i, parameter) in matcher.query_parameters.iter().enumerate() {
        let at = format!("match.query_parameters[{i}]");
        let matcher = match &parameter.query_parameter_match_specifier {
            Some(QueryParameterMatchSpecifier::StringMatch(m)) => {
                Some(text_match(m).map_err(|p| Fault::at(at.clone(), p))?)
            }
            Some(QueryParameterMatchSpecifier::PresentMatch(true)) => None,
            _ => return Err(Fault::at(at, Problem::QueryMatcher)),
        };
        query.push(QueryMatch {
            name: parameter.name.clone(),
            matcher,
        });
    }
    Ok(query)
}

/// One header matcher.
pub fn header_match(header: &HeaderMatcher) -> Result<HeaderMatch, Problem> {
    let text = |matcher: TextMatch| HeaderTest::Text {
        matcher,
        ignore_case: false,
    };
    #[allow(deprecated)]
    let test = match &header.header_match_specifier {
        Some(HeaderMatchSpecifier::StringMatch(m)) => {
            let (matcher, ignore_case) = text_match(m)?;
            HeaderTest::Text {
                matcher,
                ignore_case,
            }
        }
        Some(HeaderMatchSpecifier::ExactMatch(v)) => text(TextMatch::Exact(v.clone())),
        Some(HeaderMatchSpecifier::PrefixMatch(v)) => text(TextMatch::Prefix(v.clone())),
        Some(HeaderMatchSpecifier::SuffixMatch(v)) => text(TextMatch::Suffix(v.clone())),
        Some(HeaderMatchSpecifier::ContainsMatch(v)) => text(TextMatch::Contains(v.clone())),
        Some(HeaderMatchSpecifier::SafeRegexMatch(r)) => {
            text(TextMatch::Regex(full_regex(&r.regex)?))
        }
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

pub(crate) fn text_match(matcher: &StringMatcher) -> Result<(TextMatch, bool), Problem> {
    let text = match &matcher.match_pattern {
        Some(MatchPattern::Exact(v)) => TextMatch::Exact(v.clone()),
        Some(MatchPattern::Prefix(v)) => TextMatch::Prefix(v.clone()),
        Some(MatchPattern::Suffix(v)) => TextMatch::Suffix(v.clone()),
        Some(MatchPattern::Contains(v)) => TextMatch::Contains(v.clone()),
        Some(MatchPattern::SafeRegex(r)) => TextMatch::Regex(full_regex(&r.regex)?),
        _ => return Err(Problem::StringMatcher),
    };
    Ok((text, matcher.ignore_case))
}

/// A regex that must match the whole text, as Envoy's safe_regex does.
fn full_regex(pattern: &str) -> Result<regex::Regex, Problem> {
    regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|error| Problem::Regex {
        pattern: pattern.to_string(),
        error,
    })
}
