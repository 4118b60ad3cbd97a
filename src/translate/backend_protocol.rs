//! How a cluster speaks to its backends, from the backend service's protocol: HTTP/1.1 or
//! HTTP/2 (H2C and GRPC in cleartext, HTTP2 over TLS as the cloud speaks it), a 600 s idle
//! timeout on connections to backends and circuitBreakers.maxRequestsPerConnection, and TLS for
//! HTTPS, HTTP2 and SSL. As the cloud does unless told otherwise, the backend's certificate is
//! not verified; HTTP clusters send the request's host as SNI. A PROXY protocol v1 line goes
//! first when a TCP or SSL proxy's proxyHeader asks for it. Pure.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{
    proxy_protocol_config, transport_socket::ConfigType, Http1ProtocolOptions,
    Http2ProtocolOptions, HttpProtocolOptions as HttpProtocolOptionsCommon, ProxyProtocolConfig,
    TransportSocket, UpstreamHttpProtocolOptions,
};
use envoy_types::pb::envoy::extensions::transport_sockets::proxy_protocol::v3::ProxyProtocolUpstreamTransport;
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, UpstreamTlsContext,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{
        explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
    },
    HttpProtocolOptions,
};

use envoy_types::pb::google::protobuf::UInt32Value;

use crate::model::{BackendProtocol, Service};

use super::secrets::TLS_TRANSPORT_SOCKET;
use super::{seconds, to_any};

/// The key Envoy reads a cluster's HTTP protocol options under.
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// How long a connection to a backend may stay idle before the proxy closes it (004).
pub const BACKEND_IDLE_TIMEOUT_SEC: u64 = 600;

const RAW_BUFFER: &str = "envoy.transport_sockets.raw_buffer";
const UPSTREAM_PROXY_PROTOCOL: &str = "envoy.transport_sockets.upstream_proxy_protocol";

/// Sets the protocol options and transport socket `service`'s protocol asks for, with a PROXY
/// protocol line first when the proxies in front of it ask for one (`proxy_header_v1`).
pub fn apply(service: &Service, proxy_header_v1: bool, cluster: &mut Cluster) {
    let protocol = service.protocol;
    let tls = protocol.uses_tls();
    let config = if protocol.is_http2() {
        Some(ProtocolConfig::Http2ProtocolOptions(
            Http2ProtocolOptions::default(),
        ))
    } else if protocol.is_http() {
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
            // Connections to backends are kept alive and reused, and closed after the cloud's
            // documented 600 s without a request.
            common_http_protocol_options: Some(HttpProtocolOptionsCommon {
                idle_timeout: Some(seconds(BACKEND_IDLE_TIMEOUT_SEC)),
                // circuitBreakers.maxRequestsPerConnection: a connection is closed after that
                // many requests.
                max_requests_per_connection: service
                    .circuit_breakers
                    .as_ref()
                    .and_then(|breakers| breakers.max_requests_per_connection)
                    .map(|value| UInt32Value { value }),
                ..Default::default()
            }),
            ..Default::default()
        };
        cluster.typed_extension_protocol_options =
            HashMap::from([(HTTP_PROTOCOL_OPTIONS.to_string(), to_any(&options))]);
    }
    let socket = tls.then(|| upstream_tls(protocol));
    cluster.transport_socket = match proxy_header_v1 {
        true => Some(proxy_protocol_v1(socket)),
        false => socket,
    };
}

/// Writes a PROXY protocol version 1 line (the client's and the proxy's addresses) at the
/// start of every connection to a backend, before `inner` (TLS) or the raw bytes.
fn proxy_protocol_v1(inner: Option<TransportSocket>) -> TransportSocket {
    let inner = inner.unwrap_or_else(|| TransportSocket {
        name: RAW_BUFFER.to_string(),
        config_type: Some(ConfigType::TypedConfig(to_any(&RawBuffer {}))),
    });
    let upstream = ProxyProtocolUpstreamTransport {
        config: Some(ProxyProtocolConfig {
            version: proxy_protocol_config::Version::V1 as i32,
            ..Default::default()
        }),
        transport_socket: Some(inner),
        ..Default::default()
    };
    TransportSocket {
        name: UPSTREAM_PROXY_PROTOCOL.to_string(),
        config_type: Some(ConfigType::TypedConfig(to_any(&upstream))),
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
