//! Who may use the xDS port: rules that tie client identities (from their certificates) to
//! the node ids they may claim and the resources they may receive. Dialect-neutral: both
//! config dialects write it the same way (`xdsClients`).
//!
//! Must not: match names (the xDS server does, with the rules as published) or know xDS.

use serde::Serialize;

use super::{Loc, Ref};

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
    /// Proxies whose frontends (listeners) the clients may receive.
    pub proxies: Vec<Ref>,
    /// Services whose clusters the clients may receive.
    pub services: Vec<Ref>,
}

impl XdsClientRule {
    /// Whether the rule lets its clients receive anything.
    pub fn grants_anything(&self) -> bool {
        !(self.listeners.is_empty()
            && self.clusters.is_empty()
            && self.proxies.is_empty()
            && self.services.is_empty())
    }
}
