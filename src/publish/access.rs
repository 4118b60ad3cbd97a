//! The access policy as the xDS server applies it: each `xdsClients` rule of the model turned
//! into the names of the resources its clients may receive, in this publication's resources.
//!
//! A rule's grant closes over references: a listener brings the route configuration it uses
//! and the clusters those routes send to; a cluster brings its endpoints. A client allowed a
//! listener can serve it.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;

use crate::model::{Model, XdsClientRule};
use crate::translate::references::{listener_references, route_clusters};
use crate::translate::Resources;
use crate::xds::server::access::{any_matches, AccessPolicy, AccessRule, Allowed, NamePattern};

/// The policy of `model` over `resources`; open when the model has no rule.
pub fn access_policy(model: &Model, resources: &Resources) -> AccessPolicy {
    AccessPolicy::new(
        model
            .xds_clients
            .values()
            .map(|rule| AccessRule {
                name: rule.name.as_str().into(),
                identities: patterns(&rule.identities),
                node_ids: patterns(&rule.node_ids),
                allowed: allowed(model, rule, resources),
            })
            .collect(),
    )
}

fn patterns(list: &[String]) -> Vec<NamePattern> {
    list.iter().map(NamePattern::new).collect()
}

/// What `rule` lets its clients receive.
fn allowed(model: &Model, rule: &XdsClientRule, resources: &Resources) -> Allowed {
    let listener_patterns = patterns(&rule.listeners);
    let proxies: BTreeSet<&str> = rule.proxies.iter().map(|r| r.name.as_str()).collect();
    // Envoy listeners are named after frontends.
    let by_proxy = |listener: &Listener| {
        model
            .frontends
            .get(&listener.name)
            .is_some_and(|f| proxies.contains(f.proxy.as_str()))
    };
    // Proxyless listeners are named after hosts and route with their route table.
    let url_maps: BTreeSet<&str> = proxies
        .iter()
        .filter_map(|name| model.proxyless.get(*name))
        .map(|routing| routing.route_table.name.as_str())
        .collect();
    let cluster_patterns = patterns(&rule.clusters);
    let mut clusters: BTreeSet<String> = resources
        .clusters
        .iter()
        .map(|c| c.name.clone())
        .filter(|name| any_matches(&cluster_patterns, name))
        .collect();
    clusters.extend(rule.services.iter().map(|s| s.name.clone()));
    let envoy = granted_listeners(&resources.listeners, &resources.routes, |listener| {
        any_matches(&listener_patterns, &listener.name) || by_proxy(listener)
    });
    let proxyless = granted_listeners(
        &resources.proxyless_listeners,
        &resources.proxyless_routes,
        |listener| {
            any_matches(&listener_patterns, &listener.name)
                || listener_references(listener)
                    .routes
                    .iter()
                    .any(|route| url_maps.contains(route.as_str()))
        },
    );
    clusters.extend(envoy.clusters.iter().cloned());
    clusters.extend(proxyless.clusters.iter().cloned());
    Allowed {
        envoy_listeners: envoy.listeners,
        envoy_routes: envoy.routes,
        proxyless_listeners: proxyless.listeners,
        proxyless_routes: proxyless.routes,
        clusters,
        secrets: envoy.secrets,
    }
}

/// Listeners granted, and what they use.
#[derive(Default)]
struct Granted {
    listeners: BTreeSet<String>,
    routes: BTreeSet<String>,
    clusters: BTreeSet<String>,
    secrets: BTreeSet<String>,
}

fn granted_listeners(
    listeners: &[Listener],
    routes: &[RouteConfiguration],
    grants: impl Fn(&Listener) -> bool,
) -> Granted {
    let mut granted = Granted::default();
    for listener in listeners.iter().filter(|l| grants(l)) {
        let used = listener_references(listener);
        granted.listeners.insert(listener.name.clone());
        granted.clusters.extend(used.clusters);
        granted.routes.extend(used.routes);
        granted.secrets.extend(used.secrets);
    }
    for route in routes.iter().filter(|r| granted.routes.contains(&r.name)) {
        granted.clusters.extend(route_clusters(route));
    }
    granted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use crate::translate::translate;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn each_rule_gets_its_listeners_with_their_routes_clusters_and_what_it_names() {
        let loaded = load_str(
            include_str!("../../examples/authorized.yaml"),
            "authorized.yaml",
        );
        let model = loaded.accepted().expect("the example is valid");
        let policy = access_policy(model, &translate(model));
        let shop = &policy.rule("shop").unwrap().allowed;
        assert_eq!(shop.envoy_listeners, names(&["shop-http"]));
        assert_eq!(shop.envoy_routes, names(&["shop-map"]));
        assert_eq!(shop.clusters, names(&["payments", "shop-web"]));
        assert!(shop.proxyless_listeners.is_empty());

        let billing = &policy.rule("billing").unwrap().allowed;
        assert_eq!(billing.envoy_listeners, names(&["billing-http"]));
        assert_eq!(billing.envoy_routes, names(&["billing-map"]));
        assert_eq!(billing.clusters, names(&["billing-api", "reports"]));

        let grpc = &policy.rule("grpc-clients").unwrap().allowed;
        assert!(grpc.envoy_listeners.is_empty());
        assert!(grpc.proxyless_listeners.contains("who.example:8080"));
        assert_eq!(grpc.proxyless_routes, names(&["who-map"]));
        assert_eq!(grpc.clusters, names(&["who"]));
    }

    #[test]
    fn without_rules_the_policy_is_open() {
        let loaded = load_str(
            include_str!("../../examples/quickstart.yaml"),
            "quickstart.yaml",
        );
        let model = loaded.accepted().unwrap();
        assert!(access_policy(model, &translate(model)).is_open());
    }
}
