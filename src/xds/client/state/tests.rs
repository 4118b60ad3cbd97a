use super::*;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::service::discovery::v3::Resource as DeltaResource;
use prost::{Message, Name};

/// Rejects a resource named `bad`; listeners name the route of their own name, clusters the
/// endpoints of theirs.
struct Fake;

/// The fake's refusal of `bad`.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("{type_url} bad: field `x` is not supported")]
struct Refused {
    type_url: TypeUrl,
}

impl Checker for Fake {
    type Refusal = Refused;

    fn check(&self, type_url: TypeUrl, candidate: &HeldMap) -> Result<(), Refused> {
        match candidate.contains_key("bad") {
            true => Err(Refused { type_url }),
            false => Ok(()),
        }
    }
    fn interest(&self, _dependent: TypeUrl, held: &HeldMap) -> BTreeSet<String> {
        held.keys().cloned().collect()
    }
}

fn cluster(name: &str) -> Any {
    Any {
        type_url: Cluster::type_url(),
        value: Cluster {
            name: name.into(),
            ..Default::default()
        }
        .encode_to_vec(),
    }
}

fn clusters(version: &str, nonce: &str, names: &[&str]) -> DiscoveryResponse {
    DiscoveryResponse {
        type_url: TypeUrl::Cluster.url().into(),
        version_info: version.into(),
        nonce: nonce.into(),
        resources: names.iter().map(|n| cluster(n)).collect(),
        ..Default::default()
    }
}

fn sotw(request: &Request) -> &DiscoveryRequest {
    match request {
        Request::Sotw(r) => r,
        Request::Delta(_) => panic!("expected a SotW request"),
    }
}

fn delta(request: &Request) -> &DeltaDiscoveryRequest {
    match request {
        Request::Delta(r) => r,
        Request::Sotw(_) => panic!("expected a delta request"),
    }
}

fn node() -> Node {
    Node {
        id: "sidecar".into(),
        ..Default::default()
    }
}

#[test]
fn sotw_opens_with_wildcards_acks_and_follows_with_the_endpoints_it_needs() {
    let mut state = ClientState::new(Protocol::StateOfTheWorld, node());
    let opening = state.on_connect();
    let types: Vec<&str> = opening.iter().map(|r| sotw(r).type_url.as_str()).collect();
    assert_eq!(types, [TypeUrl::Cluster.url(), TypeUrl::Listener.url()]);
    assert!(sotw(&opening[0]).node.is_some() && sotw(&opening[1]).node.is_none());
    assert!(sotw(&opening[0]).resource_names.is_empty(), "wildcard");

    let outcome = state.on_sotw(&clusters("v1", "n1", &["a", "b"]), &Fake);
    assert!(outcome.changed);
    let ack = sotw(&outcome.requests[0]);
    assert_eq!(
        (ack.version_info.as_str(), ack.response_nonce.as_str()),
        ("v1", "n1")
    );
    assert!(ack.error_detail.is_none());
    let endpoints = sotw(&outcome.requests[1]);
    assert_eq!(endpoints.type_url, TypeUrl::Endpoint.url());
    assert_eq!(endpoints.resource_names, ["a", "b"]);

    // The same content again: ACKed, nothing changed, nothing more asked.
    let outcome = state.on_sotw(&clusters("v1", "n2", &["a", "b"]), &Fake);
    assert!(!outcome.changed);
    assert_eq!(outcome.requests.len(), 1);
}

#[test]
fn a_response_with_a_resource_it_cannot_apply_is_nacked_and_nothing_of_it_kept() {
    let mut state = ClientState::new(Protocol::StateOfTheWorld, node());
    state.on_connect();
    state.on_sotw(&clusters("v1", "n1", &["a"]), &Fake);
    let outcome = state.on_sotw(&clusters("v2", "n2", &["a", "bad"]), &Fake);
    assert!(!outcome.changed);
    let nack = sotw(&outcome.requests[0]);
    assert_eq!(nack.version_info, "v1", "the version still applied");
    assert_eq!(nack.response_nonce, "n2");
    let detail = nack.error_detail.as_ref().unwrap();
    assert_eq!(
        outcome.rejected,
        Some(Rejection::Refused(Refused {
            type_url: TypeUrl::Cluster
        }))
    );
    assert_eq!(detail.message, "Cluster bad: field `x` is not supported");
    assert_eq!(
        state.held(TypeUrl::Cluster).keys().collect::<Vec<_>>(),
        ["a"]
    );
    // A full-state type drops what a later response leaves out.
    let outcome = state.on_sotw(&clusters("v3", "n3", &["b"]), &Fake);
    assert!(outcome.changed);
    assert_eq!(
        state.held(TypeUrl::Cluster).keys().collect::<Vec<_>>(),
        ["b"]
    );
    let endpoints = sotw(&outcome.requests[1]);
    assert_eq!(endpoints.resource_names, ["b"]);
}

