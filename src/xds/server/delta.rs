//! The delta (incremental) stream state machine, free of I/O: requests and snapshots go in,
//! responses come out when the transport asks for one.
//!
//! What is delta here (on top of [`StreamCore`]'s rules): subscriptions change by name
//! (`*` for every resource, mixable with names); a response carries what changed and the
//! names removed, each resource with its own version; a reconnecting client lists the
//! versions it holds (`initial_resource_versions`) and is sent only what differs, and told
//! of what it holds that is gone; a name subscribed to that does not exist is reported in
//! `removed_resources`; every response has a fresh nonce; a subscription change is processed
//! whatever nonce the request carries, while ACK and NACK apply only to the latest nonce.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;

use super::cache::Snapshot;
use super::stream_state::{Nack, RequestKind, StreamCore, TypeState};
use super::subscription::{NameSets, Subscription};
use crate::xds::types::TypeUrl;
use crate::xds::wire::{DeltaResponse, TypeName};

pub struct DeltaStream {
    pub core: StreamCore,
    names: Arc<NameSets>,
}

impl DeltaStream {
    pub fn new(names: Arc<NameSets>, only: Option<TypeUrl>) -> Self {
        DeltaStream {
            core: StreamCore::for_service(only),
            names,
        }
    }

    /// Takes one request in. Returns its type (None when not served) and what it was.
    pub fn on_request(
        &mut self,
        request: &DeltaDiscoveryRequest,
    ) -> (Option<TypeUrl>, RequestKind) {
        self.core.note_node(request.node.as_ref());
        let Some(type_url) = self.core.served_type(&request.type_url) else {
            self.core.unknown.note(&request.type_url);
            return (None, RequestKind::Stale);
        };
        let first = self.core.state(type_url).is_none();
        let state = self.core.types[type_url.index()].get_or_insert_default();
        let kind = if !request.response_nonce.is_empty() {
            acknowledgement(state, request)
        } else if first {
            RequestKind::Subscribe
        } else {
            RequestKind::Update
        };
        let next = self.subscription(type_url, request, first);
        let state = self.core.types[type_url.index()]
            .as_mut()
            .expect("created above");
        change_subscription(state, next);
        if first {
            state.must_answer = true;
            if !request.initial_resource_versions.is_empty() {
                state.initial_versions = Some(request.initial_resource_versions.clone());
            }
        }
        (Some(type_url), kind)
    }

    /// The subscription after `request`: names and `*` added and removed; an empty first
    /// request for Listener or Cluster means every resource (the legacy wildcard).
    fn subscription(
        &self,
        type_url: TypeUrl,
        request: &DeltaDiscoveryRequest,
        first: bool,
    ) -> Subscription {
        let current = self
            .core
            .state(type_url)
            .map(|s| s.subscription.clone())
            .unwrap_or_default();
        if !first
            && request.resource_names_subscribe.is_empty()
            && request.resource_names_unsubscribe.is_empty()
        {
            return current;
        }
        let mut wildcard = current.wildcard
            || (first && type_url.is_full_state() && request.resource_names_subscribe.is_empty());
        let mut names = (*current.names).clone();
        for name in &request.resource_names_subscribe {
            if name == "*" {
                wildcard = true;
            } else {
                names.insert(name.clone());
            }
        }
        for name in &request.resource_names_unsubscribe {
            if name == "*" {
                wildcard = false;
            } else {
                names.remove(name);
            }
        }
        if names == *current.names {
            return Subscription {
                wildcard,
                names: current.names,
            };
        }
        Subscription {
            wildcard,
            names: self.names.intern(names),
        }
    }

    /// The one empty answer to a type this server does not serve; it goes after every
    /// response that was due, so a client can use it to know it has seen them all.
    fn unknown_answer(&mut self) -> Option<DeltaResponse> {
        let type_url = self.core.unknown.take_next()?;
        Some(DeltaResponse {
            type_url: TypeName::Other(type_url.into()),
            system_version_info: "".into(),
            nonce: self.core.next_nonce(),
            resources: Vec::new(),
            removed: Vec::new(),
        })
    }

    /// The next response to send, if any.
    pub fn next_response(&mut self, snapshot: &Snapshot) -> Option<DeltaResponse> {
        let Some((type_url, need)) = self.core.next(snapshot) else {
            self.core.settle(snapshot);
            return self.unknown_answer();
        };
        let view = snapshot.view(type_url, &self.core.client).clone();
        let resources = need.updated.clone();
        let mut removed = need.removed.clone();
        removed.extend(need.absent.iter().cloned());
        let nonce = self.core.next_nonce();
        self.core
            .state_mut(type_url)?
            .sent(&view, need, nonce, view.version.clone());
        self.core.warm_dependents(type_url, &resources);
        Some(DeltaResponse {
            type_url: TypeName::Served(type_url),
            system_version_info: view.version.clone(),
            nonce,
            resources,
            removed,
        })
    }
}

