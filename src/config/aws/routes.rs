//! Listener rules lowered into the model's routes: each condition becomes a matcher (ALB's
//! `*` and `?` wildcards become regular expressions; hosts, header values and query strings
//! match without regard to case, paths and methods with it), each action a route target
//! (forward → a service or a weighted split with group stickiness, redirect with its
//! placeholders → a redirect, fixed-response → a response the proxy writes). Pure. Must not:
//! know xDS.

use crate::model::{
    Diagnostics, FixedResponse, HeaderMatch, HeaderMatchKind, HttpCookie, Loc, MatchRule,
    PathMatch, Ref, RouteTarget, UrlRedirect, WeightedService,
};

use super::actions::{Action, Redirect};
use super::conditions::Condition;

/// The cookie that keeps a client on the target group a weighted forward first chose.
pub const GROUP_STICKINESS_COOKIE: &str = "AWSALBTG";

/// A rule's conditions as one match rule (all must hold; within a condition, any value).
/// None when a condition cannot be served (reported).
pub fn match_rule(
    conditions: &[Condition],
    loc: &Loc,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> Option<MatchRule> {
    let mut rule = MatchRule {
        path: PathMatch::Prefix(String::new()),
        ignore_case: false,
        headers: Vec::new(),
        query_parameters: Vec::new(),
        source_blocks: Vec::new(),
    };
    let mut served = true;
    for (index, condition) in conditions.iter().enumerate() {
        match condition {
            Condition::Path(patterns) => {
                rule.path = PathMatch::Regex(any_of(patterns, glob_to_regex));
            }
            Condition::Host(hosts) => rule.headers.push(regex_header(
                ":authority",
                format!("(?i){}(:[0-9]+)?", any_of(hosts, glob_to_regex)),
            )),
            Condition::Header { name, values } => rule.headers.push(regex_header(
                name,
                format!("(?i){}", any_of(values, glob_to_regex)),
            )),
            Condition::Method(methods) => rule
                .headers
                .push(regex_header(":method", any_of(methods, regex::escape))),
            Condition::Query(pairs) => rule.headers.push(regex_header(":path", query_regex(pairs))),
            Condition::SourceIp(blocks) => {
                let partial_ipv6 = blocks
                    .iter()
                    .find(|(address, length)| address.is_ipv6() && !matches!(length, 0 | 128));
                if let Some((address, length)) = partial_ipv6 {
                    diagnostics.error(
                        loc,
                        format!("{path}[{index}]"),
                        format!("source-ip block {address}/{length} cannot be served: IPv6 blocks are matched whole (/128) or as ::/0; IPv4 blocks may have any length"),
                    );
                    served = false;
                }
                rule.source_blocks.extend(blocks.iter().copied());
            }
        }
    }
    served.then_some(rule)
}

fn regex_header(name: &str, pattern: String) -> HeaderMatch {
    HeaderMatch {
        header_name: name.to_string(),
        kind: HeaderMatchKind::Regex(pattern),
        invert_match: false,
    }
}

/// `(a|b)` of the values, each turned into a regular expression by `each`.
fn any_of(values: &[String], each: impl Fn(&str) -> String) -> String {
    let parts: Vec<String> = values.iter().map(|value| each(value)).collect();
    format!("({})", parts.join("|"))
}

/// An ALB wildcard pattern as a regular expression: `*` any run of characters, `?` one.
pub fn glob_to_regex(pattern: &str) -> String {
    wildcard_regex(pattern, ".*", ".")
}

/// A wildcard pattern inside one query parameter: wildcards do not cross `&` or `=`.
fn query_part_regex(pattern: &str) -> String {
    wildcard_regex(pattern, "[^&=]*", "[^&=]")
}

fn wildcard_regex(pattern: &str, star: &str, question: &str) -> String {
    let mut regex = String::new();
    let mut literal = String::new();
    for c in pattern.chars() {
        if c == '*' || c == '?' {
            regex.push_str(&regex::escape(&literal));
            literal.clear();
            regex.push_str(if c == '*' { star } else { question });
        } else {
            literal.push(c);
        }
    }
    regex.push_str(&regex::escape(&literal));
    regex
}

/// A regular expression over the whole request target (`:path`, query included) that holds
/// when one of the key/value pairs is among the query's parameters; a missing key matches
/// any key.
pub fn query_regex(pairs: &[(Option<String>, String)]) -> String {
    let alternatives: Vec<String> = pairs
        .iter()
        .map(|(key, value)| {
            let key = key
                .as_deref()
                .map_or_else(|| "[^&=]*".to_string(), query_part_regex);
            format!("{key}={}", query_part_regex(value))
        })
        .collect();
    format!("(?i)[^?]*\\?(.*&)?({})(&.*)?", alternatives.join("|"))
}

/// What a listener's or rule's action does, as a route target.
pub fn route_target(
    action: &Action,
    loc: &Loc,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> Option<RouteTarget> {
    match action {
        Action::Forward {
            groups,
            stickiness_seconds,
        } => {
            let reference = |name: &str| Ref {
                name: name.to_string(),
                loc: loc.clone(),
                path: path.to_string(),
            };
            if let [only] = groups.as_slice() {
                return Some(RouteTarget::Service(reference(&only.target_group)));
            }
            Some(RouteTarget::Weighted {
                services: groups
                    .iter()
                    .map(|group| WeightedService {
                        service: reference(&group.target_group),
                        weight: group.weight,
                        header_action: Default::default(),
                    })
                    .collect(),
                sticky_cookie: stickiness_seconds.map(|seconds| HttpCookie {
                    name: GROUP_STICKINESS_COOKIE.to_string(),
                    path: None,
                    ttl: Some(std::time::Duration::from_secs(u64::from(seconds))),
                }),
            })
        }
        Action::Redirect(redirect) => {
            url_redirect(redirect, loc, path, diagnostics).map(RouteTarget::Redirect)
        }
        Action::FixedResponse {
            status,
            content_type,
            body,
        } => Some(RouteTarget::FixedResponse(FixedResponse {
            status: *status,
            content_type: content_type.clone(),
            body: body.clone(),
        })),
    }
}

/// The placeholders a redirect part may hold.
const PLACEHOLDERS: [&str; 5] = ["#{protocol}", "#{host}", "#{port}", "#{path}", "#{query}"];

fn has_placeholder(text: &str) -> bool {
    PLACEHOLDERS.iter().any(|p| text.contains(p))
}

/// An ALB redirect as the model's: each part kept (`#{…}` alone), replaced by a literal, or
/// for the path, rebuilt around `#{path}`. Placeholders mixed into other parts than the path
/// cannot be expressed by the proxies and are reported.
fn url_redirect(
    redirect: &Redirect,
    loc: &Loc,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> Option<UrlRedirect> {
    let mut problem = |part: &str, why: String| {
        diagnostics.error(loc, format!("{path}.RedirectConfig.{part}"), why);
    };
    let mut served = true;
    let https_redirect = match redirect.protocol.as_str() {
        "#{protocol}" | "HTTP" => false,
        "HTTPS" => true,
        other => {
            problem(
                "Protocol",
                format!("`{other}` is not allowed; Protocol is HTTP, HTTPS or #{{protocol}}"),
            );
            served = false;
            false
        }
    };
    let host_redirect = match redirect.host.as_str() {
        "#{host}" => None,
        host if has_placeholder(host) => {
            problem("Host", format!("`{host}` mixes placeholders with text; the proxies can keep the host (#{{host}}) or replace it with a name, nothing between"));
            served = false;
            None
        }
        host => Some(host.to_string()),
    };
    let port_redirect = match redirect.port.as_str() {
        "#{port}" => None,
        port => match port.parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => {
                problem(
                    "Port",
                    format!("`{port}` is not a port; Port is 1 to 65535 or #{{port}}"),
                );
                served = false;
                None
            }
        },
    };
    let (path_redirect, path_rewrite) = redirect_path(&redirect.path, &redirect.query);
    let query_kept = redirect.query == "#{query}";
    let query_literal = !query_kept && !redirect.query.is_empty();
    if query_literal && has_placeholder(&redirect.query) {
        problem(
            "Query",
            format!(
                "`{}` mixes placeholders with text; the proxies can keep the query (#{{query}}), drop it (empty) or replace it with text",
                redirect.query
            ),
        );
        served = false;
    }
    let path_has_other_placeholders = PLACEHOLDERS
        .iter()
        .filter(|p| **p != "#{path}")
        .any(|p| redirect.path.contains(p));
    if path_has_other_placeholders {
        problem(
            "Path",
            format!(
                "`{}` uses a placeholder other than #{{path}}; the proxies can rebuild the path only around the request's own path",
                redirect.path
            ),
        );
        served = false;
    }
    if query_literal && path_redirect.is_none() {
        problem(
            "Query",
            format!(
                "a new query (`{}`) needs a path without placeholders; the proxies cannot rewrite the path and replace the query at once",
                redirect.query
            ),
        );
        served = false;
    }
    served.then_some(UrlRedirect {
        host_redirect,
        path_redirect,
        prefix_redirect: None,
        https_redirect,
        response_code: if redirect.permanent { 301 } else { 302 },
        strip_query: redirect.query.is_empty(),
        port_redirect,
        path_rewrite,
    })
}

/// The new path: kept (`/#{path}`), a literal (with a literal query appended), or rebuilt
/// around the request's path (`/new/#{path}` → regex `/(.*)` → `/new/\1`).
fn redirect_path(path: &str, query: &str) -> (Option<String>, Option<(String, String)>) {
    if path == "/#{path}" {
        return (None, None);
    }
    if !path.contains("#{path}") {
        let literal_query = query != "#{query}" && !query.is_empty();
        let full = if literal_query {
            format!("{path}?{query}")
        } else {
            path.to_string()
        };
        return (Some(full), None);
    }
    // #{path} stands for the request's path without its leading slash.
    let substitution = path.replace('\\', "\\\\").replace("#{path}", "\\1");
    (None, Some(("/(.*)".to_string(), substitution)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_match(pattern: &str, text: &str) -> bool {
        regex::Regex::new(&format!("^(?:{pattern})$"))
            .unwrap()
            .is_match(text)
    }

    #[test]
    fn wildcards_become_anchored_patterns() {
        let pattern = any_of(&["/img/*".into(), "/v?/x.png".into()], glob_to_regex);
        assert!(full_match(&pattern, "/img/a/b.png"));
        assert!(full_match(&pattern, "/v2/x.png"));
        assert!(!full_match(&pattern, "/v22/x.png"));
        assert!(!full_match(&pattern, "/v2/xxpng"), "dots are literal");
        assert!(!full_match(&pattern, "/IMG/a"), "paths keep their case");
    }

    #[test]
    fn query_pairs_match_any_parameter_position() {
        let pattern = query_regex(&[(Some("version".into()), "v*".into()), (None, "beta".into())]);
        assert!(full_match(&pattern, "/a?version=v1"));
        assert!(full_match(&pattern, "/a?x=1&VERSION=v2&y=2"));
        assert!(full_match(&pattern, "/a?channel=beta"));
        assert!(!full_match(&pattern, "/a?version=1"));
        assert!(!full_match(&pattern, "/a?xversion=v1"));
        assert!(!full_match(&pattern, "/version=v1"));
    }

    #[test]
    fn redirect_paths_are_kept_replaced_or_rebuilt() {
        assert_eq!(redirect_path("/#{path}", "#{query}"), (None, None));
        assert_eq!(
            redirect_path("/moved", "a=b"),
            (Some("/moved?a=b".into()), None)
        );
        assert_eq!(
            redirect_path("/new/#{path}", "#{query}"),
            (None, Some(("/(.*)".into(), "/new/\\1".into())))
        );
    }
}
