//! What a route changes in a request and in its response, as Envoy changes it: header edits
//! level by level (weighted cluster, route, virtual host, route configuration — so the
//! outermost level's overwrite wins), the matched prefix replaced in the path, and the
//! Location of a redirect. Pure: headers and strings in, headers and strings out.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Version};

use super::resources::route::{
    AddMode, HeaderAddition, HeaderEdits, HeaderText, PathMatch, PathTemplate, Redirect,
    TemplateRewrite, TextPart,
};

/// The connection a request came on (its addresses, its TLS session) and the request's own
/// facts, for header values that name them.
#[derive(Clone, Debug)]
pub struct Connection {
    /// The client.
    pub remote: SocketAddr,
    /// The address the client connected to (the listener's port).
    pub local: SocketAddr,
    /// Where the client was going when netfilter redirected it to the listener (read only
    /// while the config has an ORIGINAL_DST cluster; see proxy/original_dst.rs).
    pub original_destination: Option<SocketAddr>,
    /// Whether the listener terminated TLS on it (X-Forwarded-Proto says https).
    pub tls: bool,
    /// What the TLS handshake settled, when the listener terminated TLS.
    pub session: Option<Arc<TlsSession>>,
    /// The request's HTTP version (the connection's, until a request says).
    pub protocol: Version,
    /// The request's headers, kept only when a response header's value names one of them.
    pub request_headers: Option<Arc<HeaderMap>>,
}

/// A downstream TLS session as Envoy's formatters name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSession {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// The suite's OpenSSL (BoringSSL) name, as Envoy writes it.
    pub cipher: &'static str,
    /// The name the client asked for (SNI).
    pub server_name: Option<String>,
}

impl Connection {
    /// A connection without TLS, before any request.
    pub fn plain(remote: SocketAddr, local: SocketAddr) -> Connection {
        Connection {
            remote,
            local,
            original_destination: None,
            tls: false,
            session: None,
            protocol: Version::HTTP_11,
            request_headers: None,
        }
    }
}

/// Headers Envoy keeps as one comma-joined value, so that appending extends the list in
/// place rather than adding a second header line.
const JOINED_ON_APPEND: [HeaderName; 3] = [
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
];

/// Applies each level's edits in turn: its removals, then its additions.
pub fn apply<'e>(
    headers: &mut HeaderMap,
    levels: impl IntoIterator<Item = &'e HeaderEdits>,
    connection: &Connection,
) {
    for edits in levels {
        for name in &edits.remove {
            headers.remove(name);
        }
        for addition in &edits.add {
            let Some(value) = value_of(addition, connection, headers) else {
                continue;
            };
            let present = headers.contains_key(&addition.name);
            match addition.mode {
                AddMode::Append if present && JOINED_ON_APPEND.contains(&addition.name) => {
                    let values = headers.get_all(&addition.name).iter();
                    if let Some(joined) = comma_joined(values.chain(std::iter::once(&value))) {
                        headers.insert(addition.name.clone(), joined);
                    }
                }
                AddMode::Append => {
                    headers.append(addition.name.clone(), value);
                }
                AddMode::AddIfAbsent if present => {}
                AddMode::OverwriteIfExists if !present => {}
                AddMode::AddIfAbsent | AddMode::Overwrite | AddMode::OverwriteIfExists => {
                    headers.insert(addition.name.clone(), value);
                }
            }
        }
    }
}

/// The value an addition adds on this connection, for a message with `headers` (the request's
/// own, or a response's); None when it comes out empty, which Envoy does not add.
fn value_of(
    addition: &HeaderAddition,
    connection: &Connection,
    headers: &HeaderMap,
) -> Option<HeaderValue> {
    match &addition.value {
        HeaderText::Fixed(value) => Some(value.clone()),
        HeaderText::Template(parts) => with_text_buffer(|text| {
            for part in parts {
                write_part(part, connection, headers, text);
            }
            if text.is_empty() {
                return None;
            }
            HeaderValue::from_str(text).ok()
        }),
    }
}

