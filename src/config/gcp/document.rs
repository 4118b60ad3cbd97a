//! One YAML document of the GCP dialect, dispatched to its collections: a file of
//! collections (`backendServices: [...]`, `urlMaps: [...]`, …), or one bare resource as
//! `gcloud … describe`, `edit` or `export` writes it (found by its `kind`, the folder it sits
//! in, or fields only a URL map has). Names are unique within each collection; the
//! `regionOrder` failover table is read here too. Must not: read a resource's own fields
//! (each collection's reader does).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::gcp::resources::{
    BackendService, EndpointGroup, ForwardingRule, Resources, TargetProxy, UrlMap,
};
use crate::config::reader::Fields;
use crate::config::yaml::{Node, Value};
use crate::model::{Diagnostics, HealthCheck, Loc};

use super::target_proxies::{target_proxy, ProxyKind};
use super::{
    backend_services, forwarding_rules, health_checks, instance_groups, network_endpoint_groups,
    tls, url_maps,
};

/// Subfolders of a config folder whose YAML files are read too, one bare resource of that
/// collection per file as `gcloud … export` writes them.
pub(super) const COLLECTION_FOLDERS: &[&str] = &[
    "healthChecks",
    "instanceGroups",
    "networkEndpointGroups",
    "backendServices",
    "urlMaps",
    "targetHttpProxies",
    "targetHttpsProxies",
    "targetSslProxies",
    "targetTcpProxies",
    "targetGrpcProxies",
    "forwardingRules",
    "sslCertificates",
    "sslPolicies",
];

/// Collections a bare resource (one resource as `gcloud … describe` or `edit` shows it,
/// rather than a file of collections) belongs to, by its `kind`.
const KINDS: [(&str, &str); 13] = [
    ("compute#healthCheck", "healthChecks"),
    ("compute#instanceGroup", "instanceGroups"),
    ("compute#networkEndpointGroup", "networkEndpointGroups"),
    ("compute#backendService", "backendServices"),
    ("compute#urlMap", "urlMaps"),
    ("compute#targetHttpProxy", "targetHttpProxies"),
    ("compute#targetHttpsProxy", "targetHttpsProxies"),
    ("compute#sslCertificate", "sslCertificates"),
    ("compute#sslPolicy", "sslPolicies"),
    ("compute#targetTcpProxy", "targetTcpProxies"),
    ("compute#targetSslProxy", "targetSslProxies"),
    ("compute#targetGrpcProxy", "targetGrpcProxies"),
    ("compute#forwardingRule", "forwardingRules"),
];

/// The collection a file's folder is named after (`…/backendServices/web.yaml`).
fn folder_collection(file: &str) -> Option<&'static str> {
    let folder = std::path::Path::new(file).parent()?.file_name()?.to_str()?;
    COLLECTION_FOLDERS
        .iter()
        .find(|collection| **collection == folder)
        .copied()
}

/// A document holding one bare resource, rewritten as a file with that resource in its
/// collection: by `kind` when gcloud printed it, else by the folder it sits in (`urlMaps/`, as
/// `gcloud … export` files are kept), else by the fields only that resource has
/// (a URL map from `gcloud compute url-maps edit`). None when `doc` is not a bare resource.
fn as_collection(doc: &Node, file: &Arc<str>, diagnostics: &mut Diagnostics) -> Option<Node> {
    let Value::Map(entries) = &doc.value else {
        return None;
    };
    let key = |name: &str| {
        entries
            .iter()
            .find(|(k, _)| k.as_scalar() == Some(name))
            .map(|(_, v)| v)
    };
    let has_collection_key = entries.iter().any(|(k, _)| {
        k.as_scalar().is_some_and(|name| {
            KINDS.iter().any(|(_, collection)| *collection == name)
                || ["xdsClients", "regionOrder"].contains(&name)
        })
    });
    // A backend service's own `healthChecks` list looks like a collection; its `kind` says
    // what it is.
    let kind = key("kind").and_then(Node::as_scalar);
    let folder = folder_collection(file);
    if key("name").is_none() || (kind.is_none() && folder.is_none() && has_collection_key) {
        return None;
    }
    let collection = match kind {
        Some(kind) => match KINDS.iter().find(|(known, _)| *known == kind) {
            Some((_, collection)) => *collection,
            None => {
                diagnostics.error(
                    &Loc::new(file.clone(), doc.line),
                    "kind",
                    format!(
                        "`{kind}` resources are not served; a single resource may be one of: {}",
                        KINDS.map(|(kind, _)| kind).join(", ")
                    ),
                );
                return Some(Node {
                    value: Value::Map(Vec::new()),
                    line: doc.line,
                });
            }
        },
        // `gcloud … export` writes no kind: the folder the file sits in names the collection.
        None if folder.is_some() => folder?,
        None if [
            "hostRules",
            "pathMatchers",
            "defaultService",
            "defaultUrlRedirect",
        ]
        .iter()
        .any(|field| key(field).is_some()) =>
        {
            "urlMaps"
        }
        None => return None,
    };
    let scalar = |text: &str| Node {
        value: Value::Scalar {
            text: text.to_string(),
            quoted: false,
        },
        line: doc.line,
    };
    Some(Node {
        value: Value::Map(vec![(
            scalar(collection),
            Node {
                value: Value::Seq(vec![doc.clone()]),
                line: doc.line,
            },
        )]),
        line: doc.line,
    })
}

