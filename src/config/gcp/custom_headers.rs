//! A backend service's `customRequestHeaders` and `customResponseHeaders`: `Name: value`
//! strings whose values may hold the cloud's `{variables}`. Variables a proxy knows from the
//! connection (addresses, ports, TLS, protocol, the request's Origin) become connection facts;
//! those only Google's front ends know (the client's city, its round-trip time, Cloud CDN's
//! cache) are refused by name, as are names the cloud forbids. `{{` and `}}` are literal braces.

use crate::config::reader::Fields;
use crate::model::diagnostics::suggest;
use crate::model::{
    ConnectionFact, CustomHeader, CustomHeaders, Diagnostics, HeaderValuePart, Loc,
};

/// The variables a proxy can fill in, by the cloud's names.
const FACTS: &[(&str, ConnectionFact)] = &[
    ("client_ip_address", ConnectionFact::ClientAddress),
    ("client_port", ConnectionFact::ClientPort),
    ("client_encrypted", ConnectionFact::ClientEncrypted),
    ("client_protocol", ConnectionFact::ClientProtocol),
    ("server_ip_address", ConnectionFact::ServerAddress),
    ("server_port", ConnectionFact::ServerPort),
    ("tls_sni_hostname", ConnectionFact::TlsServerName),
    ("tls_version", ConnectionFact::TlsVersion),
    ("tls_cipher_suite", ConnectionFact::TlsCipherSuite),
    ("origin_request_header", ConnectionFact::RequestOrigin),
];

const ONLY_THE_CLOUD: &str = "is known only to the cloud (Google's front ends look it up or \
                              measure it); a self-hosted proxy cannot fill it in";

/// The cloud's variables a proxy cannot fill in, and why.
const UNAVAILABLE: &[(&str, &str)] = &[
    ("client_region", ONLY_THE_CLOUD),
    ("client_region_subdivision", ONLY_THE_CLOUD),
    ("client_city", ONLY_THE_CLOUD),
    ("client_city_lat_long", ONLY_THE_CLOUD),
    ("client_rtt_msec", ONLY_THE_CLOUD),
    ("device_request_type", ONLY_THE_CLOUD),
    ("user_agent_family", ONLY_THE_CLOUD),
    (
        "cdn_cache_id",
        "describes Cloud CDN's cache, which is not available in a self-hosted control plane",
    ),
    (
        "cdn_cache_status",
        "describes Cloud CDN's cache, which is not available in a self-hosted control plane",
    ),
    (
        "tls_ja3_fingerprint",
        "is a TLS fingerprint Switchyard's listeners do not compute",
    ),
    (
        "tls_ja4_fingerprint",
        "is a TLS fingerprint Switchyard's listeners do not compute",
    ),
];

/// Headers a proxy must not be told to add (the cloud's list): hop-by-hop headers, the
/// Host, and the cloud's own.
fn forbidden_name(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if [
        "keep-alive",
        "transfer-encoding",
        "te",
        "connection",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
    ]
    .contains(&lower.as_str())
    {
        return Some("is a hop-by-hop header, which proxies do not pass on");
    }
    if ["host", "authority"].contains(&lower.as_str()) {
        return Some("names the request's host, which custom headers may not change");
    }
    if ["x-user-ip", "cdn-loop"].contains(&lower.as_str())
        || ["x-google", "x-goog-", "x-gfe", "x-amz-"]
            .iter()
            .any(|prefix| lower.starts_with(prefix))
    {
        return Some("is reserved by the cloud");
    }
    None
}

/// Reads both lists of a backend service.
pub(super) fn custom_headers(
    fields: &mut Fields<'_>,
    diagnostics: &mut Diagnostics,
) -> CustomHeaders {
    CustomHeaders {
        request: header_list(fields, "customRequestHeaders", diagnostics),
        response: header_list(fields, "customResponseHeaders", diagnostics),
    }
}

