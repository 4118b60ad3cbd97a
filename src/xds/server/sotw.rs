//! The state-of-the-world stream state machine, free of I/O: requests and snapshots go in,
//! responses come out when the transport asks for one.
//!
//! What is state-of-the-world here (on top of [`StreamCore`]'s rules): a request whose nonce
//! is not the last one sent for its type is stale and ignored; the first request of a type is
//! always answered, even with nothing; a change of subscription is answered with the newly
//! asked-for names; Cluster and Listener responses carry every resource (one left out is
//! deleted); ClusterLoadAssignment and RouteConfiguration responses carry only what changed
//! for this client (clients keep what a response leaves out). An empty resource list for
//! Listener and Cluster in a first request means "everything" (the legacy wildcard).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::cache::Snapshot;
use super::stream_state::{Nack, RequestKind, StreamCore};
use super::subscription::{NameSets, Subscription};
use crate::xds::types::TypeUrl;
use crate::xds::wire::{content_hash, SotwRequest, SotwResponse, TypeName};

pub struct SotwStream {
    pub core: StreamCore,
    names: Arc<NameSets>,
}

impl SotwStream {
    pub fn new(names: Arc<NameSets>, only: Option<TypeUrl>) -> Self {
        SotwStream {
            core: StreamCore::for_service(only),
            names,
        }
    }

    /// Takes one request in. Returns its type (None when not served) and what it was.
    pub fn on_request(&mut self, request: &SotwRequest) -> (Option<TypeUrl>, RequestKind) {
        if self.core.node.is_none() && request.has_node() {
            self.core.note_node(request.node().as_ref());
        }
        let Some(type_url) = self.core.served_type(request.type_url()) else {
            self.core.unknown.note(request.type_url());
            return (None, RequestKind::Stale);
        };
        let first = self.core.state(type_url).is_none();
        let state = self.core.types[type_url.index()].get_or_insert_default();
        let kind = if first {
            RequestKind::Subscribe
        } else if state.last_nonce == 0 {
            RequestKind::Update
        } else if request.response_nonce().parse::<u64>().ok() != Some(state.last_nonce) {
            return (Some(type_url), RequestKind::Stale);
        } else if let Some(error) = request.error_detail() {
            let nack = Nack {
                version: state
                    .sent_version
                    .as_deref()
                    .unwrap_or_default()
                    .to_string(),
                nonce: state.last_nonce,
                detail: error.message.clone(),
            };
            state.nacked(nack.clone());
            RequestKind::Nack(nack)
        } else {
            state.acked(request.version_info());
            RequestKind::Ack
        };
        let subscription = self.subscription(type_url, request, first);
        let state = self.core.types[type_url.index()]
            .as_mut()
            .expect("created above");
        if subscription != state.subscription {
            if state.subscription.names.is_empty() {
                state.forced.every_subscribed();
            } else {
                state.forced.add_names(
                    subscription
                        .names
                        .difference(&state.subscription.names)
                        .cloned(),
                );
            }
            state.must_answer = true;
            state.subscription = subscription;
        }
        if first {
            state.must_answer = true;
        }
        (Some(type_url), kind)
    }

    /// The subscription a request asks for: `*` means every resource, and so does an empty
    /// first request for Listener and Cluster, for as long as the names stay empty.
    fn subscription(&self, type_url: TypeUrl, request: &SotwRequest, first: bool) -> Subscription {
        let current = self.core.state(type_url).map(|s| &s.subscription);
        let was_wildcard = current.is_some_and(|s| s.wildcard);
        if let Some(current) = current.filter(|_| !first) {
            // An ACK names what the stream already has; most clients list it sorted, so it
            // is recognized without building a set.
            let star = request.resource_names().any(|n| n == "*");
            let wildcard = star || (was_wildcard && request.resource_names().len() == 0);
            let listed = request.resource_names().filter(|n| *n != "*");
            if current.wildcard == wildcard
                && listed.clone().count() == current.names.len()
                && listed.zip(current.names.iter()).all(|(a, b)| a == b)
            {
                return current.clone();
            }
        }
        let mut names: BTreeSet<String> = request.resource_names().map(str::to_string).collect();
        let star = names.remove("*");
        let legacy = type_url.is_full_state()
            && request.resource_names().len() == 0
            && (first || was_wildcard);
        Subscription {
            wildcard: star || legacy,
            names: self.names.intern(names),
        }
    }

    /// The one empty answer to a type this server does not serve; it goes after every
    /// response that was due, so a client can use it to know it has seen them all.
    fn unknown_answer(&mut self) -> Option<SotwResponse> {
        let type_url = self.core.unknown.take_next()?;
        Some(SotwResponse {
            type_url: TypeName::Other(type_url.into()),
            version_info: "".into(),
            nonce: self.core.next_nonce(),
            resources: Vec::new(),
        })
    }

