//! The checker's state: the targets the served config asks for, each with its standing and
//! last result, and the service endpoints they decide. It is an [`EndpointSource`]: given a
//! model about to be served it adopts its plan (keeping what it knows of targets that stay,
//! starting new ones as the cloud starts new backends) and says how its endpoints stand;
//! afterwards each probe result is recorded here and the endpoints whose standing changed
//! are handed to the publisher by the scheduler. Must not: probe (the scheduler does) or
//! translate anything.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use serde::Serialize;
use tokio::sync::Notify;

use crate::model::Model;
use crate::publish::endpoint_sources::{EndpointReport, EndpointSource};
use crate::translate::endpoints::ReportedHealth;

use super::probe::Outcome;
use super::state::{endpoint_standing, Standing, TargetHealth};
use super::targets::{plan, ServiceEndpoint, TargetKey};

/// The name of the checker's layer of endpoint status.
pub const SOURCE: &str = "health-check";

/// What the checker knows of one target.
pub struct Target {
    pub health: TargetHealth,
    /// The names of the checks it stands for.
    pub checks: Vec<Arc<str>>,
    /// The service endpoints it decides.
    pub users: Vec<ServiceEndpoint>,
    /// When the last probe ended, and whether it passed.
    pub last: Option<(SystemTime, bool)>,
    /// The last failure's reason.
    pub last_error: Option<String>,
    /// When the standing last changed (or the target appeared).
    pub since: SystemTime,
    pub probes: u64,
}

/// Targets the scheduler must start or stop after a model was adopted.
#[derive(Default)]
pub struct Changes {
    pub started: Vec<(Arc<TargetKey>, bool)>,
    pub stopped: Vec<Arc<TargetKey>>,
}

#[derive(Default)]
struct State {
    targets: HashMap<Arc<TargetKey>, Target>,
    endpoints: BTreeMap<ServiceEndpoint, Vec<Arc<TargetKey>>>,
    /// Endpoints whose standing may have changed since the last report.
    dirty: BTreeSet<ServiceEndpoint>,
    /// Whether a model was adopted before: targets of the first start unknown.
    adopted: bool,
    /// Target changes the scheduler has not picked up yet.
    changes: Changes,
}

/// The checker's state, shared by the publisher (as a source) and the scheduler.
#[derive(Default)]
pub struct Checker {
    state: Mutex<State>,
    /// Woken when endpoints may have changed standing.
    pub(super) changed: Notify,
    /// Woken when targets were added or removed.
    pub(super) replanned: Notify,
}

impl Checker {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the targets to start (with whether they are new to the config) and stop.
    pub fn take_target_changes(&self) -> Changes {
        std::mem::take(&mut self.lock().changes)
    }

    /// Records one probe result; returns whether the target is still wanted.
    pub fn record(&self, key: &TargetKey, outcome: Outcome, at: SystemTime) -> bool {
        let mut state = self.lock();
        let State { targets, dirty, .. } = &mut *state;
        let Some(target) = targets.get_mut(key) else {
            return false;
        };
        target.probes += 1;
        let changed = target.health.record(outcome.is_ok(), key.check.thresholds);
        if let Some(standing) = changed {
            target.since = at;
            let reason = match &outcome {
                Ok(()) => "check passed".to_string(),
                Err(error) => error.clone(),
            };
            tracing::info!(
                address = %key.address,
                checks = %target.checks.join(","),
                endpoints = target.users.len(),
                standing = standing.as_str(),
                %reason,
                "health check target changed"
            );
            dirty.extend(target.users.iter().cloned());
            self.changed.notify_one();
        }
        target.last = Some((at, outcome.is_ok()));
        if let Err(error) = outcome {
            target.last_error = Some(error);
        }
        true
    }

    /// The endpoints whose standing may have changed, as reports for the publisher.
    pub fn take_reports(&self) -> Vec<EndpointReport> {
        let mut state = self.lock();
        let dirty = std::mem::take(&mut state.dirty);
        dirty
            .into_iter()
            .filter_map(|endpoint| {
                let standing = standing_of(&state, &endpoint)?;
                Some(EndpointReport {
                    service: endpoint.service.to_string(),
                    address: endpoint.address,
                    health: status_of(standing),
                })
            })
            .collect()
    }

    /// Counts of checked endpoints by standing, and of targets.
    pub fn counts(&self) -> HealthCounts {
        let state = self.lock();
        let mut counts = HealthCounts {
            targets: state.targets.len() as u64,
            ..Default::default()
        };
        for endpoint in state.endpoints.keys() {
            match standing_of(&state, endpoint) {
                Some(Standing::Healthy) => counts.healthy += 1,
                Some(Standing::Unhealthy) => counts.unhealthy += 1,
                _ => counts.unknown += 1,
            }
        }
        counts
    }

