//! Which endpoints of slow-start services are ramping up, for the clients that have no slow
//! start of their own. An endpoint starts its ramp when it becomes routable (added by an
//! edit, or healthy again) in a service that already had routable endpoints; it leaves the
//! ramp when it stops being routable, and ends it after the service's window. As AWS does,
//! the endpoints of a service seen for the first time (a new service, or slow start just
//! turned on) do not ramp, nor do those of a group that had none routable. The ramp is
//! re-published in steps (a fiftieth of the window, 1 to 10 s apart). Pure: time is passed in.
//! Must not: publish (the publisher does).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::model::endpoint_facts::{ReportedHealth, ReportedStatus};
use crate::model::Model;
use crate::translate::endpoints::members;
use crate::translate::slow_start::Ramps;

/// The smallest share of its weight a ramping endpoint gets (Envoy's floor, as configured).
pub const MINIMUM_FRACTION: f64 = 0.01;

#[derive(Debug, Default)]
struct ServiceRamps {
    window: Duration,
    routable: BTreeSet<SocketAddr>,
    started: BTreeMap<SocketAddr, Instant>,
}

/// The ramps of every slow-start service.
#[derive(Debug, Default)]
pub struct RampState {
    services: BTreeMap<String, ServiceRamps>,
    last_step: Option<Instant>,
}

impl RampState {
    /// Takes in the routable endpoints of every slow-start service of `model` with `health`;
    /// returns the services whose ramping endpoints changed.
    pub fn observe(
        &mut self,
        model: &Model,
        health: &ReportedHealth,
        now: Instant,
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
                        ramps.started.insert(*address, now);
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

    /// The fraction of its weight each ramping endpoint gets at `now`; finished ramps are
    /// dropped.
    pub fn fractions(&mut self, now: Instant) -> Ramps {
        let mut ramps = Ramps::new();
        for (name, service) in &mut self.services {
            let window = service.window;
            service
                .started
                .retain(|_, started| now.saturating_duration_since(*started) < window);
            if service.started.is_empty() {
                continue;
            }
            let fractions = service
                .started
                .iter()
                .map(|(address, started)| {
                    let elapsed = now.saturating_duration_since(*started).as_secs_f64();
                    let fraction = (elapsed / window.as_secs_f64()).clamp(MINIMUM_FRACTION, 1.0);
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

    /// When the next step of the ramps is due.
    pub fn next_step(&self) -> Option<Instant> {
        let step = self
            .services
            .values()
            .filter(|service| !service.started.is_empty())
            .map(|service| step_of(service.window))
            .min()?;
        let earliest_start = self
            .services
            .values()
            .flat_map(|service| service.started.values())
            .min()
            .copied()?;
        Some(self.last_step.unwrap_or(earliest_start) + step)
    }

    /// Notes that the ramps were published at `now`.
    pub fn stepped(&mut self, now: Instant) {
        self.last_step = Some(now);
    }
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

    #[test]
    fn only_endpoints_joining_a_served_group_ramp() {
        let start = Instant::now();
        let mut state = RampState::default();
        let health = ReportedHealth::new();
        assert!(state.observe(&model(&[1, 2]), &health, start).is_empty());
        assert!(
            state.fractions(start).is_empty(),
            "the first endpoints do not ramp"
        );
        let later = start + Duration::from_secs(10);
        let changed = state.observe(&model(&[1, 2, 3]), &health, later);
        assert_eq!(changed, BTreeSet::from(["Web".to_string()]));
        let at = |seconds: u64| later + Duration::from_secs(seconds);
        assert_eq!(state.fractions(at(0))["Web"][&address(3)], MINIMUM_FRACTION);
        assert_eq!(state.fractions(at(25))["Web"][&address(3)], 0.25);
        assert_eq!(state.next_step(), Some(later + Duration::from_secs(2)));
        assert!(
            state.fractions(at(100)).is_empty(),
            "the ramp ends with the window"
        );
    }

    #[test]
    fn an_endpoint_that_turns_unhealthy_leaves_its_ramp_and_starts_again() {
        let start = Instant::now();
        let mut state = RampState::default();
        let mut health = ReportedHealth::new();
        state.observe(&model(&[1]), &health, start);
        let joined = start + Duration::from_secs(1);
        state.observe(&model(&[1, 2]), &health, joined);
        health.insert(
            "Web".into(),
            BTreeMap::from([(address(2), ReportedStatus::Unhealthy)]),
        );
        let sick = joined + Duration::from_secs(50);
        assert_eq!(state.observe(&model(&[1, 2]), &health, sick).len(), 1);
        assert!(state.fractions(sick).is_empty());
        health.clear();
        let back = sick + Duration::from_secs(5);
        state.observe(&model(&[1, 2]), &health, back);
        assert_eq!(state.fractions(back)["Web"][&address(2)], MINIMUM_FRACTION);
    }
}
