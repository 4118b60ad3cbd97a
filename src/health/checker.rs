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

use serde::Serialize;
use tokio::sync::Notify;

use crate::model::endpoint_facts::{
    EndpointReport, EndpointSource, ReportedHealth, ReportedStatus,
};
use crate::model::Model;

use super::probe::Outcome;
use super::sharing::Sharing;
use super::state::{endpoint_standing, Standing, TargetHealth};
use super::targets::{plan, Plan, ServiceEndpoint, TargetKey};

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
    /// False once the config no longer asks for the target: its task stops.
    wanted: bool,
}

/// One target's record, shared by the checker and the task probing it (so a probe result
/// takes this lock, not the checker's).
pub struct TargetCell(Mutex<Target>);

impl TargetCell {
    fn lock(&self) -> std::sync::MutexGuard<'_, Target> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The target's standing now.
    pub fn standing(&self) -> Standing {
        self.lock().health.standing
    }

    /// When the target's standing last changed.
    pub fn since(&self) -> SystemTime {
        self.lock().since
    }
}

/// A target and its record.
pub type TargetEntry = (Arc<TargetKey>, Arc<TargetCell>);

/// Targets the scheduler must start (with whether their first probe is due at once: a target
/// new to the config has no traffic until it passes) or stop.
#[derive(Default)]
pub struct Changes {
    pub started: Vec<(TargetEntry, bool)>,
    pub stopped: Vec<Arc<TargetKey>>,
}

#[derive(Default)]
struct State {
    targets: HashMap<Arc<TargetKey>, Arc<TargetCell>>,
    endpoints: BTreeMap<ServiceEndpoint, CheckedEndpoint>,
    /// Per service, its checked endpoints by standing (as last reported).
    tallies: BTreeMap<Arc<str>, HealthCounts>,
    /// Endpoints whose standing may have changed since the last report.
    dirty: BTreeSet<ServiceEndpoint>,
    /// Whether a model was adopted before: targets of the first start unknown.
    adopted: bool,
    /// Target changes the scheduler has not picked up yet.
    changes: Changes,
}

/// A checked endpoint: its targets, and its standing as last reported.
struct CheckedEndpoint {
    targets: Vec<TargetEntry>,
    standing: Standing,
}

/// The checker's state, shared by the publisher (as a source) and the scheduler.
#[derive(Default)]
pub struct Checker {
    state: Mutex<State>,
    /// Woken when endpoints may have changed standing.
    pub(super) changed: Notify,
    /// Woken when targets were added or removed.
    pub(super) replanned: Notify,
    /// Replicas splitting the probing (None: this process probes every target).
    sharing: Option<Arc<dyn Sharing>>,
    /// Counts adopted models, so a reader of [`Checker::entries`] knows when to read again.
    generation: std::sync::atomic::AtomicU64,
}

impl Checker {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A checker whose probing is split with other replicas through `sharing`.
    pub fn with_sharing(sharing: Arc<dyn Sharing>) -> Checker {
        Checker {
            sharing: Some(sharing),
            ..Checker::default()
        }
    }

    /// Whether this replica probes `key` now.
    pub fn probes(&self, key: &TargetKey) -> bool {
        self.sharing.as_ref().is_none_or(|s| s.probes(key))
    }

    /// How many models were adopted so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Every target of the served config.
    pub fn entries(&self) -> Vec<TargetEntry> {
        let state = self.lock();
        state
            .targets
            .iter()
            .map(|(key, cell)| (key.clone(), cell.clone()))
            .collect()
    }

    /// Takes a standing another replica decided for a target at `since` (by its clock; now
    /// when it did not say), and keeps probing from there if it comes to own it; returns
    /// whether the standing changed.
    pub fn set_shared_standing(
        &self,
        cell: &TargetCell,
        standing: Standing,
        since: Option<SystemTime>,
    ) -> bool {
        let mut target = cell.lock();
        if !target.wanted || target.health.standing == standing {
            return false;
        }
        target.health = TargetHealth::carried(standing);
        target.since = since.unwrap_or_else(SystemTime::now);
        let users = target.users.clone();
        drop(target);
        self.lock().dirty.extend(users);
        self.changed.notify_one();
        true
    }

    /// Takes the targets to start and to stop.
    pub fn take_target_changes(&self) -> Changes {
        std::mem::take(&mut self.lock().changes)
    }

