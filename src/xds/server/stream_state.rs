//! What the state-of-the-world and delta state machines share: per type, the subscription,
//! the view the client was last brought up to date with, ACK/NACK bookkeeping, and the
//! decision of what the client needs next and in which order. Pure: views go in, decisions
//! come out; the protocol modules turn decisions into responses.
//!
//! Rules kept here (see XDS-NOTES.md):
//! - responses are built when the transport asks for one, from the newest snapshot, so a slow
//!   client holds its latest pending state per type, never a queue of stale responses;
//! - types go out in push order (clusters, endpoints, listeners, routes): adds before
//!   references; a cluster (and its endpoints) is removed only once no listener or route
//!   update is pending, so routes stop naming it first;
//! - a changed cluster is followed by its endpoints, changed or not (Envoy keeps it warming
//!   until they arrive);
//! - a NACKed view is not sent again; the next change sends what differs from the last view
//!   the client ACKed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;

use super::cache::{Audience, ClientView, Snapshot, TypeView};
use super::subscription::{changes, Subscription};
use crate::xds::types::TypeUrl;
use crate::xds::wire::Resource;

/// A rejected response.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Nack {
    /// The version the client rejected.
    pub version: String,
    pub nonce: u64,
    pub detail: String,
}

/// What a request turned out to be.
#[derive(Clone, Debug, PartialEq)]
pub enum RequestKind {
    /// The first request for a type on this stream.
    Subscribe,
    /// A change of subscription without an ACK or NACK (delta).
    Update,
    Ack,
    Nack(Nack),
    /// Carries an old nonce: superseded by a response the client has not seen yet.
    Stale,
}

/// What one stream knows about one resource type.
#[derive(Clone, Debug, Default)]
pub struct TypeState {
    pub subscription: Subscription,
    /// The view the client's subscribed resources match, as far as the server knows.
    pub base: Option<Arc<TypeView>>,
    /// The base at the last ACK.
    pub acked_base: Option<Arc<TypeView>>,
    /// Resources the client still holds although they are gone, their removal held back
    /// until nothing references them (the resource, when the server sent it).
    pub kept: BTreeMap<String, Option<Arc<Resource>>>,
    /// Names to send even if unchanged: newly subscribed ones, endpoints of changed clusters.
    pub forced: Forced,
    /// The next evaluation must answer, even with nothing (first request, re-subscription).
    pub must_answer: bool,
    /// Delta: the versions the client said it holds when it (re)subscribed, until answered.
    pub initial_versions: Option<HashMap<String, String>>,
    pub last_nonce: u64,
    pub awaiting_ack: bool,
    pub sent_version: Option<Arc<str>>,
    pub acked_version: Option<Arc<str>>,
    pub last_nack: Option<Nack>,
    /// The generation of the view last NACKed: it is not sent again.
    pub nacked_generation: Option<u64>,
    /// The view last NACKed, for status (what the client rejected).
    pub rejected: Option<Arc<TypeView>>,
    pub responses_sent: u64,
}

/// Names to send even if unchanged. Kept without copying names: a first subscription to a
/// thousand names is a flag over the subscription's own (shared) set, and the endpoints that
/// must follow changed clusters are the clusters' resources, named alike.
#[derive(Clone, Debug, Default)]
pub struct Forced {
    /// Every name of the subscription.
    every_subscribed: bool,
    names: BTreeSet<String>,
    /// Resources whose names are forced (the clusters whose endpoints must follow).
    named_after: Vec<Arc<Resource>>,
}

impl Forced {
    pub fn is_empty(&self) -> bool {
        !self.every_subscribed && self.names.is_empty() && self.named_after.is_empty()
    }

    pub fn clear(&mut self) {
        *self = Forced::default();
    }

    /// Whether the client asked for any of the names (newly subscribed), rather than only
    /// the server forcing them (endpoints that follow changed clusters).
    pub fn asked_by_client(&self) -> bool {
        self.every_subscribed || !self.names.is_empty()
    }

    /// Forces every name `subscription` lists.
    pub fn every_subscribed(&mut self) {
        self.every_subscribed = true;
    }

    pub fn add_names(&mut self, names: impl IntoIterator<Item = String>) {
        self.names.extend(names);
    }

