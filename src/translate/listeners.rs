//! Frontend → Listener: an HTTP connection manager that gets its routes over RDS (and, with
//! TLS, terminates it with certificates it gets over SDS), or a TCP proxy to one service.

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::config::core::v3::{
    address, socket_address::PortSpecifier, Address, SocketAddress,
};
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{CodecType, RouteSpecifier, StripPortMode, UpgradeConfig},
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};

use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{tcp_proxy, TcpProxy};
use envoy_types::pb::google::protobuf::{Any, BoolValue};

use crate::model::{Frontend, Handler, Model, RouteTable, Service};

use super::access_logs::{access_logs_for, tcp_access_logs_for};
use super::affinity::tcp_hash_policies;
use super::route_policies::http_filters_for;
use super::secrets::downstream_tls;
use super::{ads_config_source, duration, to_any};

pub const HTTP_CONNECTION_MANAGER: &str = "envoy.filters.network.http_connection_manager";
pub const ROUTER: &str = "envoy.filters.http.router";
pub const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";

/// An HTTP connection manager that takes its routes over RDS (ADS) from `route_name`, with
/// the router filter (proxyless gRPC clients reject a manager without one).
pub fn http_connection_manager(stat_prefix: &str, route_name: &str) -> HttpConnectionManager {
    HttpConnectionManager {
        codec_type: CodecType::Auto as i32,
        stat_prefix: stat_prefix.to_string(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route_name.to_string(),
        })),
        http_filters: vec![HttpFilter {
            name: ROUTER.to_string(),
            config_type: Some(http_filter::ConfigType::TypedConfig(to_any(
                &Router::default(),
            ))),
            ..Default::default()
        }],
        // Virtual hosts name hosts without ports, as the clouds match them.
        strip_port_mode: Some(StripPortMode::StripAnyHostPort(true)),
        ..Default::default()
    }
}

/// One listener per frontend whose route table (or service) exists.
pub fn listeners_for(model: &Model) -> Vec<Listener> {
    model
        .frontends
        .values()
        .filter_map(|frontend| match &frontend.handler {
            Handler::Http { route_table } => {
                let table = model.route_tables.get(&route_table.name)?;
                let logs = access_logs_for(model, table);
                let sticky = Sticky {
                    cookies: super::proxyless::uses_sticky_cookies(model, table),
                    application_sessions: super::proxyless::uses_application_sessions(model, table),
                };
                let mut listener = http_listener_for(frontend, table, logs, sticky);
                if let Some(tls) = &frontend.tls {
                    listener.filter_chains[0].transport_socket = Some(downstream_tls(tls, true));
                    if super::custom_headers::needs_server_name(model, table) {
                        listener.listener_filters = vec![super::custom_headers::tls_inspector()];
                    }
                }
                Some(listener)
            }
            Handler::Tcp { service, .. } => {
                let service = model.services.get(&service.name)?;
                let mut listener = tcp_listener_for(frontend, service);
                // TLS first, then the bytes as a TCP proxy sends them.
                if let Some(tls) = &frontend.tls {
                    listener.filter_chains[0].transport_socket = Some(downstream_tls(tls, false));
                }
                Some(listener)
            }
        })
        .collect()
}

/// The listener of a TCP frontend: connections go to the service's cluster, closed after the
/// service's timeout without traffic, and logged when the service logs.
pub fn tcp_listener_for(frontend: &Frontend, service: &Service) -> Listener {
    let proxy = TcpProxy {
        stat_prefix: frontend.name.clone(),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(service.name.clone())),
        idle_timeout: Some(duration(service.timeout)),
        hash_policy: tcp_hash_policies(service),
        access_log: tcp_access_logs_for(service),
        ..Default::default()
    };
    listener_with(frontend, TCP_PROXY, to_any(&proxy))
}

fn listener_with(frontend: &Frontend, filter_name: &str, config: Any) -> Listener {
    Listener {
        name: frontend.name.clone(),
        address: Some(socket_address(frontend.address, frontend.port)),
        freebind: frontend.freebind.then_some(BoolValue { value: true }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: filter_name.to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(config)),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Which sticky-session filters a listener needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sticky {
    /// A service it routes to is sticky: the stateful-session filter.
    pub cookies: bool,
    /// A sticky service follows the application's cookie: the Lua step before it.
    pub application_sessions: bool,
}

/// The listener of an HTTP frontend, routing with the RouteConfiguration of `table` (with the
/// CORS and fault filters its routes use, the access logs of its logged services, and the
/// stateful-session filter when a service it routes to is sticky, after the
/// application-cookie step when one follows the application's), and the table's frontend
/// settings. It appends the client's address to X-Forwarded-For (the route configuration may
/// append the proxy's own after it), sets X-Forwarded-Proto to the scheme the client used, adds
/// `Via: 1.1 <proxy>` to requests and responses, and passes WebSocket upgrades through.
pub fn http_listener_for(
    frontend: &Frontend,
    table: &RouteTable,
    access_log: Vec<AccessLog>,
    sticky: Sticky,
) -> Listener {
    let proxy_name = &frontend.proxy;
    let mut manager = http_connection_manager(&frontend.name, &table.name);
    manager.access_log = access_log;
    if super::source_address::uses_source_blocks(table) {
        manager.early_header_mutation_extensions =
            vec![super::source_address::source_address_mutation()];
    }
    if sticky.cookies {
        // Inactive until a route to a sticky service switches it on with its cookie.
        manager
            .http_filters
            .insert(0, super::affinity::stateful_session_filter());
    }
    if sticky.application_sessions {
        manager
            .http_filters
            .insert(0, super::application_cookie::application_cookie_filter());
    }
    let router = manager.http_filters.len() - 1;
    manager
        .http_filters
        .splice(router..router, http_filters_for(table, true));
    super::frontend::apply_to_manager(&table.frontend, &mut manager);
    manager.use_remote_address = Some(BoolValue { value: true });
    manager.via = format!("1.1 {proxy_name}");
    // The cloud's proxies pass WebSocket upgrades through without being asked to.
    manager.upgrade_configs = vec![UpgradeConfig {
        upgrade_type: "websocket".to_string(),
        ..Default::default()
    }];
    listener_with(frontend, HTTP_CONNECTION_MANAGER, to_any(&manager))
}

pub fn socket_address(ip: std::net::IpAddr, port: u16) -> Address {
    socket_address_named(&ip.to_string(), port)
}

/// An address given as text: an IP, or a name a DNS cluster resolves.
pub fn socket_address_named(host: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: host.to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}