    /// Records one probe result of `key`; returns whether the target is still wanted.
    pub fn record(
        &self,
        key: &TargetKey,
        cell: &TargetCell,
        outcome: Outcome,
        at: SystemTime,
    ) -> bool {
        let mut target = cell.lock();
        if !target.wanted {
            return false;
        }
        target.probes += 1;
        let before = target.health.standing;
        let changed = target.health.record(outcome.is_ok(), key.check.thresholds);
        target.last = Some((at, outcome.is_ok()));
        let users = changed.map(|standing| {
            target.since = at;
            log_change(key, &target, before, standing, &outcome);
            if let Some(sharing) = &self.sharing {
                sharing.changed(key, standing);
            }
            target.users.clone()
        });
        if let Err(error) = outcome {
            target.last_error = Some(error);
        }
        drop(target);
        if let Some(users) = users {
            self.lock().dirty.extend(users);
            self.changed.notify_one();
        }
        true
    }

    /// The endpoints whose standing may have changed, as reports for the publisher.
    pub fn take_reports(&self) -> Vec<EndpointReport> {
        let mut state = self.lock();
        let State {
            endpoints,
            tallies,
            dirty,
            ..
        } = &mut *state;
        std::mem::take(dirty)
            .into_iter()
            .filter_map(|endpoint| {
                let checked = endpoints.get_mut(&endpoint)?;
                let standing = endpoint_standing_in(&checked.targets);
                if standing != checked.standing {
                    let tally = tallies.entry(endpoint.service.clone()).or_default();
                    tally.add(checked.standing, -1);
                    tally.add(standing, 1);
                    checked.standing = standing;
                }
                Some(EndpointReport {
                    service: endpoint.service.to_string(),
                    address: endpoint.address,
                    status: status_of(standing),
                    since: endpoint_since_in(&checked.targets),
                })
            })
            .collect()
    }

    /// Counts of checked endpoints (of `service`, or all) by standing as last reported to
    /// the publisher, and of targets.
    pub fn counts(&self, service: Option<&str>) -> HealthCounts {
        let state = self.lock();
        let mut counts = HealthCounts {
            targets: state.targets.len() as u64,
            ..Default::default()
        };
        let tallies = state
            .tallies
            .iter()
            .filter(|(name, _)| service.is_none_or(|s| ***name == *s));
        for (_, tally) in tallies {
            counts.healthy += tally.healthy;
            counts.unhealthy += tally.unhealthy;
            counts.unknown += tally.unknown;
        }
        counts
    }

    /// Up to `limit` checked endpoints (of `service`, or all; in `state`, or any) with their
    /// families, for `/health`.
    pub fn report(
        &self,
        service: Option<&str>,
        wanted: Option<Standing>,
        limit: usize,
    ) -> Vec<EndpointView> {
        let state = self.lock();
        endpoints_of(&state, service)
            .map(|(endpoint, checked)| {
                let targets = &checked.targets;
                (endpoint, targets, endpoint_standing_in(targets))
            })
            .filter(|(_, _, standing)| wanted.is_none_or(|w| w == *standing))
            .take(limit)
            .map(|(endpoint, targets, standing)| EndpointView {
                service: endpoint.service.to_string(),
                address: endpoint.address,
                state: standing.as_str(),
                families: targets
                    .iter()
                    .map(|(key, cell)| family_view(key, &cell.lock()))
                    .collect(),
            })
            .collect()
    }
}

