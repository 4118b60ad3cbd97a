//! The resources proxyless gRPC clients get in place of Envoy's listeners and routes.
//!
//! A client dialing `xds:///who.example:8080` asks LDS for the listener named exactly
//! `who.example:8080`. For each route table proxyless clients reach, the hosts of its virtual
//! hosts and the ports of the frontends they reach it through give those names (a port-less
//! host is served both bare and with each port). Each is an API listener whose HTTP connection
//! manager takes its routes over RDS from the table, rendered for proxyless clients.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;

use crate::model::{Model, RouteTable};

use super::affinity::{session_cookie, stateful_session_filter};
use super::listeners::http_connection_manager;
use super::route_policies::http_filters_for;
use super::routes::{proxyless_authorities, route_configuration_for, Audience};
use super::to_any;

/// Route table → the ports of the frontends through which proxyless clients reach it.
fn proxyless_tables(model: &Model) -> BTreeMap<&str, Vec<u16>> {
    let mut tables: BTreeMap<&str, BTreeSet<u16>> = BTreeMap::new();
    for routing in model.proxyless.values() {
        if !model.route_tables.contains_key(&routing.route_table.name) {
            continue;
        }
        tables
            .entry(&routing.route_table.name)
            .or_default()
            .extend(&routing.ports);
    }
    tables
        .into_iter()
        .map(|(name, ports)| (name, ports.into_iter().collect()))
        .collect()
}

/// Whether any service of the table keeps sessions with a cookie.
fn uses_session_cookies(model: &Model, table: &RouteTable) -> bool {
    table
        .services()
        .into_iter()
        .filter_map(|name| model.services.get(name))
        .any(|service| session_cookie(service).is_some())
}

/// Whether any service of the table has proxies issue a sticky cookie.
pub fn uses_sticky_cookies(model: &Model, table: &RouteTable) -> bool {
    table
        .services()
        .into_iter()
        .filter_map(|name| model.services.get(name))
        .any(|service| service.sticky_cookie.is_some())
}

/// Whether any service of the table keeps its sticky cookie to the application's sessions.
pub fn uses_application_sessions(model: &Model, table: &RouteTable) -> bool {
    table
        .services()
        .into_iter()
        .filter_map(|name| model.services.get(name))
        .any(|service| super::application_cookie::application_session(service).is_some())
}

/// The route configurations of the tables proxyless clients reach.
pub fn proxyless_route_configurations_for(model: &Model) -> Vec<RouteConfiguration> {
    proxyless_tables(model)
        .iter()
        .map(|(name, ports)| {
            route_configuration_for(
                model,
                &model.route_tables[*name],
                Audience::Proxyless { ports },
            )
        })
        .collect()
}

/// One API listener per name a proxyless client may dial, sorted by name. When two tables
/// claim the same name, the first by table name serves it.
pub fn proxyless_listeners_for(model: &Model) -> Vec<Listener> {
    let mut listeners: BTreeMap<String, Listener> = BTreeMap::new();
    for (name, ports) in proxyless_tables(model) {
        let table = &model.route_tables[name];
        let hosts: Vec<String> = table
            .virtual_hosts
            .iter()
            .flat_map(|host| host.domains.clone())
            .collect();
        for authority in proxyless_authorities(&hosts, &ports) {
            if authority == "*" || listeners.contains_key(&authority) {
                continue;
            }
            let mut manager = http_connection_manager(&authority, &table.name);
            // gRPC clients apply fault injection (gRFC A33); they have no CORS filter.
            let router = manager.http_filters.len() - 1;
            manager
                .http_filters
                .splice(router..router, http_filters_for(table, false));
            if uses_session_cookies(model, table) {
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
