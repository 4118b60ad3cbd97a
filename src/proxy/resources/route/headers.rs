//! The header additions and removals every level of a route configuration can carry (the
//! configuration, a virtual host, a route, a weighted cluster), with Envoy's formatting
//! variables in values. Conversion only; the data plane applies them (proxy/rewrite.rs).

use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValueOption,
};
use http::{HeaderName, HeaderValue};

use super::super::{Fault, Problem};

/// Header additions and removals of one level (route configuration, virtual host, route or
/// weighted cluster), for requests and for responses.
#[derive(Clone, Debug, Default)]
pub struct HeaderChanges {
    pub request: HeaderEdits,
    pub response: HeaderEdits,
}

#[derive(Clone, Debug, Default)]
pub struct HeaderEdits {
    /// Removed before anything is added, as Envoy does.
    pub remove: Vec<HeaderName>,
    pub add: Vec<HeaderAddition>,
}

#[derive(Clone, Debug)]
pub struct HeaderAddition {
    pub name: HeaderName,
    pub value: HeaderText,
    pub mode: AddMode,
}

/// A header value: fixed, or with Envoy's connection variables filled in per request.
#[derive(Clone, Debug)]
pub enum HeaderText {
    Fixed(HeaderValue),
    Template(Vec<TextPart>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextPart {
    Literal(String),
    /// `%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%`: the address the client connected to.
    LocalAddress,
    /// `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`: the client's address.
    RemoteAddress,
    /// `%DOWNSTREAM_LOCAL_ADDRESS%`: the address and port the client connected to.
    LocalAddressWithPort,
    /// `%DOWNSTREAM_REMOTE_ADDRESS%`: the client's address and port (`10.0.0.9:5555`,
    /// `[2001:db8::9]:5555`).
    RemoteAddressWithPort,
    /// `%DOWNSTREAM_LOCAL_PORT%`: the port the client connected to.
    LocalPort,
    /// `%DOWNSTREAM_REMOTE_PORT%`: the client's port.
    RemotePort,
    /// `%PROTOCOL%`: the request's HTTP version as Envoy names it (`HTTP/1.1`, `HTTP/2`).
    Protocol,
    /// `%DOWNSTREAM_TLS_VERSION%`: `TLSv1.2` or `TLSv1.3`; nothing without TLS.
    TlsVersion,
    /// `%DOWNSTREAM_TLS_CIPHER%`: the suite's OpenSSL name; nothing without TLS.
    TlsCipher,
    /// `%REQUESTED_SERVER_NAME%`: the name the TLS client asked for (SNI), if any.
    ServerName,
    /// `%CEL(has(connection.tls_version))%`: `true` over TLS, `false` otherwise.
    Encrypted,
    /// `%REQ(name)%`: the request's header `name` (its first value), if it has one.
    RequestHeader(HeaderName),
}

/// The variables of Envoy's header formatting the sidecar fills in.
const VARIABLES: [(&str, TextPart); 11] = [
    (
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
        TextPart::LocalAddress,
    ),
    (
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
        TextPart::RemoteAddress,
    ),
    ("DOWNSTREAM_LOCAL_ADDRESS", TextPart::LocalAddressWithPort),
    ("DOWNSTREAM_REMOTE_ADDRESS", TextPart::RemoteAddressWithPort),
    ("DOWNSTREAM_LOCAL_PORT", TextPart::LocalPort),
    ("DOWNSTREAM_REMOTE_PORT", TextPart::RemotePort),
    ("PROTOCOL", TextPart::Protocol),
    ("DOWNSTREAM_TLS_VERSION", TextPart::TlsVersion),
    ("DOWNSTREAM_TLS_CIPHER", TextPart::TlsCipher),
    ("REQUESTED_SERVER_NAME", TextPart::ServerName),
    (ENCRYPTED_EXPRESSION, TextPart::Encrypted),
];

/// The one CEL expression the sidecar evaluates: whether the connection is over TLS.
const ENCRYPTED_EXPRESSION: &str = "CEL(has(connection.tls_version))";

/// The variables the sidecar fills in, as a header value writes them (for refusals).
pub(crate) fn known_variables() -> String {
    let mut known: Vec<String> = VARIABLES
        .iter()
        .map(|(known, _)| format!("%{known}%"))
        .collect();
    known.push("%REQ(header-name)%".into());
    known.join(", ")
}

/// The variable named `name` (what stands between the `%`s), if the sidecar knows it.
fn variable(name: &str) -> Option<TextPart> {
    if let Some((_, part)) = VARIABLES.iter().find(|(known, _)| *known == name) {
        return Some(part.clone());
    }
    let header = name.strip_prefix("REQ(")?.strip_suffix(')')?;
    HeaderName::from_bytes(header.to_ascii_lowercase().as_bytes())
        .ok()
        .map(TextPart::RequestHeader)
}

/// A header value as Envoy reads it: `%%` is a percent sign, `%NAME%` a variable (only the
/// connection's addresses and ports are known here; any other is refused by name).
fn header_text(value: &str) -> Result<HeaderText, Problem> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = value;
    while let Some(start) = rest.find('%') {
        literal.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(tail) = after.strip_prefix('%') {
            literal.push('%');
            rest = tail;
            continue;
        }
        let Some(end) = after.find('%') else {
            return Err(Problem::UnterminatedVariable {
                value: value.to_string(),
            });
        };
        let name = &after[..end];
        let Some(part) = variable(name) else {
            return Err(Problem::UnknownVariable {
                value: value.to_string(),
                variable: name.to_string(),
            });
        };
        if !literal.is_empty() {
            parts.push(TextPart::Literal(std::mem::take(&mut literal)));
        }
        parts.push(part);
        rest = &after[end + 1..];
    }
    literal.push_str(rest);
    let fixed = HeaderValue::from_str(&literal).map_err(|_| Problem::NotValid {
        value: value.to_string(),
        expected: "a valid header value",
    })?;
    if parts.is_empty() {
        return Ok(HeaderText::Fixed(fixed));
    }
    if !literal.is_empty() {
        parts.push(TextPart::Literal(literal));
    }
    Ok(HeaderText::Template(parts))
}

/// Envoy's `append_action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddMode {
    /// Another value after any the header already has (the default).
    Append,
    AddIfAbsent,
    Overwrite,
    OverwriteIfExists,
}

