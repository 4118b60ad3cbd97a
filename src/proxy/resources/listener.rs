//! Listener → where the sidecar listens and what it runs there: an HTTP connection manager
//! taking its routes over RDS, or a TCP proxy to one cluster.

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::listener::v3::{filter, Listener as XdsListener};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{RouteSpecifier, StripPortMode},
    http_filter, HttpConnectionManager,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{tcp_proxy, TcpProxy};
use prost::Name;

use super::{decode_checked, duration, socket_address, Unsupported};
use crate::xds::types::TypeUrl;

pub const HTTP_CONNECTION_MANAGER: &str = "envoy.filters.network.http_connection_manager";
pub const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";
const ROUTER: &str = "envoy.filters.http.router";

/// A listener as the sidecar runs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    pub name: String,
    /// The main address first, then the additional ones (dual stack).
    pub addresses: Vec<SocketAddr>,
    pub freebind: bool,
    pub kind: ListenerKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ListenerKind {
    Http(HttpManager),
    Tcp(TcpForward),
}

/// What an HTTP connection manager asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpManager {
    pub stat_prefix: String,
    /// The RouteConfiguration it takes over RDS.
    pub route_name: String,
    /// Host ports are stripped before host matching.
    pub strip_any_host_port: bool,
    pub use_remote_address: bool,
    pub xff_num_trusted_hops: u32,
    pub via: Option<String>,
    /// `upgrade_configs` names `websocket`: upgrade requests become tunnels to the backend.
    pub websocket: bool,
}

/// Connections go to one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpForward {
    pub cluster: String,
    pub idle_timeout: Option<Duration>,
    /// Pick the endpoint by the client's address (for hash-based balancers).
    pub hash_source_ip: bool,
}

pub(super) const LISTENER_FIELDS: &[&str] = &[
    "name",
    "address.socket_address.address",
    "address.socket_address.port_value",
    "additional_addresses.address.socket_address.address",
    "additional_addresses.address.socket_address.port_value",
    "freebind",
    "filter_chains.filters.name",
    "filter_chains.filters.typed_config",
    "traffic_direction",
    "stat_prefix",
];

pub(super) const MANAGER_FIELDS: &[&str] = &[
    "codec_type",
    "stat_prefix",
    "rds.config_source.ads",
    "rds.config_source.resource_api_version",
    "rds.route_config_name",
    "http_filters.name",
    "http_filters.typed_config",
    "strip_any_host_port",
    "use_remote_address",
    "xff_num_trusted_hops",
    "via",
    "upgrade_configs.upgrade_type",
];

pub(super) const ROUTER_FIELDS: &[&str] = &["dynamic_stats"];

pub(super) const TCP_FIELDS: &[&str] = &[
    "stat_prefix",
    "cluster",
    "idle_timeout",
    "hash_policy.source_ip",
];

/// Converts one Listener resource.
pub fn convert(name: &str, bytes: &[u8]) -> Result<Listener, Unsupported> {
    let listener: XdsListener = decode_checked(TypeUrl::Listener, name, bytes, LISTENER_FIELDS)?;
    let fail = |reason: String| Unsupported {
        type_url: TypeUrl::Listener,
        name: name.to_string(),
        reason,
    };
    let mut addresses =
        vec![socket_address(listener.address.as_ref()).map_err(|e| fail(format!("address: {e}")))?];
    for (index, extra) in listener.additional_addresses.iter().enumerate() {
        addresses.push(
            socket_address(extra.address.as_ref())
                .map_err(|e| fail(format!("additional_addresses[{index}]: {e}")))?,
        );
    }
    let [chain] = listener.filter_chains.as_slice() else {
        return Err(fail(format!(
            "has {} filter chains; the sidecar runs listeners with exactly one",
            listener.filter_chains.len()
        )));
    };
    let [network_filter] = chain.filters.as_slice() else {
        return Err(fail(format!(
            "filter_chains[0] has {} filters; the sidecar runs one (an HTTP connection manager or a TCP proxy)",
            chain.filters.len()
        )));
    };
    let Some(filter::ConfigType::TypedConfig(config)) = &network_filter.config_type else {
        return Err(fail(
            "filter_chains[0].filters[0] has no typed_config".into(),
        ));
    };
    let kind = if config.type_url == HttpConnectionManager::type_url() {
        ListenerKind::Http(http_manager(name, &config.value)?)
    } else if config.type_url == TcpProxy::type_url() {
        ListenerKind::Tcp(tcp_forward(name, &config.value)?)
    } else {
        return Err(fail(format!(
            "filter_chains[0].filters[0]: the filter {} ({}) is not supported; the sidecar runs {HTTP_CONNECTION_MANAGER} and {TCP_PROXY}",
            network_filter.name, config.type_url
        )));
    };
    Ok(Listener {
        name: name.to_string(),
        addresses,
        freebind: listener.freebind.is_some_and(|f| f.value),
        kind,
    })
}

