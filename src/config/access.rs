//! `xdsClients`: Switchyard's own section, read the same way whatever the dialect of the
//! file. Each rule names the certificate identities it admits, the node ids they may claim and
//! what they may receive. Field rules live here; references are checked in `model::access`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::references::expect;
use crate::model::{Diagnostics, Loc, Ref, XdsClientRule};

use super::gcp::open;
use super::reader::Fields;
use super::references;
use super::yaml::Node;

/// Reads one rule of `xdsClients`.
pub fn xds_client(
    node: &Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<XdsClientRule> {
    let (mut fields, name) = open(node, file, "xdsClients", diagnostics)?;
    let identities = patterns(&mut fields, "identities", diagnostics);
    let node_ids = patterns(&mut fields, "nodeIds", diagnostics);
    let listeners = patterns(&mut fields, "listeners", diagnostics);
    let clusters = patterns(&mut fields, "clusters", diagnostics);
    let target_proxies = references(
        &mut fields,
        "targetProxies",
        &["targetHttpProxies", "targetTcpProxies", "targetGrpcProxies"],
        diagnostics,
    );
    let backend_services = references(
        &mut fields,
        "backendServices",
        &["backendServices"],
        diagnostics,
    );
    let required = [
        (
            "identities",
            &identities,
            "certificate identities (SPIFFE URI or DNS name) it admits",
        ),
        ("nodeIds", &node_ids, "node ids its clients may claim"),
    ];
    for (key, list, what) in required {
        if list.is_empty() {
            diagnostics.error(
                &fields.loc_of(key),
                fields.field_path(key),
                format!(
                    "list at least one pattern: the {what} (`*` matches any run of characters)"
                ),
            );
        }
    }
    let loc = fields.loc();
    fields.finish(diagnostics);
    Some(XdsClientRule {
        name,
        loc,
        identities,
        node_ids,
        listeners,
        clusters,
        proxies: target_proxies,
        services: backend_services,
    })
}

/// A list of name patterns; empty ones are refused (they would match only the empty name).
fn patterns(
    fields: &mut Fields<'_>,
    key: &'static str,
    diagnostics: &mut Diagnostics,
) -> Vec<String> {
    let loc = fields.loc_of(key);
    let path = fields.field_path(key);
    let list = fields.strings(key, diagnostics);
    for (index, pattern) in list.iter().enumerate() {
        if pattern.trim().is_empty() {
            diagnostics.error(
                &loc,
                format!("{path}[{index}]"),
                "an empty pattern matches nothing; write a name, or `*` for any",
            );
        }
    }
    list
}

/// A list of references to resources of `collections`.
fn references(
    fields: &mut Fields<'_>,
    key: &'static str,
    collections: &[&str],
    diagnostics: &mut Diagnostics,
) -> Vec<Ref> {
    let file = fields.file().clone();
    fields.items(key, diagnostics, |item, path, diagnostics| {
        let loc = Loc::new(file.clone(), item.line);
        let Some(text) = item.as_scalar() else {
            diagnostics.error(
                &loc,
                path,
                format!("expected a name or link, found {}", item.kind()),
            );
            return None;
        };
        references::parse(text, collections, &loc, &path, diagnostics)
    })
}

/// Cross-resource rules: every proxy and service a rule names exists (in whichever dialect
/// wrote it); a rule that grants nothing is worth a warning.
pub fn check(model: &crate::model::Model, diagnostics: &mut Diagnostics) {
    let proxies: BTreeMap<String, ()> = model
        .frontends
        .values()
        .map(|frontend| frontend.proxy.clone())
        .chain(model.proxyless.keys().cloned())
        .map(|name| (name, ()))
        .collect();
    for rule in model.xds_clients.values() {
        for proxy in &rule.proxies {
            expect(&proxies, proxy, "target proxies", diagnostics);
        }
        for service in &rule.services {
            expect(&model.services, service, "backendServices", diagnostics);
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
