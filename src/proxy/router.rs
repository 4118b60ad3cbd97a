//! Which route a request takes, as Envoy decides it: the virtual host by domain (exact, then
//! the longest `*.suffix`, then the longest `prefix.*`, then `*`), then the first route whose
//! path, headers and query parameters all match. Pure: a request's parts in, a route out.

use http::HeaderMap;

use super::resources::route::{
    HeaderMatch, HeaderTest, PathMatch, QueryMatch, Route, RouteTable, TextMatch, VirtualHost,
};

/// The parts of a request routing looks at.
pub struct RequestParts<'a> {
    /// Host without port when the listener strips ports, lower case.
    pub host: &'a str,
    /// Path without the query, as path matchers see it.
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// Path with the query, as a header matcher on `:path` sees it (Envoy's `:path` header
    /// is the whole request target).
    pub path_and_query: &'a str,
    pub method: &'a str,
    pub headers: &'a HeaderMap,
}

/// The virtual host serving `host`.
pub fn virtual_host<'t>(table: &'t RouteTable, host: &str) -> Option<&'t VirtualHost> {
    let mut best: Option<(u8, usize, &VirtualHost)> = None;
    for vhost in &table.virtual_hosts {
        for domain in &vhost.domains {
            let rank = if domain == host {
                Some((3, domain.len()))
            } else if domain == "*" {
                Some((0, 0))
            } else if let Some(suffix) = domain.strip_prefix('*') {
                (host.len() > suffix.len() && host.ends_with(suffix)).then_some((2, domain.len()))
            } else if let Some(prefix) = domain.strip_suffix('*') {
                (host.len() > prefix.len() && host.starts_with(prefix)).then_some((1, domain.len()))
            } else {
                None
            };
            if let Some((class, length)) = rank {
                if best.is_none_or(|(c, l, _)| (class, length) > (c, l)) {
                    best = Some((class, length, vhost));
                }
            }
        }
    }
    best.map(|(_, _, vhost)| vhost)
}

/// The first route of `vhost` that matches the request.
pub fn route<'t>(vhost: &'t VirtualHost, request: &RequestParts<'_>) -> Option<&'t Route> {
    vhost.routes.iter().find(|route| matches(route, request))
}

fn matches(route: &Route, request: &RequestParts<'_>) -> bool {
    path_matches(&route.path, route.case_sensitive, request.path)
        && route.headers.iter().all(|h| header_matches(h, request))
        && route.query.iter().all(|q| query_matches(q, request.query))
}

fn path_matches(matcher: &PathMatch, case_sensitive: bool, path: &str) -> bool {
    let starts = |prefix: &str| {
        if case_sensitive {
            path.starts_with(prefix)
        } else {
            path.len() >= prefix.len()
                && path.is_char_boundary(prefix.len())
                && path[..prefix.len()].eq_ignore_ascii_case(prefix)
        }
    };
    match matcher {
        PathMatch::Prefix(prefix) => starts(prefix),
        PathMatch::Exact(exact) => {
            if case_sensitive {
                path == exact
            } else {
                path.eq_ignore_ascii_case(exact)
            }
        }
        PathMatch::Regex(regex) => regex.is_match(path),
        PathMatch::SeparatedPrefix(prefix) => {
            starts(prefix) && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
        }
        PathMatch::Template(template) => template.matches(path),
    }
}

/// The value of a header as routing sees it (`:method` and `:authority` included).
fn header_value<'r>(
    request: &'r RequestParts<'_>,
    name: &str,
) -> Option<std::borrow::Cow<'r, str>> {
    match name {
        ":method" => Some(request.method.into()),
        ":path" => Some(request.path_and_query.into()),
        ":authority" | "host" => Some(request.host.into()),
        _ => {
            let mut values = request
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok());
            let first = values.next()?;
            match values.next() {
                // One value, as most are: borrowed.
                None => Some(first.into()),
                Some(second) => {
                    let mut joined = format!("{first},{second}");
                    for more in values {
                        joined.push(',');
                        joined.push_str(more);
                    }
                    Some(joined.into())
                }
            }
        }
    }
}

pub fn header_matches(matcher: &HeaderMatch, request: &RequestParts<'_>) -> bool {
    let value = header_value(request, &matcher.name);
    let result = match (&matcher.test, value) {
        (HeaderTest::Present(present), value) => value.is_some() == *present,
        (_, None) => return false,
        (
            HeaderTest::Text {
                matcher,
                ignore_case,
            },
            Some(value),
        ) => text_matches(matcher, *ignore_case, &value),
        (HeaderTest::Range { start, end }, Some(value)) => value
            .trim()
            .parse::<i64>()
            .is_ok_and(|n| n >= *start && n < *end),
    };
    result != matcher.invert
}

fn query_matches(matcher: &QueryMatch, query: Option<&str>) -> bool {
    let value = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name == matcher.name).then_some(value)
        });
    match (&matcher.matcher, value) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some((text, ignore_case)), Some(value)) => text_matches(text, *ignore_case, value),
    }
}

