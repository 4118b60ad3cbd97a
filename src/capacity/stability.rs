//! Decisions kept steady: what is published moves toward the target that `decisions` computes
//! from the measured load, but demand is smoothed (an exponential average with a half-life of
//! one interval), a change smaller than the hysteresis is not published, no share moves by
//! more than a bounded step per interval, and a client region without load keeps the static
//! answer. Since demand is what a client region sends — not where it went — the answer does
//! not feed back into its input, and at constant load it settles instead of oscillating.
//!
//! Pure: time is passed in. Must not: publish or log (the publisher does both with what a
//! step returns).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::decisions::{self, GroupShares};
use super::measured::{Load, MeasuredLoad};
use super::report::{report_of, ServiceReport};
use crate::model::endpoint_facts::ReportedHealth;
use crate::model::{regions, CapacityUnit, Model};

/// How quickly decisions follow the load.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tuning {
    /// How often decisions are taken (the load-report interval).
    pub interval: Duration,
    /// A share that moves by less than this is not published.
    pub hysteresis: f64,
    /// The most any share moves in one interval.
    pub max_step: f64,
    /// A target that stayed within [`Tuning::settled_within`] for this many intervals is
    /// published as it is, even if it is within the hysteresis of what is published (once:
    /// after that they agree), so that a load that settles gets its exact answer.
    pub settle_after: u32,
    pub settled_within: f64,
}

impl Tuning {
    /// Decisions every `interval`, 5 percentage points of hysteresis, 25 of largest step, a
    /// target that moved less than 1 point over 3 intervals published as it is.
    pub fn every(interval: Duration) -> Self {
        Tuning {
            interval,
            hysteresis: 0.05,
            max_step: 0.25,
            settle_after: 3,
            settled_within: 0.01,
        }
    }
}

/// What one client region of a service is served, and the demand behind it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct ClientState {
    pub(super) smoothed: f64,
    pub(super) at: Instant,
    /// The shares published (for a static answer: the static shares).
    pub(super) shares: GroupShares,
    /// Whether `shares` is published (else the static answer stands).
    pub(super) spills: bool,
    /// The target of the last step, and for how many steps it has held still.
    pub(super) last_target: GroupShares,
    pub(super) steady: u32,
}

/// A backend region of a service that filled up or freed up.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionChange {
    pub service: String,
    pub region: String,
    pub full: bool,
    pub load: f64,
    pub capacity: f64,
}

/// What a step changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Step {
    /// Services whose published shares changed.
    pub changed: BTreeSet<String>,
    pub regions: Vec<RegionChange>,
}

/// The published decisions of every service, and how they came about.
#[derive(Debug)]
pub struct CapacityState {
    tuning: Tuning,
    clients: BTreeMap<(String, String), ClientState>,
    full: BTreeSet<(String, String)>,
    reports: BTreeMap<String, ServiceReport>,
}

/// Published shares: service → client (view) region → group → share. Only client regions
/// whose traffic spills are listed; every other keeps the static answer.
pub type PublishedShares = BTreeMap<String, BTreeMap<String, GroupShares>>;

impl CapacityState {
    pub fn new(tuning: Tuning) -> Self {
        CapacityState {
            tuning,
            clients: BTreeMap::new(),
            full: BTreeSet::new(),
            reports: BTreeMap::new(),
        }
    }

    pub fn tuning(&self) -> Tuning {
        self.tuning
    }

