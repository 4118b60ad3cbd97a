//! Which endpoints of slow-start services are ramping up, for the clients that have no slow
//! start of their own. An endpoint starts its ramp when it becomes routable (added by an
//! edit, or healthy again) in a service that already had routable endpoints; it leaves the
//! ramp when it stops being routable, and ends it after the service's window. As AWS does,
//! the endpoints of a service seen for the first time (a new service, or slow start just
//! turned on) do not ramp, nor do those of a group that had none routable. The ramp is
//! re-published in steps (a fiftieth of the window, 1 to 10 s apart).
//!
//! Ramps are reckoned on the wall clock replicas share, never on when this process happened
//! to notice: a ramp that follows a health change starts when the change was recorded by the
//! replica that probed it (the time travels with the standing through etcd), one that follows
//! an edit starts at the next step boundary of the wall clock, and the fraction published is
//! the one of the last step boundary passed. So replicas given the same facts publish the same
//! fractions at the same steps (with clocks in sync, as NTP keeps them). Pure: time is passed
//! in. Must not: publish (the publisher does).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::model::endpoint_facts::{ReportedHealth, ReportedStatus};
use crate::model::Model;
use crate::translate::endpoints::members;
use crate::translate::slow_start::Ramps;

use super::wall_clock::{next_boundary, PAST_BOUNDARY};
pub use super::wall_clock::{wall_of, Moment};

/// The smallest share of its weight a ramping endpoint gets (Envoy's floor, as configured).
pub const MINIMUM_FRACTION: f64 = 0.01;

/// When each endpoint's latest status came to be, where its source said (service, address).
pub type StatusTimes = BTreeMap<(String, SocketAddr), SystemTime>;

#[derive(Debug, Default)]
struct ServiceRamps {
    window: Duration,
    routable: BTreeSet<SocketAddr>,
    /// Ramp starts on the wall clock.
    started: BTreeMap<SocketAddr, Duration>,
}

impl ServiceRamps {
    fn step(&self) -> Duration {
        step_of(self.window)
    }

    /// The first step boundary of the ramp started at `start` after wall time `after` (the
    /// ramp's end the last); None once it is over.
    fn boundary_after(&self, start: Duration, after: Duration) -> Option<Duration> {
        let end = start + self.window;
        if after >= end {
            return None;
        }
        let step = self.step();
        let next = match after.checked_sub(start) {
            Some(elapsed) => start + step * (steps_in(elapsed, step) + 1),
            None => start + step,
        };
        Some(next.min(end))
    }
}

/// The ramps of every slow-start service.
#[derive(Debug, Default)]
pub struct RampState {
    services: BTreeMap<String, ServiceRamps>,
    /// When the ramps were last published (wall clock).
    last_step: Option<Duration>,
}

impl RampState {
    /// Takes in the routable endpoints of every slow-start service of `model` with `health`;
    /// an endpoint that became routable starts its ramp at the time `times` gives for it, or
    /// at the next step boundary after `now`. Returns the services whose ramping endpoints
    /// changed.
    pub fn observe(
        &mut self,
        model: &Model,
        health: &ReportedHealth,
        times: &StatusTimes,
        now: Moment,
    ) -> BTreeSet<String> {
        let mut changed = BTreeSet::new();
        let mut next = BTreeMap::new();
        for service in model.services.values() {
            let Some(window) = service.slow_start else {
                continue;
            };
            let routable = routable(model, service, health);
            let mut ramps = ServiceRamps {
                window,
                routable: routable.clone(),
                started: BTreeMap::new(),
            };
            if let Some(before) = self.services.remove(&service.name) {
                ramps.started = before.started.clone();
                ramps
                    .started
                    .retain(|address, _| routable.contains(address));
                if !before.routable.is_empty() {
                    for address in routable.difference(&before.routable) {
                        let start = times
                            .get(&(service.name.clone(), *address))
                            .map(|time| wall_of(*time))
                            .unwrap_or_else(|| next_boundary(now.wall, step_of(window)));
                        ramps.started.insert(*address, start);
                    }
                }
                if ramps.started.keys().ne(before.started.keys()) {
                    changed.insert(service.name.clone());
                }
            }
            next.insert(service.name.clone(), ramps);
        }
        self.services = next;
        changed
    }