    /// Forces the names of `resources`.
    pub fn add_named_after(&mut self, resources: &[Arc<Resource>]) {
        self.named_after.extend(resources.iter().cloned());
        if self.named_after.len() > MAX_FORCED_RESOURCES {
            self.named_after.sort_by(|a, b| a.name.cmp(&b.name));
            self.named_after.dedup_by(|a, b| a.name == b.name);
        }
    }

    /// Drops names `subscription` does not cover (a flag over the whole set stays).
    pub fn retain_in(&mut self, subscription: &Subscription) {
        self.names.retain(|name| subscription.contains(name));
        self.named_after.retain(|r| subscription.contains(&r.name));
    }

    /// The forced names `subscription` covers (perhaps with repeats).
    fn names_in<'a>(&'a self, subscription: &'a Subscription) -> impl Iterator<Item = &'a str> {
        let every = self
            .every_subscribed
            .then(|| subscription.names.iter())
            .into_iter()
            .flatten();
        every
            .chain(self.names.iter())
            .map(String::as_str)
            .chain(self.named_after.iter().map(|r| r.name.as_str()))
            .filter(|name| subscription.contains(name))
    }
}

/// Past this many forced resources, repeats are removed (a client that keeps getting cluster
/// pushes without taking endpoints must not grow the list).
const MAX_FORCED_RESOURCES: usize = 4096;

/// What a client needs of one type now.
#[derive(Debug, Default)]
pub struct Need {
    /// Resources to send: added, changed, newly subscribed, or forced.
    pub updated: Vec<Arc<Resource>>,
    /// Names to remove now.
    pub removed: Vec<String>,
    /// Names the client keeps for now although they are gone (removal held back).
    pub kept: BTreeMap<String, Option<Arc<Resource>>>,
    /// Explicitly subscribed names that do not exist.
    pub absent: Vec<String>,
    /// The client must be answered even if all of the above is empty.
    pub must_answer: bool,
}

impl Need {
    /// Whether anything would go on the wire for a protocol that can say "removed".
    fn is_empty(&self) -> bool {
        self.updated.is_empty()
            && self.removed.is_empty()
            && self.absent.is_empty()
            && !self.must_answer
    }
}

impl TypeState {
    /// What the client needs to be up to date with `view`; when there are removals,
    /// `hold_removals` says whether they must wait. None when nothing is needed.
    pub fn need(&self, view: &Arc<TypeView>, hold_removals: impl FnOnce() -> bool) -> Option<Need> {
        // A NACKed view goes again only when the client asks again (a subscription), not
        // to follow a cluster push: the client would reject it again.
        if self.nacked_generation == Some(view.generation)
            && !self.must_answer
            && !self.forced.asked_by_client()
        {
            return None;
        }
        let mut need = Need {
            must_answer: self.must_answer,
            ..Need::default()
        };
        let mut removed: BTreeMap<String, Option<Arc<Resource>>> = self
            .kept
            .iter()
            .filter(|(name, _)| !view.resources.contains_key(*name))
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect();
        match (&self.base, &self.initial_versions) {
            (Some(base), _) => {
                let found = changes(base, view, &self.subscription);
                need.updated = found.updated;
                for resource in found.removed {
                    removed.insert(resource.name.clone(), Some(resource));
                }
            }
            (None, Some(initial)) => {
                for resource in self.subscription.select(view) {
                    if initial.get(&resource.name) != Some(&resource.version) {
                        need.updated.push(resource);
                    }
                }
                for name in initial.keys() {
                    if self.subscription.contains(name) && !view.resources.contains_key(name) {
                        removed.insert(name.clone(), None);
                    }
                }
            }
            (None, None) => need.updated = self.subscription.select(view),
        }
        if !self.forced.is_empty() {
            let mut listed: HashSet<&str> = need.updated.iter().map(|r| r.name.as_str()).collect();
            let mut extra = Vec::new();
            let held = |name: &str, version: &str| {
                self.initial_versions
                    .as_ref()
                    .and_then(|initial| initial.get(name))
                    .is_some_and(|v| v == version)
            };
            let mut absent = BTreeSet::new();
            for name in self.forced.names_in(&self.subscription) {
                match view.resources.get(name) {
                    // A reconnecting client that holds this version needs nothing.
                    Some(resource) if held(name, &resource.version) => {}
                    Some(resource) if listed.insert(name) => extra.push(resource.clone()),
                    Some(_) => {}
                    None if self.subscription.names.contains(name) => {
                        absent.insert(name);
                    }
                    None => {}
                }
            }
            need.absent = absent.into_iter().map(str::to_string).collect();
            need.updated.extend(extra);
        }
        if !removed.is_empty() && hold_removals() {
            need.kept = removed;
        } else {
            need.removed = removed.into_keys().collect();
        }
        (!need.is_empty()).then_some(need)
    }