    /// Every checked endpoint with its families, for `/health` (`service` filters).
    pub fn report(&self, service: Option<&str>) -> Vec<EndpointView> {
        let state = self.lock();
        state
            .endpoints
            .iter()
            .filter(|(endpoint, _)| service.is_none_or(|s| *endpoint.service == *s))
            .map(|(endpoint, keys)| EndpointView {
                service: endpoint.service.to_string(),
                address: endpoint.address,
                state: standing_of(&state, endpoint)
                    .unwrap_or(Standing::Unknown)
                    .as_str(),
                families: keys
                    .iter()
                    .filter_map(|key| Some(family_view(key, state.targets.get(key)?)))
                    .collect(),
            })
            .collect()
    }

    /// How `service`'s endpoints stand, by address (for `explain`).
    pub fn standings_of(&self, service: &str) -> BTreeMap<SocketAddr, Standing> {
        let state = self.lock();
        state
            .endpoints
            .keys()
            .filter(|endpoint| *endpoint.service == *service)
            .filter_map(|endpoint| Some((endpoint.address, standing_of(&state, endpoint)?)))
            .collect()
    }
}

impl EndpointSource for Checker {
    fn name(&self) -> &'static str {
        SOURCE
    }

    fn adopt(&self, model: &Model) -> ReportedHealth {
        let plan = plan(model);
        let mut state = self.lock();
        let first = !state.adopted;
        state.adopted = true;
        let now = SystemTime::now();
        let mut previous = std::mem::take(&mut state.targets);
        let mut changes = std::mem::take(&mut state.changes);
        for (key, checks) in plan.targets {
            let target = match previous.remove(&key) {
                Some(mut kept) => {
                    kept.checks = checks;
                    kept.users.clear();
                    kept
                }
                None => {
                    changes.started.push((key.clone(), !first));
                    Target {
                        health: if first {
                            TargetHealth::at_start()
                        } else {
                            TargetHealth::new_to_config()
                        },
                        checks,
                        users: Vec::new(),
                        last: None,
                        last_error: None,
                        since: now,
                        probes: 0,
                    }
                }
            };
            state.targets.insert(key, target);
        }
        changes
            .started
            .retain(|(key, _)| state.targets.contains_key(&**key));
        changes.stopped.extend(previous.into_keys());
        for (endpoint, keys) in &plan.endpoints {
            for key in keys {
                if let Some(target) = state.targets.get_mut(key) {
                    target.users.push(endpoint.clone());
                }
            }
        }
        state.endpoints = plan.endpoints;
        state.dirty.clear();
        state.changes = changes;
        let mut layer = ReportedHealth::new();
        for endpoint in state.endpoints.keys() {
            let status = standing_of(&state, endpoint).and_then(status_of);
            if let Some(status) = status {
                layer
                    .entry(endpoint.service.to_string())
                    .or_default()
                    .insert(endpoint.address, status);
            }
        }
        drop(state);
        self.replanned.notify_one();
        layer
    }
}

fn standing_of(state: &State, endpoint: &ServiceEndpoint) -> Option<Standing> {
    let keys = state.endpoints.get(endpoint)?;
    Some(endpoint_standing(keys.iter().filter_map(|key| {
        state.targets.get(key).map(|target| target.health.standing)
    })))
}

/// The EDS status of a standing (None: the checker says nothing).
fn status_of(standing: Standing) -> Option<HealthStatus> {
    match standing {
        Standing::Healthy => Some(HealthStatus::Healthy),
        Standing::Unhealthy => Some(HealthStatus::Unhealthy),
        Standing::Unknown => None,
    }
}

/// Checked endpoints by standing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HealthCounts {
    pub healthy: u64,
    pub unhealthy: u64,
    pub unknown: u64,
    pub targets: u64,
}

/// One endpoint in `/health`.
#[derive(Debug, Serialize)]
pub struct EndpointView {
    pub service: String,
    pub address: SocketAddr,
    pub state: &'static str,
    pub families: Vec<FamilyView>,
}

/// One family of an endpoint in `/health`.
#[derive(Debug, Serialize)]
pub struct FamilyView {
    pub family: &'static str,
    /// What is probed: address and check port.
    pub probed: SocketAddr,
    pub checks: Vec<String>,
    pub state: &'static str,
    pub since_unix: u64,
    pub last_result: Option<&'static str>,
    pub last_probe_unix: Option<u64>,
    pub last_error: Option<String>,
    pub probes: u64,
}

fn family_view(key: &TargetKey, target: &Target) -> FamilyView {
    let unix = |at: SystemTime| {
        at.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    FamilyView {
        family: if key.address.is_ipv4() {
            "IPv4"
        } else {
            "IPv6"
        },
        probed: key.address,
        checks: target.checks.iter().map(|c| c.to_string()).collect(),
        state: target.health.standing.as_str(),
        since_unix: unix(target.since),
        last_result: target
            .last
            .map(|(_, passed)| if passed { "pass" } else { "fail" }),
        last_probe_unix: target.last.map(|(at, _)| unix(at)),
        last_error: target.last_error.clone(),
        probes: target.probes,
    }
}