impl HeaderEdits {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }

    /// Whether a value added here names a request header (`%REQ(…)%`): on a response, the
    /// request's headers must then be kept until the answer is written.
    pub fn reads_request(&self) -> bool {
        self.add.iter().any(|addition| {
            matches!(&addition.value, HeaderText::Template(parts)
                if parts.iter().any(|p| matches!(p, TextPart::RequestHeader(_))))
        })
    }
}

impl HeaderChanges {
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }
}

/// The header-mutation fields the sidecar applies, under `prefix` (empty: the top level).
pub fn header_change_fields(prefix: &str) -> Vec<String> {
    let at = |field: &str| {
        if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        }
    };
    let mut fields = Vec::new();
    for side in ["request", "response"] {
        for field in ["header.key", "header.value", "append", "append_action"] {
            fields.push(at(&format!("{side}_headers_to_add.{field}")));
        }
        fields.push(at(&format!("{side}_headers_to_remove")));
    }
    fields
}

/// The header changes of one level from its four lists; a fault names the list and index
/// (`request_headers_to_add[2]`).
pub fn header_changes(
    request_add: &[HeaderValueOption],
    request_remove: &[String],
    response_add: &[HeaderValueOption],
    response_remove: &[String],
) -> Result<HeaderChanges, Fault> {
    Ok(HeaderChanges {
        request: header_edits("request", request_add, request_remove)?,
        response: header_edits("response", response_add, response_remove)?,
    })
}