thread_local! {
    /// Where header values are written before they become one: the value's own bytes are
    /// then its only allocation.
    static TEXT_BUFFER: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Runs `write` with the thread's text buffer, emptied.
fn with_text_buffer<R>(write: impl FnOnce(&mut String) -> R) -> R {
    TEXT_BUFFER.with_borrow_mut(|text| {
        text.clear();
        write(text)
    })
}

/// `values` joined by commas, as one header value (values that are not text are left out).
fn comma_joined<'v>(values: impl Iterator<Item = &'v HeaderValue>) -> Option<HeaderValue> {
    with_text_buffer(|text| {
        for value in values.filter_map(|v| v.to_str().ok()) {
            if !text.is_empty() {
                text.push(',');
            }
            text.push_str(value);
        }
        HeaderValue::from_str(text).ok()
    })
}

/// Writes one part of a header value as Envoy's formatter writes it (an absent fact:
/// nothing) at the end of `text`.
fn write_part(part: &TextPart, connection: &Connection, headers: &HeaderMap, text: &mut String) {
    use std::fmt::Write;
    let session = connection.session.as_deref();
    let _ = match part {
        TextPart::Literal(literal) => text.write_str(literal),
        TextPart::LocalAddress => write!(text, "{}", canonical(connection.local).ip()),
        TextPart::RemoteAddress => write!(text, "{}", canonical(connection.remote).ip()),
        TextPart::LocalAddressWithPort => write!(text, "{}", canonical(connection.local)),
        TextPart::RemoteAddressWithPort => write!(text, "{}", canonical(connection.remote)),
        TextPart::LocalPort => write!(text, "{}", connection.local.port()),
        TextPart::RemotePort => write!(text, "{}", connection.remote.port()),
        TextPart::Protocol => text.write_str(protocol_name(connection.protocol)),
        TextPart::TlsVersion => text.write_str(session.map_or("", |s| s.version)),
        TextPart::TlsCipher => text.write_str(session.map_or("", |s| s.cipher)),
        TextPart::ServerName => {
            text.write_str(session.and_then(|s| s.server_name.as_deref()).unwrap_or(""))
        }
        TextPart::Encrypted => write!(text, "{}", session.is_some()),
        TextPart::RequestHeader(name) => {
            // On a request, its own headers; on a response, the request's as kept.
            let request = connection.request_headers.as_deref().unwrap_or(headers);
            text.write_str(
                request
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default(),
            )
        }
    };
}

/// An HTTP version as Envoy's `%PROTOCOL%` writes it.
fn protocol_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// An address as Envoy writes it: an IPv4 client of a dual-stack socket as IPv4
/// (`10.0.0.9:5555`, not `[::ffff:10.0.0.9]:5555`).
fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip().to_canonical(), address.port())
}

/// `path_and_query` with the part `matched` matched replaced by `replacement` (the whole
/// path for an exact match), the query kept.
pub fn replace_matched_prefix(
    path_and_query: &str,
    matched: &PathMatch,
    replacement: &str,
) -> String {
    let path_end = path_and_query.find('?').unwrap_or(path_and_query.len());
    let matched_length = match matched {
        PathMatch::Prefix(prefix) | PathMatch::SeparatedPrefix(prefix) => prefix.len(),
        PathMatch::Exact(_) => path_end,
        // Refused when the route is converted.
        PathMatch::Regex(_) | PathMatch::Template(_) => 0,
    };
    let matched_length = matched_length.min(path_end);
    if !path_and_query.is_char_boundary(matched_length) {
        return path_and_query.to_string();
    }
    format!("{replacement}{}", &path_and_query[matched_length..])
}

/// `path_and_query` with its path rebuilt by a URI template rewrite, the query kept; None
/// when the template does not match the path.
pub fn rewrite_by_template(
    path_and_query: &str,
    matched: &PathTemplate,
    rewrite: &TemplateRewrite,
) -> Option<String> {
    let (path, query) =
        path_and_query.split_at(path_and_query.find('?').unwrap_or(path_and_query.len()));
    Some(format!("{}{query}", rewrite.rewrite(matched, path)?))
}

