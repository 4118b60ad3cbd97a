//! Forwarding rule (→ target HTTP proxy → URL map) → Listener with an HTTP connection manager
//! that gets its routes over RDS.

use envoy_types::pb::envoy::config::core::v3::{
    address, socket_address::PortSpecifier, Address, SocketAddress,
};
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{CodecType, RouteSpecifier, StripPortMode},
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};

use crate::model::{ForwardingRule, Model};

use super::{ads_config_source, to_any};

pub const HTTP_CONNECTION_MANAGER: &str = "envoy.filters.network.http_connection_manager";
pub const ROUTER: &str = "envoy.filters.http.router";

/// One listener per forwarding rule whose target proxy and URL map exist.
pub fn listeners_for(model: &Model) -> Vec<Listener> {
    model
        .forwarding_rules
        .values()
        .filter_map(|rule| {
            let proxy = model.target_proxies.get(&rule.target.name)?;
            let url_map = model.url_maps.get(&proxy.url_map.name)?;
            Some(listener_for(rule, &url_map.name))
        })
        .collect()
}

/// The listener of one forwarding rule, routing with the RouteConfiguration `route_name`.
pub fn listener_for(rule: &ForwardingRule, route_name: &str) -> Listener {
    let manager = HttpConnectionManager {
        codec_type: CodecType::Auto as i32,
        stat_prefix: rule.name.clone(),
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
        // Host rules name hosts without ports, as the cloud matches them.
        strip_port_mode: Some(StripPortMode::StripAnyHostPort(true)),
        ..Default::default()
    };
    Listener {
        name: rule.name.clone(),
        address: Some(socket_address(rule.ip_address, rule.port)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: HTTP_CONNECTION_MANAGER.to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(to_any(&manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn socket_address(ip: std::net::IpAddr, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}
