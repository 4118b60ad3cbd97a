//! The HTTP admin endpoint: `/healthz`, `/ready` (200 once a config is served), `/config_dump`
//! (served xDS resources as JSON, streamed, filterable by type and name), `/clients`
//! (connected clients with their ACKed and NACKed versions), `/config_status` (the latest
//! reload: accepted, rejected or held back, with its diagnostics), `/load_reports` (what
//! clients reported over LRS), `/load_measured` (that load over the window capacity reads:
//! requests/s and in flight per service and client region), `/health` (the health checker's
//! view of every checked endpoint, per family) and `/capacity` (capacity, measured load and
//! the shares decided from it, per service), `/cluster` (the replica set in etcd, with
//! `serve --etcd`), and the console at `/` (console/: an HTML page over the same data,
//! refreshing itself). Read-only; nothing here may hold a copy of a
//! large config.

mod console;
mod dump;

use std::sync::{Arc, RwLock};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::capacity::measured::{MeasuredPage, ReportWindow};
use crate::capacity::report::CapacityBoard;
use crate::health::checker::Checker;
use crate::health::state::Standing;
use crate::metrics::Metrics;
use crate::publish::liveness::ReloadLiveness;
use crate::publish::status::ConfigStatus;
use crate::xds::server::load_reports::{LoadFilter, LoadPage, LoadReports};
use crate::xds::server::Clients;
use crate::xds::Cache;

pub use dump::{DumpFilter, FilterError};

#[derive(Clone)]
pub struct AdminState {
    pub cache: Cache,
    pub clients: Arc<Clients>,
    pub status: Arc<RwLock<ConfigStatus>>,
    pub load_reports: Arc<LoadReports>,
    pub load_window: Arc<ReportWindow>,
    pub metrics: Arc<Metrics>,
    pub checker: Arc<Checker>,
    pub liveness: Arc<ReloadLiveness>,
    pub capacity: Arc<CapacityBoard>,
    /// The replica set, with `--etcd`.
    pub cluster: Option<Arc<crate::cluster::Replicas>>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(console::page))
        .route("/console/main", get(console::main_part))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/config_dump", get(dump::config_dump))
        .route("/clients", get(clients))
        .route("/config_status", get(config_status))
        .route("/load_reports", get(load_reports))
        .route("/load_measured", get(load_measured))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/capacity", get(capacity))
        .route("/cluster", get(cluster))
        .with_state(state)
}

/// 200 once a config is served, 503 (with the reason) before, and while a config change has
/// waited for the reloader longer than its limit (the reloader is stuck: what is served no
/// longer follows the files).
async fn ready(State(state): State<AdminState>) -> (StatusCode, String) {
    if let Some(stall) = state.liveness.stall(std::time::Instant::now()) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: a config change has waited {}s for the reloader (limit {}s); the \
                 reloader may be stuck, edits are not being served\n",
                stall.waited.as_secs(),
                stall.limit.as_secs()
            ),
        );
    }
    let status = state.status.read().unwrap_or_else(|e| e.into_inner());
    if status.serving {
        return (
            StatusCode::OK,
            format!("ready: serving version {}\n", status.serving_version),
        );
    }
    let why = status
        .diagnostics
        .errors()
        .next()
        .map(|error| format!("the config is not valid: {error}"))
        .unwrap_or_else(|| "the config has not been loaded yet".to_string());
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: nothing is served yet; {why}\n"),
    )
}

async fn metrics(State(state): State<AdminState>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// `/load_reports?node=ID&cluster=NAME&limit=N`: totals by client, cluster and locality,
/// at most `limit` rows (1,000 unless asked; 10,000 at most).
async fn load_reports(
    State(state): State<AdminState>,
    Query(query): Query<LoadQuery>,
) -> Json<LoadPage> {
    Json(state.load_reports.rows(&LoadFilter {
        node_id: query.node,
        cluster: query.cluster,
        limit: query.limit,
    }))
}

/// `/load_measured?service=NAME&limit=N`: per service and client region, the load over the
/// window (1,000 rows unless asked; 10,000 at most).
async fn load_measured(
    State(state): State<AdminState>,
    Query(query): Query<MeasuredQuery>,
) -> Json<MeasuredPage> {
    let limit = query.limit.unwrap_or(1_000).min(10_000);
    Json(state.load_window.rows(query.service.as_deref(), limit))
}

#[derive(serde::Deserialize)]
struct MeasuredQuery {
    service: Option<String>,
    limit: Option<usize>,
}

#[derive(serde::Deserialize)]
struct LoadQuery {
    node: Option<String>,
    cluster: Option<String>,
    limit: Option<usize>,
}

/// `/health?service=NAME&state=UNHEALTHY&limit=N`: counts, and the checked endpoints (1,000
/// unless asked) with each family's state, last result, last error and since when.
async fn health(
    State(state): State<AdminState>,
    Query(query): Query<HealthQuery>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let limit = query.limit.unwrap_or(1_000);
    let wanted = match query
        .state
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None => None,
        Some("HEALTHY") => Some(Standing::Healthy),
        Some("UNHEALTHY") => Some(Standing::Unhealthy),
        Some("UNKNOWN") => Some(Standing::Unknown),
        Some(other) => {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("state `{other}` is not one of HEALTHY, UNHEALTHY, UNKNOWN\n"),
            ))
        }
    };
    let service = query.service.as_deref();
    let endpoints = state.checker.report(service, wanted, limit);
    Ok(Json(json!({
        "counts": state.checker.counts(service),
        "endpoints": endpoints,
    })))
}

#[derive(serde::Deserialize)]
struct HealthQuery {
    service: Option<String>,
    state: Option<String>,
    limit: Option<usize>,
}

/// `/capacity?service=NAME`: the service's backends (capacity, load, why they take what they
/// take) and client regions (demand, target and published shares); without a service, the
/// services decided for.
/// `/cluster`: the replica set as this replica sees it.
async fn cluster(State(state): State<AdminState>) -> Result<Json<Value>, (StatusCode, String)> {
    match &state.cluster {
        Some(replicas) => Ok(Json(json!(replicas.report()))),
        None => Err((
            StatusCode::NOT_FOUND,
            "this replica is alone: serve --etcd URL to share health checking with others\n"
                .to_string(),
        )),
    }
}

async fn capacity(
    State(state): State<AdminState>,
    Query(query): Query<CapacityQuery>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let Some(service) = query.service else {
        return Ok(Json(json!({ "services": state.capacity.services() })));
    };
    match state.capacity.get(&service) {
        Some(report) => Ok(Json(json!(report))),
        None => Err((
            StatusCode::NOT_FOUND,
            format!(
                "no capacity decisions for service `{service}`: it is not served, its balancing \
                 mode has no measurable target (RATE or CONNECTION), or no load report has \
                 been taken in yet\n"
            ),
        )),
    }
}

#[derive(serde::Deserialize)]
struct CapacityQuery {
    service: Option<String>,
}

async fn clients(State(state): State<AdminState>) -> Json<Value> {
    Json(json!({ "clients": state.clients.list(&state.cache.current()) }))
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