/// The request as a redirect's Location needs it.
pub struct RequestTarget<'r> {
    /// The scheme the client used (X-Forwarded-Proto as the connection manager left it).
    pub scheme: &'r str,
    /// The Host header as sent, port included.
    pub host: &'r str,
    pub path_and_query: &'r str,
}

/// The Location a redirect answers with.
pub fn redirect_location(
    redirect: &Redirect,
    matched: &PathMatch,
    request: &RequestTarget,
) -> String {
    let scheme = redirect.scheme.as_deref().unwrap_or(request.scheme);
    let port = redirect.port.map(|p| format!(":{p}")).unwrap_or_default();
    let host = match &redirect.host {
        Some(host) => host.as_str(),
        None => host_without_replaced_port(request.host, request.scheme, scheme, !port.is_empty()),
    };
    let mut path = match (&redirect.path, &redirect.prefix_rewrite) {
        // A query in the new path replaces the request's.
        (Some(new_path), _) if new_path.contains('?') => new_path.clone(),
        (Some(new_path), _) => match request.path_and_query.find('?') {
            Some(query_start) => format!("{new_path}{}", &request.path_and_query[query_start..]),
            None => new_path.clone(),
        },
        (None, Some(replacement)) => {
            replace_matched_prefix(request.path_and_query, matched, replacement)
        }
        (None, None) => match &redirect.regex_rewrite {
            // The path is rewritten, the query kept.
            Some(rewrite) => {
                let query_start = request
                    .path_and_query
                    .find('?')
                    .unwrap_or(request.path_and_query.len());
                let (path, query) = request.path_and_query.split_at(query_start);
                format!("{}{query}", rewrite.apply(path))
            }
            None => request.path_and_query.to_string(),
        },
    };
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let query_from_redirect = redirect.path.as_ref().is_some_and(|p| p.contains('?'));
    if redirect.strip_query && !query_from_redirect {
        if let Some(query_start) = path.find('?') {
            path.truncate(query_start);
        }
    }
    format!("{scheme}://{host}{port}{path}")
}