    /// Takes the load measured by `now` into account and moves the published shares.
    pub fn step(
        &mut self,
        model: &Model,
        health: &ReportedHealth,
        load: &dyn MeasuredLoad,
        now: Instant,
    ) -> Step {
        let mut step = Step::default();
        let mut clients = BTreeMap::new();
        let mut full = BTreeSet::new();
        let mut reports = BTreeMap::new();
        for service in model.services.values() {
            let Some(unit) = decisions::measured_unit(service) else {
                continue;
            };
            let measured = view_demands(model, &service.name, unit, load);
            let smoothed: BTreeMap<String, f64> = measured
                .iter()
                .map(|(region, demand)| {
                    let before = self.clients.get(&(service.name.clone(), region.clone()));
                    (region.clone(), self.smooth(before, *demand, now))
                })
                .collect();
            let Some(target) = decisions::service_target(model, service, health, &smoothed) else {
                continue;
            };
            for (region, client) in &target.clients {
                let key = (service.name.clone(), region.clone());
                let before = self.clients.get(&key);
                let next = self.next_shares(before, client, now);
                if before.map(|b| (&b.shares, b.spills)) != Some((&next.shares, next.spills))
                    && (next.spills || before.is_some_and(|b| b.spills))
                {
                    step.changed.insert(service.name.clone());
                }
                clients.insert(key, next);
            }
            // A client region that stopped sending goes back to the static answer.
            let dropped = self.clients.iter().any(|((name, region), state)| {
                *name == service.name && state.spills && !target.clients.contains_key(region)
            });
            if dropped {
                step.changed.insert(service.name.clone());
            }
            let full_now = target.full_regions();
            let region_load = target.region_load();
            let region_capacity = target.region_capacity();
            for region in region_capacity.keys() {
                let key = (service.name.clone(), region.clone());
                let is_full = full_now.contains(region);
                if is_full != self.full.contains(&key) {
                    step.regions.push(RegionChange {
                        service: service.name.clone(),
                        region: region.clone(),
                        full: is_full,
                        load: region_load.get(region).copied().unwrap_or(0.0),
                        capacity: region_capacity[region],
                    });
                }
                if is_full {
                    full.insert(key);
                }
            }
            let report = report_of(&service.name, &target, &measured, &clients, load);
            reports.insert(service.name.clone(), report);
        }
        // Services that left the config, or lost their measurable target.
        for (name, _) in self.clients.keys() {
            if !reports.contains_key(name) {
                step.changed.insert(name.clone());
            }
        }
        self.clients = clients;
        self.full = full;
        self.reports = reports;
        step
    }

    /// The demand smoothed over time: halfway to the new figure each interval.
    fn smooth(&self, before: Option<&ClientState>, demand: f64, now: Instant) -> f64 {
        let Some(before) = before else {
            return demand;
        };
        let elapsed = now.saturating_duration_since(before.at).as_secs_f64();
        let intervals = elapsed / self.tuning.interval.as_secs_f64().max(1e-3);
        let kept = 0.5_f64.powf(intervals);
        before.smoothed * kept + demand * (1.0 - kept)
    }

    /// The shares to publish next for one client region: the target, approached by at most
    /// one step, and only when it moved by the hysteresis or more.
    fn next_shares(
        &self,
        before: Option<&ClientState>,
        target: &decisions::ClientTarget,
        now: Instant,
    ) -> ClientState {
        let (current, spilled) = match before {
            Some(before) => (before.shares.clone(), before.spills),
            None => (target.unspilled.clone(), false),
        };
        let elapsed = before
            .map(|b| now.saturating_duration_since(b.at).as_secs_f64())
            .unwrap_or(self.tuning.interval.as_secs_f64());
        let intervals = (elapsed / self.tuning.interval.as_secs_f64().max(1e-3)).clamp(0.0, 2.0);
        let stepped = step_toward(&current, &target.shares, self.tuning.max_step * intervals);
        let hysteresis = self.tuning.hysteresis;
        let steady = match before {
            Some(b) if distance(&b.last_target, &target.shares) < self.tuning.settled_within => {
                b.steady + 1
            }
            _ => 0,
        };
        let settled = spilled
            && target.spills
            && steady >= self.tuning.settle_after
            && distance(&current, &target.shares) >= self.tuning.settled_within;
        let (shares, spills) =
            if !target.spills && distance(&stepped, &target.unspilled) < hysteresis {
                (target.unspilled.clone(), false)
            } else if distance(&stepped, &current) >= hysteresis || settled {
                (stepped, true)
            } else {
                (current, spilled)
            };
        ClientState {
            smoothed: target.demand,
            at: now,
            shares,
            spills,
            last_target: target.shares.clone(),
            steady,
        }
    }

    /// The shares to publish: those of client regions whose traffic spills.
    pub fn published(&self) -> PublishedShares {
        let mut shares = PublishedShares::new();
        for ((service, region), state) in &self.clients {
            if state.spills {
                shares
                    .entry(service.clone())
                    .or_default()
                    .insert(region.clone(), state.shares.clone());
            }
        }
        shares
    }

