//! Who may use the xDS port: rules that tie client identities (from their certificates) to
//! the node ids they may claim and the resources they may receive. Dialect-neutral: both
//! config dialects write it the same way (`xdsClients`).
//!
//! Must not: match names (the xDS server does, with the rules as published) or know xDS.

use serde::Serialize;

use super::{Diagnostics, Loc, Model, Ref};

/// One rule. Patterns use `*` for any run of characters.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct XdsClientRule {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    /// Certificate identities (SPIFFE URI or DNS name) the rule admits.
    pub identities: Vec<String>,
    /// Node ids those clients may claim.
    pub node_ids: Vec<String>,
    /// Listener names the clients may receive (with the routes and clusters they use).
    pub listeners: Vec<String>,
    /// Cluster names the clients may receive (with their endpoints).
    pub clusters: Vec<String>,
    /// Target proxies whose listeners the clients may receive.
    pub target_proxies: Vec<Ref>,
    /// Backend services whose clusters the clients may receive.
    pub backend_services: Vec<Ref>,
}

impl XdsClientRule {
    /// Whether the rule lets its clients receive anything.
    pub fn grants_anything(&self) -> bool {
        !(self.listeners.is_empty()
            && self.clusters.is_empty()
            && self.target_proxies.is_empty()
            && self.backend_services.is_empty())
    }
}

/// Cross-resource rules: every target proxy and backend service a rule names exists; a rule
/// that grants nothing is worth a warning.
pub fn check(model: &Model, diagnostics: &mut Diagnostics) {
    for rule in model.xds_clients.values() {
        for proxy in &rule.target_proxies {
            super::references::expect(&model.target_proxies, proxy, "target proxies", diagnostics);
        }
        for service in &rule.backend_services {
            super::references::expect(
                &model.backend_services,
                service,
                "backendServices",
                diagnostics,
            );
        }
        if !rule.grants_anything() {
            diagnostics.warning(
                &rule.loc,
                format!("xdsClients[{}]", rule.name),
                "the rule names no listeners, clusters, targetProxies or backendServices: its clients are admitted and receive nothing",
            );
        }
    }
}
