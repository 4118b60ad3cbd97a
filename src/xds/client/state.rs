//! The xDS client's state machine, free of I/O: responses go in, the requests to send back
//! (ACKs, NACKs, subscription changes) and whether the accepted resources changed come out.
//! One machine speaks either protocol: state of the world or delta.
//!
//! What it holds per type: the names it asks for (listeners and clusters: everything; routes
//! and endpoints: what the accepted listeners and clusters name), the accepted resources with
//! their versions, and the last version and nonce. A response is checked as a whole by the
//! [`Checker`] (the consumer, which knows what it can apply); a response with any resource it
//! cannot apply is NACKed with the checker's words and nothing of it is kept.
//!
//! Must not: know what resources mean (the checker does) or touch sockets (the transport).

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;

use crate::xds::types::TypeUrl;

/// Which protocol the stream speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    StateOfTheWorld,
    Delta,
}

/// An accepted resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    pub version: String,
    pub resource: Any,
}

/// The accepted resources of one type, by name.
pub type HeldMap = BTreeMap<String, Held>;

/// What the consumer says of a candidate set of resources.
pub trait Checker {
    /// Why the consumer cannot apply a resource; its text is the NACK's message.
    type Refusal: std::error::Error;
    /// Whether every resource of `candidate` (the whole set of `type_url` the client would
    /// hold after the response) can be applied; the refusal names the resource and the field.
    fn check(&self, type_url: TypeUrl, candidate: &HeldMap) -> Result<(), Self::Refusal>;
    /// The names of `dependent` (routes or endpoints) that `held` (listeners or clusters)
    /// refer to.
    fn interest(&self, dependent: TypeUrl, held: &HeldMap) -> BTreeSet<String>;
}

/// What one type's subscription is.
#[derive(Clone, Debug, Default, PartialEq)]
struct TypeState {
    /// Names asked for; None means every resource (wildcard).
    names: Option<BTreeSet<String>>,
    held: HeldMap,
    /// SotW: the version of the last accepted response.
    version_info: String,
    /// The nonce of the last response.
    nonce: String,
    /// Whether the type was asked for on this stream.
    requested: bool,
}

/// A request to send.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Sotw(DiscoveryRequest),
    Delta(DeltaDiscoveryRequest),
}

/// Why a response was rejected (NACKed); its text is the NACK's message. `R` is the
/// consumer's [`Checker::Refusal`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Rejection<R> {
    /// A resource of another type than the response's.
    #[error("a {} response holds a resource of type {found}", .expected.short_name())]
    WrongType { expected: TypeUrl, found: String },
    /// A resource whose name cannot be read.
    #[error("a {} cannot be decoded: {error}", .type_url.short_name())]
    Undecodable {
        type_url: TypeUrl,
        error: prost::DecodeError,
    },
    /// A state-of-the-world response that names a resource twice.
    #[error("{type_url} {name}: sent twice in one response")]
    SentTwice { type_url: TypeUrl, name: String },
    /// The consumer cannot apply a resource.
    #[error(transparent)]
    Refused(R),
}

/// What a response did.
#[derive(Debug, PartialEq)]
pub struct Outcome<R> {
    pub requests: Vec<Request>,
    /// Whether the accepted resources changed.
    pub changed: bool,
    /// Why the response was NACKed, when it was.
    pub rejected: Option<Rejection<R>>,
}

impl<R> Outcome<R> {
    /// Nothing to send, nothing changed.
    fn nothing() -> Self {
        Outcome {
            requests: Vec::new(),
            changed: false,
            rejected: None,
        }
    }
}

/// The client's state across reconnects: what it holds survives a new stream.
pub struct ClientState {
    protocol: Protocol,
    node: Node,
    types: [TypeState; TypeUrl::COUNT],
    /// Whether the current stream has sent its node.
    node_sent: bool,
}

