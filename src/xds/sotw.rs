//! The state-of-the-world stream state machine, free of I/O: requests and new snapshots go
//! in, responses come out. Per type it remembers the subscription, the last response (nonce
//! and version), what the client ACKed and what it NACKed.
//!
//! Rules it keeps (see XDS-NOTES.md):
//! - a request whose nonce is not the last one sent for its type is stale and ignored;
//! - a NACK is recorded and the rejected content is not sent again until it changes;
//! - the first request of a type is always answered, even with no resources;
//! - a subscription change is always answered (re-subscribes included);
//! - a Cluster (Listener) response is followed by the endpoints (routes) the client asks for
//!   next, changed or not, because Envoy keeps the cluster (listener) warming until then;
//! - a push adds before it references and unreferences before it removes: when a snapshot
//!   drops clusters or listeners, they are first kept while everything else is updated, and
//!   removed in a final Listener, then Cluster, response.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::cache::{set_version, Audience, ClientView, Resource, Snapshot};
use super::types::{dependent_of, is_full_state, CLUSTER, LISTENER, PUSH_ORDER};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Nack {
    /// The version the client rejected.
    pub version: String,
    pub nonce: String,
    pub detail: String,
}

/// What one stream knows about one resource type.
#[derive(Clone, Debug, Default)]
pub struct TypeState {
    pub wildcard: bool,
    pub names: BTreeSet<String>,
    pub last_nonce: String,
    /// Version of the last response sent (None before the first).
    pub sent_version: Option<String>,
    pub acked_version: Option<String>,
    pub last_nack: Option<Nack>,
    pub responses_sent: u64,
    /// Answer the next request (or push) even if the content did not change.
    force_next: bool,
}

/// What a request turned out to be.
#[derive(Clone, Debug, PartialEq)]
pub enum RequestKind {
    /// The first request for a type on this stream.
    Subscribe,
    Ack {
        version: String,
    },
    Nack(Nack),
    /// Carries an old nonce: superseded by a response the client has not seen yet.
    Stale,
}

#[derive(Debug, Default)]
pub struct StreamState {
    pub node: Option<Node>,
    pub types: BTreeMap<String, TypeState>,
    nonces: u64,
    /// The snapshot this stream was last served from.
    served: Option<Arc<Snapshot>>,
}

impl StreamState {
    /// Version of the snapshot this stream was last served from.
    pub fn served_version(&self) -> Option<&str> {
        self.served.as_deref().map(|s| s.version.as_str())
    }

    /// Which view of the snapshot this stream gets: proxyless gRPC or Envoy (from what the
    /// node says it is), and the region its node reports.
    pub fn view(&self) -> ClientView {
        let Some(node) = &self.node else {
            return ClientView::default();
        };
        ClientView {
            audience: audience_of(node),
            region: node
                .locality
                .as_ref()
                .map(|l| l.region.clone())
                .unwrap_or_default(),
        }
    }

    /// Handles one request; returns what it was and the responses to send, in order.
    pub fn on_request(
        &mut self,
        request: &DiscoveryRequest,
        snapshot: &Arc<Snapshot>,
    ) -> (RequestKind, Vec<DiscoveryResponse>) {
        self.served = Some(snapshot.clone());
        if self.node.is_none() {
            self.node = request.node.clone();
        }
        let type_url = request.type_url.clone();
        let first = !self.types.contains_key(&type_url);
        let state = self.types.entry(type_url.clone()).or_default();
        let kind = if first {
            RequestKind::Subscribe
        } else if request.response_nonce != state.last_nonce {
            return (RequestKind::Stale, Vec::new());
        } else if let Some(error) = &request.error_detail {
            let nack = Nack {
                version: state.sent_version.clone().unwrap_or_default(),
                nonce: request.response_nonce.clone(),
                detail: error.message.clone(),
            };
            state.last_nack = Some(nack.clone());
            RequestKind::Nack(nack)
        } else {
            state.acked_version = Some(request.version_info.clone());
            RequestKind::Ack {
                version: request.version_info.clone(),
            }
        };
        let (wildcard, names) = subscription(&type_url, request, first, state.wildcard);
        let changed = first || wildcard != state.wildcard || names != state.names;
        state.wildcard = wildcard;
        state.names = names;
        let mut out = Vec::new();
        self.respond(&type_url, snapshot, None, changed, &mut out);
        (kind, out)
    }

    /// Pushes what a new snapshot changed for this client: adds before references, and
    /// removals of clusters and listeners only once nothing points at them any more.
    pub fn on_snapshot(&mut self, snapshot: &Arc<Snapshot>) -> Vec<DiscoveryResponse> {
        let previous = self.served.replace(snapshot.clone());
        let removing = previous.filter(|old| {
            PUSH_ORDER.iter().filter(|t| is_full_state(t)).any(|t| {
                self.types
                    .get(*t)
                    .is_some_and(|s| drops(old, snapshot, t, s, &self.view()))
            })
        });
        let mut out = Vec::new();
        for type_url in PUSH_ORDER {
            let keep = removing.as_deref().filter(|_| is_full_state(type_url));
            self.respond(type_url, snapshot, keep, false, &mut out);
        }
        if removing.is_some() {
            for type_url in [LISTENER, CLUSTER] {
                self.respond(type_url, snapshot, None, false, &mut out);
            }
        }
        out
    }

