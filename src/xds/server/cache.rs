//! The versioned resource cache. A snapshot holds, per resource type, the views different
//! clients get — clusters are shared by all, listeners and routes differ by audience (Envoy
//! or proxyless gRPC), endpoints by region (priorities follow the client's region). Each view
//! is a map of encoded [`Resource`]s with a content-hash version.
//!
//! Building a snapshot reuses everything that did not change: a resource whose bytes are
//! unchanged is the same `Arc`, and a view whose content is unchanged is the same view, with
//! the same generation. A view that changed records the names that changed since the view it
//! replaces, so a stream whose client is one step behind finds its work without comparing
//! every resource. Streams share snapshots through a watch channel and never re-encode.
//!
//! Sources publish typed resource sets ([`Content`]); the cache knows nothing of how they
//! were made. A source that changes only endpoints publishes only endpoints.
//!
//! With an access policy, each rule gets its own copy of every view, holding only what the
//! rule allows (the same `Arc`s as the full view, so a restricted view costs a map, not
//! payloads); a client granted a rule sees only those.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::access::AccessPolicy;
use crate::xds::types::TypeUrl;
use crate::xds::wire::{hex16, Resource};

/// Which set of listeners and routes a client gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Audience {
    #[default]
    Envoy,
    Proxyless,
}

/// What decides the resources one client sees: its audience, its region, and the access
/// rule it was granted (None when the policy is open).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClientView {
    pub audience: Audience,
    pub region: String,
    /// The zone the client reports (some services serve a client from its own zone first).
    pub zone: String,
    pub grant: Option<Arc<str>>,
}

/// Which clients a view is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViewKey {
    /// Every client.
    Shared,
    Audience(Audience),
    /// Clients whose region maps to this key (see [`Content::region_key`]); `""` is for
    /// clients that report no region.
    Region(String),
}

impl ViewKey {
    /// How a type's views are keyed.
    fn for_client(type_url: TypeUrl, client: &ClientView, region_key: &RegionKey) -> ViewKey {
        match type_url {
            TypeUrl::Cluster | TypeUrl::Secret => ViewKey::Shared,
            TypeUrl::Endpoint => ViewKey::Region(region_key(client)),
            TypeUrl::Listener | TypeUrl::Route => ViewKey::Audience(client.audience),
        }
    }
}

/// Maps a client (its region, zone and audience) to the key of the endpoint view it shares.
pub type RegionKey = Arc<dyn Fn(&ClientView) -> String + Send + Sync>;

/// Names of resources, as one view lists them.
pub type ResourceMap = BTreeMap<String, Arc<Resource>>;

/// The resources of one type as one group of clients sees them.
#[derive(Debug)]
pub struct TypeView {
    pub type_url: TypeUrl,
    pub resources: ResourceMap,
    /// Hash of every name and resource version: the type's version for these clients.
    pub version: Arc<str>,
    /// Unique within the process; equal generations mean the same content.
    pub generation: u64,
    /// The generation of the view this one replaced, and the names that differ from it
    /// (added, changed or removed).
    pub changed_since: Option<(u64, Arc<[String]>)>,
}

static GENERATIONS: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATIONS.fetch_add(1, Ordering::Relaxed)
}

impl TypeView {
    fn empty(type_url: TypeUrl) -> Arc<TypeView> {
        Arc::new(TypeView {
            type_url,
            resources: BTreeMap::new(),
            version: view_version(&BTreeMap::new()).into(),
            generation: 0,
            changed_since: None,
        })
    }

