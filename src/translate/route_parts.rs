//! The pieces of a route as Envoy (and gRPC) spell them: path, header and query matchers,
//! redirect and direct-response actions, and the cookie matcher and Set-Cookie header of
//! sticky splits. Pure builders for routes.rs. Must not: decide what a URL map means.

use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier,
    query_parameter_matcher::QueryParameterMatchSpecifier,
    redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier},
    route::Action,
    route_match::PathSpecifier,
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction, Route, RouteAction,
    RouteMatch,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatchAndSubstitute, RegexMatcher, StringMatcher,
};
use envoy_types::pb::envoy::r#type::v3::Int64Range;

use crate::model::{
    FixedResponse, HeaderMatch, HeaderMatchKind, HeaderToAdd, HttpCookie, QueryParameterMatch,
    QueryParameterMatchKind, UrlRedirect,
};

/// A urlRedirect as Envoy's redirect action.
pub(super) fn redirect_action(redirect: &UrlRedirect) -> RedirectAction {
    RedirectAction {
        scheme_rewrite_specifier: redirect
            .https_redirect
            .then_some(SchemeRewriteSpecifier::HttpsRedirect(true)),
        host_redirect: redirect.host_redirect.clone().unwrap_or_default(),
        port_redirect: redirect.port_redirect.map_or(0, u32::from),
        path_rewrite_specifier: match (
            &redirect.path_redirect,
            &redirect.prefix_redirect,
            &redirect.path_rewrite,
        ) {
            (Some(path), ..) => Some(PathRewriteSpecifier::PathRedirect(path.clone())),
            (None, Some(prefix), _) => Some(PathRewriteSpecifier::PrefixRewrite(prefix.clone())),
            (None, None, Some((pattern, substitution))) => Some(
                PathRewriteSpecifier::RegexRewrite(RegexMatchAndSubstitute {
                    pattern: Some(regex(pattern)),
                    substitution: substitution.clone(),
                }),
            ),
            (None, None, None) => None,
        },
        response_code: match redirect.response_code {
            302 => RedirectResponseCode::Found,
            303 => RedirectResponseCode::SeeOther,
            307 => RedirectResponseCode::TemporaryRedirect,
            308 => RedirectResponseCode::PermanentRedirect,
            _ => RedirectResponseCode::MovedPermanently,
        } as i32,
        strip_query: redirect.strip_query,
    }
}

/// A route the proxy answers itself with a status and body.
pub(super) fn fixed_response_route(route_match: RouteMatch, fixed: &FixedResponse) -> Route {
    Route {
        r#match: Some(route_match),
        action: Some(Action::DirectResponse(DirectResponseAction {
            status: u32::from(fixed.status),
            body: fixed.body.as_ref().map(|body| DataSource {
                specifier: Some(data_source::Specifier::InlineString(body.clone())),
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Matches requests whose Cookie header carries `name=value`.
pub(super) fn cookie_matcher(name: &str, value: &str) -> HeaderMatcher {
    header_matcher(&HeaderMatch {
        header_name: "cookie".into(),
        kind: HeaderMatchKind::Regex(format!(
            "(.*;[ ]*)?{}={}(;.*)?",
            regex::escape(name),
            regex::escape(value)
        )),
        invert_match: false,
    })
}

/// The Set-Cookie header that names the service a client was sent to.
pub(super) fn set_cookie(cookie: &HttpCookie, value: &str) -> HeaderToAdd {
    let mut header_value = format!(
        "{}={value}; Path={}",
        cookie.name,
        cookie.path.as_deref().unwrap_or("/")
    );
    if let Some(ttl) = cookie.ttl.filter(|ttl| !ttl.is_zero()) {
        // Max-Age counts whole seconds: a fraction rounds up, since 0 would delete the cookie.
        let max_age = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        header_value.push_str(&format!("; Max-Age={max_age}"));
    }
    HeaderToAdd {
        header_name: "set-cookie".into(),
        header_value,
        replace: false,
    }
}

/// A queryParameterMatches entry as Envoy's (and gRPC's) query-parameter matcher.
pub(super) fn query_parameter_matcher(parameter: &QueryParameterMatch) -> QueryParameterMatcher {
    let string = |pattern: MatchPattern| {
        QueryParameterMatchSpecifier::StringMatch(StringMatcher {
            match_pattern: Some(pattern),
            ..Default::default()
        })
    };
    QueryParameterMatcher {
        name: parameter.name.clone(),
        query_parameter_match_specifier: Some(match &parameter.kind {
            QueryParameterMatchKind::Exact(value) => string(MatchPattern::Exact(value.clone())),
            QueryParameterMatchKind::Regex(pattern) => {
                string(MatchPattern::SafeRegex(regex(pattern)))
            }
            QueryParameterMatchKind::Present => QueryParameterMatchSpecifier::PresentMatch(true),
        }),
    }
}

pub(super) fn regex(pattern: &str) -> RegexMatcher {
    RegexMatcher {
        regex: pattern.to_string(),
        ..Default::default()
    }
}

/// A headerMatches entry as Envoy's (and gRPC's) header matcher.
pub(super) fn header_matcher(header: &HeaderMatch) -> HeaderMatcher {
    let string = |pattern: MatchPattern| {
        HeaderMatchSpecifier::StringMatch(StringMatcher {
            match_pattern: Some(pattern),
            ..Default::default()
        })
    };
    let specifier = match &header.kind {
        HeaderMatchKind::Exact(value) => string(MatchPattern::Exact(value.clone())),
        HeaderMatchKind::Prefix(value) => string(MatchPattern::Prefix(value.clone())),
        HeaderMatchKind::Suffix(value) => string(MatchPattern::Suffix(value.clone())),
        HeaderMatchKind::Regex(value) => string(MatchPattern::SafeRegex(RegexMatcher {
            regex: value.clone(),
            ..Default::default()
        })),
        HeaderMatchKind::Present(present) => HeaderMatchSpecifier::PresentMatch(*present),
        HeaderMatchKind::Range(start, end) => HeaderMatchSpecifier::RangeMatch(Int64Range {
            start: *start,
            end: *end,
        }),
    };
    HeaderMatcher {
        name: header.header_name.clone(),
        invert_match: header.invert_match,
        header_match_specifier: Some(specifier),
        ..Default::default()
    }
}

pub(super) fn prefix(path: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix(path.to_string())),
        ..Default::default()
    }
}

pub(super) fn exact(path: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Path(path.to_string())),
        ..Default::default()
    }
}

pub(super) fn route(route_match: RouteMatch, action: RouteAction) -> Route {
    Route {
        r#match: Some(route_match),
        action: Some(Action::Route(action)),
        ..Default::default()
    }
}
