//! Client Status Discovery Service (CSDS): per connected client, per resource, what it was
//! sent and whether it ACKed or NACKed it, with the version — from the same registry as
//! `/clients`. Clients are picked with node matchers on the node id (exact, prefix, suffix,
//! contains); no matcher means every client.

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::admin::v3::{ClientResourceStatus, UpdateFailureState};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, NodeMatcher};
use envoy_types::pb::envoy::service::status::v3::{
    client_config::GenericXdsConfig,
    client_status_discovery_service_server::{
        ClientStatusDiscoveryService, ClientStatusDiscoveryServiceServer,
    },
    ClientConfig, ClientStatusRequest, ClientStatusResponse, ConfigStatus,
};
use envoy_types::pb::google::protobuf::{value, Timestamp, Value};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::cache::{Cache, Snapshot};
use super::clients::{ClientEntry, Clients, SyncStatus, TypeEntry};
use crate::xds::types::TypeUrl;

#[derive(Clone)]
pub struct CsdsService {
    clients: Arc<Clients>,
    cache: Cache,
}

impl CsdsService {
    pub fn new(clients: Arc<Clients>, cache: Cache) -> Self {
        CsdsService { clients, cache }
    }

    pub fn into_server(self) -> ClientStatusDiscoveryServiceServer<Self> {
        ClientStatusDiscoveryServiceServer::new(self)
    }
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<ClientStatusResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ClientStatusDiscoveryService for CsdsService {
    type StreamClientStatusStream = StatusStream;

    async fn stream_client_status(
        &self,
        request: Request<Streaming<ClientStatusRequest>>,
    ) -> Result<Response<StatusStream>, Status> {
        let (clients, cache) = (self.clients.clone(), self.cache.clone());
        let answers = request.into_inner().map(move |message| {
            message.and_then(|request| client_status(&clients, &cache.current(), &request))
        });
        Ok(Response::new(Box::pin(answers)))
    }

    async fn fetch_client_status(
        &self,
        request: Request<ClientStatusRequest>,
    ) -> Result<Response<ClientStatusResponse>, Status> {
        client_status(&self.clients, &self.cache.current(), request.get_ref()).map(Response::new)
    }
}

/// The status of every client the request's matchers select.
pub fn client_status(
    clients: &Clients,
    snapshot: &Snapshot,
    request: &ClientStatusRequest,
) -> Result<ClientStatusResponse, Status> {
    for matcher in &request.node_matchers {
        if let Some(MatchPattern::SafeRegex(_)) = matcher
            .node_id
            .as_ref()
            .and_then(|m| m.match_pattern.as_ref())
        {
            return Err(Status::invalid_argument(
                "node id matchers may be exact, prefix, suffix or contains; regular expressions are not supported",
            ));
        }
    }
    let config = clients
        .entries()
        .iter()
        .filter(|entry| selected(entry, &request.node_matchers))
        .map(|entry| client_config(entry, snapshot, request.exclude_resource_contents))
        .collect();
    Ok(ClientStatusResponse { config })
}

fn selected(entry: &ClientEntry, matchers: &[NodeMatcher]) -> bool {
    if matchers.is_empty() {
        return true;
    }
    let id = entry.node.as_ref().map(|n| n.id.as_str()).unwrap_or("");
    matchers.iter().any(|matcher| {
        let Some(pattern) = matcher.node_id.as_ref() else {
            return true;
        };
        let fold = |s: &str| {
            if pattern.ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.to_string()
            }
        };
        let id = fold(id);
        match &pattern.match_pattern {
            Some(MatchPattern::Exact(exact)) => id == fold(exact),
            Some(MatchPattern::Prefix(prefix)) => id.starts_with(&fold(prefix)),
            Some(MatchPattern::Suffix(suffix)) => id.ends_with(&fold(suffix)),
            Some(MatchPattern::Contains(part)) => id.contains(&fold(part)),
            _ => false,
        }
    })
}

