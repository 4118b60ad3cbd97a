//! The versioned resource cache. A snapshot holds every resource encoded once as `Any`, with
//! a content-hash version per resource; streams share snapshots through a watch channel and
//! never re-encode. Versions are hashes of content, so they are stable across restarts.
//!
//! Endpoints may differ per client (priorities follow the client's region): a snapshot can
//! carry an endpoint view builder, run once per view key (region) and cached in the snapshot,
//! so every client of a region shares the same encoded resources.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

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

/// Builds the endpoints a client sees from its view key (its region).
pub type EndpointView = Arc<dyn Fn(&str) -> Vec<ClusterLoadAssignment> + Send + Sync>;

/// Per-client endpoint views: the builder, and a fingerprint of everything it depends on
/// beyond the base resources (so that a change to it changes the snapshot version).
#[derive(Clone)]
pub struct EndpointViews {
    pub build: EndpointView,
    pub fingerprint: String,
}

#[derive(Default)]
pub struct Snapshot {
    pub resources: BTreeMap<&'static str, Arc<TypeResources>>,
    /// Hash over every resource version: the snapshot's identity.
    pub version: String,
    views: Option<EndpointViews>,
    view_cache: Mutex<HashMap<String, Arc<TypeResources>>>,
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version && self.resources == other.resources
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version)
            .field("resources", &self.resources)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Encodes `resources`, reusing the previous snapshot's entries whose bytes did not change.
    pub fn build(resources: &Resources, previous: Option<&Snapshot>) -> Snapshot {
        Self::build_with_views(resources, previous, None)
    }

    /// As [`Snapshot::build`], with per-client endpoint views.
    pub fn build_with_views(
        resources: &Resources,
        previous: Option<&Snapshot>,
        views: Option<EndpointViews>,
    ) -> Snapshot {
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
            by_type.insert(type_url, Arc::new(map));
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
        let mut version = set_version(by_type.values().flat_map(|m| m.values()));
        if let Some(views) = &views {
            version = content_hash([version.as_bytes(), views.fingerprint.as_bytes()]);
        }
        Snapshot {
            resources: by_type,
            version,
            views,
            view_cache: Mutex::default(),
        }
    }

    /// The resources of a type, as every client sees them.
    pub fn of_type(&self, type_url: &str) -> Option<&TypeResources> {
        self.resources.get(type_url).map(|r| r.as_ref())
    }

    /// The resources of a type as a client with `view_key` sees them: endpoints per view
    /// when the snapshot has views, the shared resources otherwise.
    pub fn for_client(&self, type_url: &str, view_key: &str) -> Option<Arc<TypeResources>> {
        match &self.views {
            Some(views) if type_url == ENDPOINT && !view_key.is_empty() => {
                let mut cache = self.view_cache.lock().unwrap_or_else(|e| e.into_inner());
                let view = cache.entry(view_key.to_string()).or_insert_with(|| {
                    let assignments = (views.build)(view_key);
                    Arc::new(encode_all(
                        assignments
                            .iter()
                            .map(|e| (e.cluster_name.clone(), to_any(e))),
                    ))
                });
                Some(view.clone())
            }
            _ => self.resources.get(type_url).cloned(),
        }
    }
}

fn encode_all(items: impl Iterator<Item = (String, Any)>) -> TypeResources {
    items
        .map(|(name, body)| {
            let resource = Resource {
                version: content_hash([body.value.as_slice()]),
                name: name.clone(),
                body,
            };
            (name, Arc::new(resource))
        })
        .collect()
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
    pub fn set(&self, resources: &Resources, views: Option<EndpointViews>) -> bool {
        let current = self.current();
        let next = Snapshot::build_with_views(resources, Some(&current), views);
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
