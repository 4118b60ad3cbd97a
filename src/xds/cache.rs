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

/// Per-client endpoint views: the builder, the function that maps a client's region to the
/// view it shares with others (bounding how many views a snapshot can hold, whatever regions
/// clients claim), and a fingerprint of everything the views depend on beyond the base
/// resources (so that a change to it changes the snapshot version).
#[derive(Clone)]
pub struct EndpointViews {
    pub build: EndpointView,
    pub canonical: Arc<dyn Fn(&str) -> String + Send + Sync>,
    pub fingerprint: String,
}

#[derive(Default)]
pub struct Snapshot {
    /// Envoy's resources, and the clusters and endpoints every client shares.
    pub resources: BTreeMap<&'static str, Arc<TypeResources>>,
    /// The listeners and routes of proxyless gRPC clients.
    pub proxyless: BTreeMap<&'static str, Arc<TypeResources>>,
    /// Hash over every resource version: the snapshot's identity.
    pub version: String,
    views: Option<EndpointViews>,
    view_cache: Mutex<HashMap<String, Arc<TypeResources>>>,
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
            && self.resources == other.resources
            && self.proxyless == other.proxyless
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
        let old = |audience: Audience, type_url: &str| {
            previous.and_then(|p| p.audience_map(audience).get(type_url).cloned())
        };
        let named = |items: Vec<(String, Any)>, audience: Audience, type_url: &'static str| {
            (
                type_url,
                Arc::new(encode_reusing(items, old(audience, type_url).as_deref())),
            )
        };
        let shared: BTreeMap<&'static str, Arc<TypeResources>> = [
            named(
                resources
                    .clusters
                    .iter()
                    .map(|c| (c.name.clone(), to_any(c)))
                    .collect(),
                Audience::Envoy,
                CLUSTER,
            ),
            named(
                resources
                    .endpoints
                    .iter()
                    .map(|e| (e.cluster_name.clone(), to_any(e)))
                    .collect(),
                Audience::Envoy,
                ENDPOINT,
            ),
            named(
                resources
                    .listeners
                    .iter()
                    .map(|l| (l.name.clone(), to_any(l)))
                    .collect(),
                Audience::Envoy,
                LISTENER,
            ),
            named(
                resources
                    .routes
                    .iter()
                    .map(|r| (r.name.clone(), to_any(r)))
                    .collect(),
                Audience::Envoy,
                ROUTE,
            ),
        ]
        .into_iter()
        .collect();
        let proxyless: BTreeMap<&'static str, Arc<TypeResources>> = [
            named(
                resources
                    .proxyless_listeners
                    .iter()
                    .map(|l| (l.name.clone(), to_any(l)))
                    .collect(),
                Audience::Proxyless,
                LISTENER,
            ),
            named(
                resources
                    .proxyless_routes
                    .iter()
                    .map(|r| (r.name.clone(), to_any(r)))
                    .collect(),
                Audience::Proxyless,
                ROUTE,
            ),
        ]
        .into_iter()
        .collect();
        let mut version = set_version(
            shared
                .values()
                .chain(proxyless.values())
                .flat_map(|m| m.values()),
        );
        if let Some(views) = &views {
            version = content_hash([version.as_bytes(), views.fingerprint.as_bytes()]);
        }
        Snapshot {
            resources: shared,
            proxyless,
            version,
            views,
            view_cache: Mutex::default(),
        }
    }

    /// Whether this snapshot holds a published config (the cache's initial snapshot does not).
    pub fn is_published(&self) -> bool {
        !self.version.is_empty()
    }

    /// The resources of a type, as Envoy clients see them.
    pub fn of_type(&self, type_url: &str) -> Option<&TypeResources> {
        self.resources.get(type_url).map(|r| r.as_ref())
    }

    /// The resources an audience has of its own (listeners and routes for proxyless clients);
    /// other types are shared.
    fn audience_map(&self, audience: Audience) -> &BTreeMap<&'static str, Arc<TypeResources>> {
        match audience {
            Audience::Envoy => &self.resources,
            Audience::Proxyless => &self.proxyless,
        }
    }

    /// The resources of a type as a client with `view` sees them: its audience's listeners
    /// and routes, and endpoints for its region when the snapshot has per-region views.
    pub fn for_client(&self, type_url: &str, view: &ClientView) -> Option<Arc<TypeResources>> {
        if view.audience == Audience::Proxyless {
            if let Some(own) = self.proxyless.get(type_url) {
                return Some(own.clone());
            }
        }
        match &self.views {
            Some(views) if type_url == ENDPOINT && !view.region.is_empty() => {
                let region = (views.canonical)(&view.region);
                if region.is_empty() {
                    return self.resources.get(type_url).cloned();
                }
                let mut cache = self.view_cache.lock().unwrap_or_else(|e| e.into_inner());
                let resources = cache.entry(region.clone()).or_insert_with(|| {
                    let assignments = (views.build)(&region);
                    let items = assignments
                        .iter()
                        .map(|e| (e.cluster_name.clone(), to_any(e)));
                    Arc::new(encode_reusing(items.collect(), None))
                });
                Some(resources.clone())
            }
            _ => self.resources.get(type_url).cloned(),
        }
    }
}