pub(crate) fn text_matches(matcher: &TextMatch, ignore_case: bool, value: &str) -> bool {
    // Compared in place: this runs for every request a header or retry matcher looks at.
    let same = |a: &[u8], b: &[u8]| match ignore_case {
        true => a.eq_ignore_ascii_case(b),
        false => a == b,
    };
    let bytes = value.as_bytes();
    match matcher {
        TextMatch::Exact(v) => same(bytes, v.as_bytes()),
        TextMatch::Prefix(v) => bytes.len() >= v.len() && same(&bytes[..v.len()], v.as_bytes()),
        TextMatch::Suffix(v) => {
            bytes.len() >= v.len() && same(&bytes[bytes.len() - v.len()..], v.as_bytes())
        }
        TextMatch::Contains(v) => {
            v.is_empty()
                || bytes
                    .windows(v.len())
                    .any(|window| same(window, v.as_bytes()))
        }
        TextMatch::Regex(regex) => regex.is_match(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::resources::route::{Action, Route};

    fn direct(status: u16) -> Route {
        Route {
            path: PathMatch::Prefix("/".into()),
            case_sensitive: true,
            headers: Vec::new(),
            query: Vec::new(),
            action: Action::Direct {
                status,
                body: String::new(),
            },
            header_changes: Default::default(),
            filter_configs: Default::default(),
        }
    }

    fn table() -> RouteTable {
        let vhost = |name: &str, domains: &[&str], status: u16| VirtualHost {
            name: name.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            routes: vec![direct(status)],
            retry: None,
            headers: Default::default(),
            filter_configs: Default::default(),
        };
        RouteTable {
            name: "t".into(),
            virtual_hosts: vec![
                vhost("any", &["*"], 1),
                vhost("suffix", &["*.example.com"], 2),
                vhost("longer-suffix", &["*.api.example.com"], 3),
                vhost("prefix", &["api.*"], 4),
                vhost("exact", &["api.example.com"], 5),
            ],
            headers: Default::default(),
        }
    }

    #[test]
    fn domains_are_chosen_exact_then_longest_suffix_then_prefix_then_any() {
        let table = table();
        let name = |host: &str| virtual_host(&table, host).unwrap().name.clone();
        assert_eq!(name("api.example.com"), "exact");
        assert_eq!(name("v1.api.example.com"), "longer-suffix");
        assert_eq!(name("www.example.com"), "suffix");
        assert_eq!(name("api.other.org"), "prefix");
        assert_eq!(name("elsewhere"), "any");
    }

    #[test]
    fn paths_headers_and_queries_match_as_envoy_matches_them() {
        assert!(path_matches(
            &PathMatch::Prefix("/api".into()),
            true,
            "/api/x"
        ));
        assert!(!path_matches(
            &PathMatch::Prefix("/API".into()),
            true,
            "/api/x"
        ));
        assert!(path_matches(
            &PathMatch::Prefix("/API".into()),
            false,
            "/api/x"
        ));
        assert!(path_matches(
            &PathMatch::SeparatedPrefix("/api".into()),
            true,
            "/api/x"
        ));
        assert!(!path_matches(
            &PathMatch::SeparatedPrefix("/api".into()),
            true,
            "/apix"
        ));
        let regex = regex::Regex::new("^(?:/v[0-9]+/.*)$").unwrap();
        assert!(path_matches(
            &PathMatch::Regex(regex.clone()),
            true,
            "/v2/users"
        ));
        assert!(!path_matches(&PathMatch::Regex(regex), true, "/x/v2/users"));

        let mut headers = HeaderMap::new();
        headers.insert("x-user", "Alice".parse().unwrap());
        headers.insert("x-n", "7".parse().unwrap());
        let request = RequestParts {
            host: "h",
            path: "/",
            query: Some("a=1&b"),
            path_and_query: "/?a=1&b",
            method: "GET",
            headers: &headers,
        };
        let header = |name: &str, test: HeaderTest, invert: bool| HeaderMatch {
            name: name.into(),
            test,
            invert,
        };
        let text = |m: TextMatch, ignore_case: bool| HeaderTest::Text {
            matcher: m,
            ignore_case,
        };
        assert!(header_matches(
            &header(
                "x-user",
                text(TextMatch::Exact("alice".into()), true),
                false
            ),
            &request
        ));
        assert!(!header_matches(
            &header(
                "x-user",
                text(TextMatch::Exact("alice".into()), false),
                false
            ),
            &request
        ));
        assert!(header_matches(
            &header(
                "x-user",
                text(TextMatch::Exact("alice".into()), false),
                true
            ),
            &request
        ));
        assert!(header_matches(
            &header("x-n", HeaderTest::Range { start: 1, end: 8 }, false),
            &request
        ));
        assert!(header_matches(
            &header("x-missing", HeaderTest::Present(false), false),
            &request
        ));
        assert!(header_matches(
            &header(
                ":method",
                text(TextMatch::Exact("GET".into()), false),
                false
            ),
            &request
        ));
        // `:path` is the whole target, query included (AWS query-string conditions are
        // regexes on it).
        assert!(header_matches(
            &header(
                ":path",
                text(TextMatch::Suffix("?a=1&b".into()), false),
                false
            ),
            &request
        ));
        let query = |name: &str, m: Option<(TextMatch, bool)>| QueryMatch {
            name: name.into(),
            matcher: m,
        };
        assert!(query_matches(
            &query("a", Some((TextMatch::Exact("1".into()), false))),
            request.query
        ));
        assert!(query_matches(&query("b", None), request.query));
        assert!(!query_matches(&query("c", None), request.query));
    }
}