/// The edits of one side (`request` or `response`).
fn header_edits(
    side: &str,
    add: &[HeaderValueOption],
    remove: &[String],
) -> Result<HeaderEdits, Fault> {
    let mut edits = HeaderEdits::default();
    for (i, name) in remove.iter().enumerate() {
        edits.remove.push(
            modifiable_name(name)
                .map_err(|p| Fault::at(format!("{side}_headers_to_remove[{i}]"), p))?,
        );
    }
    for (i, option) in add.iter().enumerate() {
        let addition = header_addition(option)
            .map_err(|p| Fault::at(format!("{side}_headers_to_add[{i}]"), p))?;
        if let Some(addition) = addition {
            edits.add.push(addition);
        }
    }
    Ok(edits)
}

/// One header to add; None for an empty value, which Envoy does not add.
fn header_addition(option: &HeaderValueOption) -> Result<Option<HeaderAddition>, Problem> {
    let Some(header) = &option.header else {
        return Err(Problem::Missing { what: "a header" });
    };
    let name = modifiable_name(&header.key)?;
    if header.value.is_empty() {
        return Ok(None);
    }
    let value = header_text(&header.value)?;
    #[allow(deprecated)]
    let mode = match option.append.as_ref().map(|a| a.value) {
        Some(true) => AddMode::Append,
        Some(false) => AddMode::Overwrite,
        None => match HeaderAppendAction::try_from(option.append_action) {
            Ok(HeaderAppendAction::AppendIfExistsOrAdd) => AddMode::Append,
            Ok(HeaderAppendAction::AddIfAbsent) => AddMode::AddIfAbsent,
            Ok(HeaderAppendAction::OverwriteIfExistsOrAdd) => AddMode::Overwrite,
            Ok(HeaderAppendAction::OverwriteIfExists) => AddMode::OverwriteIfExists,
            Err(_) => {
                return Err(Problem::UnknownCode {
                    field: "append_action",
                    value: option.append_action,
                })
            }
        },
    };
    Ok(Some(HeaderAddition { name, value, mode }))
}

/// A header name a route may change: not a pseudo-header, not Host (as in Envoy).
fn modifiable_name(name: &str) -> Result<HeaderName, Problem> {
    if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
        return Err(Problem::ProtectedHeader {
            name: name.to_string(),
        });
    }
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| Problem::NotValid {
        value: name.to_string(),
        expected: "a valid header name",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::HeaderValue as XdsHeaderValue;

    fn option(key: &str, value: &str) -> HeaderValueOption {
        HeaderValueOption {
            header: Some(XdsHeaderValue {
                key: key.into(),
                value: value.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn header_edits_the_sidecar_cannot_apply_are_refused_by_position() {
        let refused = |add: HeaderValueOption, remove: &[&str]| {
            let remove: Vec<String> = remove.iter().map(|r| r.to_string()).collect();
            header_changes(&[add], &remove, &[], &[]).unwrap_err()
        };
        assert_eq!(
            refused(option("x-client", "%DOWNSTREAM_PEER_URI_SAN%"), &[]),
            Fault::at(
                "request_headers_to_add[0]",
                Problem::UnknownVariable {
                    value: "%DOWNSTREAM_PEER_URI_SAN%".into(),
                    variable: "DOWNSTREAM_PEER_URI_SAN".into()
                }
            )
        );
        assert_eq!(
            refused(option(":path", "/x"), &[]).problem,
            Problem::ProtectedHeader {
                name: ":path".into()
            }
        );
        assert_eq!(
            refused(option("x-ok", "1"), &["host"]),
            Fault::at(
                "request_headers_to_remove[0]",
                Problem::ProtectedHeader {
                    name: "host".into()
                }
            )
        );
        let kept = header_changes(
            &[option("x-pct", "100%%"), option("x-empty", "")],
            &[],
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(kept.request.add.len(), 1, "an empty value is not added");
        assert!(matches!(&kept.request.add[0].value, HeaderText::Fixed(v) if v == "100%"));
        let template = header_text("by %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%").unwrap();
        assert!(matches!(template, HeaderText::Template(parts)
            if parts == [TextPart::Literal("by ".into()), TextPart::LocalAddress]));
        assert_eq!(
            refused(option("x-client", "50%"), &[]).problem,
            Problem::UnterminatedVariable {
                value: "50%".into()
            }
        );
        assert_eq!(kept.request.add[0].mode, AddMode::Append);
    }
}