fn http_manager(name: &str, bytes: &[u8]) -> Result<HttpManager, Unsupported> {
    let prefix = "filter_chains[0].filters[0].typed_config (HttpConnectionManager)";
    let manager: HttpConnectionManager =
        decode_checked(TypeUrl::Listener, name, bytes, MANAGER_FIELDS).map_err(|mut e| {
            e.reason = format!("{prefix}: {}", e.reason);
            e
        })?;
    let fail = |reason: String| Unsupported {
        type_url: TypeUrl::Listener,
        name: name.to_string(),
        reason: format!("{prefix}: {reason}"),
    };
    let Some(RouteSpecifier::Rds(rds)) = &manager.route_specifier else {
        return Err(fail(
            "routes must come over RDS (rds.route_config_name)".into(),
        ));
    };
    for (index, http_filter) in manager.http_filters.iter().enumerate() {
        if http_filter.name != ROUTER {
            return Err(fail(format!(
                "http_filters[{index}]: the HTTP filter {} is not supported; the sidecar runs {ROUTER} only",
                http_filter.name
            )));
        }
        if let Some(http_filter::ConfigType::TypedConfig(config)) = &http_filter.config_type {
            router_config(name, config).map_err(|mut e| {
                e.reason = format!(
                    "{prefix}: http_filters[{index}].typed_config (Router): {}",
                    e.reason
                );
                e
            })?;
        }
    }
    let mut websocket = false;
    for (index, upgrade) in manager.upgrade_configs.iter().enumerate() {
        if !upgrade.upgrade_type.eq_ignore_ascii_case("websocket") {
            return Err(fail(format!(
                "upgrade_configs[{index}].upgrade_type: `{}` is not supported; the sidecar upgrades to websocket only",
                upgrade.upgrade_type
            )));
        }
        websocket = true;
    }
    Ok(HttpManager {
        websocket,
        stat_prefix: manager.stat_prefix.clone(),
        route_name: rds.route_config_name.clone(),
        strip_any_host_port: matches!(
            manager.strip_port_mode,
            Some(StripPortMode::StripAnyHostPort(true))
        ),
        use_remote_address: manager.use_remote_address.is_some_and(|v| v.value),
        xff_num_trusted_hops: manager.xff_num_trusted_hops,
        via: Some(manager.via.clone()).filter(|v| !v.is_empty()),
    })
}

/// The router filter's own config: nothing in it changes what the sidecar does, so only
/// `dynamic_stats` (statistics the sidecar does not keep) is accepted.
fn router_config(
    name: &str,
    config: &envoy_types::pb::google::protobuf::Any,
) -> Result<(), Unsupported> {
    if config.type_url != Router::type_url() {
        return Err(Unsupported {
            type_url: TypeUrl::Listener,
            name: name.to_string(),
            reason: format!("the type {} is not the router's", config.type_url),
        });
    }
    decode_checked::<Router>(TypeUrl::Listener, name, &config.value, ROUTER_FIELDS).map(drop)
}

fn tcp_forward(name: &str, bytes: &[u8]) -> Result<TcpForward, Unsupported> {
    let prefix = "filter_chains[0].filters[0].typed_config (TcpProxy)";
    let proxy: TcpProxy =
        decode_checked(TypeUrl::Listener, name, bytes, TCP_FIELDS).map_err(|mut e| {
            e.reason = format!("{prefix}: {}", e.reason);
            e
        })?;
    let Some(tcp_proxy::ClusterSpecifier::Cluster(cluster)) = proxy.cluster_specifier else {
        return Err(Unsupported {
            type_url: TypeUrl::Listener,
            name: name.to_string(),
            reason: format!("{prefix}: a cluster is required"),
        });
    };
    Ok(TcpForward {
        cluster,
        idle_timeout: proxy.idle_timeout.as_ref().map(duration),
        hash_source_ip: !proxy.hash_policy.is_empty(),
    })
}