    /// Builds a view of `items`, reusing resources (and, when nothing changed, the whole
    /// view) from `previous`, and resources with identical bytes from `siblings` (other views
    /// of the same type in the same snapshot).
    fn build(
        type_url: TypeUrl,
        items: Vec<(String, Bytes)>,
        previous: Option<&Arc<TypeView>>,
        siblings: &[Arc<TypeView>],
    ) -> Arc<TypeView> {
        let reuse = |name: &str, bytes: &Bytes| -> Option<Arc<Resource>> {
            previous
                .into_iter()
                .chain(siblings)
                .filter_map(|view| view.resources.get(name))
                .find(|r| r.value == *bytes)
                .cloned()
        };
        let resources: ResourceMap = items
            .into_iter()
            .map(|(name, bytes)| {
                let resource = reuse(&name, &bytes)
                    .unwrap_or_else(|| Arc::new(Resource::new(type_url, name.clone(), bytes)));
                (name, resource)
            })
            .collect();
        Self::of(type_url, resources, previous)
    }

    /// The view of `base` a rule allowing `permits` gets, reusing `previous` when unchanged.
    fn restricted(
        base: &TypeView,
        permits: impl Fn(&str) -> bool,
        previous: Option<&Arc<TypeView>>,
    ) -> Arc<TypeView> {
        let resources: ResourceMap = base
            .resources
            .iter()
            .filter(|(name, _)| permits(name))
            .map(|(name, resource)| (name.clone(), resource.clone()))
            .collect();
        Self::of(base.type_url, resources, previous)
    }

    /// A view of `resources`: `previous` itself when it holds the same, else a new
    /// generation listing what changed since `previous`.
    fn of(
        type_url: TypeUrl,
        resources: ResourceMap,
        previous: Option<&Arc<TypeView>>,
    ) -> Arc<TypeView> {
        let version = view_version(&resources);
        if let Some(previous) = previous.filter(|p| *p.version == *version) {
            return previous.clone();
        }
        let changed_since = previous.map(|p| (p.generation, changed_names(p, &resources)));
        Arc::new(TypeView {
            type_url,
            resources,
            version: version.into(),
            generation: next_generation(),
            changed_since,
        })
    }
}

/// Names added, removed or changed between `before` and `after`.
fn changed_names(before: &TypeView, after: &ResourceMap) -> Arc<[String]> {
    let mut names = BTreeSet::new();
    for (name, resource) in after {
        match before.resources.get(name) {
            Some(old) if Arc::ptr_eq(old, resource) || old.version == resource.version => {}
            _ => {
                names.insert(name.clone());
            }
        }
    }
    for name in before.resources.keys() {
        if !after.contains_key(name) {
            names.insert(name.clone());
        }
    }
    names.into_iter().collect()
}

/// Version of a set of resources: a hash of their names and versions.
fn view_version(resources: &ResourceMap) -> String {
    let mut hasher = Sha256::new();
    for (name, resource) in resources {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(resource.version.as_bytes());
        hasher.update([0]);
    }
    hex16(&hasher.finalize())
}

/// What a source publishes: the encoded resources of every view.
pub struct Content {
    /// Per type and view, the resources as (name, encoded message).
    pub views: BTreeMap<(TypeUrl, ViewKey), Vec<(String, Bytes)>>,
    /// Maps a client's region to the key of its endpoint view.
    pub region_key: RegionKey,
    /// Who may receive what; open (everything to everyone) by default.
    pub access: AccessPolicy,
}

impl Default for Content {
    fn default() -> Self {
        Content {
            views: BTreeMap::new(),
            region_key: Arc::new(|_: &ClientView| String::new()),
            access: AccessPolicy::default(),
        }
    }
}

type Views = BTreeMap<(TypeUrl, ViewKey), Arc<TypeView>>;

/// Per access rule, its copy of every view.
type RestrictedViews = BTreeMap<Arc<str>, Views>;

/// Every view of every type, at one moment.
pub struct Snapshot {
    /// Hash over every view's version: the snapshot's identity; empty before the first
    /// publication.
    pub version: String,
    views: Views,
    region_key: RegionKey,
    access: Arc<AccessPolicy>,
    restricted: RestrictedViews,
    empty: [Arc<TypeView>; TypeUrl::COUNT],
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            version: String::new(),
            views: BTreeMap::new(),
            region_key: Arc::new(|_: &ClientView| String::new()),
            access: Arc::default(),
            restricted: BTreeMap::new(),
            empty: TypeUrl::ALL.map(TypeView::empty),
        }
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version)
            .field("views", &self.views.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
    }
}

