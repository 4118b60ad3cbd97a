//! One request through a proxy, written down so that two proxies' answers can be compared
//! line by line: the status, every response header, the body, and — when a controllable echo
//! backend answered — what the backend saw (method, path with query, every header, the body)
//! and how many requests reached the backends. What two correct proxies may legitimately
//! answer differently is listed here, with the reason, and left out of the record; nothing
//! else is. Must not: decide what a right answer is (the table's expectations do that).

use std::collections::BTreeSet;

use reqwest::header::HeaderMap;
use serde_json::Value;

/// Response headers that one proxy writes and the other need not, left out of the record.
pub const ONE_SIDED_RESPONSE_HEADERS: [(&str, &str); 3] = [
    (
        "x-envoy-upstream-service-time",
        "Envoy's measure of the backend's latency: a timing, and an Envoy convention",
    ),
    (
        "server",
        "each proxy may name its software (Envoy writes `envoy`); the sidecar names none",
    ),
    (
        "connection",
        "hop-by-hop: how each proxy keeps its own client connection (Envoy closes one whose \
         request body it did not read before a redirect)",
    ),
];

/// Response headers both write whose value depends on the moment or on a random draw.
pub const VOLATILE_RESPONSE_VALUES: [(&str, &str); 1] =
    [("date", "the second the answer was written")];

/// Request headers a backend sees from one proxy and not from the other, left out.
pub const ONE_SIDED_UPSTREAM_HEADERS: [(&str, &str); 4] = [
    (
        "x-request-id",
        "Envoy generates a random request id (generate_request_id defaults to on); the \
         sidecar does not trace requests",
    ),
    (
        "x-envoy-expected-rq-timeout-ms",
        "Envoy tells the backend the route's timeout, for Envoys behind it; the sidecar \
         enforces the same timeout without announcing it",
    ),
    (
        "x-envoy-external-address",
        "Envoy's own mark of a request from outside its network, for Envoys behind it",
    ),
    (
        "content-length",
        "framing: Envoy writes `content-length: 0` on some bodiless requests (OPTIONS); the \
         body itself is compared",
    ),
];

/// X-Forwarded-For is `<what the client sent>,<client>` and, behind a GCP proxy,
/// `,<load balancer>`: the first element the proxy adds is the client's. For a client on
/// loopback Envoy writes its host's own address there (it takes a loopback peer for
/// itself), the sidecar the peer's; and with the client's port (an AWS attribute), each
/// connection has its own. So that element is compared as "an IP address" (`<client>`) or
/// "an IP address and port" (`<client>:<port>`), everything around it as written.
fn forwarded_for(value: &str, sent_hops: usize) -> String {
    let mut hops: Vec<&str> = value.split(',').collect();
    if let Some(client) = hops.get_mut(sent_hops) {
        if client.trim().parse::<std::net::IpAddr>().is_ok() {
            *client = "<client>";
        } else if client.trim().parse::<std::net::SocketAddr>().is_ok() {
            *client = "<client>:<port>";
        }
    }
    hops.join(",")
}

/// The elements of X-Forwarded-For a request carries as the client sends it.
fn hops_sent(request: &Request) -> usize {
    request
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|(_, value)| value.split(',').count())
        .sum()
}

/// `line` with the listener's port, where it shows as `:<port>` (in a Host the proxy gives
/// the listener's port, and in what is built from that Host), written `:<listener port>`:
/// each proxy listens on a port of its own.
fn mask_listener_port(line: &str, port: u16) -> String {
    let written = format!(":{port}");
    let mut masked = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(&written) {
        let after = &rest[at + written.len()..];
        masked.push_str(&rest[..at]);
        if after.starts_with(|c: char| c.is_ascii_digit()) {
            masked.push_str(&written);
        } else {
            masked.push_str(":<listener port>");
        }
        rest = after;
    }
    masked.push_str(rest);
    masked
}

/// One request of a table, as sent: method, Host, path with query, extra headers, body.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: &'static str,
    pub host: String,
    pub target: String,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Option<&'static str>,
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}{}", self.method, self.host, self.target)?;
        for (name, value) in &self.headers {
            write!(f, " [{name}: {value}]")?;
        }
        if let Some(body) = self.body {
            write!(f, " body {}", shown_body(body))?;
        }
        Ok(())
    }
}

