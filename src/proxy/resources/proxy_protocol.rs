//! A cluster's `envoy.transport_sockets.upstream_proxy_protocol` transport socket → which
//! PROXY protocol version goes first on each connection to a backend, and the transport socket
//! it wraps (TLS, or raw bytes). Pure: proxy/proxy_protocol.rs writes the header.
//!
//! Must not: read the wrapped socket's TLS settings (cluster.rs does, with tls.rs).

use envoy_types::pb::envoy::config::core::v3::{proxy_protocol_config, TransportSocket};
use envoy_types::pb::envoy::extensions::transport_sockets::proxy_protocol::v3::ProxyProtocolUpstreamTransport;

use super::{decode_checked, Fault, Problem};

/// The PROXY protocol header's form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyProtocolVersion {
    /// The human-readable line: `PROXY TCP4 <source> <destination> <ports>\r\n`.
    V1,
    /// The binary header.
    V2,
}

/// What the sidecar applies of a ProxyProtocolUpstreamTransport: the version, and the socket
/// it wraps. TLVs and unspecified addresses are refused by name.
pub(super) const FIELDS: &[&str] = &[
    "config.version",
    "transport_socket.name",
    "transport_socket.typed_config",
];

/// Reads a ProxyProtocolUpstreamTransport (encoded): the version and the wrapped socket (None:
/// raw bytes, as Envoy takes a missing one).
pub fn read(bytes: &[u8]) -> Result<(ProxyProtocolVersion, Option<TransportSocket>), Fault> {
    let upstream: ProxyProtocolUpstreamTransport = decode_checked(bytes, FIELDS)?;
    let code = upstream.config.as_ref().map_or(0, |config| config.version);
    let version = match proxy_protocol_config::Version::try_from(code) {
        Ok(proxy_protocol_config::Version::V1) => ProxyProtocolVersion::V1,
        Ok(proxy_protocol_config::Version::V2) => ProxyProtocolVersion::V2,
        Err(_) => {
            return Err(Fault::at(
                "config.version",
                Problem::UnknownCode {
                    field: "PROXY protocol version",
                    value: code,
                },
            ))
        }
    };
    Ok((version, upstream.transport_socket))
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::ProxyProtocolConfig;
    use prost::Message;

    fn encoded(version: proxy_protocol_config::Version, tlv_key: bool) -> Vec<u8> {
        ProxyProtocolUpstreamTransport {
            config: Some(ProxyProtocolConfig {
                version: version as i32,
                ..Default::default()
            }),
            tlv_as_pool_key: tlv_key,
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn both_versions_are_read_and_what_is_not_applied_is_refused_by_name() {
        let (version, inner) = read(&encoded(proxy_protocol_config::Version::V2, false)).unwrap();
        assert_eq!(version, ProxyProtocolVersion::V2);
        assert!(inner.is_none());
        let (version, _) = read(&encoded(proxy_protocol_config::Version::V1, false)).unwrap();
        assert_eq!(version, ProxyProtocolVersion::V1);
        assert_eq!(
            read(&encoded(proxy_protocol_config::Version::V1, true)).unwrap_err(),
            Fault::from(Problem::UnsupportedField {
                field: "tlv_as_pool_key".into()
            })
        );
    }
}
