//! How capacity decisions are shown: per service, each backend's capacity, the load that
//! reaches it and why it takes what it takes (full, spare, unhealthy), and per client region
//! its demand and shares — what `/capacity` serves as JSON and `explain` prints, and the
//! board the publisher posts them on for the admin endpoint to read. Must not: decide.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use super::decisions::{BackendCapacity, GroupShares, ServiceTarget};
use super::measured::{Locality, MeasuredLoad};
use super::stability::{in_unit, ClientState};
use crate::model::CapacityUnit;

/// The latest reports, by service: written by the publisher each interval, read by the admin
/// endpoint.
#[derive(Debug, Default)]
pub struct CapacityBoard {
    reports: RwLock<BTreeMap<String, ServiceReport>>,
}

impl CapacityBoard {
    /// Replaces every report.
    pub fn post(&self, reports: BTreeMap<String, ServiceReport>) {
        *self.reports.write().unwrap_or_else(|e| e.into_inner()) = reports;
    }

    /// The report of `service`.
    pub fn get(&self, service: &str) -> Option<ServiceReport> {
        let reports = self.reports.read().unwrap_or_else(|e| e.into_inner());
        reports.get(service).cloned()
    }

    /// The services with a report.
    pub fn services(&self) -> Vec<String> {
        let reports = self.reports.read().unwrap_or_else(|e| e.into_inner());
        reports.keys().cloned().collect()
    }
}

/// Why a backend takes what it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Standing {
    /// Its region's capacity is taken in full; more goes elsewhere.
    Full,
    /// Its region can take more.
    Spare,
    /// Every endpoint is reported unhealthy: it carries no capacity.
    Unhealthy,
    /// Its capacity is 0 (a scaler of 0, or no endpoint).
    NoCapacity,
}

/// One backend, as `/capacity` and `explain` show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendReport {
    #[serde(flatten)]
    pub capacity: BackendCapacity,
    /// What reaches its locality, from every client, in the service's unit.
    pub load: f64,
    /// What the decisions send it, from every client region.
    pub decided: f64,
    pub standing: Standing,
}

/// One client region: its demand and where it goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientReport {
    pub region: String,
    pub measured: f64,
    pub smoothed: f64,
    /// Where its traffic should go.
    pub target: GroupShares,
    /// Where it is sent (None: the static answer, every share in the first region).
    pub published: Option<GroupShares>,
}

/// A service's capacity, load and shares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceReport {
    pub service: String,
    /// The unit figures are in: `requests/s` or `connections`.
    pub unit: String,
    pub backends: Vec<BackendReport>,
    pub clients: Vec<ClientReport>,
}

pub(super) fn report_of(
    service: &str,
    target: &ServiceTarget,
    measured: &BTreeMap<String, f64>,
    published: &BTreeMap<(String, String), ClientState>,
    load: &dyn MeasuredLoad,
) -> ServiceReport {
    let full = target.full_regions();
    let backends = target
        .backends
        .iter()
        .map(|backend| {
            let locality = Locality {
                region: backend.region.clone(),
                zone: backend.zone.clone(),
            };
            let decided = target
                .clients
                .values()
                .map(|c| c.shares.get(&backend.group).copied().unwrap_or(0.0) * c.demand)
                .sum();
            let standing = if backend.endpoints > 0 && backend.routable == 0 {
                Standing::Unhealthy
            } else if backend.capacity <= 0.0 {
                Standing::NoCapacity
            } else if full.contains(&backend.region) {
                Standing::Full
            } else {
                Standing::Spare
            };
            BackendReport {
                capacity: backend.clone(),
                load: in_unit(load.arriving(service, &locality), target.unit),
                decided,
                standing,
            }
        })
        .collect();
    let clients = target
        .clients
        .iter()
        .map(|(region, client)| {
            let state = published.get(&(service.to_string(), region.clone()));
            ClientReport {
                region: region.clone(),
                measured: measured.get(region).copied().unwrap_or(0.0),
                smoothed: client.demand,
                target: client.shares.clone(),
                published: state.filter(|s| s.spills).map(|s| s.shares.clone()),
            }
        })
        .collect();
    ServiceReport {
        service: service.to_string(),
        unit: unit_word(target.unit).to_string(),
        backends,
        clients,
    }
}

/// How a unit is written after a figure.
pub fn unit_word(unit: CapacityUnit) -> &'static str {
    match unit {
        CapacityUnit::RequestsPerSecond => "requests/s",
        CapacityUnit::Connections => "connections",
        CapacityUnit::Utilization => "utilization",
        CapacityUnit::Weight => "weight",
    }
}