/// A client that follows no redirect (they are compared, not followed) and gives up on a
/// request after 30 s (the longest a table row waits is a backend's 3 s delay).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// What one request through the proxy on `port` got, as sorted lines, with the listener's
/// port and the client's element of X-Forwarded-For masked.
pub async fn exchange(client: &reqwest::Client, port: u16, request: &Request) -> Record {
    let record = send(client, port, request).await;
    let sent_hops = hops_sent(request);
    Record(
        record
            .0
            .iter()
            .map(|line| match line.strip_prefix("saw x-forwarded-for: ") {
                Some(value) => format!("saw x-forwarded-for: {}", forwarded_for(value, sent_hops)),
                None => line.clone(),
            })
            .map(|line| mask_listener_port(&line, port))
            .collect(),
    )
}

async fn send(client: &reqwest::Client, port: u16, request: &Request) -> Record {
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap();
    let mut builder = client
        .request(method, format!("http://127.0.0.1:{port}{}", request.target))
        .header("host", &request.host);
    for (name, value) in &request.headers {
        builder = builder.header(*name, *value);
    }
    if let Some(body) = request.body {
        builder = builder.body(body);
    }
    match builder.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.text().await.unwrap_or_else(|e| format!("<{e}>"));
            Record::of(status, &headers, &body, request.method == "HEAD")
        }
        Err(error) => Record(BTreeSet::from([format!("error {error}")])),
    }
}

/// An answer as comparable lines (`status 200`, `response x-a: 1`, `saw host: a.example`,
/// `backend api`, ...), sorted, so that two records differ exactly where the answers do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record(pub BTreeSet<String>);

impl Record {
    /// The record of an answer; `head` when it answers a HEAD request (whose content-length
    /// is that of the echo it does not carry).
    pub fn of(status: u16, headers: &HeaderMap, body: &str, head: bool) -> Record {
        let mut lines = BTreeSet::from([format!("status {status}")]);
        let echoed = serde_json::from_str::<Value>(body)
            .ok()
            .filter(|seen| seen["headers"].is_object() && seen["method"].is_string());
        lines.extend(response_lines(headers, echoed.is_some() || head));
        match &echoed {
            Some(seen) => lines.extend(seen_lines(seen)),
            None => {
                lines.insert(format!("body {body:?}"));
            }
        }
        Record(lines)
    }

    /// Adds how many requests reached the backends for this one.
    pub fn with_hits(mut self, hits: u64) -> Record {
        self.0.insert(format!("hits {hits}"));
        self
    }

    /// The backend that answered, if an echo backend did.
    pub fn backend(&self) -> Option<&str> {
        self.0.iter().find_map(|line| line.strip_prefix("backend "))
    }

