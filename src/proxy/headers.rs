//! Headers the proxy itself writes, changes or drops, as Envoy's connection manager and router
//! do: the port taken off the Host (and the listener's put on it by Switchyard's step), header
//! names with underscores dropped, X-Forwarded-For / -Proto and Via, the hop-by-hop headers
//! that stay on their hop, and the affinity cookie it issues. Pure: headers in, headers out.

use std::time::Duration;

use http::{header, HeaderValue, Method, Request, Uri};

use super::resources::listener::HttpManager;

/// Names written on every request, made once: inserting by `&str` allocates the name each time.
const X_FORWARDED_FOR: header::HeaderName = header::HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: header::HeaderName = header::HeaderName::from_static("x-forwarded-proto");
const KEEP_ALIVE: header::HeaderName = header::HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: header::HeaderName = header::HeaderName::from_static("proxy-connection");

/// With `strip_any_host_port`, Envoy's connection manager takes the port off the Host (and
/// the `:authority`) before anything else sees the request: routing matches the bare host,
/// the backend receives it, and redirects are built from it. A CONNECT keeps its port (its
/// target is `host:port`). Allocates only when there is a port to strip.
pub(super) fn strip_host_port<B>(request: &mut Request<B>) {
    if request.method() == Method::CONNECT {
        return;
    }
    let bare = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .and_then(without_port)
        .and_then(|bare| HeaderValue::from_str(bare).ok());
    if let Some(bare) = bare {
        request.headers_mut().insert(header::HOST, bare);
    }
    strip_authority_port(request.uri_mut());
}

/// `host` without its port, None when it has none. Envoy's rule: the port is what follows
/// the last colon, when that colon is outside an IPv6 literal's brackets and a number
/// follows it.
fn without_port(host: &str) -> Option<&str> {
    let colon = host.rfind(':')?;
    let port = &host[colon + 1..];
    let numeric = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    (numeric && port.parse::<u32>().is_ok()).then(|| &host[..colon])
}

/// Switchyard's `switchyard.host_with_listener_port` step, natively: a Lua filter that writes
/// `<host>:<port>` into a non-empty `:authority` (the Host header; the request target's
/// authority for HTTP/2 or an absolute-form target), `port` being the listener's.
pub(super) fn append_listener_port<B>(request: &mut Request<B>, port: u16) {
    let with_port = |host: &str| format!("{host}:{port}");
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .filter(|host| !host.is_empty())
        .and_then(|host| HeaderValue::from_str(&with_port(host)).ok());
    if let Some(host) = host {
        request.headers_mut().insert(header::HOST, host);
    }
    let Some(authority) = request.uri().authority().map(|a| a.as_str()) else {
        return;
    };
    let Ok(authority) = http::uri::Authority::try_from(with_port(authority)) else {
        return;
    };
    let mut parts = request.uri().clone().into_parts();
    parts.authority = Some(authority);
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}

/// `headers_with_underscores_action: DROP_HEADER`: every request header whose name holds an
/// underscore goes, as Envoy's codecs drop them. Allocates only when there is one to drop.
pub(super) fn drop_underscore_headers(headers: &mut http::HeaderMap) {
    let has_underscore = |name: &http::HeaderName| name.as_str().contains('_');
    if !headers.keys().any(has_underscore) {
        return;
    }
    let dropped: Vec<http::HeaderName> = headers
        .keys()
        .filter(|n| has_underscore(n))
        .cloned()
        .collect();
    for name in dropped {
        headers.remove(name);
    }
}

fn strip_authority_port(uri: &mut Uri) {
    let Some(authority) = uri.authority().filter(|a| a.port().is_some()) else {
        return;
    };
    let Ok(bare) = http::uri::Authority::try_from(authority.host()) else {
        return;
    };
    let mut parts = uri.clone().into_parts();
    parts.authority = Some(bare);
    if let Ok(stripped) = Uri::from_parts(parts) {
        *uri = stripped;
    }
}