    /// Records that a response bringing the client to `view` (with `need`) went out.
    pub fn sent(&mut self, view: &Arc<TypeView>, need: Need, nonce: u64, version: Arc<str>) {
        self.base = Some(view.clone());
        self.kept = need.kept;
        self.forced.clear();
        self.must_answer = false;
        self.initial_versions = None;
        self.last_nonce = nonce;
        self.awaiting_ack = true;
        self.sent_version = Some(version);
        self.nacked_generation = None;
        self.rejected = None;
        self.responses_sent += 1;
    }

    /// The client is up to date with `view` without a response (nothing it can be told).
    pub fn caught_up(&mut self, view: &Arc<TypeView>, need: Need) {
        self.base = Some(view.clone());
        self.kept = need.kept;
        // What was forced and is not there cannot be told in this protocol; once it exists,
        // it is an addition to the view and goes out as one.
        self.forced.clear();
    }

    pub fn acked(&mut self, version: &str) {
        self.awaiting_ack = false;
        self.acked_version = Some(version.into());
        self.acked_base = self.base.clone();
    }

    /// The last response was rejected: the client still holds what it last ACKed, and the
    /// rejected view is not sent again.
    pub fn nacked(&mut self, nack: Nack) {
        self.awaiting_ack = false;
        self.nacked_generation = self.base.as_ref().map(|b| b.generation);
        self.rejected = std::mem::replace(&mut self.base, self.acked_base.clone());
        self.last_nack = Some(nack);
    }
}

/// Type URLs a stream asked for that the server does not serve: each gets one empty answer
/// (after every response that was due), and only a few are remembered.
#[derive(Debug, Default)]
pub struct UnknownTypes {
    pending: std::collections::VecDeque<String>,
    answered: BTreeSet<String>,
    /// Requests for more types than are remembered, which get no answer.
    pub refused: u64,
}

impl UnknownTypes {
    /// Type URLs remembered per stream; requests for more are not answered.
    pub const MAX: usize = 16;

    pub fn note(&mut self, type_url: &str) {
        if self.answered.contains(type_url) {
            return;
        }
        if self.answered.len() < Self::MAX {
            self.answered.insert(type_url.to_string());
            self.pending.push_back(type_url.to_string());
        } else {
            self.refused += 1;
        }
    }

    /// The next type URL to answer.
    pub fn take_next(&mut self) -> Option<String> {
        self.pending.pop_front()
    }
}

/// The state both protocols keep per stream: the node, per type state, nonces.
#[derive(Debug, Default)]
pub struct StreamCore {
    /// The node of the first request that named one; shared with the client registry.
    pub node: Option<Arc<Node>>,
    pub client: ClientView,
    pub types: [Option<TypeState>; TypeUrl::COUNT],
    nonce: u64,
    /// A per-type service serves only this type.
    pub only: Option<TypeUrl>,
    /// Types asked for that this server does not serve.
    pub unknown: UnknownTypes,
}

impl StreamCore {
    pub fn for_service(only: Option<TypeUrl>) -> Self {
        StreamCore {
            only,
            ..StreamCore::default()
        }
    }

    /// Keeps the node of the first request that carries one, and the view it implies.
    pub fn note_node(&mut self, node: Option<&Node>) {
        if self.node.is_some() {
            return;
        }
        if let Some(node) = node {
            self.client = ClientView {
                audience: audience_of(node),
                region: node
                    .locality
                    .as_ref()
                    .map(|l| l.region.clone())
                    .unwrap_or_default(),
                zone: node
                    .locality
                    .as_ref()
                    .map(|l| l.zone.clone())
                    .unwrap_or_default(),
                grant: self.client.grant.clone(),
            };
            self.node = Some(Arc::new(node.clone()));
        }
    }

    /// The served type a request's type URL names (an empty one names a per-type service's
    /// type); None for a type this stream does not serve.
    pub fn served_type(&self, type_url: &str) -> Option<TypeUrl> {
        let type_url = if type_url.is_empty() {
            self.only?
        } else {
            TypeUrl::from_url(type_url)?
        };
        self.only
            .is_none_or(|only| only == type_url)
            .then_some(type_url)
    }

