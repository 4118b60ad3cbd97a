//! The HTTP admin endpoint: `/healthz`, `/config_dump` (every served xDS resource as JSON),
//! `/clients` (connected clients with their ACKed and NACKed versions), `/config_status`
//! (the last reload: accepted or rejected, with its diagnostics) and `/load_reports` (what
//! clients reported over LRS). Read-only.

use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use crate::model::Diagnostics;
use crate::translate::json::resource_to_json;
use crate::xds::cache::TypeResources;
use crate::xds::lrs::LoadReports;
use crate::xds::types::{short_name, PUSH_ORDER};
use crate::xds::{Cache, Clients};

/// The outcome of the latest config load.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConfigStatus {
    /// Snapshot version being served.
    pub serving_version: String,
    /// Whether the latest edit was accepted.
    pub last_load_accepted: bool,
    /// Diagnostics of the latest load (errors when rejected, warnings either way).
    pub diagnostics: Diagnostics,
    /// Loads rejected since start.
    pub rejected_loads: u64,
    /// Endpoints removed by an edit and still draining: `service address (Ns left)`.
    pub draining: Vec<String>,
}

#[derive(Clone)]
pub struct AdminState {
    pub cache: Cache,
    pub clients: Arc<Clients>,
    pub status: Arc<RwLock<ConfigStatus>>,
    pub load_reports: Arc<LoadReports>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/config_dump", get(config_dump))
        .route("/clients", get(clients))
        .route("/config_status", get(config_status))
        .route("/load_reports", get(load_reports))
        .with_state(state)
}

async fn config_dump(State(state): State<AdminState>) -> Json<Value> {
    Json(config_dump_json(&state.cache))
}

/// Every served resource, grouped by type, as proto3 JSON: what Envoy clients get, and the
/// listeners and routes proxyless gRPC clients get instead.
pub fn config_dump_json(cache: &Cache) -> Value {
    let snapshot = cache.current();
    let group = |map: &std::collections::BTreeMap<&'static str, Arc<TypeResources>>| {
        let mut out = serde_json::Map::new();
        for type_url in PUSH_ORDER {
            let Some(resources) = map.get(type_url) else {
                continue;
            };
            let items: Vec<Value> = resources
                .values()
                .map(|r| {
                    json!({
                        "name": r.name,
                        "version": r.version,
                        "resource": resource_to_json(&r.body.type_url, &r.body.value),
                    })
                })
                .collect();
            out.insert(short_name(type_url).to_string(), Value::Array(items));
        }
        Value::Object(out)
    };
    json!({
        "version_info": snapshot.version,
        "resources": group(&snapshot.resources),
        "proxyless": group(&snapshot.proxyless),
    })
}

async fn load_reports(State(state): State<AdminState>) -> Json<Value> {
    Json(json!({ "load_reports": state.load_reports.rows() }))
}

async fn clients(State(state): State<AdminState>) -> Json<Value> {
    Json(json!({ "clients": state.clients.list() }))
}

async fn config_status(State(state): State<AdminState>) -> Json<ConfigStatus> {
    Json(
        state
            .status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    )
}