impl ClientState {
    pub fn new(protocol: Protocol, node: Node) -> Self {
        let mut types: [TypeState; TypeUrl::COUNT] = Default::default();
        types[TypeUrl::Cluster.index()].names = None;
        types[TypeUrl::Listener.index()].names = None;
        types[TypeUrl::Route.index()].names = Some(BTreeSet::new());
        types[TypeUrl::Endpoint.index()].names = Some(BTreeSet::new());
        types[TypeUrl::Secret.index()].names = Some(BTreeSet::new());
        ClientState {
            protocol,
            node,
            types,
            node_sent: false,
        }
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The accepted resources of `type_url`.
    pub fn held(&self, type_url: TypeUrl) -> &HeldMap {
        &self.types[type_url.index()].held
    }

    /// The version last accepted for `type_url` (SotW), for status pages.
    pub fn version(&self, type_url: TypeUrl) -> &str {
        &self.types[type_url.index()].version_info
    }

    /// The requests that open a new stream: clusters and listeners (everything), then the
    /// routes and endpoints already wanted. Delta announces what is held, so the server
    /// sends only what changed while the client was away.
    pub fn on_connect(&mut self) -> Vec<Request> {
        self.node_sent = false;
        let mut requests = Vec::new();
        for type_url in [
            TypeUrl::Cluster,
            TypeUrl::Listener,
            TypeUrl::Endpoint,
            TypeUrl::Route,
            TypeUrl::Secret,
        ] {
            let state = &mut self.types[type_url.index()];
            state.nonce.clear();
            state.requested = false;
            let wanted = state.names.as_ref().is_none_or(|names| !names.is_empty());
            if wanted {
                requests.push(self.subscribe_request(type_url));
            }
        }
        requests
    }

    fn node_once(&mut self) -> Option<Node> {
        (!std::mem::replace(&mut self.node_sent, true)).then(|| self.node.clone())
    }

    /// The first request of `type_url` on this stream.
    fn subscribe_request(&mut self, type_url: TypeUrl) -> Request {
        let node = self.node_once();
        let state = &mut self.types[type_url.index()];
        state.requested = true;
        match self.protocol {
            Protocol::StateOfTheWorld => Request::Sotw(DiscoveryRequest {
                node,
                type_url: type_url.url().to_string(),
                version_info: state.version_info.clone(),
                resource_names: sotw_names(&state.names),
                ..Default::default()
            }),
            Protocol::Delta => Request::Delta(DeltaDiscoveryRequest {
                node,
                type_url: type_url.url().to_string(),
                resource_names_subscribe: match &state.names {
                    None => vec!["*".to_string()],
                    Some(names) => names.iter().cloned().collect(),
                },
                initial_resource_versions: state
                    .held
                    .iter()
                    .map(|(name, held)| (name.clone(), held.version.clone()))
                    .collect(),
                ..Default::default()
            }),
        }
    }

    /// Takes in a state-of-the-world response.
    pub fn on_sotw<C: Checker + ?Sized>(
        &mut self,
        response: &DiscoveryResponse,
        checker: &C,
    ) -> Outcome<C::Refusal> {
        let Some(type_url) = TypeUrl::from_url(&response.type_url) else {
            return Outcome::nothing();
        };
        let state = &self.types[type_url.index()];
        let mut candidate = if type_url.is_full_state() {
            HeldMap::new()
        } else {
            state.held.clone()
        };
        let mut duplicate = None;
        for resource in &response.resources {
            match resource_name(type_url, resource) {
                Ok(name) => {
                    let held = Held {
                        version: response.version_info.clone(),
                        resource: resource.clone(),
                    };
                    if candidate.insert(name.clone(), held).is_some() && type_url.is_full_state() {
                        duplicate = Some(name);
                    }
                }
                Err(error) => return self.reject_sotw(type_url, response, error),
            }
        }
        if let Some(name) = duplicate {
            let rejection = Rejection::SentTwice { type_url, name };
            return self.reject_sotw(type_url, response, rejection);
        }
        if let Some(names) = &state.names {
            candidate.retain(|name, _| names.contains(name));
        }
        if let Err(refusal) = checker.check(type_url, &candidate) {
            return self.reject_sotw(type_url, response, Rejection::Refused(refusal));
        }
        let state = &mut self.types[type_url.index()];
        let changed = !same_resources(&state.held, &candidate);
        state.held = candidate;
        state.version_info = response.version_info.clone();
        state.nonce = response.nonce.clone();
        let mut requests = vec![self.sotw_ack(type_url, None)];
        requests.extend(self.follow_interest(type_url, checker));
        Outcome {
            requests,
            changed,
            rejected: None,
        }
    }

    fn reject_sotw<R: std::error::Error>(
        &mut self,
        type_url: TypeUrl,
        response: &DiscoveryResponse,
        rejection: Rejection<R>,
    ) -> Outcome<R> {
        self.types[type_url.index()].nonce = response.nonce.clone();
        Outcome {
            requests: vec![self.sotw_ack(type_url, Some(rejection.to_string()))],
            changed: false,
            rejected: Some(rejection),
        }
    }

    /// An ACK (or, with `error`, a NACK) of the last response of `type_url`.
    fn sotw_ack(&mut self, type_url: TypeUrl, error: Option<String>) -> Request {
        let node = self.node_once();
        let state = &self.types[type_url.index()];
        Request::Sotw(DiscoveryRequest {
            node,
            type_url: type_url.url().to_string(),
            version_info: state.version_info.clone(),
            response_nonce: state.nonce.clone(),
            resource_names: sotw_names(&state.names),
            error_detail: error.map(invalid_argument),
            ..Default::default()
        })
    }

    /// Takes in a delta response.
    pub fn on_delta<C: Checker + ?Sized>(
        &mut self,
        response: &DeltaDiscoveryResponse,
        checker: &C,
    ) -> Outcome<C::Refusal> {
        let Some(type_url) = TypeUrl::from_url(&response.type_url) else {
            return Outcome::nothing();
        };
        let mut candidate = self.types[type_url.index()].held.clone();
        for name in &response.removed_resources {
            candidate.remove(name);
        }
        for resource in &response.resources {
            let Some(any) = &resource.resource else {
                continue;
            };
            let name = if resource.name.is_empty() {
                match resource_name(type_url, any) {
                    Ok(name) => name,
                    Err(error) => return self.reject_delta(type_url, response, error),
                }
            } else {
                resource.name.clone()
            };
            candidate.insert(
                name,
                Held {
                    version: resource.version.clone(),
                    resource: any.clone(),
                },
            );
        }
        if let Err(refusal) = checker.check(type_url, &candidate) {
            return self.reject_delta(type_url, response, Rejection::Refused(refusal));
        }
        let state = &mut self.types[type_url.index()];
        let changed = !same_resources(&state.held, &candidate);
        state.held = candidate;
        state.nonce = response.nonce.clone();
        let mut requests = vec![Request::Delta(DeltaDiscoveryRequest {
            type_url: type_url.url().to_string(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        })];
        requests.extend(self.follow_interest(type_url, checker));
        Outcome {
            requests,
            changed,
            rejected: None,
        }
    }

    fn reject_delta<R: std::error::Error>(
        &mut self,
        type_url: TypeUrl,
        response: &DeltaDiscoveryResponse,
        rejection: Rejection<R>,
    ) -> Outcome<R> {
        self.types[type_url.index()].nonce = response.nonce.clone();
        Outcome {
            requests: vec![Request::Delta(DeltaDiscoveryRequest {
                type_url: type_url.url().to_string(),
                response_nonce: response.nonce.clone(),
                error_detail: Some(invalid_argument(rejection.to_string())),
                ..Default::default()
            })],
            changed: false,
            rejected: Some(rejection),
        }
    }

    /// After `type_url` changed: asks for the routes, endpoints or secrets it now names,
    /// drops the ones it no longer names.
    fn follow_interest(
        &mut self,
        type_url: TypeUrl,
        checker: &(impl Checker + ?Sized),
    ) -> Vec<Request> {
        type_url
            .dependents()
            .iter()
            .flat_map(|dependent| self.follow_dependent(type_url, *dependent, checker))
            .collect()
    }

    fn follow_dependent(
        &mut self,
        type_url: TypeUrl,
        dependent: TypeUrl,
        checker: &(impl Checker + ?Sized),
    ) -> Vec<Request> {
        let wanted = checker.interest(dependent, &self.types[type_url.index()].held);
        let state = &mut self.types[dependent.index()];
        let before = state.names.clone().unwrap_or_default();
        if before == wanted {
            return Vec::new();
        }
        state.held.retain(|name, _| wanted.contains(name));
        state.names = Some(wanted.clone());
        if !state.requested {
            return vec![self.subscribe_request(dependent)];
        }
        match self.protocol {
            Protocol::StateOfTheWorld => vec![self.sotw_ack(dependent, None)],
            Protocol::Delta => vec![Request::Delta(DeltaDiscoveryRequest {
                type_url: dependent.url().to_string(),
                resource_names_subscribe: wanted.difference(&before).cloned().collect(),
                resource_names_unsubscribe: before.difference(&wanted).cloned().collect(),
                ..Default::default()
            })],
        }
    }
}

fn sotw_names(names: &Option<BTreeSet<String>>) -> Vec<String> {
    names
        .as_ref()
        .map(|names| names.iter().cloned().collect())
        .unwrap_or_default()
}

fn invalid_argument(message: String) -> Status {
    Status {
        code: tonic::Code::InvalidArgument as i32,
        message,
        details: Vec::new(),
    }
}

fn same_resources(a: &HeldMap, b: &HeldMap) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((n1, h1), (n2, h2))| n1 == n2 && h1.resource == h2.resource)
}

/// The name inside an encoded resource of `type_url`.
pub fn resource_name<R>(type_url: TypeUrl, resource: &Any) -> Result<String, Rejection<R>> {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use prost::Message;
    if resource.type_url != type_url.url() {
        return Err(Rejection::WrongType {
            expected: type_url,
            found: resource.type_url.clone(),
        });
    }
    let bytes = resource.value.as_slice();
    let name = match type_url {
        TypeUrl::Cluster => Cluster::decode(bytes).map(|c| c.name),
        TypeUrl::Endpoint => ClusterLoadAssignment::decode(bytes).map(|c| c.cluster_name),
        TypeUrl::Listener => Listener::decode(bytes).map(|l| l.name),
        TypeUrl::Route => RouteConfiguration::decode(bytes).map(|r| r.name),
        TypeUrl::Secret => Secret::decode(bytes).map(|s| s.name),
    };
    name.map_err(|error| Rejection::Undecodable { type_url, error })
}

#[cfg(test)]
mod tests;