    /// Sends `type_url` if its content for this client changed (or `force`, or a pending
    /// forced answer); then lets its dependent type follow. With `keep`, resources of that
    /// older snapshot that the new one drops are sent too (removal comes later).
    fn respond(
        &mut self,
        type_url: &str,
        snapshot: &Snapshot,
        keep: Option<&Snapshot>,
        force: bool,
        out: &mut Vec<DiscoveryResponse>,
    ) {
        let view = self.view();
        let Some(state) = self.types.get_mut(type_url) else {
            return;
        };
        let mut selected = select(snapshot, type_url, state, &view);
        if let Some(old) = keep {
            let dropped = select(old, type_url, state, &view)
                .into_iter()
                .filter(|r| !selected.iter().any(|n| n.name == r.name))
                .collect::<Vec<_>>();
            selected.extend(dropped);
            selected.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let version = set_version(selected.iter());
        let force = force || state.force_next;
        if !force && state.sent_version.as_deref() == Some(version.as_str()) {
            return;
        }
        self.nonces += 1;
        let nonce = self.nonces.to_string();
        state.last_nonce = nonce.clone();
        state.sent_version = Some(version.clone());
        state.responses_sent += 1;
        state.force_next = false;
        out.push(DiscoveryResponse {
            version_info: version,
            resources: selected.iter().map(|r| r.body.clone()).collect(),
            type_url: type_url.to_string(),
            nonce,
            ..Default::default()
        });
        if let Some(dependent) = dependent_of(type_url) {
            if let Some(dependent_state) = self.types.get_mut(dependent) {
                dependent_state.force_next = true;
                self.respond(dependent, snapshot, None, false, out);
            }
        }
    }
}

/// The subscription a request asks for. For Listener and Cluster, an empty first request means
/// "everything" (legacy wildcard) and stays so while names stay empty; `*` always means it.
fn subscription(
    type_url: &str,
    request: &DiscoveryRequest,
    first: bool,
    was_wildcard: bool,
) -> (bool, BTreeSet<String>) {
    let mut names: BTreeSet<String> = request.resource_names.iter().cloned().collect();
    let star = names.remove("*");
    let legacy =
        is_full_state(type_url) && request.resource_names.is_empty() && (first || was_wildcard);
    (star || legacy, names)
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

/// Whether going from `old` to `new` removes a resource of `type_url` this client has.
fn drops(
    old: &Snapshot,
    new: &Snapshot,
    type_url: &str,
    state: &TypeState,
    view: &ClientView,
) -> bool {
    let kept = new.for_client(type_url, view);
    select(old, type_url, state, view)
        .iter()
        .any(|r| !kept.as_ref().is_some_and(|k| k.contains_key(&r.name)))
}

/// The resources of `type_url` this client subscribes to, sorted by name.
fn select(
    snapshot: &Snapshot,
    type_url: &str,
    state: &TypeState,
    view: &ClientView,
) -> Vec<Arc<Resource>> {
    let Some(all) = snapshot.for_client(type_url, view) else {
        return Vec::new();
    };
    if state.wildcard {
        return all.values().cloned().collect();
    }
    state
        .names
        .iter()
        .filter_map(|name| all.get(name).cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::{self, Resources};
    use crate::xds::types::{ENDPOINT, ROUTE};
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use envoy_types::pb::google::rpc::Status;

    fn snapshot(clusters: &[&str], priority: u32) -> Arc<Snapshot> {
        let mut resources = Resources::default();
        for name in clusters {
            resources.clusters.push(Cluster {
                name: name.to_string(),
                ..Default::default()
            });
            let mut assignment = ClusterLoadAssignment {
                cluster_name: name.to_string(),
                ..Default::default()
            };
            assignment.endpoints.push(Default::default());
            assignment.endpoints[0].priority = priority;
            resources.endpoints.push(assignment);
        }
        Arc::new(Snapshot::build(&resources, None))
    }

    fn request(type_url: &str, names: &[&str], nonce: &str, version: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: type_url.to_string(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            response_nonce: nonce.to_string(),
            version_info: version.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn first_request_is_answered_even_when_empty() {
        let mut stream = StreamState::default();
        let (kind, out) =
            stream.on_request(&request(ENDPOINT, &["missing"], "", ""), &snapshot(&[], 0));
        assert_eq!(kind, RequestKind::Subscribe);
        assert_eq!(out.len(), 1);
        assert!(out[0].resources.is_empty());
    }

    #[test]
    fn ack_gets_no_response_and_nack_is_not_resent() {
        let snap = snapshot(&["a"], 0);
        let mut stream = StreamState::default();
        let (_, out) = stream.on_request(&request(CLUSTER, &[], "", ""), &snap);
        let sent = out[0].clone();
        let (kind, out) = stream.on_request(
            &request(CLUSTER, &[], &sent.nonce, &sent.version_info),
            &snap,
        );
        assert_eq!(
            kind,
            RequestKind::Ack {
                version: sent.version_info.clone()
            }
        );
        assert!(out.is_empty());

        let changed = snapshot(&["a", "b"], 0);
        let pushed = stream.on_snapshot(&changed);
        assert_eq!(pushed.len(), 1);
        let mut nack = request(CLUSTER, &[], &pushed[0].nonce, &sent.version_info);
        nack.error_detail = Some(Status {
            code: 3,
            message: "bad cluster".into(),
            ..Default::default()
        });
        let (kind, out) = stream.on_request(&nack, &changed);
        assert!(
            matches!(kind, RequestKind::Nack(ref n) if n.detail == "bad cluster" && n.version == pushed[0].version_info)
        );
        assert!(out.is_empty(), "a NACKed version must not be re-sent");
        assert!(stream.on_snapshot(&changed).is_empty());
        assert_eq!(stream.types[CLUSTER].responses_sent, 2);
    }

    #[test]
    fn stale_nonces_are_ignored() {
        let snap = snapshot(&["a"], 0);
        let mut stream = StreamState::default();
        stream.on_request(&request(CLUSTER, &[], "", ""), &snap);
        stream.on_snapshot(&snapshot(&["a", "b"], 0));
        let (kind, out) = stream.on_request(&request(CLUSTER, &[], "1", ""), &snap);
        assert_eq!(kind, RequestKind::Stale);
        assert!(out.is_empty());
    }

    #[test]
    fn cluster_change_pushes_endpoints_even_if_unchanged() {
        let snap = snapshot(&["a"], 0);
        let mut stream = StreamState::default();
        let (_, cds) = stream.on_request(&request(CLUSTER, &[], "", ""), &snap);
        let (_, eds) = stream.on_request(&request(ENDPOINT, &["a"], "", ""), &snap);
        stream.on_request(
            &request(CLUSTER, &[], &cds[0].nonce, &cds[0].version_info),
            &snap,
        );
        stream.on_request(
            &request(ENDPOINT, &["a"], &eds[0].nonce, &eds[0].version_info),
            &snap,
        );
        let mut changed = Resources::default();
        changed.clusters.push(Cluster {
            name: "a".into(),
            connect_timeout: Some(translate::seconds(9)),
            ..Default::default()
        });
        changed.endpoints.push(ClusterLoadAssignment {
            cluster_name: "a".into(),
            endpoints: vec![Default::default()],
            ..Default::default()
        });
        let pushed = stream.on_snapshot(&Arc::new(Snapshot::build(&changed, None)));
        let types: Vec<&str> = pushed.iter().map(|r| r.type_url.as_str()).collect();
        assert_eq!(types, vec![CLUSTER, ENDPOINT]);
    }

    #[test]
    fn resubscribe_after_unsubscribe_is_answered() {
        let snap = snapshot(&["a", "b"], 0);
        let mut stream = StreamState::default();
        let (_, first) = stream.on_request(&request(ENDPOINT, &["a", "b"], "", ""), &snap);
        let (_, drop_b) = stream.on_request(
            &request(ENDPOINT, &["a"], &first[0].nonce, &first[0].version_info),
            &snap,
        );
        assert_eq!(drop_b.len(), 1);
        let (_, again) = stream.on_request(
            &request(
                ENDPOINT,
                &["a", "b"],
                &drop_b[0].nonce,
                &drop_b[0].version_info,
            ),
            &snap,
        );
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].resources.len(), 2);
    }

    #[test]
    fn removed_clusters_go_after_the_routes_that_named_them() {
        let with_b = |b: bool| {
            let mut resources = Resources::default();
            for name in ["a", "b"].into_iter().filter(|n| b || *n == "a") {
                resources.clusters.push(Cluster {
                    name: name.into(),
                    ..Default::default()
                });
            }
            resources.routes.push(RouteConfiguration {
                name: "r".into(),
                virtual_hosts: vec![Default::default(); if b { 2 } else { 1 }],
                ..Default::default()
            });
            Arc::new(Snapshot::build(&resources, None))
        };
        let before = with_b(true);
        let mut stream = StreamState::default();
        let (_, cds) = stream.on_request(&request(CLUSTER, &[], "", ""), &before);
        stream.on_request(&request(ROUTE, &["r"], "", ""), &before);
        stream.on_request(
            &request(CLUSTER, &[], &cds[0].nonce, &cds[0].version_info),
            &before,
        );
        let pushed = stream.on_snapshot(&with_b(false));
        let order: Vec<(&str, usize)> = pushed
            .iter()
            .map(|r| {
                (
                    crate::xds::types::short_name(&r.type_url),
                    r.resources.len(),
                )
            })
            .collect();
        assert_eq!(
            order,
            vec![("RouteConfiguration", 1), ("Cluster", 1)],
            "route first, then the cluster removal"
        );
    }
}