/// An ACK or NACK of the response with the request's nonce; stale when that is not the
/// latest response of the type.
fn acknowledgement(state: &mut TypeState, request: &DeltaDiscoveryRequest) -> RequestKind {
    if request.response_nonce.parse::<u64>().ok() != Some(state.last_nonce) {
        return RequestKind::Stale;
    }
    let version = state
        .sent_version
        .as_deref()
        .unwrap_or_default()
        .to_string();
    match &request.error_detail {
        Some(error) => {
            let nack = Nack {
                version,
                nonce: state.last_nonce,
                detail: error.message.clone(),
            };
            state.nacked(nack.clone());
            RequestKind::Nack(nack)
        }
        None => {
            state.acked(&version);
            RequestKind::Ack
        }
    }
}

/// Applies a new subscription: newly subscribed names are sent even if the client's view did
/// not change; turning the wildcard on sends everything the client does not hold yet.
fn change_subscription(state: &mut TypeState, next: Subscription) {
    if next == state.subscription {
        return;
    }
    let newly: Vec<&String> = next
        .names
        .iter()
        .filter(|name| !state.subscription.contains(name))
        .collect();
    if next.wildcard && !state.subscription.wildcard {
        if let Some(base) = state.base.take() {
            // Compare what it holds with everything, as for a reconnecting client.
            let held: HashMap<String, String> = state
                .subscription
                .select(&base)
                .iter()
                .map(|r| (r.name.clone(), r.version.clone()))
                .collect();
            state.initial_versions = Some(held);
        }
        state.must_answer = true;
    }
    state.must_answer |= !newly.is_empty();
    if newly.len() == next.names.len() {
        state.forced.every_subscribed();
    } else {
        state.forced.add_names(newly.into_iter().cloned());
    }
    state.forced.retain_in(&next);
    state.subscription = next;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::server::cache::{Content, ViewKey};
    use bytes::Bytes;
    use envoy_types::pb::google::rpc::Status;

    fn snapshot(clusters: &[(&str, &str)], previous: Option<&Snapshot>) -> Arc<Snapshot> {
        let mut content = Content::default();
        let items = |prefix: &str| -> Vec<(String, Bytes)> {
            clusters
                .iter()
                .map(|(n, b)| (n.to_string(), Bytes::from(format!("{prefix} {b}"))))
                .collect()
        };
        content
            .views
            .insert((TypeUrl::Cluster, ViewKey::Shared), items("cluster"));
        content.views.insert(
            (TypeUrl::Endpoint, ViewKey::Region(String::new())),
            items("endpoints"),
        );
        Arc::new(Snapshot::build(content, previous))
    }

    fn request(
        type_url: TypeUrl,
        subscribe: &[&str],
        unsubscribe: &[&str],
        nonce: u64,
    ) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            type_url: type_url.url().to_string(),
            resource_names_subscribe: subscribe.iter().map(|n| n.to_string()).collect(),
            resource_names_unsubscribe: unsubscribe.iter().map(|n| n.to_string()).collect(),
            response_nonce: if nonce == 0 {
                String::new()
            } else {
                nonce.to_string()
            },
            ..Default::default()
        }
    }

    fn stream() -> DeltaStream {
        DeltaStream::new(Arc::new(NameSets::default()), None)
    }

    fn drain(stream: &mut DeltaStream, snapshot: &Snapshot) -> Vec<DeltaResponse> {
        std::iter::from_fn(|| stream.next_response(snapshot)).collect()
    }

    type Summary = (String, Vec<String>, Vec<String>);

    fn summary(responses: &[DeltaResponse]) -> Vec<Summary> {
        responses
            .iter()
            .map(|r| {
                (
                    r.type_url.url().rsplit('.').next().unwrap().to_string(),
                    r.resources.iter().map(|x| x.name.clone()).collect(),
                    r.removed.clone(),
                )
            })
            .collect()
    }

    fn ack_all(stream: &mut DeltaStream, responses: &[DeltaResponse]) {
        for response in responses {
            let type_url = response.type_url.served().unwrap();
            stream.on_request(&request(type_url, &[], &[], response.nonce));
        }
    }

    fn s(items: &[&str]) -> Vec<String> {
        items.iter().map(|i| i.to_string()).collect()
    }

    #[test]
    fn wildcard_and_named_subscriptions_mix_and_nonexistent_names_are_reported() {
        let one = snapshot(&[("a", "1"), ("b", "1")], None);
        let mut stream = stream();
        stream.on_request(&request(TypeUrl::Cluster, &["*"], &[], 0));
        stream.on_request(&request(TypeUrl::Endpoint, &["a", "nope"], &[], 0));
        let responses = drain(&mut stream, &one);
        assert_eq!(
            summary(&responses),
            [
                ("Cluster".into(), s(&["a", "b"]), vec![]),
                ("ClusterLoadAssignment".into(), s(&["a"]), s(&["nope"])),
            ]
        );
        assert_ne!(
            responses[0].nonce, responses[1].nonce,
            "a fresh nonce per response"
        );
        ack_all(&mut stream, &responses);
        stream.on_request(&request(TypeUrl::Endpoint, &["*"], &[], 0));
        assert_eq!(
            summary(&drain(&mut stream, &one)),
            [("ClusterLoadAssignment".into(), s(&["b"]), vec![])],
            "the wildcard adds what the client does not hold yet"
        );
    }

    #[test]
    fn a_reconnecting_client_gets_only_what_differs_and_what_is_gone() {
        let one = snapshot(&[("a", "1"), ("b", "1")], None);
        let mut first = stream();
        first.on_request(&request(TypeUrl::Cluster, &["*"], &[], 0));
        let held: HashMap<String, String> = drain(&mut first, &one)[0]
            .resources
            .iter()
            .map(|r| (r.name.clone(), r.version.clone()))
            .chain([("stale".to_string(), "0123".to_string())])
            .collect();
        let two = snapshot(&[("a", "1"), ("b", "2")], Some(&one));
        let mut again = stream();
        let mut reconnect = request(TypeUrl::Cluster, &["*"], &[], 0);
        reconnect.initial_resource_versions = held.clone();
        again.on_request(&reconnect);
        assert_eq!(
            summary(&drain(&mut again, &two)),
            [("Cluster".into(), s(&["b"]), s(&["stale"]))]
        );
        let mut unchanged = stream();
        let mut same = request(TypeUrl::Cluster, &["*"], &[], 0);
        same.initial_resource_versions = held.into_iter().filter(|(n, _)| n != "stale").collect();
        unchanged.on_request(&same);
        assert_eq!(
            summary(&drain(&mut unchanged, &one)),
            [("Cluster".into(), vec![], vec![])],
            "answered, with nothing the client listed"
        );
    }

    #[test]
    fn a_reconnecting_named_subscription_gets_nothing_it_holds() {
        let one = snapshot(&[("a", "1"), ("b", "1")], None);
        let versions: HashMap<String, String> = one
            .view(TypeUrl::Endpoint, &Default::default())
            .resources
            .values()
            .map(|r| (r.name.clone(), r.version.clone()))
            .collect();
        let mut stream = stream();
        let mut reconnect = request(TypeUrl::Endpoint, &["a", "b"], &[], 0);
        reconnect.initial_resource_versions = versions;
        stream.on_request(&reconnect);
        assert_eq!(
            summary(&drain(&mut stream, &one)),
            [("ClusterLoadAssignment".into(), vec![], vec![])]
        );
    }

    #[test]
    fn unsubscribe_then_resubscribe_is_answered() {
        let one = snapshot(&[("a", "1"), ("b", "1")], None);
        let mut stream = stream();
        stream.on_request(&request(TypeUrl::Endpoint, &["a", "b"], &[], 0));
        let responses = drain(&mut stream, &one);
        ack_all(&mut stream, &responses);
        stream.on_request(&request(TypeUrl::Endpoint, &[], &["b"], 0));
        assert!(drain(&mut stream, &one).is_empty());
        stream.on_request(&request(TypeUrl::Endpoint, &["b"], &[], 0));
        assert_eq!(
            summary(&drain(&mut stream, &one)),
            [("ClusterLoadAssignment".into(), s(&["b"]), vec![])]
        );
    }

    #[test]
    fn one_change_one_resource_and_removals_after_the_rest() {
        let one = snapshot(&[("a", "1"), ("b", "1")], None);
        let mut stream = stream();
        stream.on_request(&request(TypeUrl::Cluster, &["*"], &[], 0));
        stream.on_request(&request(TypeUrl::Endpoint, &["*"], &[], 0));
        let responses = drain(&mut stream, &one);
        ack_all(&mut stream, &responses);
        let two = snapshot(&[("a", "2"), ("b", "1")], Some(&one));
        let pushed = drain(&mut stream, &two);
        assert_eq!(
            summary(&pushed),
            [
                ("Cluster".into(), s(&["a"]), vec![]),
                ("ClusterLoadAssignment".into(), s(&["a"]), vec![]),
            ]
        );
        ack_all(&mut stream, &pushed);
        let three = snapshot(&[("a", "2")], Some(&two));
        assert_eq!(
            summary(&drain(&mut stream, &three)),
            [
                ("Cluster".into(), vec![], s(&["b"])),
                ("ClusterLoadAssignment".into(), vec![], s(&["b"])),
            ]
        );
    }

    #[test]
    fn a_nack_keeps_the_stream_and_the_view_is_not_resent() {
        let one = snapshot(&[("a", "1")], None);
        let mut stream = stream();
        stream.on_request(&request(TypeUrl::Cluster, &["*"], &[], 0));
        let responses = drain(&mut stream, &one);
        ack_all(&mut stream, &responses);
        let two = snapshot(&[("a", "2")], Some(&one));
        let pushed = drain(&mut stream, &two);
        let mut nack = request(TypeUrl::Cluster, &[], &[], pushed[0].nonce);
        nack.error_detail = Some(Status {
            code: 3,
            message: "no".into(),
            ..Default::default()
        });
        assert!(matches!(stream.on_request(&nack).1, RequestKind::Nack(_)));
        assert!(drain(&mut stream, &two).is_empty());
        let three = snapshot(&[("a", "3")], Some(&two));
        assert_eq!(
            summary(&drain(&mut stream, &three)),
            [("Cluster".into(), s(&["a"]), vec![])]
        );
    }
}