/// Reads one YAML document of the GCP dialect into `model`.
pub(super) fn read_document(
    doc: &Node,
    file: &Arc<str>,
    model: &mut Resources,
    diagnostics: &mut Diagnostics,
) {
    let wrapped = as_collection(doc, file, diagnostics);
    let doc = wrapped.as_ref().unwrap_or(doc);
    let mut top = Fields::new(doc, file, "", diagnostics);
    let mut collection = Collection {
        top: &mut top,
        file,
        diagnostics,
    };
    collection.read(
        "healthChecks",
        health_checks::health_check,
        &mut model.health_checks,
        "healthChecks",
    );
    let groups = "instanceGroups and networkEndpointGroups";
    collection.read(
        "instanceGroups",
        instance_groups::instance_group,
        &mut model.endpoint_groups,
        groups,
    );
    collection.read(
        "networkEndpointGroups",
        network_endpoint_groups::network_endpoint_group,
        &mut model.endpoint_groups,
        groups,
    );
    collection.read(
        "backendServices",
        backend_services::backend_service,
        &mut model.backend_services,
        "backendServices",
    );
    collection.read("urlMaps", url_maps::url_map, &mut model.url_maps, "urlMaps");
    collection.read(
        "sslCertificates",
        tls::ssl_certificate,
        &mut model.ssl_certificates,
        "sslCertificates",
    );
    collection.read(
        "sslPolicies",
        tls::ssl_policy,
        &mut model.ssl_policies,
        "sslPolicies",
    );
    for kind in ProxyKind::ALL {
        collection.read(
            kind.collection(),
            |node, file, diagnostics| target_proxy(kind, node, file, diagnostics),
            &mut model.target_proxies,
            "target proxies",
        );
    }
    collection.read(
        "forwardingRules",
        forwarding_rules::forwarding_rule,
        &mut model.forwarding_rules,
        "forwardingRules",
    );
    collection.read(
        "xdsClients",
        crate::config::access::xds_client,
        &mut model.xds_clients,
        "xdsClients",
    );
    if top.get("backendBuckets").is_some() {
        diagnostics.error(
            &top.loc_of("backendBuckets"),
            "backendBuckets",
            "backendBuckets serve Cloud Storage buckets, which are not available in a self-hosted control plane; serve the files from a backend service instead",
        );
    }
    if let Some(node) = top.get("regionOrder") {
        region_order(node, file, model, diagnostics);
    }
    top.finish(diagnostics);
}

/// A resource that has a unique name within its collection.
trait Named {
    fn name(&self) -> &str;
    fn loc(&self) -> &Loc;
}

macro_rules! named {
    ($($kind:ty),+) => {
        $(impl Named for $kind {
            fn name(&self) -> &str {
                &self.name
            }
            fn loc(&self) -> &Loc {
                &self.loc
            }
        })+
    };
}

named!(
    crate::model::XdsClientRule,
    HealthCheck,
    EndpointGroup,
    BackendService,
    UrlMap,
    TargetProxy,
    ForwardingRule,
    crate::model::Certificate,
    crate::config::cipher_suites::SslPolicy
);

/// Reads the top-level lists of one document into the model.
struct Collection<'a, 'n> {
    top: &'a mut Fields<'n>,
    file: &'a Arc<str>,
    diagnostics: &'a mut Diagnostics,
}

impl Collection<'_, '_> {
    /// Reads every item of the list `key` with `read` into `into`, whose names must be unique
    /// across `unique_in`.
    fn read<T: Named>(
        &mut self,
        key: &'static str,
        read: impl Fn(&Node, &Arc<str>, &mut Diagnostics) -> Option<T>,
        into: &mut BTreeMap<String, T>,
        unique_in: &str,
    ) {
        for node in self.top.list(key, self.diagnostics) {
            if let Some(resource) = read(node, self.file, self.diagnostics) {
                insert(into, resource, unique_in, self.diagnostics);
            }
        }
    }
}

/// Adds a resource; of two with one name, the one written first in the files is kept and the
/// later one reported.
fn insert<T: Named>(
    map: &mut BTreeMap<String, T>,
    value: T,
    collection: &str,
    diagnostics: &mut Diagnostics,
) {
    let name = value.name().to_string();
    let Some(first) = map.get(&name) else {
        map.insert(name, value);
        return;
    };
    let (kept, duplicate) = if value.loc() < first.loc() {
        (value, map.remove(&name).unwrap())
    } else {
        (map.remove(&name).unwrap(), value)
    };
    diagnostics.clash(
        duplicate.loc(),
        kept.loc(),
        format!("{collection}[{name}]"),
        format!(
            "the name `{name}` is already used at {}; names must be unique in {collection}",
            kept.loc()
        ),
    );
    map.insert(name, kept);
}

/// `regionOrder`: client region → the regions it fails over to, in order.
fn region_order(
    node: &Node,
    file: &Arc<str>,
    model: &mut Resources,
    diagnostics: &mut Diagnostics,
) {
    let Value::Map(entries) = &node.value else {
        diagnostics.error(
            &Loc::new(file.clone(), node.line),
            "regionOrder",
            format!(
                "expected a mapping of region to a list of regions, found {}",
                node.kind()
            ),
        );
        return;
    };
    for (key, value) in entries {
        let region = key.as_scalar().unwrap_or_default().to_string();
        let path = format!("regionOrder[{region}]");
        let next: Option<Vec<String>> = match &value.value {
            Value::Seq(items) => items
                .iter()
                .map(|i| i.as_scalar().map(str::to_string))
                .collect(),
            _ => None,
        };
        match next {
            Some(next) => {
                model.region_order.insert(region, next);
            }
            None => diagnostics.error(
                &Loc::new(file.clone(), value.line),
                path,
                "expected a list of region names",
            ),
        }
    }
}