/// The checked endpoints of `service` (all when None).
fn endpoints_of<'s>(
    state: &'s State,
    service: Option<&'s str>,
) -> impl Iterator<Item = (&'s ServiceEndpoint, &'s CheckedEndpoint)> {
    state
        .endpoints
        .iter()
        .filter(move |(endpoint, _)| service.is_none_or(|s| *endpoint.service == *s))
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
        let inherited = inherited_standings(&state, &previous, &plan);
        for (key, checks) in plan.targets {
            let cell = match previous.remove(&key) {
                Some(kept) => {
                    let mut target = kept.lock();
                    target.checks = checks;
                    target.users.clear();
                    drop(target);
                    kept
                }
                None => {
                    // A check edited, or an endpoint's port: what was known carries over, as
                    // the cloud keeps a backend's health when its check changes.
                    let health = match (first, inherited.get(&key)) {
                        (true, _) => TargetHealth::at_start(),
                        (false, Some(standing)) => TargetHealth::carried(*standing),
                        (false, None) => TargetHealth::new_to_config(),
                    };
                    let fast_first_probe = !first && !inherited.contains_key(&key);
                    let cell = Arc::new(TargetCell(Mutex::new(Target {
                        health,
                        checks,
                        users: Vec::new(),
                        last: None,
                        last_error: None,
                        since: now,
                        probes: 0,
                        wanted: true,
                    })));
                    changes
                        .started
                        .push(((key.clone(), cell.clone()), fast_first_probe));
                    cell
                }
            };
            state.targets.insert(key, cell);
        }
        changes
            .started
            .retain(|((key, _), _)| state.targets.contains_key(&**key));
        for (key, cell) in previous {
            cell.lock().wanted = false;
            changes.stopped.push(key);
        }
        let mut endpoints = BTreeMap::new();
        for (endpoint, keys) in plan.endpoints {
            let entries: Vec<TargetEntry> = keys
                .into_iter()
                .filter_map(|key| {
                    let cell = state.targets.get(&key)?.clone();
                    cell.lock().users.push(endpoint.clone());
                    Some((key, cell))
                })
                .collect();
            let standing = endpoint_standing_in(&entries);
            endpoints.insert(
                endpoint,
                CheckedEndpoint {
                    targets: entries,
                    standing,
                },
            );
        }
        let mut tallies: BTreeMap<Arc<str>, HealthCounts> = BTreeMap::new();
        for (endpoint, checked) in &endpoints {
            tallies
                .entry(endpoint.service.clone())
                .or_default()
                .add(checked.standing, 1);
        }
        state.endpoints = endpoints;
        state.tallies = tallies;
        state.dirty.clear();
        state.changes = changes;
        let mut layer = ReportedHealth::new();
        for (endpoint, checked) in &state.endpoints {
            if let Some(status) = status_of(checked.standing) {
                layer
                    .entry(endpoint.service.to_string())
                    .or_default()
                    .insert(endpoint.address, status);
            }
        }
        drop(state);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.replanned.notify_one();
        layer
    }
}

/// One log line per change of a target's standing; a first verdict that confirms what clients
/// already assume (unknown, then healthy: thousands at start) only at debug level.
fn log_change(
    key: &TargetKey,
    target: &Target,
    before: Standing,
    standing: Standing,
    outcome: &Outcome,
) {
    let reason = match outcome {
        Ok(()) => "check passed",
        Err(error) => error.as_str(),
    };
    let checks = target.checks.join(",");
    if before == Standing::Unknown && standing == Standing::Healthy {
        tracing::debug!(address = %key.address, %checks, "health check target healthy at first check");
        return;
    }
    tracing::info!(
        address = %key.address,
        %checks,
        endpoints = target.users.len(),
        from = before.as_str(),
        to = standing.as_str(),
        %reason,
        "health check target changed"
    );
}

/// For targets of `plan` that are new, the standing to start from when something is known of
/// them: the standing of a previous target at the same address (its check was edited), or of
/// the service endpoint it checks (the check's port changed). A healthy one wins.
fn inherited_standings(
    state: &State,
    previous: &HashMap<Arc<TargetKey>, Arc<TargetCell>>,
    plan: &Plan,
) -> HashMap<Arc<TargetKey>, Standing> {
    let better = |a: Standing, b: Standing| {
        if a == Standing::Healthy || b == Standing::Unhealthy {
            a
        } else {
            b
        }
    };
    let mut by_address: HashMap<SocketAddr, Standing> = HashMap::new();
    for (key, cell) in previous {
        let standing = cell.standing();
        by_address
            .entry(key.address)
            .and_modify(|known| *known = better(*known, standing))
            .or_insert(standing);
    }
    let mut inherited: HashMap<Arc<TargetKey>, Standing> = HashMap::new();
    for (endpoint, keys) in &plan.endpoints {
        let endpoint_before = state.endpoints.get(endpoint).map(|e| e.standing);
        for key in keys.iter().filter(|key| !previous.contains_key(*key)) {
            let Some(standing) = by_address.get(&key.address).copied().or(endpoint_before) else {
                continue;
            };
            inherited
                .entry(key.clone())
                .and_modify(|known| *known = better(*known, standing))
                .or_insert(standing);
        }
    }
    inherited
}

/// An endpoint's standing from its targets'.
fn endpoint_standing_in(targets: &[TargetEntry]) -> Standing {
    endpoint_standing(targets.iter().map(|(_, cell)| cell.standing()))
}

/// When an endpoint's standing came to be: the latest change among its targets (the one
/// that settled it).
fn endpoint_since_in(targets: &[TargetEntry]) -> Option<SystemTime> {
    targets.iter().map(|(_, cell)| cell.since()).max()
}