/// The headers the connection manager adds before routing, as Envoy does: with
/// use_remote_address the client's address is appended to X-Forwarded-For (comma-joined, as
/// Envoy writes it; not under skip_xff_append) and X-Forwarded-Proto says the scheme it came
/// in on, https when `tls` (kept when trusted from an earlier hop otherwise); `via` is appended
/// to Via.
pub(super) fn add_forwarding_headers(
    headers: &mut http::HeaderMap,
    client: std::net::IpAddr,
    tls: bool,
    manager: &HttpManager,
) {
    let proto = HeaderValue::from_static(if tls { "https" } else { "http" });
    if manager.use_remote_address && !manager.skip_xff_append {
        let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(earlier) if !earlier.is_empty() => {
                let forwarded = format!("{earlier},{}", client.to_canonical());
                HeaderValue::from_str(&forwarded).ok()
            }
            _ => address_value(client.to_canonical()),
        };
        if let Some(value) = value {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    if manager.use_remote_address {
        headers.insert(X_FORWARDED_PROTO, proto);
    } else {
        headers.entry(X_FORWARDED_PROTO).or_insert(proto);
    }
    if let Some(via) = &manager.via_value {
        append_via_value(headers, via);
    }
}

/// `address` as a header value, written on the stack: the value's own bytes are the only
/// allocation.
fn address_value(address: std::net::IpAddr) -> Option<HeaderValue> {
    use std::io::Write;
    // The longest IPv6 text (an IPv4-mapped one) is 45 bytes.
    let mut text = [0u8; 48];
    let mut cursor = std::io::Cursor::new(&mut text[..]);
    write!(cursor, "{address}").ok()?;
    let length = cursor.position() as usize;
    HeaderValue::from_bytes(&text[..length]).ok()
}

pub(super) fn append_via(headers: &mut http::HeaderMap, via: &str) {
    if let Ok(via) = HeaderValue::from_str(via) {
        append_via_value(headers, &via);
    }
}

/// Appends `via` to the Via header: the value itself when there is none (no allocation: the
/// value's bytes are shared), else the earlier value and `, via`.
pub(super) fn append_via_value(headers: &mut http::HeaderMap, via: &HeaderValue) {
    let value = match headers.get(header::VIA).filter(|v| !v.is_empty()) {
        Some(earlier) => {
            let mut joined = Vec::with_capacity(earlier.len() + 2 + via.len());
            joined.extend_from_slice(earlier.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(via.as_bytes());
            match HeaderValue::from_bytes(&joined) {
                Ok(value) => value,
                Err(_) => return,
            }
        }
        None => via.clone(),
    };
    headers.insert(header::VIA, value);
}

/// Removes what belongs to one connection and not to the message (RFC 9110 7.6.1): the
/// Connection header and every header it names, Keep-Alive, Proxy-Connection, Upgrade and a TE
/// other than `trailers` (which gRPC needs end to end). Each hop decides its own.
pub(super) fn remove_hop_by_hop(headers: &mut http::HeaderMap) {
    // Most messages have none: one look at each name, no lookups, then nothing to do.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<http::HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // Not header names (`close`), or removed below anyway: no name made for them.
        .filter(|token| {
            !["close", "keep-alive", "upgrade"]
                .iter()
                .any(|known| token.eq_ignore_ascii_case(known))
        })
        .filter_map(|token| http::HeaderName::from_bytes(token.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::UPGRADE,
        KEEP_ALIVE,
        PROXY_CONNECTION,
    ] {
        headers.remove(name);
    }
    if headers
        .get(header::TE)
        .is_some_and(|te| !te.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        headers.remove(header::TE);
    }
}

/// Whether `name` is one of the headers that only its hop may carry (those the Connection
/// header names aside: it is one of these).
fn is_hop_by_hop(name: &header::HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::UPGRADE
        || name == header::TE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// `name="value"; Max-Age=…; Path=…; HttpOnly`, as Envoy writes the cookies it issues (no
/// Max-Age for a zero TTL: a cookie for the browser's session).
pub(super) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    ttl: Duration,
) -> Option<HeaderValue> {
    let mut text = format!("{name}=\"{value}\"");
    if !ttl.is_zero() {
        text.push_str(&format!("; Max-Age={}", ttl.as_secs()));
    }
    if !path.is_empty() {
        text.push_str(&format!("; Path={path}"));
    }
    text.push_str("; HttpOnly");
    HeaderValue::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn manager(use_remote_address: bool, via: Option<&str>) -> HttpManager {
        HttpManager {
            stat_prefix: "t".into(),
            route_name: "r".into(),
            strip_any_host_port: true,
            use_remote_address,
            via: via.map(str::to_string),
            via_value: via.map(|v| HeaderValue::from_str(v).unwrap()),
            skip_xff_append: false,
            drop_underscore_headers: false,
            host_with_listener_port: false,
            filters: Default::default(),
            early_mutations: Default::default(),
            timeouts: Default::default(),
            websocket: false,
            access_logs: Vec::new(),
        }
    }

    #[test]
    fn the_listener_port_goes_on_a_host_that_has_one_to_carry() {
        let mut request = Request::get("/x")
            .header("host", "shop.example")
            .body(())
            .unwrap();
        append_listener_port(&mut request, 8080);
        assert_eq!(request.headers()["host"], "shop.example:8080");
        assert_eq!(
            request.uri(),
            "/x",
            "an origin-form target keeps no authority"
        );

        let mut http2 = Request::get("http://[::1]/x?y").body(()).unwrap();
        append_listener_port(&mut http2, 8443);
        assert_eq!(http2.uri(), "http://[::1]:8443/x?y");
        assert!(!http2.headers().contains_key("host"));

        let mut empty = Request::get("/").header("host", "").body(()).unwrap();
        append_listener_port(&mut empty, 8080);
        assert_eq!(
            empty.headers()["host"],
            "",
            "Switchyard's step leaves an empty host"
        );
    }

    #[test]
    fn only_header_names_with_underscores_are_dropped() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x_tenant", "blue".parse().unwrap());
        headers.append("x_tenant", "green".parse().unwrap());
        headers.insert("x-tenant", "kept".parse().unwrap());
        headers.insert("_", "1".parse().unwrap());
        drop_underscore_headers(&mut headers);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-tenant"]);
    }

    #[test]
    fn the_port_goes_from_host_and_authority_as_envoy_strips_it() {
        assert_eq!(
            without_port("WWW.Example.com:8080"),
            Some("WWW.Example.com")
        );
        assert_eq!(without_port("[::1]:443"), Some("[::1]"));
        assert_eq!(without_port("[::1]"), None);
        assert_eq!(without_port("a.example"), None);
        assert_eq!(without_port("a.example:"), None);
        assert_eq!(without_port("a.example:http"), None);
        assert_eq!(without_port("a.example:99999999999"), None);

        let mut request = Request::get("http://a.example:8080/x?y")
            .header("host", "a.example:8080")
            .body(())
            .unwrap();
        strip_host_port(&mut request);
        assert_eq!(request.headers()["host"], "a.example");
        assert_eq!(request.uri(), "http://a.example/x?y");

        let mut connect = Request::connect("a.example:443")
            .header("host", "a.example:443")
            .body(())
            .unwrap();
        strip_host_port(&mut connect);
        assert_eq!(connect.headers()["host"], "a.example:443");
    }

    #[test]
    fn hop_by_hop_headers_stay_on_their_hop() {
        let mut headers = http::HeaderMap::new();
        headers.insert("connection", "close, x-hop".parse().unwrap());
        headers.insert("x-hop", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("te", "trailers".parse().unwrap());
        headers.insert("x-end-to-end", "1".parse().unwrap());
        remove_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["te", "x-end-to-end"]);
    }

    #[test]
    fn a_request_without_x_forwarded_for_gets_the_client_address_alone() {
        for (client, expected) in [
            ("10.0.0.9", "10.0.0.9"),
            ("::ffff:10.0.0.9", "10.0.0.9"),
            ("2001:db8::1", "2001:db8::1"),
            (
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
            ),
        ] {
            let mut headers = http::HeaderMap::new();
            add_forwarding_headers(
                &mut headers,
                client.parse().unwrap(),
                false,
                &manager(true, None),
            );
            assert_eq!(headers["x-forwarded-for"], expected, "from {client}");
        }
    }

    #[test]
    fn forwarding_headers_follow_use_remote_address_and_via() {
        let peer: SocketAddr = "[::ffff:10.0.0.9]:5555".parse().unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        add_forwarding_headers(
            &mut headers,
            peer.ip(),
            false,
            &manager(true, Some("1.1 edge")),
        );
        assert_eq!(headers["x-forwarded-for"], "203.0.113.7,10.0.0.9");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["via"], "1.1 edge");

        let mut skipping = manager(true, None);
        skipping.skip_xff_append = true;
        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        add_forwarding_headers(&mut headers, peer.ip(), false, &skipping);
        assert_eq!(headers["x-forwarded-for"], "203.0.113.7", "skip_xff_append");
        assert_eq!(headers["x-forwarded-proto"], "http");

        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        add_forwarding_headers(&mut headers, peer.ip(), false, &manager(false, None));
        assert!(!headers.contains_key("x-forwarded-for"));
        assert_eq!(
            headers["x-forwarded-proto"], "https",
            "kept from the earlier hop"
        );
    }
}