/// Which set of listeners and routes a client gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Audience {
    #[default]
    Envoy,
    Proxyless,
}

/// What decides the resources one client sees: its audience and its region.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClientView {
    pub audience: Audience,
    pub region: String,
}

/// Encodes named resources, reusing `old` entries whose bytes are unchanged.
fn encode_reusing(items: Vec<(String, Any)>, old: Option<&TypeResources>) -> TypeResources {
    items
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

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::listener::v3::Listener;

    fn assignment(name: &str, priority: u32) -> ClusterLoadAssignment {
        let mut assignment = ClusterLoadAssignment {
            cluster_name: name.to_string(),
            ..Default::default()
        };
        assignment.endpoints.push(Default::default());
        assignment.endpoints[0].priority = priority;
        assignment
    }

    #[test]
    fn each_client_sees_its_audiences_listeners_and_its_regions_endpoints() {
        let resources = Resources {
            listeners: vec![Listener {
                name: "envoy-listener".into(),
                ..Default::default()
            }],
            proxyless_listeners: vec![Listener {
                name: "who.example".into(),
                ..Default::default()
            }],
            endpoints: vec![assignment("svc", 0)],
            ..Default::default()
        };
        let views = EndpointViews {
            build: Arc::new(|region: &str| {
                vec![assignment("svc", if region == "far" { 1 } else { 0 })]
            }),
            // Regions outside the config share the no-region view.
            canonical: Arc::new(|region: &str| {
                if region == "far" {
                    region.to_string()
                } else {
                    String::new()
                }
            }),
            fingerprint: String::new(),
        };
        let snapshot = Snapshot::build_with_views(&resources, None, Some(views));
        let view = |audience, region: &str| ClientView {
            audience,
            region: region.to_string(),
        };
        let names = |v: &ClientView| -> Vec<String> {
            snapshot
                .for_client(LISTENER, v)
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        assert_eq!(names(&view(Audience::Envoy, "")), vec!["envoy-listener"]);
        assert_eq!(names(&view(Audience::Proxyless, "")), vec!["who.example"]);
        let shared = snapshot
            .for_client(ENDPOINT, &view(Audience::Envoy, ""))
            .unwrap();
        let far_envoy = snapshot
            .for_client(ENDPOINT, &view(Audience::Envoy, "far"))
            .unwrap();
        let far_grpc = snapshot
            .for_client(ENDPOINT, &view(Audience::Proxyless, "far"))
            .unwrap();
        assert_ne!(
            shared["svc"].version, far_envoy["svc"].version,
            "Envoy gets its region's view"
        );
        assert!(
            Arc::ptr_eq(&far_envoy, &far_grpc),
            "one encoded view per region, shared by all its clients"
        );
    }
}