    /// How the last step saw `service`.
    pub fn report(&self, service: &str) -> Option<&ServiceReport> {
        self.reports.get(service)
    }

    /// Every service's report, by name.
    pub fn reports(&self) -> &BTreeMap<String, ServiceReport> {
        &self.reports
    }
}

/// The largest difference of one share between `a` and `b`.
pub fn distance(a: &GroupShares, b: &GroupShares) -> f64 {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .map(|k| (a.get(k).unwrap_or(&0.0) - b.get(k).unwrap_or(&0.0)).abs())
        .fold(0.0, f64::max)
}

/// `from` moved toward `to`, no share by more than `at_most` (a mix of the two, so the shares
/// still sum to 1).
fn step_toward(from: &GroupShares, to: &GroupShares, at_most: f64) -> GroupShares {
    let gap = distance(from, to);
    let along = if gap <= at_most { 1.0 } else { at_most / gap };
    let keys: BTreeSet<&String> = from.keys().chain(to.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let a = from.get(k).copied().unwrap_or(0.0);
            let b = to.get(k).copied().unwrap_or(0.0);
            let mixed = a + (b - a) * along;
            (mixed > 1e-6).then(|| (k.clone(), mixed))
        })
        .collect()
}

/// The demand of each client region of `service` in `unit`, summed by view region (made-up
/// regions share their continent's; clients without a region keep the static answer).
fn view_demands(
    model: &Model,
    service: &str,
    unit: CapacityUnit,
    load: &dyn MeasuredLoad,
) -> BTreeMap<String, f64> {
    let known: BTreeSet<String> = model
        .endpoint_groups
        .values()
        .map(|g| g.region.clone())
        .collect();
    let mut demands = BTreeMap::new();
    for region in load.client_regions(service) {
        let view = regions::view_region(&model.region_order, &known, &region);
        if view.is_empty() {
            continue;
        }
        *demands.entry(view).or_insert(0.0) += in_unit(load.demand(service, &region), unit);
    }
    demands
}