    /// The next response to send, if any.
    pub fn next_response(&mut self, snapshot: &Snapshot) -> Option<SotwResponse> {
        loop {
            let Some((type_url, need)) = self.core.next(snapshot) else {
                self.core.settle(snapshot);
                return self.unknown_answer();
            };
            let view = snapshot.view(type_url, &self.core.client).clone();
            let state = self.core.state_mut(type_url)?;
            if !type_url.is_full_state() && need.updated.is_empty() && !need.must_answer {
                // Only removals, which this protocol leaves to the parent types.
                state.caught_up(&view, need);
                continue;
            }
            let mut resources = if type_url.is_full_state() {
                state.subscription.select(&view)
            } else {
                need.updated.clone()
            };
            let version: Arc<str> = if need.kept.is_empty() {
                view.version.clone()
            } else {
                resources.extend(need.kept.values().flatten().cloned());
                let kept: Vec<&str> = need.kept.keys().map(String::as_str).collect();
                content_hash(format!("{}+{}", view.version, kept.join(",")).as_bytes()).into()
            };
            let updated = need.updated.clone();
            let nonce = self.core.next_nonce();
            let state = self.core.state_mut(type_url)?;
            state.sent(&view, need, nonce, version.clone());
            self.core.warm_dependents(type_url, &updated);
            return Some(SotwResponse {
                type_url: TypeName::Served(type_url),
                version_info: version,
                nonce,
                resources,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::server::cache::{Content, ViewKey};
    use bytes::Bytes;
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
    use envoy_types::pb::google::rpc::Status;

    /// A snapshot with these clusters (name, content) and an endpoint assignment for each,
    /// and these route configurations.
    fn snapshot(
        clusters: &[(&str, &str)],
        routes: &[&str],
        previous: Option<&Snapshot>,
    ) -> Arc<Snapshot> {
        let mut content = Content::default();
        let item = |name: &str, body: &str| (name.to_string(), Bytes::from(body.to_string()));
        content.views.insert(
            (TypeUrl::Cluster, ViewKey::Shared),
            clusters
                .iter()
                .map(|(n, b)| item(n, &format!("cluster {b}")))
                .collect(),
        );
        content.views.insert(
            (TypeUrl::Endpoint, ViewKey::Region(String::new())),
            clusters
                .iter()
                .map(|(n, b)| item(n, &format!("endpoints {b}")))
                .collect(),
        );
        content.views.insert(
            (TypeUrl::Route, ViewKey::Audience(Default::default())),
            routes.iter().map(|r| item("routes", r)).collect(),
        );
        Arc::new(Snapshot::build(content, previous))
    }

    fn request(type_url: TypeUrl, names: &[&str], nonce: u64, version: &str) -> SotwRequest {
        SotwRequest::from_message(&message(type_url, names, nonce, version))
    }

    fn message(type_url: TypeUrl, names: &[&str], nonce: u64, version: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: type_url.url().to_string(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            response_nonce: if nonce == 0 {
                String::new()
            } else {
                nonce.to_string()
            },
            version_info: version.to_string(),
            ..Default::default()
        }
    }

    fn stream() -> SotwStream {
        SotwStream::new(Arc::new(NameSets::default()), None)
    }

    fn drain(stream: &mut SotwStream, snapshot: &Snapshot) -> Vec<SotwResponse> {
        std::iter::from_fn(|| stream.next_response(snapshot)).collect()
    }

    fn summary(responses: &[SotwResponse]) -> Vec<(String, Vec<String>)> {
        responses
            .iter()
            .map(|r| {
                (
                    r.type_url.url().rsplit('.').next().unwrap().to_string(),
                    r.resources.iter().map(|x| x.name.clone()).collect(),
                )
            })
            .collect()
    }

    /// A stream subscribed to every cluster and their endpoints, everything ACKed.
    fn synced(snap: &Arc<Snapshot>, names: &[&str]) -> SotwStream {
        let mut stream = stream();
        stream.on_request(&request(TypeUrl::Cluster, &[], 0, ""));
        stream.on_request(&request(TypeUrl::Endpoint, names, 0, ""));
        for response in drain(&mut stream, snap) {
            let type_url = match &response.type_url {
                TypeName::Served(t) => *t,
                _ => unreachable!(),
            };
            stream.on_request(&request(
                type_url,
                if type_url == TypeUrl::Cluster {
                    &[]
                } else {
                    names
                },
                response.nonce,
                &response.version_info,
            ));
        }
        assert!(stream.core.is_synced(snap));
        stream
    }

    #[test]
    fn first_request_is_answered_even_when_empty() {
        let mut stream = stream();
        let (_, kind) = stream.on_request(&request(TypeUrl::Endpoint, &["missing"], 0, ""));
        assert_eq!(kind, RequestKind::Subscribe);
        let responses = drain(&mut stream, &snapshot(&[], &[], None));
        assert_eq!(
            summary(&responses),
            [("ClusterLoadAssignment".into(), vec![])]
        );
    }

    #[test]
    fn nothing_is_answered_before_a_config_is_published() {
        let mut stream = stream();
        stream.on_request(&request(TypeUrl::Cluster, &[], 0, ""));
        assert!(stream.next_response(&Snapshot::default()).is_none());
    }

    #[test]
    fn one_endpoint_change_sends_one_assignment_and_nothing_else() {
        let one = snapshot(&[("a", "1"), ("b", "1"), ("c", "1")], &[], None);
        let mut stream = synced(&one, &["a", "b", "c"]);
        let content_change = Content {
            views: [
                (
                    (TypeUrl::Cluster, ViewKey::Shared),
                    vec![
                        ("a".into(), Bytes::from("cluster 1")),
                        ("b".into(), Bytes::from("cluster 1")),
                        ("c".into(), Bytes::from("cluster 1")),
                    ],
                ),
                (
                    (TypeUrl::Endpoint, ViewKey::Region(String::new())),
                    vec![
                        ("a".into(), Bytes::from("endpoints 1")),
                        ("b".into(), Bytes::from("endpoints 2")),
                        ("c".into(), Bytes::from("endpoints 1")),
                    ],
                ),
            ]
            .into_iter()
            .collect(),
            ..Content::default()
        };
        let two = Arc::new(Snapshot::build(content_change, Some(&one)));
        assert_eq!(
            summary(&drain(&mut stream, &two)),
            [("ClusterLoadAssignment".into(), vec!["b".into()])]
        );
    }

    #[test]
    fn ack_gets_no_response_and_a_nacked_view_is_not_resent() {
        let one = snapshot(&[("a", "1")], &[], None);
        let mut stream = synced(&one, &["a"]);
        let two = snapshot(&[("a", "1"), ("b", "1")], &[], Some(&one));
        let pushed = drain(&mut stream, &two);
        assert_eq!(
            summary(&pushed)[0],
            ("Cluster".into(), vec!["a".into(), "b".into()])
        );
        let mut nack = message(
            TypeUrl::Cluster,
            &[],
            pushed[0].nonce,
            &one.view(TypeUrl::Cluster, &Default::default()).version,
        );
        nack.error_detail = Some(Status {
            code: 3,
            message: "bad cluster".into(),
            ..Default::default()
        });
        let (_, kind) = stream.on_request(&SotwRequest::from_message(&nack));
        assert!(matches!(kind, RequestKind::Nack(ref n) if n.detail == "bad cluster"));
        assert!(
            drain(&mut stream, &two)
                .iter()
                .all(|r| r.type_url != TypeName::Served(TypeUrl::Cluster)),
            "a NACKed view must not be re-sent"
        );
        let three = snapshot(&[("a", "1"), ("b", "2")], &[], Some(&two));
        let again = drain(&mut stream, &three);
        assert_eq!(summary(&again)[0].0, "Cluster", "new content is sent");
    }

    #[test]
    fn stale_nonces_are_ignored() {
        let one = snapshot(&[("a", "1")], &[], None);
        let mut stream = synced(&one, &["a"]);
        let two = snapshot(&[("a", "2")], &[], Some(&one));
        drain(&mut stream, &two);
        let (_, kind) = stream.on_request(&request(TypeUrl::Cluster, &[], 1, ""));
        assert_eq!(kind, RequestKind::Stale);
    }

    #[test]
    fn a_changed_cluster_is_followed_by_its_endpoints_even_unchanged() {
        let one = snapshot(&[("a", "1"), ("b", "1")], &[], None);
        let mut stream = synced(&one, &["a", "b"]);
        let mut content = Content::default();
        content.views.insert(
            (TypeUrl::Cluster, ViewKey::Shared),
            vec![
                ("a".into(), Bytes::from("cluster 9")),
                ("b".into(), Bytes::from("cluster 1")),
            ],
        );
        content.views.insert(
            (TypeUrl::Endpoint, ViewKey::Region(String::new())),
            vec![
                ("a".into(), Bytes::from("endpoints 1")),
                ("b".into(), Bytes::from("endpoints 1")),
            ],
        );
        let two = Arc::new(Snapshot::build(content, Some(&one)));
        assert_eq!(
            summary(&drain(&mut stream, &two)),
            [
                ("Cluster".into(), vec!["a".into(), "b".into()]),
                ("ClusterLoadAssignment".into(), vec!["a".into()])
            ]
        );
    }

    #[test]
    fn resubscribe_after_unsubscribe_is_answered() {
        let one = snapshot(&[("a", "1"), ("b", "1")], &[], None);
        let mut stream = stream();
        stream.on_request(&request(TypeUrl::Endpoint, &["a", "b"], 0, ""));
        let first = drain(&mut stream, &one);
        stream.on_request(&request(
            TypeUrl::Endpoint,
            &["a"],
            first[0].nonce,
            &first[0].version_info,
        ));
        let dropped = drain(&mut stream, &one);
        assert_eq!(dropped.len(), 1, "a change of subscription is answered");
        stream.on_request(&request(
            TypeUrl::Endpoint,
            &["a", "b"],
            dropped[0].nonce,
            &dropped[0].version_info,
        ));
        assert_eq!(
            summary(&drain(&mut stream, &one)),
            [("ClusterLoadAssignment".into(), vec!["b".into()])]
        );
    }

    #[test]
    fn removed_clusters_go_after_the_routes_that_named_them() {
        let before = snapshot(&[("a", "1"), ("b", "1")], &["to a and b"], None);
        let mut stream = stream();
        stream.on_request(&request(TypeUrl::Cluster, &[], 0, ""));
        stream.on_request(&request(TypeUrl::Route, &["routes"], 0, ""));
        for response in drain(&mut stream, &before) {
            let TypeName::Served(t) = response.type_url else {
                unreachable!()
            };
            let names: &[&str] = if t == TypeUrl::Route {
                &["routes"]
            } else {
                &[]
            };
            stream.on_request(&request(t, names, response.nonce, &response.version_info));
        }
        let after = snapshot(&[("a", "1")], &["to a"], Some(&before));
        assert_eq!(
            summary(&drain(&mut stream, &after)),
            [
                ("RouteConfiguration".into(), vec!["routes".into()]),
                ("Cluster".into(), vec!["a".into()])
            ],
            "routes first, then the cluster removal"
        );
    }

    #[test]
    fn removed_clusters_go_after_the_listener_that_was_removed_with_them() {
        // Narrowing what a client may see removes a listener and the cluster behind it: the
        // listener goes first, or the client is left routing to a cluster it no longer has.
        let with_listeners = |clusters: &[(&str, &str)], listeners: &[&str], previous| {
            let plain = snapshot(clusters, &[], None);
            let mut content = Content::default();
            for type_url in [TypeUrl::Cluster, TypeUrl::Endpoint] {
                let (key, view) = plain.views_of(type_url).next().unwrap();
                let items = view
                    .resources
                    .values()
                    .map(|r| (r.name.clone(), r.value.clone()))
                    .collect();
                content.views.insert((type_url, key.clone()), items);
            }
            content.views.insert(
                (TypeUrl::Listener, ViewKey::Audience(Default::default())),
                listeners
                    .iter()
                    .map(|l| (l.to_string(), Bytes::from(format!("listener {l}"))))
                    .collect(),
            );
            Arc::new(Snapshot::build(content, previous))
        };
        let before = with_listeners(&[("a", "1"), ("b", "1")], &["to-a", "to-b"], None);
        let mut stream = stream();
        stream.on_request(&request(TypeUrl::Cluster, &[], 0, ""));
        stream.on_request(&request(TypeUrl::Listener, &[], 0, ""));
        for response in drain(&mut stream, &before) {
            let TypeName::Served(t) = response.type_url else {
                unreachable!()
            };
            stream.on_request(&request(t, &[], response.nonce, &response.version_info));
        }
        let after = with_listeners(&[("a", "1")], &["to-a"], Some(&before));
        let mut order = Vec::new();
        while let Some(response) = stream.next_response(&after) {
            let TypeName::Served(t) = response.type_url else {
                unreachable!()
            };
            order.push(summary(std::slice::from_ref(&response))[0].clone());
            stream.on_request(&request(t, &[], response.nonce, &response.version_info));
        }
        assert_eq!(
            order.first(),
            Some(&("Listener".to_string(), vec!["to-a".to_string()])),
            "the listener's removal before the cluster's: {order:?}"
        );
        assert_eq!(
            order.last(),
            Some(&("Cluster".to_string(), vec!["a".to_string()])),
            "{order:?}"
        );
    }

    #[test]
    fn unknown_types_get_one_empty_answer() {
        let one = snapshot(&[("a", "1")], &[], None);
        let mut stream = stream();
        let secret = "type.googleapis.com/envoy.service.runtime.v3.Runtime";
        let mut ask = message(TypeUrl::Cluster, &["x"], 0, "");
        ask.type_url = secret.into();
        assert_eq!(stream.on_request(&SotwRequest::from_message(&ask)).0, None);
        let answers = drain(&mut stream, &one);
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].type_url.url(), secret);
        ask.response_nonce = answers[0].nonce.to_string();
        stream.on_request(&SotwRequest::from_message(&ask));
        assert!(drain(&mut stream, &one).is_empty(), "answered once");
    }
}