    pub fn state(&self, type_url: TypeUrl) -> Option<&TypeState> {
        self.types[type_url.index()].as_ref()
    }

    pub fn state_mut(&mut self, type_url: TypeUrl) -> Option<&mut TypeState> {
        self.types[type_url.index()].as_mut()
    }

    pub fn next_nonce(&mut self) -> u64 {
        self.nonce += 1;
        self.nonce
    }

    /// What the client needs of `type_url` in `snapshot`, with removals held back while a
    /// type that references it still has updates to send.
    pub fn need(&self, type_url: TypeUrl, snapshot: &Snapshot) -> Option<Need> {
        let state = self.state(type_url)?;
        let view = snapshot.view(type_url, &self.client);
        state.need(view, || self.hold_removals(type_url, snapshot))
    }

    fn hold_removals(&self, type_url: TypeUrl, snapshot: &Snapshot) -> bool {
        if !type_url.removal_waits_for_references() {
            return false;
        }
        let clusters_kept = type_url == TypeUrl::Endpoint
            && self
                .state(TypeUrl::Cluster)
                .is_some_and(|c| !c.kept.is_empty());
        // A listener or route still to be updated, or still to be removed (a narrowed grant
        // takes a listener and its clusters away together), may name what would go.
        let references_pending = [TypeUrl::Listener, TypeUrl::Route].into_iter().any(|t| {
            self.need(t, snapshot)
                .is_some_and(|n| !n.updated.is_empty() || !n.removed.is_empty() || n.must_answer)
        });
        clusters_kept || references_pending
    }

    /// The next type with something to send, in push order, and what it needs.
    pub fn next(&self, snapshot: &Snapshot) -> Option<(TypeUrl, Need)> {
        if !snapshot.is_published() {
            return None;
        }
        TypeUrl::ALL
            .into_iter()
            .find_map(|t| self.need(t, snapshot).map(|need| (t, need)))
    }

    /// Moves each type's base up to the current view when the change concerns nothing the
    /// client subscribes to, so the next change is found from the cache's list of changed
    /// names rather than by comparing every subscribed resource.
    pub fn settle(&mut self, snapshot: &Snapshot) {
        for type_url in TypeUrl::ALL {
            let view = snapshot.view(type_url, &self.client);
            let Some(state) = self.types[type_url.index()].as_mut() else {
                continue;
            };
            let Some(base) = &state.base else { continue };
            if base.generation == view.generation
                || state.nacked_generation.is_some()
                || !state.kept.is_empty()
                || !state.forced.is_empty()
                || state.must_answer
                || !changes(base, view, &state.subscription).is_empty()
            {
                continue;
            }
            if !state.awaiting_ack {
                state.acked_base = Some(view.clone());
            }
            state.base = Some(view.clone());
        }
    }

    /// After a response of `type_url` with `updated` resources: a changed cluster's
    /// endpoints must follow.
    pub fn warm_dependents(&mut self, type_url: TypeUrl, updated: &[Arc<Resource>]) {
        let Some(dependent) = type_url.dependent().filter(|_| type_url.warms_dependent()) else {
            return;
        };
        if let Some(state) = self.state_mut(dependent) {
            // Switchyard names a cluster's ClusterLoadAssignment after the cluster.
            state.forced.add_named_after(updated);
        }
    }

    /// Whether every subscribed type is answered, ACKed and up to date with `snapshot`.
    pub fn is_synced(&self, snapshot: &Snapshot) -> bool {
        snapshot.is_published()
            && TypeUrl::ALL.into_iter().all(|t| match self.state(t) {
                None => true,
                Some(state) => !state.awaiting_ack && self.need(t, snapshot).is_none(),
            })
    }
}

/// Proxyless gRPC clients say so in their node: a gRPC user agent, or the client features
/// only gRPC announces. Everything else (Envoy, the sidecar) gets Envoy's resources.
pub fn audience_of(node: &Node) -> Audience {
    let agent = node.user_agent_name.to_ascii_lowercase();
    let grpc_feature = node
        .client_features
        .iter()
        .any(|f| f == "envoy.lb.does_not_support_overprovisioning");
    if agent != "envoy" && (agent.contains("grpc") || grpc_feature) {
        Audience::Proxyless
    } else {
        Audience::Envoy
    }
}