impl Snapshot {
    /// Builds a snapshot of `content`, sharing what did not change with `previous`.
    pub fn build(content: Content, previous: Option<&Snapshot>) -> Snapshot {
        let mut views: Views = BTreeMap::new();
        for ((type_url, key), items) in content.views {
            let old = previous.and_then(|p| p.views.get(&(type_url, key.clone())));
            let siblings: Vec<Arc<TypeView>> = views
                .iter()
                .filter(|((t, _), _)| *t == type_url)
                .map(|(_, v)| v.clone())
                .collect();
            let view = TypeView::build(type_url, items, old, &siblings);
            views.insert((type_url, key), view);
        }
        let access = Arc::new(content.access);
        let restricted = restrict(&views, &access, previous.map(|p| &p.restricted), |_| true);
        Self::assemble(views, content.region_key, access, restricted)
    }

    /// This snapshot with the endpoint views replaced (every other view kept as it is).
    pub fn with_endpoints(&self, endpoints: BTreeMap<ViewKey, Vec<(String, Bytes)>>) -> Snapshot {
        let mut views: Views = self
            .views
            .iter()
            .filter(|((t, _), _)| *t != TypeUrl::Endpoint)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut built: Vec<Arc<TypeView>> = Vec::new();
        for (key, items) in endpoints {
            let old = self.views.get(&(TypeUrl::Endpoint, key.clone()));
            let view = TypeView::build(TypeUrl::Endpoint, items, old, &built);
            built.push(view.clone());
            views.insert((TypeUrl::Endpoint, key), view);
        }
        let mut restricted = self.restricted.clone();
        let endpoints = restrict(&views, &self.access, Some(&self.restricted), |t| {
            t == TypeUrl::Endpoint
        });
        for (rule, rule_views) in endpoints {
            let kept = restricted.entry(rule).or_default();
            kept.retain(|(t, _), _| *t != TypeUrl::Endpoint);
            kept.extend(rule_views);
        }
        Self::assemble(
            views,
            self.region_key.clone(),
            self.access.clone(),
            restricted,
        )
    }

    fn assemble(
        views: Views,
        region_key: RegionKey,
        access: Arc<AccessPolicy>,
        restricted: RestrictedViews,
    ) -> Snapshot {
        let mut hasher = Sha256::new();
        for ((type_url, key), view) in &views {
            hasher.update(format!("{type_url}/{key:?}/{}\0", view.version).as_bytes());
        }
        for rule in &access.rules {
            let (identities, node_ids) = (&rule.identities, &rule.node_ids);
            hasher.update(format!("rule {} {identities:?} {node_ids:?}\0", rule.name).as_bytes());
        }
        for (rule, rule_views) in &restricted {
            for ((type_url, key), view) in rule_views {
                hasher.update(format!("{rule}/{type_url}/{key:?}/{}\0", view.version).as_bytes());
            }
        }
        Snapshot {
            version: hex16(&hasher.finalize()),
            views,
            region_key,
            access,
            restricted,
            empty: TypeUrl::ALL.map(TypeView::empty),
        }
    }

    /// The access policy this snapshot serves under.
    pub fn access(&self) -> &AccessPolicy {
        &self.access
    }

    /// Whether this snapshot holds a published config (the cache's initial one does not).
    pub fn is_published(&self) -> bool {
        !self.version.is_empty()
    }

