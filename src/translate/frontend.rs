//! A URL map's frontend settings (`model::FrontendHttp`) for Envoy: connection limits and
//! dropped header names on the HTTP connection manager, X-Forwarded-For and the TLS headers
//! on the route configuration, and the Host: without its port (Envoy strips it), as sent, or
//! with the listener's port (a small Lua step, since Envoy lets nothing else set the Host from
//! the request's own). Pure. Must not: touch proxyless clients' resources (they forward no
//! X-Forwarded-For or Host of their own).

use envoy_types::pb::envoy::config::core::v3::{
    data_source, header_value_option::HeaderAppendAction,
    http_protocol_options::HeadersWithUnderscoresAction, DataSource, HeaderValue,
    HeaderValueOption, HttpProtocolOptions,
};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::http::lua::v3::Lua;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpConnectionManager, HttpFilter,
};
use envoy_types::pb::google::protobuf::BoolValue;

use crate::model::{ForwardedFor, ForwardedHost, FrontendHttp};

use super::{seconds, to_any};

/// The Lua filter that writes the listener's port into the Host.
pub const HOST_PORT_FILTER: &str = "switchyard.host_with_listener_port";

/// The connection manager's share: connection limits, dropped header names, whether Envoy
/// appends the client's address to X-Forwarded-For, and the Host's port.
pub fn apply_to_manager(frontend: &FrontendHttp, manager: &mut HttpConnectionManager) {
    let limits = HttpProtocolOptions {
        idle_timeout: frontend.idle_timeout_sec.map(|s| seconds(u64::from(s))),
        max_connection_duration: frontend
            .max_connection_duration_sec
            .map(|s| seconds(u64::from(s))),
        headers_with_underscores_action: if frontend.drop_underscore_headers {
            HeadersWithUnderscoresAction::DropHeader
        } else {
            HeadersWithUnderscoresAction::Allow
        } as i32,
        ..Default::default()
    };
    if limits != HttpProtocolOptions::default() {
        manager.common_http_protocol_options = Some(limits);
    }
    // A request is idle when neither side sends anything; on expiry Envoy answers 408 while
    // the request is still arriving and 504 once it waits for the response.
    manager.stream_idle_timeout = frontend.idle_timeout_sec.map(|s| seconds(u64::from(s)));
    // Envoy appends the client's address itself only when it is all that is wanted.
    manager.skip_xff_append = !matches!(
        frontend.forwarded_for,
        ForwardedFor::ClientThenProxy | ForwardedFor::Client { with_port: false }
    );
    match frontend.host {
        ForwardedHost::WithoutPort => {}
        ForwardedHost::AsSent => manager.strip_port_mode = None,
        ForwardedHost::WithPort(port) => manager.http_filters.insert(0, host_port_filter(port)),
    }
}

/// The route configuration's share: what it appends to or removes from X-Forwarded-For, and
/// the TLS headers (which overwrite any a client sent).
pub fn apply_to_routes(frontend: &FrontendHttp, configuration: &mut RouteConfiguration) {
    let appended = match frontend.forwarded_for {
        // After the client's address, which the connection manager appends: the address the
        // client reached, as the cloud's X-Forwarded-For ends with the load balancer's IP.
        ForwardedFor::ClientThenProxy => Some("%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%"),
        ForwardedFor::Client { with_port: true } => Some("%DOWNSTREAM_REMOTE_ADDRESS%"),
        ForwardedFor::Client { with_port: false } | ForwardedFor::AsSent => None,
        ForwardedFor::Removed => {
            configuration
                .request_headers_to_remove
                .push("x-forwarded-for".to_string());
            None
        }
    };
    if let Some(value) = appended {
        configuration.request_headers_to_add.push(header(
            "x-forwarded-for",
            value,
            HeaderAppendAction::AppendIfExistsOrAdd,
        ));
    }
    if let Some(tls) = &frontend.tls_headers {
        let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd;
        configuration.request_headers_to_add.extend([
            header(&tls.version, "%DOWNSTREAM_TLS_VERSION%", overwrite),
            header(&tls.cipher_suite, "%DOWNSTREAM_TLS_CIPHER%", overwrite),
        ]);
    }
}

fn header(name: &str, value: &str, action: HeaderAppendAction) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_string(),
            value: value.to_string(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    }
}

/// A Lua filter appending `:port` to the Host, which the connection manager has stripped of
/// any port the client wrote.
fn host_port_filter(port: u16) -> HttpFilter {
    let script = format!(
        r#"function envoy_on_request(handle)
  local headers = handle:headers()
  local host = headers:get(":authority")
  if host ~= nil and host ~= "" then headers:replace(":authority", host .. ":{port}") end
end
"#
    );
    let lua = Lua {
        default_source_code: Some(DataSource {
            specifier: Some(data_source::Specifier::InlineString(script)),
            ..Default::default()
        }),
        stat_prefix: "host_with_listener_port".to_string(),
        // The route was chosen on the host as the client wrote it.
        clear_route_cache: Some(BoolValue { value: false }),
        ..Default::default()
    };
    HttpFilter {
        name: HOST_PORT_FILTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(to_any(&lua))),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::listeners::http_connection_manager;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::StripPortMode;

    /// Whether the manager keeps the port Envoy would strip.
    fn keeps_host_port(manager: &HttpConnectionManager) -> bool {
        !matches!(
            manager.strip_port_mode,
            Some(StripPortMode::StripAnyHostPort(true))
        )
    }

    #[test]
    fn the_default_changes_nothing_envoy_is_given() {
        let mut manager = http_connection_manager("l", "r");
        let before = manager.clone();
        apply_to_manager(&FrontendHttp::default(), &mut manager);
        assert_eq!(manager, before);
        let mut routes = RouteConfiguration::default();
        apply_to_routes(&FrontendHttp::default(), &mut routes);
        assert_eq!(
            routes.request_headers_to_add.len(),
            1,
            "the proxy's address"
        );
    }

    #[test]
    fn each_setting_reaches_its_field() {
        let frontend = FrontendHttp {
            idle_timeout_sec: Some(5),
            max_connection_duration_sec: Some(120),
            drop_underscore_headers: true,
            forwarded_for: ForwardedFor::Removed,
            host: ForwardedHost::AsSent,
            tls_headers: None,
        };
        let mut manager = http_connection_manager("l", "r");
        apply_to_manager(&frontend, &mut manager);
        let options = manager.common_http_protocol_options.unwrap();
        assert_eq!(options.idle_timeout, Some(seconds(5)));
        assert_eq!(options.max_connection_duration, Some(seconds(120)));
        assert_eq!(
            options.headers_with_underscores_action,
            HeadersWithUnderscoresAction::DropHeader as i32
        );
        assert_eq!(manager.stream_idle_timeout, Some(seconds(5)));
        assert!(manager.skip_xff_append && keeps_host_port(&manager));
        let mut routes = RouteConfiguration::default();
        apply_to_routes(&frontend, &mut routes);
        assert_eq!(routes.request_headers_to_remove, ["x-forwarded-for"]);
        assert!(routes.request_headers_to_add.is_empty());
        let mut manager = http_connection_manager("l", "r");
        apply_to_manager(
            &FrontendHttp {
                host: ForwardedHost::WithPort(8443),
                ..Default::default()
            },
            &mut manager,
        );
        assert_eq!(manager.http_filters[0].name, HOST_PORT_FILTER);
        assert!(!keeps_host_port(&manager));
    }
}
