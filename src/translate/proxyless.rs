//! The resources proxyless gRPC clients get in place of Envoy's listeners and routes.
//!
//! A client dialing `xds:///who.example:8080` asks LDS for the listener named exactly
//! `who.example:8080`. For each target gRPC proxy, the hosts of its URL map's host rules and
//! the ports of the forwarding rules pointing at it give those names (a port-less host is
//! served both bare and with each port). Each is an API listener whose HTTP connection manager
//! takes its routes over RDS from the URL map, rendered for proxyless clients.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;

use crate::model::{Model, ProxyTarget};

use crate::model::references::services_of;

use super::affinity::{session_cookie, stateful_session_filter};
use super::listeners::http_connection_manager;
use super::route_policies::http_filters_for;
use super::routes::{proxyless_authorities, route_configuration_for, Audience};
use super::to_any;

/// URL map → the ports of the forwarding rules through which proxyless clients reach it.
fn proxyless_url_maps(model: &Model) -> BTreeMap<&str, Vec<u16>> {
    let mut url_maps: BTreeMap<&str, BTreeSet<u16>> = BTreeMap::new();
    for proxy in model.target_proxies.values() {
        let ProxyTarget::Grpc { url_map, .. } = &proxy.target else {
            continue;
        };
        if !model.url_maps.contains_key(&url_map.name) {
            continue;
        }
        let ports = model
            .forwarding_rules
            .values()
            .filter(|rule| rule.target.name == proxy.name)
            .map(|rule| rule.port);
        url_maps.entry(&url_map.name).or_default().extend(ports);
    }
    url_maps
        .into_iter()
        .map(|(name, ports)| (name, ports.into_iter().collect()))
        .collect()
}

/// Whether any service of the URL map keeps sessions with a cookie.
fn uses_session_cookies(model: &Model, url_map: &crate::model::UrlMap) -> bool {
    services_of(url_map)
        .into_iter()
        .filter_map(|name| model.backend_services.get(name))
        .any(|service| session_cookie(service).is_some())
}

/// Whether any service of the URL map has proxies issue a sticky cookie.
pub fn uses_sticky_cookies(model: &Model, url_map: &crate::model::UrlMap) -> bool {
    services_of(url_map)
        .into_iter()
        .filter_map(|name| model.backend_services.get(name))
        .any(|service| service.sticky_cookie.is_some())
}

/// Whether any service of the URL map keeps its sticky cookie to the application's sessions.
pub fn uses_application_sessions(model: &Model, url_map: &crate::model::UrlMap) -> bool {
    services_of(url_map)
        .into_iter()
        .filter_map(|name| model.backend_services.get(name))
        .any(|service| super::application_cookie::application_session(service).is_some())
}

/// The route configurations of URL maps behind target gRPC proxies.
pub fn proxyless_route_configurations_for(model: &Model) -> Vec<RouteConfiguration> {
    proxyless_url_maps(model)
        .iter()
        .map(|(name, ports)| {
            route_configuration_for(model, &model.url_maps[*name], Audience::Proxyless { ports })
        })
        .collect()
}

/// One API listener per name a proxyless client may dial, sorted by name. When two URL maps
/// claim the same name, the first by URL map name serves it.
pub fn proxyless_listeners_for(model: &Model) -> Vec<Listener> {
    let mut listeners: BTreeMap<String, Listener> = BTreeMap::new();
    for (name, ports) in proxyless_url_maps(model) {
        let url_map = &model.url_maps[name];
        let hosts: Vec<String> = url_map
            .host_rules
            .iter()
            .flat_map(|r| r.hosts.clone())
            .collect();
        for authority in proxyless_authorities(&hosts, &ports) {
            if authority == "*" || listeners.contains_key(&authority) {
                continue;
            }
            let mut manager = http_connection_manager(&authority, &url_map.name);
            // gRPC clients apply fault injection (gRFC A33); they have no CORS filter.
            let router = manager.http_filters.len() - 1;
            manager
                .http_filters
                .splice(router..router, http_filters_for(url_map, false));
            if uses_session_cookies(model, url_map) {
                manager.http_filters.insert(0, stateful_session_filter());
            }
            let listener = Listener {
                name: authority.clone(),
                api_listener: Some(ApiListener {
                    api_listener: Some(to_any(&manager)),
                }),
                ..Default::default()
            };
            listeners.insert(authority, listener);
        }
    }
    listeners.into_values().collect()
}