fn client_config(entry: &ClientEntry, snapshot: &Snapshot, exclude_contents: bool) -> ClientConfig {
    let since_epoch = entry
        .last_update
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let updated = Timestamp {
        seconds: since_epoch.as_secs() as i64,
        nanos: since_epoch.subsec_nanos() as i32,
    };
    let mut configs = Vec::new();
    for type_url in TypeUrl::ALL {
        if let Some(state) = &entry.types[type_url.index()] {
            let status = state.status(snapshot.view(type_url, &entry.client));
            resources_of(
                type_url,
                state,
                status,
                exclude_contents,
                &updated,
                &mut configs,
            );
        }
    }
    ClientConfig {
        node: entry
            .node
            .as_deref()
            .map(|node| with_identity(node, entry.info.identity.as_deref())),
        generic_xds_configs: configs,
        ..Default::default()
    }
}

/// The node as the client sent it, with the identity of its certificate (mTLS) added to its
/// metadata as `switchyard.identity`: CSDS has no field of its own for it.
fn with_identity(node: &Node, identity: Option<&str>) -> Node {
    let mut node = node.clone();
    if let Some(identity) = identity {
        let metadata = node.metadata.get_or_insert_with(Default::default);
        metadata.fields.insert(
            "switchyard.identity".to_string(),
            Value {
                kind: Some(value::Kind::StringValue(identity.to_string())),
            },
        );
    }
    node
}

/// One entry per resource the client subscribes to (every resource it holds, with a
/// wildcard).
fn resources_of(
    type_url: TypeUrl,
    state: &TypeEntry,
    status: SyncStatus,
    exclude_contents: bool,
    updated: &Timestamp,
    out: &mut Vec<GenericXdsConfig>,
) {
    let held = state.base.as_ref().map(|b| &b.resources);
    let rejected = state.rejected.as_ref().map(|r| &r.resources);
    let names: Vec<&String> = if state.subscription.wildcard {
        let mut names: Vec<&String> = held
            .into_iter()
            .chain(rejected)
            .flat_map(|resources| resources.keys())
            .collect();
        names.sort();
        names.dedup();
        names
    } else {
        state.subscription.names.iter().collect()
    };
    let config_status = match status {
        SyncStatus::Synced => ConfigStatus::Synced,
        SyncStatus::Stale => ConfigStatus::Stale,
        SyncStatus::NotSent => ConfigStatus::NotSent,
        SyncStatus::Nacked => ConfigStatus::Error,
    };
    for name in names {
        let resource = held
            .and_then(|h| h.get(name))
            .or_else(|| rejected.and_then(|r| r.get(name)));
        let client_status = match (resource, status) {
            (_, SyncStatus::Nacked) => ClientResourceStatus::Nacked,
            (None, _) if state.responses_sent > 0 => ClientResourceStatus::DoesNotExist,
            (Some(_), SyncStatus::Synced) => ClientResourceStatus::Acked,
            (Some(_), SyncStatus::Stale) if state.acked_version.is_some() => {
                ClientResourceStatus::Acked
            }
            _ => ClientResourceStatus::Requested,
        };
        let error_state = (client_status == ClientResourceStatus::Nacked)
            .then_some(state.last_nack.as_ref())
            .flatten()
            .map(|nack| UpdateFailureState {
                details: nack.detail.clone(),
                version_info: nack.version.clone(),
                ..Default::default()
            });
        out.push(GenericXdsConfig {
            type_url: type_url.url().to_string(),
            name: name.clone(),
            version_info: resource.map(|r| r.version.clone()).unwrap_or_default(),
            xds_config: resource.filter(|_| !exclude_contents).map(|r| r.to_any()),
            last_updated: Some(*updated),
            config_status: config_status as i32,
            client_status: client_status as i32,
            error_state,
            ..Default::default()
        });
    }
}
