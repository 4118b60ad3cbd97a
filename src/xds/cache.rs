//! The versioned resource cache. A snapshot holds every resource encoded once as `Any`, with
//! a content-hash version per resource; streams share snapshots through a watch channel and
//! never re-encode. Versions are hashes of content, so they are stable across restarts.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::translate::{to_any, Resources};

use super::types::{CLUSTER, ENDPOINT, LISTENER, ROUTE};

/// One encoded resource.
#[derive(Debug, PartialEq)]
pub struct Resource {
    pub name: String,
    /// Content hash of the encoded bytes.
    pub version: String,
    pub body: Any,
}

/// All resources of one type, by name.
pub type TypeResources = BTreeMap<String, Arc<Resource>>;

#[derive(Debug, Default, PartialEq)]
pub struct Snapshot {
    pub resources: BTreeMap<&'static str, TypeResources>,
    /// Hash over every resource version: the snapshot's identity.
    pub version: String,
}

impl Snapshot {
    /// Encodes `resources`, reusing the previous snapshot's entries whose bytes did not change.
    pub fn build(resources: &Resources, previous: Option<&Snapshot>) -> Snapshot {
        let mut by_type = BTreeMap::new();
        let mut encode = |type_url: &'static str, items: Vec<(String, Any)>| {
            let old = previous.and_then(|p| p.resources.get(type_url));
            let map: TypeResources = items
                .into_iter()
                .map(|(name, body)| {
                    let reused = old
                        .and_then(|o| o.get(&name))
                        .filter(|r| r.body.value == body.value)
                        .cloned();
                    let resource = reused.unwrap_or_else(|| {
                        Arc::new(Resource {
                            version: content_hash([body.value.as_slice()]),
                            name: name.clone(),
                            body,
                        })
                    });
                    (name, resource)
                })
                .collect();
            by_type.insert(type_url, map);
        };
        encode(
            CLUSTER,
            resources
                .clusters
                .iter()
                .map(|c| (c.name.clone(), to_any(c)))
                .collect(),
        );
        encode(
            ENDPOINT,
            resources
                .endpoints
                .iter()
                .map(|e| (e.cluster_name.clone(), to_any(e)))
                .collect(),
        );
        encode(
            LISTENER,
            resources
                .listeners
                .iter()
                .map(|l| (l.name.clone(), to_any(l)))
                .collect(),
        );
        encode(
            ROUTE,
            resources
                .routes
                .iter()
                .map(|r| (r.name.clone(), to_any(r)))
                .collect(),
        );
        let version = set_version(by_type.values().flat_map(|m| m.values()));
        Snapshot {
            resources: by_type,
            version,
        }
    }

    pub fn of_type(&self, type_url: &str) -> Option<&TypeResources> {
        self.resources.get(type_url)
    }
}

/// Version of a set of resources: a hash of their names and versions.
pub fn set_version<'a>(resources: impl Iterator<Item = &'a Arc<Resource>>) -> String {
    let mut hasher = Sha256::new();
    for resource in resources {
        hasher.update(resource.name.as_bytes());
        hasher.update([0]);
        hasher.update(resource.version.as_bytes());
        hasher.update([0]);
    }
    hex16(&hasher.finalize())
}

fn content_hash<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hex16(&hasher.finalize())
}

fn hex16(digest: &[u8]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The current snapshot, shared with every stream.
#[derive(Clone)]
pub struct Cache {
    sender: Arc<watch::Sender<Arc<Snapshot>>>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            sender: Arc::new(watch::channel(Arc::new(Snapshot::default())).0),
        }
    }
}

impl Cache {
    /// Replaces the served resources; returns false (and wakes no one) if nothing changed.
    pub fn set(&self, resources: &Resources) -> bool {
        let current = self.current();
        let next = Snapshot::build(resources, Some(&current));
        if next.version == current.version && !current.resources.is_empty() {
            return false;
        }
        self.sender.send_replace(Arc::new(next));
        true
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.sender.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.sender.subscribe()
    }
}
