//! `/config_dump`: every served resource as proto3 JSON, grouped by type — Envoy's resources
//! under `resources`, the proxyless gRPC listeners and routes under `proxyless`.
//!
//! The dump is written resource by resource on a blocking thread into a small bounded channel
//! that the HTTP body drains, so a config of any size costs a few chunks of memory, and a
//! client that stops reading stops the writing. `?type=` (Cluster, ClusterLoadAssignment,
//! Listener, RouteConfiguration, or clusters / endpoints / listeners / routes; commas for
//! several) and `?name=` (exact, or with `*` wildcards) narrow it.

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::translate::json::resource_to_json;
use crate::xds::server::cache::{Audience, ViewKey};
use crate::xds::types::TypeUrl;
use crate::xds::Snapshot;

use super::AdminState;

/// Bytes gathered before a chunk goes to the client.
const CHUNK: usize = 64 * 1024;
/// Chunks written ahead of what the client has read.
const CHUNKS_AHEAD: usize = 4;

#[derive(Debug, Default, Deserialize)]
pub struct DumpQuery {
    #[serde(rename = "type")]
    types: Option<String>,
    name: Option<String>,
}

/// Which resources a dump shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DumpFilter {
    /// Types shown; empty shows every type.
    types: Vec<TypeUrl>,
    /// A name pattern (`*` matches any run of characters).
    name: Option<String>,
}

/// A filter the dump cannot apply, with what is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError(pub String);

impl DumpFilter {
    /// Reads `?type=` and `?name=`.
    pub fn parse(types: Option<&str>, name: Option<&str>) -> Result<DumpFilter, FilterError> {
        let mut filter = DumpFilter {
            types: Vec::new(),
            name: name.filter(|n| !n.is_empty()).map(str::to_string),
        };
        for wanted in types.unwrap_or("").split(',').map(str::trim) {
            if wanted.is_empty() {
                continue;
            }
            let found = TypeUrl::ALL.into_iter().find(|type_url| {
                wanted == type_url.url()
                    || wanted.eq_ignore_ascii_case(type_url.short_name())
                    || wanted.eq_ignore_ascii_case(plural_of(*type_url))
            });
            match found {
                Some(type_url) => filter.types.push(type_url),
                None => {
                    return Err(FilterError(format!(
                        "unknown type `{wanted}`; use one of Cluster, ClusterLoadAssignment, Listener, RouteConfiguration (or clusters, endpoints, listeners, routes)"
                    )))
                }
            }
        }
        Ok(filter)
    }

    fn shows_type(&self, type_url: TypeUrl) -> bool {
        self.types.is_empty() || self.types.contains(&type_url)
    }

    fn shows_name(&self, name: &str) -> bool {
        self.name
            .as_deref()
            .is_none_or(|pattern| wildcard_match(pattern, name))
    }
}

fn plural_of(type_url: TypeUrl) -> &'static str {
    match type_url {
        TypeUrl::Secret => "secrets",
        TypeUrl::Cluster => "clusters",
        TypeUrl::Endpoint => "endpoints",
        TypeUrl::Listener => "listeners",
        TypeUrl::Route => "routes",
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

pub async fn config_dump(
    State(state): State<AdminState>,
    Query(query): Query<DumpQuery>,
) -> Response {
    let filter = match DumpFilter::parse(query.types.as_deref(), query.name.as_deref()) {
        Ok(filter) => filter,
        Err(FilterError(message)) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let snapshot = state.cache.current();
    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            buffer: Vec::with_capacity(CHUNK),
            sender,
        };
        // An error here means the client went away; there is no one left to tell.
        let _ = write_dump(&snapshot, &filter, &mut out).and_then(|()| out.flush());
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(ReceiverStream::new(receiver)),
    )
        .into_response()
}