    pub fn has(&self, line: &str) -> bool {
        self.0.contains(line)
    }
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in &self.0 {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// The lines that only one of two records has, each marked with the proxy that has it.
pub fn differences(
    (left_name, left): (&str, &Record),
    (right_name, right): (&str, &Record),
) -> Vec<String> {
    let only = |name: &str, one: &Record, other: &Record| -> Vec<String> {
        one.0
            .difference(&other.0)
            .map(|line| format!("only {name}: {line}"))
            .collect()
    };
    let mut lines = only(left_name, left, right);
    lines.extend(only(right_name, right, left));
    lines
}

/// `response name: value` for every header the client got, in order of arrival for a
/// repeated one; the one-sided ones out, volatile values masked. The content-length of an
/// echo (`length_follows_echo`) is left to the body's lines: it counts the echoed request
/// headers, and those differ by the one-sided upstream headers.
fn response_lines(headers: &HeaderMap, length_follows_echo: bool) -> Vec<String> {
    let mut lines = Vec::new();
    for name in headers.keys() {
        let name = name.as_str();
        if ONE_SIDED_RESPONSE_HEADERS.iter().any(|(n, _)| *n == name)
            || (length_follows_echo && name == "content-length")
        {
            continue;
        }
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| response_value(name, v.to_str().unwrap_or("<not text>")))
            .collect();
        lines.push(format!("response {name}: {}", values.join(" | ")));
    }
    lines
}

fn response_value(name: &str, value: &str) -> String {
    if VOLATILE_RESPONSE_VALUES.iter().any(|(n, _)| *n == name) {
        return "<varies>".into();
    }
    if name == "set-cookie" {
        return mask_cookie_value(value);
    }
    value.to_string()
}

/// A cookie the proxy issues for session affinity carries an opaque value (Envoy hashes the
/// endpoint's address, the sidecar draws a random one; either routes the client back to the
/// same endpoint): its name and attributes are compared, its value is not. A cookie written
/// by a route's header action is literal text and is compared whole.
fn mask_cookie_value(value: &str) -> String {
    match value.split_once('=') {
        Some((name, rest)) if rest.starts_with('"') => {
            let attributes = rest.split_once(';').map_or("", |(_, a)| a);
            format!("{name}=<opaque>;{attributes}")
        }
        _ => value.to_string(),
    }
}

/// A request body as a record shows it: quoted, or when longer than a line should be, its
/// length and a hash of its bytes (still compared exactly).
pub fn shown_body(body: &str) -> String {
    use std::hash::{Hash, Hasher};
    if body.len() <= 80 {
        return format!("{body:?}");
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    format!("<{} bytes, hash {:016x}>", body.len(), hasher.finish())
}

/// What an echo backend saw: its name, the method, path with query, body, and each header
/// (the one-sided ones out).
fn seen_lines(seen: &Value) -> Vec<String> {
    let text = |key: &str| seen[key].as_str().unwrap_or("").to_string();
    let mut lines = vec![
        format!("backend {}", text("backend")),
        format!("method {}", text("method")),
        format!("path {}", text("path")),
        format!("request body {}", shown_body(&text("body"))),
    ];
    for (name, value) in seen["headers"].as_object().into_iter().flatten() {
        if ONE_SIDED_UPSTREAM_HEADERS.iter().any(|(n, _)| n == name) {
            continue;
        }
        lines.push(format!("saw {name}: {}", value.as_str().unwrap_or("")));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_cookie_is_compared_by_name_and_attributes() {
        assert_eq!(
            mask_cookie_value("GCLB=\"a1b2\"; Max-Age=3600; Path=/; HttpOnly"),
            "GCLB=<opaque>; Max-Age=3600; Path=/; HttpOnly"
        );
        assert_eq!(mask_cookie_value("tg=blue; Path=/"), "tg=blue; Path=/");
    }

    #[test]
    fn only_the_client_element_of_x_forwarded_for_is_masked() {
        assert_eq!(
            forwarded_for("203.0.113.9, 10.1.2.3,127.0.0.1", 1),
            "203.0.113.9,<client>,127.0.0.1"
        );
        assert_eq!(forwarded_for("10.1.2.3,127.0.0.1", 0), "<client>,127.0.0.1");
        assert_eq!(
            forwarded_for("203.0.113.9,10.1.2.3", 1),
            "203.0.113.9,<client>"
        );
        assert_eq!(
            forwarded_for("203.0.113.9,127.0.0.1:50123", 1),
            "203.0.113.9,<client>:<port>"
        );
        assert_eq!(
            forwarded_for("203.0.113.9", 1),
            "203.0.113.9",
            "nothing added"
        );
        assert_eq!(forwarded_for("junk,127.0.0.1", 0), "junk,127.0.0.1");
    }

    #[test]
    fn the_listener_port_is_masked_where_it_stands_alone() {
        assert_eq!(
            mask_listener_port("saw host: lb.example:22601", 22601),
            "saw host: lb.example:<listener port>"
        );
        assert_eq!(
            mask_listener_port("response location: http://a:22601/b:226011", 22601),
            "response location: http://a:<listener port>/b:226011"
        );
        assert_eq!(
            mask_listener_port("saw host: a:2260", 22601),
            "saw host: a:2260"
        );
    }
}
