//! The sidecar's admin port, answering what tools pointed at Envoy ask: `/ready` (200 once the
//! first config has warmed), `/config_dump` (Envoy's layout: bootstrap, clusters, listeners,
//! routes, endpoints, each with its version and update time), `/clusters` (endpoints with
//! health and weight) and `/stats/prometheus`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::bootstrap::Bootstrap;
use super::config::Applier;
use super::prometheus::Scrape;
use crate::xds::reflect::resource_to_json;
use crate::xds::types::TypeUrl;

#[derive(Clone)]
pub struct AdminState {
    pub applier: Arc<Applier>,
    pub bootstrap: Arc<Bootstrap>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/ready", get(ready))
        .route("/config_dump", get(config_dump))
        .route("/clusters", get(clusters))
        .route("/stats/prometheus", get(stats))
        .with_state(state)
}

async fn ready(State(state): State<AdminState>) -> impl IntoResponse {
    if state.applier.current().is_warm() {
        (StatusCode::OK, "LIVE\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "PRE_INITIALIZING\n")
    }
}

fn timestamp(time: Option<SystemTime>) -> Value {
    let seconds = time
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Value::String(format!("@{seconds}"))
}

async fn config_dump(State(state): State<AdminState>) -> impl IntoResponse {
    let config = state.applier.current();
    let updated = timestamp(config.last_updated);
    let of = |type_url: TypeUrl| config.raw.iter().filter(move |(t, ..)| *t == type_url);
    let entry = |key: &str, version: &str, bytes: &[u8], type_url: TypeUrl| json!({"version_info": version, key: resource_to_json(type_url.url(), bytes), "last_updated": updated});
    let node = &state.bootstrap.node;
    let dump = json!({"configs": [
        {
            "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
            "bootstrap": {"node": {"id": node.id, "cluster": node.cluster,
                "locality": node.locality.as_ref().map(|l| json!({"region": l.region, "zone": l.zone, "sub_zone": l.sub_zone}))}},
        },
        {
            "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "dynamic_active_clusters": of(TypeUrl::Cluster).map(|(_, _, v, b)| entry("cluster", v, b, TypeUrl::Cluster)).collect::<Vec<_>>(),
        },
        {
            "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "dynamic_listeners": of(TypeUrl::Listener).map(|(_, name, v, b)| json!({"name": name, "active_state": entry("listener", v, b, TypeUrl::Listener)})).collect::<Vec<_>>(),
        },
        {
            "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "dynamic_route_configs": of(TypeUrl::Route).map(|(_, _, v, b)| entry("route_config", v, b, TypeUrl::Route)).collect::<Vec<_>>(),
        },
        {
            "@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
            "dynamic_endpoint_configs": of(TypeUrl::Endpoint).map(|(_, _, v, b)| entry("endpoint_config", v, b, TypeUrl::Endpoint)).collect::<Vec<_>>(),
        },
    ]});
    axum::Json(dump)
}

#[derive(serde::Deserialize)]
struct ClustersQuery {
    format: Option<String>,
}

/// Envoy's text form (`cluster::address::field::value`, one line each), or with
/// `?format=json` its JSON form (`cluster_statuses[].host_statuses[]`).
async fn clusters(
    State(state): State<AdminState>,
    axum::extract::Query(query): axum::extract::Query<ClustersQuery>,
) -> axum::response::Response {
    let config = state.applier.current();
    if query.format.as_deref() == Some("json") {
        return axum::Json(clusters_json(&config)).into_response();
    }
    let mut text = String::new();
    for (name, entry) in &config.clusters {
        for locality in entry.assignment.iter().flat_map(|a| &a.localities) {
            for endpoint in &locality.endpoints {
                let health = match endpoint.health {
                    super::resources::endpoint::Health::Healthy => "healthy",
                    super::resources::endpoint::Health::Unhealthy => "/failed_eds_health",
                    super::resources::endpoint::Health::Draining => "/pending_dynamic_removal",
                };
                let at = format!("{name}::{}", endpoint.address);
                text.push_str(&format!(
                    "{at}::health_flags::{health}\n{at}::weight::{}\n{at}::region::{}\n{at}::zone::{}\n{at}::priority::{}\n",
                    endpoint.weight, locality.region, locality.zone, locality.priority
                ));
            }
        }
    }
    text.into_response()
}

fn clusters_json(config: &super::config::ProxyConfig) -> Value {
    use super::resources::endpoint::Health;
    let statuses: Vec<Value> = config
        .clusters
        .iter()
        .map(|(name, entry)| {
            let hosts: Vec<Value> = entry
                .assignment
                .iter()
                .flat_map(|a| &a.localities)
                .flat_map(|locality| locality.endpoints.iter().map(move |e| (locality, e)))
                .map(|(locality, endpoint)| {
                    let health = match endpoint.health {
                        Health::Healthy => "HEALTHY",
                        Health::Unhealthy => "UNHEALTHY",
                        Health::Draining => "DRAINING",
                    };
                    json!({
                        "address": {"socket_address": {
                            "address": endpoint.address.ip().to_string(),
                            "port_value": endpoint.address.port(),
                        }},
                        "health_status": {"eds_health_status": health},
                        "weight": endpoint.weight,
                        "locality": {"region": locality.region, "zone": locality.zone, "sub_zone": locality.sub_zone},
                        "priority": locality.priority,
                    })
                })
                .collect();
            json!({"name": name, "host_statuses": hosts})
        })
        .collect();
    json!({"cluster_statuses": statuses})
}

async fn stats(State(state): State<AdminState>) -> impl IntoResponse {
    let applier = &state.applier;
    let config = applier.current();
    let mut scrape = Scrape::default();
    scrape.gauge(
        "switchyard_proxy_xds_connected",
        "Whether the xDS stream to the control plane is up.",
        u64::from(applier.connected.load(Ordering::Relaxed)),
    );
    scrape.counter(
        "switchyard_proxy_xds_updates_accepted",
        "xDS updates applied.",
        applier.updates_accepted.load(Ordering::Relaxed),
    );
    scrape.counter(
        "switchyard_proxy_xds_updates_rejected",
        "xDS updates refused (NACKed).",
        applier.updates_rejected.load(Ordering::Relaxed),
    );
    super::stats::STATS.gather(&mut scrape);
    super::circuit_breakers::gather(
        config
            .clusters
            .iter()
            .map(|(name, entry)| (name, &*entry.breakers)),
        &mut scrape,
    );
    super::outlier::gather(
        config
            .clusters
            .iter()
            .filter_map(|(name, entry)| Some((name, &entry.outliers.as_ref()?.stats))),
        &mut scrape,
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        scrape.encode(),
    )
}