    /// The view of `type_url` a client gets: the one for its audience or region, restricted
    /// to what its grant allows (a grant the policy no longer has sees nothing).
    pub fn view(&self, type_url: TypeUrl, client: &ClientView) -> &Arc<TypeView> {
        let views = match &client.grant {
            None => Some(&self.views),
            Some(rule) => self.restricted.get(rule),
        };
        let key = ViewKey::for_client(type_url, client, &self.region_key);
        views
            .and_then(|views| {
                views.get(&(type_url, key)).or_else(|| {
                    // A region key the content has no view for sees what clients without a
                    // region see.
                    (type_url == TypeUrl::Endpoint)
                        .then(|| views.get(&(type_url, ViewKey::Region(String::new()))))
                        .flatten()
                })
            })
            .unwrap_or(&self.empty[type_url.index()])
    }

    /// The view of `type_url` kept under `key`, if the snapshot has one.
    pub fn view_by_key(&self, type_url: TypeUrl, key: &ViewKey) -> Option<&Arc<TypeView>> {
        self.views.get(&(type_url, key.clone()))
    }

    /// Every view of `type_url`, by key.
    pub fn views_of(&self, type_url: TypeUrl) -> impl Iterator<Item = (&ViewKey, &Arc<TypeView>)> {
        self.views
            .iter()
            .filter(move |((t, _), _)| *t == type_url)
            .map(|((_, key), view)| (key, view))
    }
}