#[test]
fn delta_applies_removals_and_announces_what_it_holds_on_reconnect() {
    let mut state = ClientState::new(Protocol::Delta, node());
    let opening = state.on_connect();
    assert_eq!(delta(&opening[0]).resource_names_subscribe, ["*"]);
    let response = |nonce: &str, add: &[(&str, &str)], removed: &[&str]| DeltaDiscoveryResponse {
        type_url: TypeUrl::Cluster.url().into(),
        nonce: nonce.into(),
        resources: add
            .iter()
            .map(|(name, version)| DeltaResource {
                name: name.to_string(),
                version: version.to_string(),
                resource: Some(cluster(name)),
                ..Default::default()
            })
            .collect(),
        removed_resources: removed.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    };
    let outcome = state.on_delta(&response("n1", &[("a", "1"), ("b", "1")], &[]), &Fake);
    assert_eq!(delta(&outcome.requests[0]).response_nonce, "n1");
    assert_eq!(
        delta(&outcome.requests[1]).resource_names_subscribe,
        ["a", "b"]
    );
    let outcome = state.on_delta(&response("n2", &[], &["a"]), &Fake);
    assert!(outcome.changed);
    assert_eq!(
        delta(&outcome.requests[1]).resource_names_unsubscribe,
        ["a"]
    );
    let nacked = state.on_delta(&response("n3", &[("bad", "9")], &[]), &Fake);
    assert!(delta(&nacked.requests[0]).error_detail.is_some());

    let reconnect = state.on_connect();
    let clusters = delta(&reconnect[0]);
    assert_eq!(
        clusters.initial_resource_versions,
        [("b".to_string(), "1".to_string())].into_iter().collect()
    );
    assert!(clusters.node.is_some(), "a new stream sends the node again");
    let endpoints = reconnect
        .iter()
        .map(delta)
        .find(|r| r.type_url == TypeUrl::Endpoint.url())
        .unwrap();
    assert_eq!(endpoints.resource_names_subscribe, ["b"]);
}

#[test]
fn responses_it_cannot_read_are_nacked_with_what_is_wrong_in_them() {
    let mut state = ClientState::new(Protocol::StateOfTheWorld, node());
    state.on_connect();
    let nack_of = |outcome: &Outcome<Refused>| {
        sotw(&outcome.requests[0])
            .error_detail
            .as_ref()
            .map(|detail| detail.message.clone())
    };
    let twice = state.on_sotw(&clusters("v1", "n1", &["a", "a"]), &Fake);
    assert_eq!(
        twice.rejected,
        Some(Rejection::SentTwice {
            type_url: TypeUrl::Cluster,
            name: "a".into()
        })
    );
    assert_eq!(
        nack_of(&twice).as_deref(),
        Some("Cluster a: sent twice in one response")
    );
    let mut listener = clusters("v2", "n2", &["a"]);
    listener.resources[0].type_url = TypeUrl::Listener.url().into();
    let wrong = state.on_sotw(&listener, &Fake);
    assert!(matches!(
        &wrong.rejected,
        Some(Rejection::WrongType { expected: TypeUrl::Cluster, found }) if found == TypeUrl::Listener.url()
    ));
    assert_eq!(
        nack_of(&wrong).as_deref(),
        Some(
            "a Cluster response holds a resource of type \
             type.googleapis.com/envoy.config.listener.v3.Listener"
        )
    );
    let mut garbled = clusters("v3", "n3", &["a"]);
    garbled.resources[0].value = vec![0xff];
    let undecodable = state.on_sotw(&garbled, &Fake);
    assert!(matches!(
        undecodable.rejected,
        Some(Rejection::Undecodable {
            type_url: TypeUrl::Cluster,
            ..
        })
    ));
    assert!(nack_of(&undecodable)
        .unwrap()
        .starts_with("a Cluster cannot be decoded: "));
    assert!(state.held(TypeUrl::Cluster).is_empty(), "nothing was kept");
}