/// The request's host, without its port when the redirect sets a port of its own, or when
/// it changes the scheme and the port was the old scheme's default.
fn host_without_replaced_port<'h>(
    host: &'h str,
    old_scheme: &str,
    new_scheme: &str,
    new_port: bool,
) -> &'h str {
    let port_start = if host.starts_with('[') {
        host.rfind("]:").map(|i| i + 1)
    } else {
        host.rfind(':')
    };
    let Some(port_start) = port_start else {
        return host;
    };
    let port = &host[port_start..];
    let default_port_of_old_scheme =
        (old_scheme == "https" && port == ":443") || (old_scheme == "http" && port == ":80");
    if new_port || (new_scheme != old_scheme && default_port_of_old_scheme) {
        &host[..port_start]
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn addition(name: &str, value: &str, mode: AddMode) -> HeaderAddition {
        HeaderAddition {
            name: HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value: HeaderText::Fixed(HeaderValue::from_str(value).unwrap()),
            mode,
        }
    }

    const CONNECTION: Connection = Connection {
        remote: SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9)), 5555),
        local: SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)), 80),
        original_destination: None,
        tls: false,
        session: None,
        protocol: Version::HTTP_11,
        request_headers: None,
    };

    #[test]
    fn x_forwarded_for_grows_in_place_with_the_connections_addresses() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9,10.0.0.9".parse().unwrap());
        let edits = HeaderEdits {
            remove: Vec::new(),
            add: vec![HeaderAddition {
                name: HeaderName::from_static("x-forwarded-for"),
                value: HeaderText::Template(vec![TextPart::LocalAddress]),
                mode: AddMode::Append,
            }],
        };
        apply(&mut headers, [&edits], &CONNECTION);
        assert_eq!(headers["x-forwarded-for"], "203.0.113.9,10.0.0.9,127.0.0.1");
        assert_eq!(headers.get_all("x-forwarded-for").iter().count(), 1);
    }

    #[test]
    fn connection_variables_carry_ports_where_envoy_writes_them() {
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().unwrap();
        let connection =
            Connection::plain(SocketAddr::new(mapped, 5555), "[::1]:8080".parse().unwrap());
        let template = |parts: Vec<TextPart>| HeaderEdits {
            remove: Vec::new(),
            add: vec![HeaderAddition {
                name: HeaderName::from_static("x-seen"),
                value: HeaderText::Template(parts),
                mode: AddMode::Append,
            }],
        };
        let seen = |parts: Vec<TextPart>| {
            let mut headers = HeaderMap::new();
            apply(&mut headers, [&template(parts)], &connection);
            headers["x-seen"].to_str().unwrap().to_string()
        };
        assert_eq!(seen(vec![TextPart::RemoteAddressWithPort]), "10.0.0.9:5555");
        assert_eq!(seen(vec![TextPart::RemoteAddress]), "10.0.0.9");
        assert_eq!(seen(vec![TextPart::LocalAddressWithPort]), "[::1]:8080");
        assert_eq!(
            seen(vec![
                TextPart::LocalAddress,
                TextPart::Literal(" ".into()),
                TextPart::LocalPort,
                TextPart::Literal("/".into()),
                TextPart::RemotePort,
            ]),
            "::1 8080/5555"
        );
    }

    #[test]
    fn edits_remove_then_add_and_the_outer_level_overwrites_last() {
        let mut headers = HeaderMap::new();
        headers.insert("x-keep", "client".parse().unwrap());
        headers.insert("x-drop", "client".parse().unwrap());
        let route = HeaderEdits {
            remove: vec![HeaderName::from_static("x-drop")],
            add: vec![
                addition("x-keep", "route", AddMode::AddIfAbsent),
                addition("x-list", "route", AddMode::Append),
                addition("x-level", "route", AddMode::Overwrite),
                addition("x-absent", "route", AddMode::OverwriteIfExists),
            ],
        };
        let table = HeaderEdits {
            remove: Vec::new(),
            add: vec![
                addition("x-list", "table", AddMode::Append),
                addition("x-level", "table", AddMode::Overwrite),
            ],
        };
        apply(&mut headers, [&route, &table], &CONNECTION);
        assert_eq!(headers["x-keep"], "client");
        assert!(!headers.contains_key("x-drop"));
        assert!(!headers.contains_key("x-absent"));
        let list: Vec<_> = headers.get_all("x-list").iter().collect();
        assert_eq!(list, ["route", "table"]);
        assert_eq!(headers["x-level"], "table");
    }

    #[test]
    fn the_matched_prefix_is_replaced_and_the_query_kept() {
        let prefix = PathMatch::Prefix("/old".into());
        assert_eq!(
            replace_matched_prefix("/old/a?q=1", &prefix, "/new"),
            "/new/a?q=1"
        );
        assert_eq!(
            replace_matched_prefix("/x?y", &PathMatch::Exact("/x".into()), "/z"),
            "/z?y"
        );
    }

    #[test]
    fn redirects_compose_their_location_as_envoy_does() {
        let prefix = PathMatch::Prefix("/old".into());
        let request = RequestTarget {
            scheme: "http",
            host: "shop.example:80",
            path_and_query: "/old/cart?id=7",
        };
        let https = Redirect {
            scheme: Some("https".into()),
            status: 301,
            ..Redirect::default()
        };
        assert_eq!(
            redirect_location(&https, &prefix, &request),
            "https://shop.example/old/cart?id=7",
            "the old scheme's default port goes"
        );
        let moved = Redirect {
            host: Some("new.example".into()),
            port: Some(8443),
            prefix_rewrite: Some("/v2".into()),
            strip_query: true,
            status: 302,
            ..Redirect::default()
        };
        assert_eq!(
            redirect_location(&moved, &prefix, &request),
            "http://new.example:8443/v2/cart"
        );
        let path = Redirect {
            path: Some("/landing?from=old".into()),
            strip_query: true,
            status: 302,
            ..Redirect::default()
        };
        assert_eq!(
            redirect_location(&path, &prefix, &request),
            "http://shop.example:80/landing?from=old"
        );
    }
}
