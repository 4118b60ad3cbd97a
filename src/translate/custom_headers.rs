//! A backend service's custom request and response headers → Envoy header options: literal
//! text with `%` escaped, and each connection fact as the Envoy substitution that writes it.
//! Added headers replace what the client sent under the same name, so that a client cannot
//! pass off its own value as the proxy's. The name a TLS client asked for is known to Envoy
//! only through the TLS inspector, which listeners get when a service writes that name. Pure.

use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
};
use envoy_types::pb::envoy::config::listener::v3::{listener_filter, ListenerFilter};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;

use crate::model::{ConnectionFact, CustomHeader, HeaderValuePart, Model, RouteTable};

use super::to_any;

const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";

/// The Envoy substitution that writes `fact`.
pub fn substitution(fact: ConnectionFact) -> &'static str {
    match fact {
        ConnectionFact::ClientAddress => "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
        ConnectionFact::ClientPort => "%DOWNSTREAM_REMOTE_PORT%",
        // `true` over TLS, `false` otherwise: the connection has a TLS version only over TLS.
        ConnectionFact::ClientEncrypted => "%CEL(has(connection.tls_version))%",
        ConnectionFact::ClientProtocol => "%PROTOCOL%",
        ConnectionFact::ServerAddress => "%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%",
        ConnectionFact::ServerPort => "%DOWNSTREAM_LOCAL_PORT%",
        ConnectionFact::TlsServerName => "%REQUESTED_SERVER_NAME%",
        ConnectionFact::TlsVersion => "%DOWNSTREAM_TLS_VERSION%",
        ConnectionFact::TlsCipherSuite => "%DOWNSTREAM_TLS_CIPHER%",
        ConnectionFact::RequestOrigin => "%REQ(origin)%",
    }
}

/// `headers` as header options that replace a value the request or response already has.
pub fn header_options(headers: &[CustomHeader]) -> Vec<HeaderValueOption> {
    headers
        .iter()
        .map(|header| HeaderValueOption {
            header: Some(HeaderValue {
                key: header.name.clone(),
                value: header.value.iter().map(envoy_text).collect(),
                ..Default::default()
            }),
            append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
            ..Default::default()
        })
        .collect()
}

/// Whether a service `table` routes to writes the TLS server name (SNI) into a header.
pub fn needs_server_name(model: &Model, table: &RouteTable) -> bool {
    table
        .services()
        .into_iter()
        .filter_map(|name| model.services.get(name))
        .flat_map(|service| {
            let headers = &service.custom_headers;
            headers.request.iter().chain(&headers.response)
        })
        .flat_map(|header| &header.value)
        .any(|part| *part == HeaderValuePart::Fact(ConnectionFact::TlsServerName))
}

/// The listener filter that reads the server name from a TLS client's hello.
pub fn tls_inspector() -> ListenerFilter {
    ListenerFilter {
        name: TLS_INSPECTOR.to_string(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(to_any(
            &TlsInspector::default(),
        ))),
        ..Default::default()
    }
}

fn envoy_text(part: &HeaderValuePart) -> String {
    match part {
        HeaderValuePart::Text(text) => text.replace('%', "%%"),
        HeaderValuePart::Fact(fact) => substitution(*fact).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_facts_substituted() {
        let header = CustomHeader {
            name: "x-client".into(),
            value: vec![
                HeaderValuePart::Text("100% from ".into()),
                HeaderValuePart::Fact(ConnectionFact::ClientAddress),
            ],
        };
        let options = header_options(&[header]);
        assert_eq!(
            options[0].header.as_ref().unwrap().value,
            "100%% from %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"
        );
    }
}
