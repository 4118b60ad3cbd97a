//! xDS resources → the sidecar's own typed config. Each converter takes one encoded resource,
//! refuses any field it does not implement (by path, so the NACK says which), and returns a
//! plain Rust value the data plane uses as is. Pure: no sockets, no clocks. A refusal is a
//! [`ResourceError`]: the resource, the path of the field at fault, and a [`Problem`] that
//! callers match and whose text is the NACK's.
//!
//! Must not: know the control plane; everything here is read from xDS resources.

pub mod access_log;
pub mod cluster;
pub mod cluster_policies;
pub mod dns_cluster;
pub mod early_mutation;
pub mod endpoint;
pub mod error;
pub mod fields;
pub mod filter_chain;
pub mod listener;
pub mod outlier_detection;
pub mod proxy_protocol;
pub mod route;
pub mod tls;

use prost::Message;

pub use error::{Fault, Problem, ResourceError};

/// Every field the sidecar NACKs, by message, as Markdown (docs/sidecar-nacked-fields.md is
/// this text; a unit test keeps the two equal).
pub fn nacked_fields_report() -> String {
    let route_fields = route::supported_fields();
    let route_fields: Vec<&str> = route_fields.iter().map(String::as_str).collect();
    let cluster_fields = cluster::fields();
    let messages: [(&str, &[&str]); 14] = [
        (
            "envoy.config.listener.v3.Listener",
            listener::LISTENER_FIELDS,
        ),
        (
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            listener::MANAGER_FIELDS,
        ),
        (
            "envoy.extensions.filters.http.router.v3.Router",
            listener::ROUTER_FIELDS,
        ),
        (
            "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            listener::TCP_FIELDS,
        ),
        ("envoy.config.route.v3.RouteConfiguration", &route_fields),
        ("envoy.config.cluster.v3.Cluster", &cluster_fields),
        (
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            cluster::HTTP_OPTIONS_FIELDS,
        ),
        (
            "envoy.config.endpoint.v3.ClusterLoadAssignment",
            endpoint::FIELDS,
        ),
        (
            "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            tls::DOWNSTREAM_FIELDS,
        ),
        (
            "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            tls::UPSTREAM_FIELDS,
        ),
        (
            "envoy.extensions.transport_sockets.tls.v3.Secret",
            tls::SECRET_FIELDS,
        ),
        (
            "envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport",
            proxy_protocol::FIELDS,
        ),
        (
            "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            access_log::SINK_FIELDS,
        ),
        (
            "envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
            access_log::EXPRESSION_FIELDS,
        ),
    ];
    let mut text = String::from(
        "# Fields the sidecar NACKs\n\n\
         Generated from the sidecar's converters (`src/proxy/resources/`): a resource that sets \
         any of these fields is NACKed with the field's path, and the previous config keeps \
         serving. A field listed here is refused with everything under it. Regenerate with \
         `SWITCHYARD_BLESS=1 cargo test --lib nacked_fields`.\n\n\
         Load reports: as Envoy does, the sidecar counts the requests it sends to each upstream \
         locality (issued, successful, errors, in progress) and reports them over LRS when its \
         bootstrap has `cluster_manager.load_stats_config`; a cluster's `lrs_server` is accepted \
         and, as in Envoy, is not what turns reporting on.\n",
    );
    let filter_messages = crate::proxy::filters::REGISTERED
        .iter()
        .flat_map(|r| r.messages.iter().copied());
    for (message, supported) in messages.into_iter().chain(filter_messages) {
        text.push_str(&format!("\n## {message}\n\n"));
        let refused = fields::unsupported_fields(message, supported);
        if refused.is_empty() {
            text.push_str("None: the sidecar applies every field.\n");
        }
        for path in refused {
            text.push_str(&format!("- `{path}`\n"));
        }
    }
    text
}

/// Decodes a resource of `M`, and checks that it sets nothing outside `supported`.
pub(crate) fn decode_checked<M: Message + Default + prost::Name>(
    bytes: &[u8],
    supported: &[&str],
) -> Result<M, Fault> {
    let message = M::decode(bytes).map_err(Problem::Undecodable)?;
    if let Some(field) = fields::first_unsupported_in(&M::type_url(), bytes, supported) {
        return Err(Problem::UnsupportedField { field }.into());
    }
    Ok(message)
}

/// A protobuf Duration as a std one (negative ones are zero).
pub fn duration(value: &envoy_types::pb::google::protobuf::Duration) -> std::time::Duration {
    std::time::Duration::new(value.seconds.max(0) as u64, value.nanos.max(0) as u32)
}

/// An IP socket address (the sidecar does not resolve names in resources).
fn socket_address(
    address: Option<&envoy_types::pb::envoy::config::core::v3::Address>,
) -> Result<std::net::SocketAddr, Problem> {
    use envoy_types::pb::envoy::config::core::v3::{address, socket_address::PortSpecifier};
    let Some(address::Address::SocketAddress(socket)) = address.and_then(|a| a.address.as_ref())
    else {
        return Err(Problem::Missing {
            what: "a socket address",
        });
    };
    let ip: std::net::IpAddr = socket.address.parse().map_err(|_| Problem::NotValid {
        value: socket.address.clone(),
        expected: "an IP address",
    })?;
    let Some(PortSpecifier::PortValue(port)) = socket.port_specifier else {
        return Err(Problem::Missing {
            what: "a port_value",
        });
    };
    let port = u16::try_from(port).map_err(|_| Problem::PortOutOfRange { port })?;
    Ok(std::net::SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_nacked_fields_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/sidecar-nacked-fields.md");
        let report = super::nacked_fields_report();
        if std::env::var_os("SWITCHYARD_BLESS").is_some() {
            std::fs::write(path, &report).unwrap();
        }
        let written = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            written == report,
            "{path} is stale; regenerate it with SWITCHYARD_BLESS=1 cargo test --lib nacked_fields"
        );
    }
}