/// Each rule's copy of the views of `views` whose type passes `types`, sharing resources with
/// the full views and reusing the rule's `previous` views when unchanged.
fn restrict(
    views: &Views,
    access: &AccessPolicy,
    previous: Option<&RestrictedViews>,
    types: impl Fn(TypeUrl) -> bool,
) -> RestrictedViews {
    let mut restricted = RestrictedViews::new();
    for rule in &access.rules {
        let before = previous.and_then(|p| p.get(&rule.name));
        let rule_views = views
            .iter()
            .filter(|((type_url, _), _)| types(*type_url))
            .map(|((type_url, key), view)| {
                let old = before.and_then(|b| b.get(&(*type_url, key.clone())));
                let permits = |name: &str| rule.allowed.permits(*type_url, key, name);
                let view = TypeView::restricted(view, permits, old);
                ((*type_url, key.clone()), view)
            })
            .collect();
        restricted.insert(rule.name.clone(), rule_views);
    }
    restricted
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
    /// Replaces every view; returns false (and wakes no one) when nothing changed.
    pub fn publish(&self, content: Content) -> bool {
        self.publish_observed(content, |_| {})
    }

    /// As [`Cache::publish`], calling `before` with a changed snapshot just before streams
    /// can see it.
    pub fn publish_observed(&self, content: Content, before: impl FnOnce(&Snapshot)) -> bool {
        let current = self.current();
        let next = Snapshot::build(content, Some(&current));
        self.replace(current, next, before)
    }

    /// Replaces the endpoint views with `endpoints` (every other view stays as it is);
    /// returns false when nothing changed.
    pub fn publish_endpoints(
        &self,
        endpoints: BTreeMap<ViewKey, Vec<(String, Bytes)>>,
        before: impl FnOnce(&Snapshot),
    ) -> bool {
        let current = self.current();
        let next = current.with_endpoints(endpoints);
        self.replace(current, next, before)
    }

    fn replace(
        &self,
        current: Arc<Snapshot>,
        next: Snapshot,
        before: impl FnOnce(&Snapshot),
    ) -> bool {
        if next.version == current.version && current.is_published() {
            return false;
        }
        before(&next);
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

    fn content(clusters: &[(&str, &[u8])], far_endpoints: &[u8]) -> Content {
        let items = |list: &[(&str, &[u8])]| -> Vec<(String, Bytes)> {
            list.iter()
                .map(|(n, b)| (n.to_string(), Bytes::copy_from_slice(b)))
                .collect()
        };
        let mut views = BTreeMap::new();
        views.insert((TypeUrl::Cluster, ViewKey::Shared), items(clusters));
        views.insert(
            (TypeUrl::Endpoint, ViewKey::Region(String::new())),
            items(&[("svc", b"near")]),
        );
        views.insert(
            (TypeUrl::Endpoint, ViewKey::Region("far".into())),
            items(&[("svc", far_endpoints)]),
        );
        views.insert(
            (TypeUrl::Listener, ViewKey::Audience(Audience::Envoy)),
            items(&[("envoy-listener", b"l")]),
        );
        views.insert(
            (TypeUrl::Listener, ViewKey::Audience(Audience::Proxyless)),
            items(&[("who.example", b"p")]),
        );
        Content {
            views,
            region_key: Arc::new(|client: &ClientView| {
                if client.region == "far" {
                    "far".to_string()
                } else {
                    String::new()
                }
            }),
            access: AccessPolicy::default(),
        }
    }

    fn client(audience: Audience, region: &str) -> ClientView {
        ClientView {
            audience,
            region: region.to_string(),
            zone: String::new(),
            grant: None,
        }
    }

    #[test]
    fn each_client_sees_its_audiences_listeners_and_its_regions_endpoints() {
        let snapshot = Snapshot::build(content(&[("svc", b"c")], b"far"), None);
        let names = |c: &ClientView| -> Vec<String> {
            snapshot
                .view(TypeUrl::Listener, c)
                .resources
                .keys()
                .cloned()
                .collect()
        };
        assert_eq!(names(&client(Audience::Envoy, "")), ["envoy-listener"]);
        assert_eq!(names(&client(Audience::Proxyless, "x")), ["who.example"]);
        let far_envoy = snapshot.view(TypeUrl::Endpoint, &client(Audience::Envoy, "far"));
        let far_grpc = snapshot.view(TypeUrl::Endpoint, &client(Audience::Proxyless, "far"));
        assert!(Arc::ptr_eq(far_envoy, far_grpc), "one view per region");
        let elsewhere = snapshot.view(TypeUrl::Endpoint, &client(Audience::Envoy, "made-up"));
        assert_eq!(&elsewhere.resources["svc"].value[..], b"near");
        assert!(snapshot
            .view(TypeUrl::Route, &client(Audience::Envoy, ""))
            .resources
            .is_empty());
    }

    #[test]
    fn unchanged_views_and_resources_are_shared_and_changes_are_listed() {
        let first = Snapshot::build(content(&[("a", b"1"), ("b", b"2")], b"far"), None);
        let second = Snapshot::build(
            content(&[("a", b"1"), ("b", b"3"), ("c", b"4")], b"far"),
            Some(&first),
        );
        let shared = client(Audience::Envoy, "");
        let (before, after) = (
            first.view(TypeUrl::Cluster, &shared),
            second.view(TypeUrl::Cluster, &shared),
        );
        assert!(Arc::ptr_eq(&before.resources["a"], &after.resources["a"]));
        assert_eq!(
            after.changed_since.as_ref().map(|(g, n)| (*g, n.to_vec())),
            Some((before.generation, vec!["b".to_string(), "c".to_string()]))
        );
        let far = client(Audience::Envoy, "far");
        assert!(
            Arc::ptr_eq(
                first.view(TypeUrl::Endpoint, &far),
                second.view(TypeUrl::Endpoint, &far)
            ),
            "an unchanged view keeps its generation"
        );
        assert_ne!(first.version, second.version);
    }

    #[test]
    fn a_granted_client_sees_only_what_its_rule_allows_sharing_the_full_views_resources() {
        use crate::xds::server::access::{AccessPolicy, AccessRule, Allowed, NamePattern};
        let rule = |clusters: &[&str]| AccessRule {
            name: "team".into(),
            identities: vec![NamePattern::new("*")],
            node_ids: vec![NamePattern::new("*")],
            allowed: Allowed {
                clusters: clusters.iter().map(|c| c.to_string()).collect(),
                ..Allowed::default()
            },
        };
        let mut first = content(&[("svc", b"1"), ("other", b"2")], b"far");
        first.access = AccessPolicy::new(vec![rule(&["svc"])]);
        let first = Snapshot::build(first, None);
        let granted = ClientView {
            grant: Some("team".into()),
            ..client(Audience::Envoy, "far")
        };
        let clusters = first.view(TypeUrl::Cluster, &granted);
        assert_eq!(clusters.resources.keys().collect::<Vec<_>>(), ["svc"]);
        assert!(Arc::ptr_eq(
            &clusters.resources["svc"],
            &first
                .view(TypeUrl::Cluster, &client(Audience::Envoy, ""))
                .resources["svc"]
        ));
        assert_eq!(
            &first.view(TypeUrl::Endpoint, &granted).resources["svc"].value[..],
            b"far"
        );
        assert!(first.view(TypeUrl::Listener, &granted).resources.is_empty());
        let unknown = ClientView {
            grant: Some("gone".into()),
            ..client(Audience::Envoy, "")
        };
        assert!(first.view(TypeUrl::Cluster, &unknown).resources.is_empty());

        // Widening the rule changes the restricted view, and only it.
        let mut second = content(&[("svc", b"1"), ("other", b"2")], b"far");
        second.access = AccessPolicy::new(vec![rule(&["svc", "other"])]);
        let second = Snapshot::build(second, Some(&first));
        assert_ne!(first.version, second.version);
        let widened = second.view(TypeUrl::Cluster, &granted);
        assert_eq!(widened.resources.len(), 2);
        assert_eq!(
            widened
                .changed_since
                .as_ref()
                .map(|(g, n)| (*g, n.to_vec())),
            Some((clusters.generation, vec!["other".to_string()]))
        );
        assert!(Arc::ptr_eq(
            first.view(TypeUrl::Cluster, &client(Audience::Envoy, "")),
            second.view(TypeUrl::Cluster, &client(Audience::Envoy, ""))
        ));

        // Endpoint-only publications refresh the restricted endpoint views too.
        let mut endpoints = BTreeMap::new();
        endpoints.insert(
            ViewKey::Region("far".into()),
            vec![
                ("svc".to_string(), Bytes::from_static(b"moved")),
                ("other".to_string(), Bytes::from_static(b"x")),
            ],
        );
        let third = second.with_endpoints(endpoints);
        let seen = third.view(TypeUrl::Endpoint, &granted);
        assert_eq!(&seen.resources["svc"].value[..], b"moved");
        assert!(Arc::ptr_eq(
            third.view(TypeUrl::Cluster, &granted),
            second.view(TypeUrl::Cluster, &granted)
        ));
    }

    #[test]
    fn publishing_endpoints_keeps_every_other_view() {
        let cache = Cache::default();
        assert!(cache.publish(content(&[("a", b"1")], b"far")));
        assert!(
            !cache.publish(content(&[("a", b"1")], b"far")),
            "nothing changed"
        );
        let before = cache.current();
        let mut endpoints = BTreeMap::new();
        endpoints.insert(
            ViewKey::Region(String::new()),
            vec![("svc".to_string(), Bytes::from_static(b"moved"))],
        );
        assert!(cache.publish_endpoints(endpoints, |_| {}));
        let after = cache.current();
        let shared = client(Audience::Envoy, "");
        assert!(Arc::ptr_eq(
            before.view(TypeUrl::Cluster, &shared),
            after.view(TypeUrl::Cluster, &shared)
        ));
        assert_eq!(
            &after.view(TypeUrl::Endpoint, &shared).resources["svc"].value[..],
            b"moved"
        );
        assert_eq!(
            &after
                .view(TypeUrl::Endpoint, &client(Audience::Envoy, "far"))
                .resources["svc"]
                .value[..],
            b"moved",
            "a region without a view of its own sees the no-region view"
        );
    }
}
