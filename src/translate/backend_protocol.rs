//! How a cluster speaks to its backends, from the backend service's protocol: HTTP/1.1 or
//! HTTP/2 (H2C and GRPC in cleartext, HTTP2 over TLS as the cloud speaks it), and TLS for
//! HTTPS, HTTP2 and SSL. As the cloud does unless told otherwise, the backend's certificate is
//! not verified; HTTP clusters send the request's host as SNI. Pure.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{
    transport_socket::ConfigType, Http1ProtocolOptions, Http2ProtocolOptions, TransportSocket,
    UpstreamHttpProtocolOptions,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, UpstreamTlsContext,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{
        explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
    },
    HttpProtocolOptions,
};

use crate::model::{BackendProtocol, BackendService};

use super::secrets::TLS_TRANSPORT_SOCKET;
use super::to_any;

/// The key Envoy reads a cluster's HTTP protocol options under.
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Sets the protocol options and transport socket `service`'s protocol asks for.
pub fn apply(service: &BackendService, cluster: &mut Cluster) {
    let protocol = service.protocol;
    let tls = protocol.uses_tls();
    let config = if protocol.is_http2() {
        Some(ProtocolConfig::Http2ProtocolOptions(
            Http2ProtocolOptions::default(),
        ))
    } else if tls && protocol.is_http() {
        Some(ProtocolConfig::HttpProtocolOptions(
            Http1ProtocolOptions::default(),
        ))
    } else {
        None
    };
    if let Some(config) = config {
        let options = HttpProtocolOptions {
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(config),
                },
            )),
            // Over TLS the backend learns which host was asked for, as behind the cloud.
            upstream_http_protocol_options: tls.then(|| UpstreamHttpProtocolOptions {
                auto_sni: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        cluster.typed_extension_protocol_options =
            HashMap::from([(HTTP_PROTOCOL_OPTIONS.to_string(), to_any(&options))]);
    }
    if tls {
        cluster.transport_socket = Some(upstream_tls(protocol));
    }
}

/// TLS to the backends, offering by ALPN the HTTP version the protocol names.
fn upstream_tls(protocol: BackendProtocol) -> TransportSocket {
    let alpn = match protocol {
        BackendProtocol::Http2 => vec!["h2".to_string()],
        BackendProtocol::Https => vec!["http/1.1".to_string()],
        _ => Vec::new(),
    };
    let context = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            alpn_protocols: alpn,
            ..Default::default()
        }),
        ..Default::default()
    };
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.to_string(),
        config_type: Some(ConfigType::TypedConfig(to_any(&context))),
    }
}