/// A measured load in a capacity unit.
pub fn in_unit(load: Load, unit: CapacityUnit) -> f64 {
    match unit {
        CapacityUnit::Connections => load.in_progress,
        _ => load.requests_per_second,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    use crate::capacity::measured::Locality;
    use crate::capacity::report::{BackendReport, Standing};

    use crate::model::endpoint_facts::ReportedStatus;

    const INTERVAL: Duration = Duration::from_secs(2);

    /// What clients of each region send `svc` (requests/s and connections alike).
    #[derive(Default)]
    struct FakeLoad(BTreeMap<String, f64>);

    impl MeasuredLoad for FakeLoad {
        fn demand(&self, _service: &str, client_region: &str) -> Load {
            let amount = self.0.get(client_region).copied().unwrap_or(0.0);
            Load {
                requests_per_second: amount,
                in_progress: amount,
                utilization: None,
            }
        }
        fn client_regions(&self, _service: &str) -> Vec<String> {
            self.0.keys().cloned().collect()
        }
        fn arriving(&self, _service: &str, _upstream: &Locality) -> Load {
            Load::default()
        }
    }

    fn load(pairs: &[(&str, f64)]) -> FakeLoad {
        FakeLoad(pairs.iter().map(|(r, d)| (r.to_string(), *d)).collect())
    }

    /// `svc` with one NEG per entry: (name, zone, endpoints, mode line, scaler); NEG `n`'s
    /// endpoints listen on 127.0.0.1:(9000 + 10n + i).
    fn model(groups: &[(&str, &str, usize, &str, f64)]) -> Model {
        model_with(groups, "", "")
    }

    /// As [`model`], with more lines for the service and more resources after it.
    fn model_with(groups: &[(&str, &str, usize, &str, f64)], service: &str, tail: &str) -> Model {
        let mut text = String::from("networkEndpointGroups:\n");
        for (n, (name, zone, count, _, _)) in groups.iter().enumerate() {
            text += &format!("- name: {name}\n  zone: {zone}\n  endpoints:\n");
            for i in 0..*count {
                text += &format!(
                    "  - {{ipAddress: 127.0.0.1, port: {}}}\n",
                    9000 + 10 * n + i
                );
            }
        }
        text += &format!("backendServices:\n- name: svc\n{service}  backends:\n");
        for (name, zone, _, mode, scaler) in groups {
            text += &format!(
                "  - group: zones/{zone}/networkEndpointGroups/{name}\n    {mode}\n    capacityScaler: {scaler}\n"
            );
        }
        text += tail;
        let loaded = crate::config::load_str(&text, "capacity.yaml");
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        loaded.model
    }

    const RATE_20: &str = "balancingMode: RATE\n    maxRatePerEndpoint: 20";

    /// Near (us-central1) and far (europe-west1), one endpoint each at 20 requests/s.
    fn two_regions(near_scaler: f64) -> Model {
        model(&[
            ("near", "us-central1-a", 1, RATE_20, near_scaler),
            ("far", "europe-west1-b", 1, RATE_20, 1.0),
        ])
    }

    fn shares(pairs: &[(&str, f64)]) -> GroupShares {
        pairs.iter().map(|(g, s)| (g.to_string(), *s)).collect()
    }

    fn assert_shares(got: Option<&GroupShares>, expected: &[(&str, f64)]) {
        let got = got.unwrap_or_else(|| panic!("no shares published, expected {expected:?}"));
        assert!(
            distance(got, &shares(expected)) < 1e-9,
            "expected {expected:?}, got {got:?}"
        );
    }

    /// Steps `state` `times` intervals from `start`; returns the last step and the time.
    fn run(
        state: &mut CapacityState,
        model: &Model,
        load: &FakeLoad,
        start: Instant,
        times: u32,
    ) -> (Step, Instant) {
        let mut last = Step::default();
        let mut now = start;
        for _ in 0..times {
            now += INTERVAL;
            last = state.step(model, &NO_HEALTH, load, now);
        }
        (last, now)
    }

    fn backend<'a>(state: &'a CapacityState, group: &str) -> &'a BackendReport {
        let report = state.report("svc").expect("svc has a report");
        report
            .backends
            .iter()
            .find(|b| b.capacity.group == group)
            .unwrap_or_else(|| panic!("no backend {group}: {report:?}"))
    }

    static NO_HEALTH: ReportedHealth = BTreeMap::new();

    fn published<'a>(state: &'a PublishedShares, region: &str) -> Option<&'a GroupShares> {
        state.get("svc").and_then(|regions| regions.get(region))
    }

    #[test]
    fn under_capacity_the_static_answer_stands() {
        let model = two_regions(1.0);
        let mut state = CapacityState::new(Tuning::every(INTERVAL));
        let (step, _) = run(
            &mut state,
            &model,
            &load(&[("us-central1", 10.0)]),
            Instant::now(),
            3,
        );
        assert!(step.changed.is_empty());
        assert!(state.published().is_empty());
        assert_eq!(backend(&state, "near").standing, Standing::Spare);
        let report = state.report("svc").unwrap();
        assert_eq!(report.clients[0].target, shares(&[("near", 1.0)]));
    }

    #[test]
    fn over_capacity_the_excess_spills_in_bounded_steps() {
        let model = two_regions(1.0);
        let mut state = CapacityState::new(Tuning::every(INTERVAL));
        let busy = load(&[("us-central1", 40.0)]);
        let (step, now) = run(&mut state, &model, &busy, Instant::now(), 1);
        // Target 20 / 40 near; a step of at most 0.25 from all-near.
        assert_eq!(step.changed, BTreeSet::from(["svc".to_string()]));
        assert_shares(
            published(&state.published(), "us-central1"),
            &[("near", 0.75), ("far", 0.25)],
        );
        assert!(
            step.regions
                .iter()
                .any(|r| r.full && r.region == "us-central1"),
            "{:?}",
            step.regions
        );
        let (step, now) = run(&mut state, &model, &busy, now, 1);
        assert!(step.changed.contains("svc"));
        assert_shares(
            published(&state.published(), "us-central1"),
            &[("near", 0.5), ("far", 0.5)],
        );
        // Constant load: nothing moves again.
        for _ in 0..20 {
            let (step, _) = run(&mut state, &model, &busy, now, 1);
            assert!(step.changed.is_empty() && step.regions.is_empty());
        }
        // 40 against 20 + 20: both are taken in full.
        assert_eq!(backend(&state, "near").standing, Standing::Full);
        assert_eq!(backend(&state, "far").standing, Standing::Full);
    }

    #[test]
    fn a_change_under_the_hysteresis_is_not_published() {
        // Far takes 40, so that it never fills up here.
        let model = model(&[
            ("near", "us-central1-a", 1, RATE_20, 1.0),
            ("far", "europe-west1-b", 2, RATE_20, 1.0),
        ]);
        let mut state = CapacityState::new(Tuning::every(INTERVAL));
        let (_, now) = run(
            &mut state,
            &model,
            &load(&[("us-central1", 40.0)]),
            Instant::now(),
            2,
        );
        // 42 smooths to 41: 20 / 41 = 0.488 near, 0.012 from what is published.
        let (step, now) = run(&mut state, &model, &load(&[("us-central1", 42.0)]), now, 1);
        assert!(step.changed.is_empty());
        assert_shares(
            published(&state.published(), "us-central1"),
            &[("near", 0.5), ("far", 0.5)],
        );
        // 50 smooths to 45.5: 20 / 45.5 = 0.440 near, 0.060 away: published.
        let (step, _) = run(&mut state, &model, &load(&[("us-central1", 50.0)]), now, 1);
        assert!(step.changed.contains("svc"));
        let near = published(&state.published(), "us-central1").unwrap()["near"];
        assert!((near - 20.0 / 45.5).abs() < 1e-9, "{near}");
    }

    #[test]
    fn a_target_that_settles_within_the_hysteresis_is_published_once() {
        let model = model(&[
            ("near", "us-central1-a", 1, RATE_20, 1.0),
            ("far", "europe-west1-b", 2, RATE_20, 1.0),
        ]);
        let mut state = CapacityState::new(Tuning::every(INTERVAL));
        // 30: 0.75 (one step), then 20 / 30 = 0.667.
        let (_, mut now) = run(
            &mut state,
            &model,
            &load(&[("us-central1", 30.0)]),
            Instant::now(),
            2,
        );
        let near =
            |state: &CapacityState| published(&state.published(), "us-central1").unwrap()["near"];
        assert!((near(&state) - 2.0 / 3.0).abs() < 1e-9);
        // 32 moves the target by under 5 points (to 0.625): held back until it settles, then
        // published once.
        let mut changes = 0;
        for _ in 0..10 {
            let (step, later) = run(&mut state, &model, &load(&[("us-central1", 32.0)]), now, 1);
            now = later;
            changes += step.changed.len();
        }
        assert_eq!(changes, 1);
        assert!((near(&state) - 0.625).abs() < 0.01, "{}", near(&state));
    }

    #[test]
    fn demand_is_smoothed_on_the_way_back() {
        let model = two_regions(1.0);
        let mut state = CapacityState::new(Tuning::every(INTERVAL));
        let (_, now) = run(
            &mut state,
            &model,
            &load(&[("us-central1", 40.0)]),
            Instant::now(),
            2,
        );
        let quiet = load(&[("us-central1", 10.0)]);
        // Halfway to 10: 25, whose target is 0.8 near; 0.75 is as far as one step goes.
        let (step, now) = run(&mut state, &model, &quiet, now, 1);
        assert!(step.changed.contains("svc"));
        assert_shares(
            published(&state.published(), "us-central1"),
            &[("near", 0.75), ("far", 0.25)],
        );
        assert_eq!(state.report("svc").unwrap().clients[0].smoothed, 25.0);
        // 17.5: no spill; back to the static answer, and the region frees up.
        let (step, _) = run(&mut state, &model, &quiet, now, 1);
        assert!(step.changed.contains("svc"));
        assert!(state.published().is_empty());
        assert_eq!(step.regions.len(), 1);
        assert!(!step.regions[0].full);
    }

    #[test]
    fn a_capacity_scaler_scales_what_the_region_takes() {
        let model = two_regions(0.5);
        let mut state = CapacityState::new(Tuning::every(INTERVAL));
        // Near takes 10 of 30 (half of 20 of 30 at scaler 1), far the other 20.
        run(
            &mut state,
            &model,
            &load(&[("us-central1", 30.0)]),
            Instant::now(),
            4,
        );
        assert_shares(
            published(&state.published(), "us-central1"),
            &[("near", 1.0 / 3.0), ("far", 2.0 / 3.0)],
        );
    }

    #[test]
    fn unhealthy_endpoints_carry_no_capacity() {
        let model = model(&[
            ("near", "us-central1-a", 2, RATE_20, 1.0),
            ("far", "europe-west1-b", 1, RATE_20, 1.0),
        ]);
        let unhealthy: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let health: ReportedHealth = BTreeMap::from([(
            "svc".to_string(),
            BTreeMap::from([(unhealthy, ReportedStatus::Unhealthy)]),
        )]);
        let mut state = CapacityState::new(Tuning::every(INTERVAL));
        let busy = load(&[("us-central1", 40.0)]);
        let mut now = Instant::now();
        for _ in 0..4 {
            now += INTERVAL;
            state.step(&model, &health, &busy, now);
        }
        // 20 of 40 near, not 40 of 40.
        assert_shares(
            published(&state.published(), "us-central1"),
            &[("near", 0.5), ("far", 0.5)],
        );
        assert_eq!(backend(&state, "near").capacity.routable, 1);
    }

    #[test]
    fn within_a_region_backends_keep_their_proportions() {
        let model = model(&[
            (
                "near-a",
                "us-central1-a",
                2,
                "balancingMode: RATE\n    maxRatePerEndpoint: 10",
                1.0,
            ),
            (
                "near-b",
                "us-central1-b",
                1,
                "balancingMode: RATE\n    maxRate: 10",
                1.0,
            ),
            ("far", "europe-west1-b", 1, RATE_20, 1.0),
        ]);
        let mut state = CapacityState::new(Tuning::every(INTERVAL));
        run(
            &mut state,
            &model,
            &load(&[("us-central1", 60.0)]),
            Instant::now(),
            4,
        );
        // Near takes 30 of 60 (20 : 10 between its groups), far 20, and the 10 left over is
        // spread by capacity (30 : 20): 36 near, 24 far.
        assert_shares(
            published(&state.published(), "us-central1"),
            &[("near-a", 0.4), ("near-b", 0.2), ("far", 0.4)],
        );
    }

    #[test]
    fn a_client_region_without_load_keeps_the_static_answer() {
        let model = two_regions(1.0);
        let mut state = CapacityState::new(Tuning::every(INTERVAL));
        let (_, now) = run(
            &mut state,
            &model,
            &load(&[("us-central1", 40.0)]),
            Instant::now(),
            2,
        );
        let shares = state.published();
        assert!(published(&shares, "us-central1").is_some());
        assert!(published(&shares, "europe-west1").is_none());
        // The load stops: the static answer comes back at once.
        let (step, _) = run(&mut state, &model, &FakeLoad::default(), now, 1);
        assert!(step.changed.contains("svc"));
        assert!(state.published().is_empty());
    }

    #[test]
    fn connections_count_what_is_in_progress() {
        let per_endpoint = "balancingMode: CONNECTION\n    maxConnectionsPerEndpoint: 20";
        let model = model_with(
            &[
                ("near", "us-central1-a", 1, per_endpoint, 1.0),
                ("far", "europe-west1-b", 1, per_endpoint, 1.0),
            ],
            "  protocol: TCP\n",
            "targetTcpProxies:\n- name: tcp-proxy\n  service: global/backendServices/svc\n\
             forwardingRules:\n- name: fr\n  IPAddress: 127.0.0.1\n  portRange: \"9999\"\n\
             \x20 target: global/targetTcpProxies/tcp-proxy\n",
        );
        let mut state = CapacityState::new(Tuning::every(INTERVAL));
        run(
            &mut state,
            &model,
            &load(&[("us-central1", 80.0)]),
            Instant::now(),
            4,
        );
        assert_shares(
            published(&state.published(), "us-central1"),
            &[("near", 0.5), ("far", 0.5)],
        );
    }
}