    /// The fraction of its weight each ramping endpoint gets at `now`: the ramp's value at
    /// the last step boundary passed. Finished ramps are dropped.
    pub fn fractions(&mut self, now: Moment) -> Ramps {
        let mut ramps = Ramps::new();
        for (name, service) in &mut self.services {
            let window = service.window;
            let step = service.step();
            service
                .started
                .retain(|_, started| now.wall.saturating_sub(*started) < window);
            if service.started.is_empty() {
                continue;
            }
            let fractions = service
                .started
                .iter()
                .map(|(address, started)| {
                    let elapsed = now.wall.saturating_sub(*started);
                    let stepped = step * steps_in(elapsed, step);
                    let fraction =
                        (stepped.as_secs_f64() / window.as_secs_f64()).clamp(MINIMUM_FRACTION, 1.0);
                    (*address, fraction)
                })
                .collect();
            ramps.insert(name.clone(), fractions);
        }
        ramps
    }

    /// The services with an endpoint ramping up.
    pub fn ramping(&self) -> BTreeSet<String> {
        self.services
            .iter()
            .filter(|(_, service)| !service.started.is_empty())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Whether the model has any slow-start service (its clients then get views of their own).
    pub fn has_services(&self) -> bool {
        !self.services.is_empty()
    }

    /// When the next step of the ramps is due: the first step boundary of any ramp after the
    /// last publication (or after the ramp's start), as an instant of `now`'s clock.
    pub fn next_step(&self, now: Moment) -> Option<Instant> {
        self.services
            .values()
            .flat_map(|service| {
                service.started.values().filter_map(|start| {
                    let after = self.last_step.map_or(*start, |last| last.max(*start));
                    service.boundary_after(*start, after)
                })
            })
            .min()
            .map(|wall| now.instant_of(wall + PAST_BOUNDARY))
    }

    /// Notes that the ramps were published at `now`.
    pub fn stepped(&mut self, now: Moment) {
        self.last_step = Some(now.wall);
    }
}

/// Whole steps in `elapsed`.
fn steps_in(elapsed: Duration, step: Duration) -> u32 {
    (elapsed.as_millis() / step.as_millis().max(1)) as u32
}

/// How often a ramp over `window` is re-published.
fn step_of(window: Duration) -> Duration {
    (window / 50).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// The endpoints of `service` that take traffic: in its groups, not reported unhealthy.
fn routable(
    model: &Model,
    service: &crate::model::Service,
    health: &ReportedHealth,
) -> BTreeSet<SocketAddr> {
    let reported = health.get(&service.name);
    service
        .backends
        .iter()
        .filter_map(|backend| model.endpoint_groups.get(&backend.group.name))
        .flat_map(|group| members(service, group))
        .map(|member| member.primary)
        .filter(|address| {
            let status = reported.and_then(|r| r.get(address)).copied();
            status != Some(ReportedStatus::Unhealthy)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(ports: &[u16]) -> Model {
        let targets: Vec<String> = ports
            .iter()
            .map(|port| format!("{{Id: 127.0.0.1, Port: {port}, AvailabilityZone: us-east-1a}}"))
            .collect();
        let text = format!(
            "Resources:\n  Web:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n    Properties:\n      TargetType: ip\n      Port: 80\n      HealthCheckEnabled: false\n      Targets: [{}]\n      TargetGroupAttributes: [{{Key: slow_start.duration_seconds, Value: \"100\"}}]\n",
            targets.join(", ")
        );
        let loaded = crate::config::load_str(&text, "alb.yaml");
        assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics);
        loaded.model
    }

    fn address(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A moment `seconds` after a wall-clock start on a step boundary.
    fn moment(origin: Instant, seconds: f64) -> Moment {
        Moment {
            instant: origin + Duration::from_secs_f64(seconds),
            wall: Duration::from_secs(1_765_000_000) + Duration::from_secs_f64(seconds),
        }
    }

    const NO_TIMES: &StatusTimes = &StatusTimes::new();

    #[test]
    fn only_endpoints_joining_a_served_group_ramp() {
        let origin = Instant::now();
        let at = |seconds: f64| moment(origin, seconds);
        let mut state = RampState::default();
        let health = ReportedHealth::new();
        assert!(state
            .observe(&model(&[1, 2]), &health, NO_TIMES, at(0.0))
            .is_empty());
        assert!(
            state.fractions(at(0.0)).is_empty(),
            "the first endpoints do not ramp"
        );
        // Added by an edit at 9.5 s: the ramp starts at the next 2 s boundary, 10 s.
        let changed = state.observe(&model(&[1, 2, 3]), &health, NO_TIMES, at(9.5));
        assert_eq!(changed, BTreeSet::from(["Web".to_string()]));
        assert_eq!(
            state.fractions(at(9.5))["Web"][&address(3)],
            MINIMUM_FRACTION
        );
        // 25 s in, the last step boundary passed is 24 s.
        assert_eq!(state.fractions(at(35.0))["Web"][&address(3)], 0.24);
        assert_eq!(state.next_step(at(9.5)), Some(at(12.005).instant));
        state.stepped(at(12.0));
        assert_eq!(state.next_step(at(12.0)), Some(at(14.005).instant));
        assert!(
            state.fractions(at(110.0)).is_empty(),
            "the ramp ends with the window"
        );
    }

    #[test]
    fn replicas_told_the_same_change_time_publish_the_same_fractions() {
        // Two replicas learn of the same recovery 0.7 s apart (one probed it, the other read
        // it from etcd), with the time the prober recorded; their step timers fire at
        // slightly different moments.
        let origin = Instant::now();
        let at = |seconds: f64| moment(origin, seconds);
        let health = ReportedHealth::new();
        let recovered = SystemTime::UNIX_EPOCH + at(30.3).wall;
        let times = StatusTimes::from([(("Web".to_string(), address(3)), recovered)]);
        let mut first = RampState::default();
        let mut second = RampState::default();
        for state in [&mut first, &mut second] {
            state.observe(&model(&[1, 2]), &health, NO_TIMES, at(0.0));
        }
        first.observe(&model(&[1, 2, 3]), &health, &times, at(30.3));
        second.observe(&model(&[1, 2, 3]), &health, &times, at(31.0));
        for seconds in [31.0, 40.0, 57.9, 58.3, 99.0] {
            assert_eq!(
                first.fractions(at(seconds)),
                second.fractions(at(seconds + 0.003)),
                "at {seconds} s"
            );
        }
        assert_eq!(first.next_step(at(31.0)), second.next_step(at(31.0)));
        assert_eq!(first.next_step(at(31.0)), Some(at(32.305).instant));
    }

    #[test]
    fn an_endpoint_that_turns_unhealthy_leaves_its_ramp_and_starts_again() {
        let origin = Instant::now();
        let at = |seconds: f64| moment(origin, seconds);
        let mut state = RampState::default();
        let mut health = ReportedHealth::new();
        state.observe(&model(&[1]), &health, NO_TIMES, at(0.0));
        state.observe(&model(&[1, 2]), &health, NO_TIMES, at(1.0));
        health.insert(
            "Web".into(),
            BTreeMap::from([(address(2), ReportedStatus::Unhealthy)]),
        );
        assert_eq!(
            state
                .observe(&model(&[1, 2]), &health, NO_TIMES, at(51.0))
                .len(),
            1
        );
        assert!(state.fractions(at(51.0)).is_empty());
        health.clear();
        state.observe(&model(&[1, 2]), &health, NO_TIMES, at(56.0));
        assert_eq!(
            state.fractions(at(56.0))["Web"][&address(2)],
            MINIMUM_FRACTION
        );
    }
}