/// Writes the dump of `snapshot` as JSON: under `resources` what an Envoy without a region
/// gets (the shared clusters, the endpoints of clients without a region, Envoy's listeners
/// and routes); under `proxyless` the listeners and routes of proxyless gRPC clients.
pub fn write_dump(
    snapshot: &Snapshot,
    filter: &DumpFilter,
    out: &mut impl Write,
) -> std::io::Result<()> {
    write!(
        out,
        "{{\"version_info\":{},\"resources\":",
        serde_json::to_string(&snapshot.version)?
    )?;
    let envoy = |type_url: TypeUrl| match type_url {
        TypeUrl::Cluster | TypeUrl::Secret => Some(ViewKey::Shared),
        TypeUrl::Endpoint => Some(ViewKey::Region(String::new())),
        _ => Some(ViewKey::Audience(Audience::Envoy)),
    };
    write_group(snapshot, envoy, filter, out)?;
    out.write_all(b",\"proxyless\":")?;
    let proxyless = |type_url: TypeUrl| match type_url {
        TypeUrl::Listener | TypeUrl::Route => Some(ViewKey::Audience(Audience::Proxyless)),
        _ => None,
    };
    write_group(snapshot, proxyless, filter, out)?;
    out.write_all(b"}\n")
}

/// One object with a list per type, of the views `key_of` picks.
fn write_group(
    snapshot: &Snapshot,
    key_of: impl Fn(TypeUrl) -> Option<ViewKey>,
    filter: &DumpFilter,
    out: &mut impl Write,
) -> std::io::Result<()> {
    out.write_all(b"{")?;
    let mut first_type = true;
    for type_url in TypeUrl::ALL.into_iter().filter(|t| filter.shows_type(*t)) {
        let Some(view) = key_of(type_url).and_then(|key| snapshot.view_by_key(type_url, &key))
        else {
            continue;
        };
        if !first_type {
            out.write_all(b",")?;
        }
        first_type = false;
        write!(out, "\"{}\":[", type_url.short_name())?;
        let mut first = true;
        for resource in view
            .resources
            .values()
            .filter(|r| filter.shows_name(&r.name))
        {
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            let entry = serde_json::json!({
                "name": resource.name,
                "version": resource.version,
                "resource": resource_to_json(type_url.url(), &resource.value),
            });
            serde_json::to_writer(&mut *out, &entry)?;
        }
        out.write_all(b"]")?;
    }
    out.write_all(b"}")
}

/// Gathers bytes into chunks and hands each to the HTTP body, waiting while the client is
/// behind; fails once the client is gone.
struct ChunkWriter {
    buffer: Vec<u8>,
    sender: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::server::cache::Content;

    #[test]
    fn wildcards_match_as_globs() {
        assert!(wildcard_match("web", "web"));
        assert!(!wildcard_match("web", "web2"));
        assert!(wildcard_match("svc-*", "svc-12"));
        assert!(wildcard_match("*-12", "svc-12"));
        assert!(wildcard_match("s*c*2", "svc-12"));
        assert!(!wildcard_match("s*x*2", "svc-12"));
        assert!(!wildcard_match("ab*ba", "aba"));
    }

    #[test]
    fn types_are_named_short_plural_or_by_url() {
        let filter = DumpFilter::parse(Some("cluster, endpoints"), None).unwrap();
        assert!(filter.shows_type(TypeUrl::Cluster));
        assert!(filter.shows_type(TypeUrl::Endpoint));
        assert!(!filter.shows_type(TypeUrl::Listener));
        let error = DumpFilter::parse(Some("runtimes"), None).unwrap_err();
        assert!(error.0.starts_with("unknown type `runtimes`; use one of"));
    }

    #[test]
    fn a_filtered_dump_is_valid_json_with_only_what_was_asked() {
        let mut content = Content::default();
        content.views.insert(
            (TypeUrl::Cluster, ViewKey::Shared),
            ["svc-1", "svc-2", "web"]
                .into_iter()
                .map(|name| (name.to_string(), bytes::Bytes::new()))
                .collect(),
        );
        let snapshot = Snapshot::build(content, None);
        let filter = DumpFilter::parse(Some("clusters"), Some("svc-*")).unwrap();
        let mut out = Vec::new();
        write_dump(&snapshot, &filter, &mut out).unwrap();
        let dump: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let names: Vec<&str> = dump["resources"]["Cluster"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["svc-1", "svc-2"]);
        assert!(dump["resources"].get("Listener").is_none());
        assert_eq!(dump["proxyless"], serde_json::json!({}));
    }
}