fn header_list(
    fields: &mut Fields<'_>,
    key: &'static str,
    diagnostics: &mut Diagnostics,
) -> Vec<CustomHeader> {
    let file = fields.file().clone();
    let written = fields.items(key, diagnostics, |item, path, diagnostics| {
        let loc = Loc::new(file.clone(), item.line);
        let Some(text) = item.as_scalar() else {
            diagnostics.error(
                &loc,
                path,
                format!("expected a `Name: value` string, found {}", item.kind()),
            );
            return None;
        };
        let header = header(text, &loc, &path, diagnostics)?;
        Some((header, loc, path))
    });
    let mut headers: Vec<CustomHeader> = Vec::new();
    for (header, loc, path) in written {
        if headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(&header.name))
        {
            diagnostics.error(
                &loc,
                path,
                format!(
                    "`{}` is already added by this list; each header may appear once",
                    header.name
                ),
            );
            continue;
        }
        headers.push(header);
    }
    headers
}

/// One `Name: value` string.
fn header(
    text: &str,
    loc: &Loc,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> Option<CustomHeader> {
    let Some((name, value)) = text.split_once(':') else {
        diagnostics.error(
            loc,
            path,
            format!(
                "`{text}` is not `Name: value`; write the header's name, a colon, then its value"
            ),
        );
        return None;
    };
    let name = name.trim();
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        diagnostics.error(loc, path, format!("`{name}` is not a valid header name"));
        return None;
    }
    if let Some(why) = forbidden_name(name) {
        diagnostics.error(loc, path, format!("`{name}` {why}"));
        return None;
    }
    let value = value_parts(value.trim(), loc, path, diagnostics)?;
    Some(CustomHeader {
        name: name.to_string(),
        value,
    })
}

/// A value as literal text and facts; None (with an error) when a variable cannot be served.
fn value_parts(
    value: &str,
    loc: &Loc,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> Option<Vec<HeaderValuePart>> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = value;
    while let Some(at) = rest.find(['{', '}']) {
        text.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("{{").or_else(|| tail.strip_prefix("}}")) {
            text.push_str(&tail[..1]);
            rest = after;
            continue;
        }
        let Some(end) = tail.strip_prefix('{').and_then(|inner| inner.find('}')) else {
            diagnostics.error(
                loc,
                path,
                format!(
                    "`{value}` has an unmatched brace; write `{{{{` or `}}}}` for a literal one"
                ),
            );
            return None;
        };
        let variable = &tail[1..=end];
        parts.extend((!text.is_empty()).then(|| HeaderValuePart::Text(std::mem::take(&mut text))));
        parts.push(HeaderValuePart::Fact(fact(
            variable,
            loc,
            path,
            diagnostics,
        )?));
        rest = &tail[end + 2..];
    }
    text.push_str(rest);
    parts.extend((!text.is_empty()).then_some(HeaderValuePart::Text(text)));
    Some(parts)
}

fn fact(
    variable: &str,
    loc: &Loc,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> Option<ConnectionFact> {
    if let Some((_, fact)) = FACTS.iter().find(|(name, _)| *name == variable) {
        return Some(*fact);
    }
    let why = UNAVAILABLE
        .iter()
        .find(|(name, _)| *name == variable)
        .map(|(_, why)| (*why).to_string())
        .or_else(|| {
            variable.starts_with("client_cert_").then(|| {
                "describes the client's certificate, which Switchyard's listeners do not ask for \
                 (serverTlsPolicy is not served)"
                    .to_string()
            })
        });
    let message = match why {
        Some(why) => format!("`{{{variable}}}` {why}"),
        None => {
            let names: Vec<&str> = FACTS.iter().map(|(name, _)| *name).collect();
            let hint = suggest(variable, &names)
                .map(|close| format!(" (did you mean {{{close}}}?)"))
                .unwrap_or_default();
            format!(
                "`{{{variable}}}` is not a variable{hint}; a proxy can fill in: {}",
                names
                    .iter()
                    .map(|n| format!("{{{n}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    diagnostics.error(loc, path, message);
    None
}
