//! What xDS resources refer to: the route configurations and clusters a listener uses, the
//! certificates a listener terminates TLS with, the clusters a route configuration sends to. Read from the resources themselves, so it stays
//! true whatever the translation puts in them. Pure.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{filter, Listener};
use envoy_types::pb::envoy::config::route::v3::{route::Action, route_action, RouteConfiguration};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{tcp_proxy, TcpProxy};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

/// What one listener uses.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListenerReferences {
    /// Route configurations it takes over RDS.
    pub routes: BTreeSet<String>,
    /// Clusters it sends to directly (TCP proxies, inline route configurations).
    pub clusters: BTreeSet<String>,
    /// Secrets (certificates) its TLS filter chains take over SDS.
    pub secrets: BTreeSet<String>,
}

/// The route configurations and clusters `listener` refers to.
pub fn listener_references(listener: &Listener) -> ListenerReferences {
    let mut found = ListenerReferences::default();
    let chains = listener
        .filter_chains
        .iter()
        .chain(listener.default_filter_chain.as_ref());
    for chain in chains {
        for filter in &chain.filters {
            if let Some(filter::ConfigType::TypedConfig(config)) = &filter.config_type {
                add_filter_references(config, &mut found);
            }
        }
        if let Some(ConfigType::TypedConfig(config)) = chain
            .transport_socket
            .as_ref()
            .and_then(|socket| socket.config_type.as_ref())
        {
            add_secret_references(config, &mut found.secrets);
        }
    }
    if let Some(config) = listener
        .api_listener
        .as_ref()
        .and_then(|a| a.api_listener.as_ref())
    {
        add_filter_references(config, &mut found);
    }
    found
}

/// The certificates a downstream TLS context takes over SDS.
fn add_secret_references(config: &Any, secrets: &mut BTreeSet<String>) {
    if config.type_url != DownstreamTlsContext::type_url() {
        return;
    }
    let Ok(context) = DownstreamTlsContext::decode(config.value.as_slice()) else {
        return;
    };
    let sds = context
        .common_tls_context
        .into_iter()
        .flat_map(|common| common.tls_certificate_sds_secret_configs);
    secrets.extend(sds.map(|config| config.name));
}

fn add_filter_references(config: &Any, found: &mut ListenerReferences) {
    if config.type_url == HttpConnectionManager::type_url() {
        let Ok(manager) = HttpConnectionManager::decode(config.value.as_slice()) else {
            return;
        };
        match manager.route_specifier {
            Some(RouteSpecifier::Rds(rds)) => {
                found.routes.insert(rds.route_config_name);
            }
            Some(RouteSpecifier::RouteConfig(routes)) => {
                found.clusters.extend(route_clusters(&routes));
            }
            _ => {}
        }
    } else if config.type_url == TcpProxy::type_url() {
        let Ok(proxy) = TcpProxy::decode(config.value.as_slice()) else {
            return;
        };
        match proxy.cluster_specifier {
            Some(tcp_proxy::ClusterSpecifier::Cluster(name)) => {
                found.clusters.insert(name);
            }
            Some(tcp_proxy::ClusterSpecifier::WeightedClusters(weighted)) => {
                found
                    .clusters
                    .extend(weighted.clusters.into_iter().map(|c| c.name));
            }
            None => {}
        }
    }
}

/// Every cluster a route configuration sends requests (or mirrored copies) to.
pub fn route_clusters(routes: &RouteConfiguration) -> BTreeSet<String> {
    let mut clusters = BTreeSet::new();
    let actions = routes
        .virtual_hosts
        .iter()
        .flat_map(|host| &host.routes)
        .filter_map(|route| match &route.action {
            Some(Action::Route(action)) => Some(action),
            _ => None,
        });
    for action in actions {
        match &action.cluster_specifier {
            Some(route_action::ClusterSpecifier::Cluster(name)) => {
                clusters.insert(name.clone());
            }
            Some(route_action::ClusterSpecifier::WeightedClusters(weighted)) => {
                clusters.extend(weighted.clusters.iter().map(|c| c.name.clone()));
            }
            _ => {}
        }
        clusters.extend(
            action
                .request_mirror_policies
                .iter()
                .map(|m| m.cluster.clone()),
        );
    }
    clusters
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use crate::translate::translate;

    #[test]
    fn listeners_lead_to_their_routes_and_routes_to_their_clusters() {
        let loaded = load_str(
            include_str!("../../examples/quickstart.yaml"),
            "quickstart.yaml",
        );
        let model = loaded.accepted().expect("the quickstart is valid");
        let resources = translate(model);
        let listener = &resources.listeners[0];
        let used = listener_references(listener);
        assert_eq!(used.routes.len(), 1, "{used:?}");
        let route_name = used.routes.iter().next().unwrap();
        let routes = resources
            .routes
            .iter()
            .find(|r| &r.name == route_name)
            .expect("the listener's routes are served");
        let clusters = route_clusters(routes);
        assert!(!clusters.is_empty());
        for cluster in &clusters {
            assert!(resources.clusters.iter().any(|c| &c.name == cluster));
        }
    }
}