/// The EDS status of a standing (None: the checker says nothing).
fn status_of(standing: Standing) -> Option<ReportedStatus> {
    match standing {
        Standing::Healthy => Some(ReportedStatus::Healthy),
        Standing::Unhealthy => Some(ReportedStatus::Unhealthy),
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

impl HealthCounts {
    fn add(&mut self, standing: Standing, change: i64) {
        let count = match standing {
            Standing::Healthy => &mut self.healthy,
            Standing::Unhealthy => &mut self.unhealthy,
            Standing::Unknown => &mut self.unknown,
        };
        *count = count.saturating_add_signed(change);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Two endpoints on port 80, checked every `interval` seconds on `check_port` (their
    /// serving port when None).
    fn model(interval: u32, check_port: Option<u16>) -> Model {
        let details = check_port.map_or(String::new(), |port| {
            format!(", httpHealthCheck: {{port: {port}}}")
        });
        let text = format!(
            "healthChecks:\n- {{name: hc, type: HTTP, checkIntervalSec: {interval}, timeoutSec: 1{details}}}\n\
             networkEndpointGroups:\n- {{name: neg, zone: us-central1-a, endpoints: [{{ipAddress: 10.0.0.1, port: 80}}, {{ipAddress: 10.0.0.2, port: 80}}]}}\n\
             backendServices:\n- {{name: web, healthChecks: [hc], backends: [{{group: neg, balancingMode: RATE, maxRate: 1}}]}}\n"
        );
        let loaded = crate::config::load_str(&text, "hc.yaml");
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        loaded.model
    }

    /// Feeds one result to every target probing `ip`.
    fn record_all(checker: &Checker, ip: &str, passed: bool) {
        let state = checker.lock();
        let targets: Vec<TargetEntry> = state
            .targets
            .iter()
            .filter(|(key, _)| key.address.ip().to_string() == ip)
            .map(|(key, cell)| (key.clone(), cell.clone()))
            .collect();
        drop(state);
        assert!(!targets.is_empty());
        for (key, cell) in targets {
            let outcome = if passed { Ok(()) } else { Err("down".into()) };
            checker.record(&key, &cell, outcome, SystemTime::now());
        }
    }

    fn status(layer: &ReportedHealth, ip: &str) -> Option<ReportedStatus> {
        layer
            .get("web")?
            .iter()
            .find(|(address, _)| address.ip().to_string() == ip)
            .map(|(_, status)| *status)
    }

    #[test]
    fn an_edited_check_keeps_what_was_known() {
        let checker = Checker::default();
        let layer = checker.adopt(&model(5, None));
        assert!(
            layer.is_empty(),
            "at start every endpoint is unknown: {layer:?}"
        );
        record_all(&checker, "10.0.0.1", true);
        record_all(&checker, "10.0.0.2", false);
        // The interval changes: the same addresses keep their standing.
        let layer = checker.adopt(&model(10, None));
        assert_eq!(status(&layer, "10.0.0.1"), Some(ReportedStatus::Healthy));
        assert_eq!(status(&layer, "10.0.0.2"), Some(ReportedStatus::Unhealthy));
        // The check moves to a fixed port: the endpoints keep their standing too.
        let layer = checker.adopt(&model(10, Some(8080)));
        assert_eq!(status(&layer, "10.0.0.1"), Some(ReportedStatus::Healthy));
        assert_eq!(status(&layer, "10.0.0.2"), Some(ReportedStatus::Unhealthy));
        let changes = checker.take_target_changes();
        // Only the latest targets are still to start; the earlier ones are stopped.
        assert_eq!(changes.started.len(), 2);
        assert_eq!(changes.stopped.len(), 4);
        assert!(
            changes.started.iter().all(|(_, fast)| !fast),
            "carried targets are probed on their interval, not at once"
        );
    }

    #[test]
    fn an_endpoint_new_to_the_config_waits_for_its_first_pass() {
        let checker = Checker::default();
        checker.adopt(&model(5, None));
        let text = "healthChecks:\n- {name: hc, type: HTTP, checkIntervalSec: 5, timeoutSec: 1}\nnetworkEndpointGroups:\n- {name: neg, zone: us-central1-a, endpoints: [{ipAddress: 10.0.0.1, port: 80}, {ipAddress: 10.0.0.2, port: 80}, {ipAddress: 10.0.0.3, port: 80}]}\nbackendServices:\n- {name: web, healthChecks: [hc], backends: [{group: neg, balancingMode: RATE, maxRate: 1}]}\n";
        let layer = checker.adopt(&crate::config::load_str(text, "hc.yaml").model);
        assert_eq!(status(&layer, "10.0.0.3"), Some(ReportedStatus::Unhealthy));
        assert_eq!(
            status(&layer, "10.0.0.1"),
            None,
            "still unknown from the start"
        );
        record_all(&checker, "10.0.0.3", true);
        let reports = checker.take_reports();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].status, Some(ReportedStatus::Healthy));
    }
}
