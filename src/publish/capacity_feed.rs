//! Capacity decisions in the publisher: every load-report interval (on wall-clock boundaries,
//! so replicas decide at the same moments) the publisher's timer asks `capacity` to take the
//! measured load into account, and what it decides becomes the shares
//! translation reads (a neutral type translate owns). Also posts the reports for `/capacity`,
//! sets the capacity metrics and logs a line when a region fills up or frees up. Must not:
//! decide (capacity does) or publish (the publisher does, with the services this names).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::capacity::measured::MeasuredLoad;
use crate::capacity::report::{unit_word, CapacityBoard, ServiceReport};
use crate::capacity::stability::{CapacityState, RegionChange, Tuning};
use crate::metrics::{LocalityCapacity, Metrics, RegionShare};
use crate::model::capacity::number;
use crate::model::endpoint_facts::ReportedHealth;
use crate::model::Model;
use crate::translate::capacity_shares::CapacityShares;

/// The load-report interval used until one is configured.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);

/// Measured load, the decisions taken from it, and when the next is due.
pub struct CapacityFeed {
    load: Arc<dyn MeasuredLoad>,
    state: CapacityState,
    board: Arc<CapacityBoard>,
    next: Instant,
    /// The shares translation reads.
    pub shares: CapacityShares,
}

impl CapacityFeed {
    pub fn new(load: Arc<dyn MeasuredLoad>, interval: Duration, board: Arc<CapacityBoard>) -> Self {
        CapacityFeed {
            load,
            state: CapacityState::new(Tuning::every(interval)),
            board,
            next: super::wall_clock::next_aligned(Instant::now(), interval),
            shares: CapacityShares::new(),
        }
    }

    /// When the next decision is due.
    pub fn next_step(&self) -> Instant {
        self.next
    }

    /// Takes the next decision; returns the services whose published shares changed.
    pub fn step(
        &mut self,
        model: &Model,
        health: &ReportedHealth,
        metrics: &Metrics,
        now: Instant,
    ) -> BTreeSet<String> {
        let interval = self.state.tuning().interval;
        // On wall-clock boundaries: replicas reading the same load decide at the same moments.
        self.next = super::wall_clock::next_aligned(now + interval / 2, interval);
        let step = self.state.step(model, health, &*self.load, now);
        self.shares = self.state.published();
        for change in &step.regions {
            log_region(change, model);
        }
        set_metrics(metrics, self.state.reports().values());
        self.board.post(self.state.reports().clone());
        step.changed
    }
}

/// One line when a backend region of a service fills up or frees up.
fn log_region(change: &RegionChange, model: &Model) {
    let unit = model
        .services
        .get(&change.service)
        .and_then(crate::capacity::decisions::measured_unit)
        .map(unit_word)
        .unwrap_or("");
    let (load, capacity) = (number(change.load), number(change.capacity));
    if change.full {
        tracing::info!(
            service = %change.service,
            region = %change.region,
            "capacity: region {} of service {} is full ({load} of {capacity} {unit}); the excess goes to the next region with spare capacity",
            change.region,
            change.service,
        );
    } else {
        tracing::info!(
            service = %change.service,
            region = %change.region,
            "capacity: region {} of service {} has spare capacity again ({load} of {capacity} {unit}); traffic returns to it",
            change.region,
            change.service,
        );
    }
}

/// Capacity, load and share gauges of every service with a measured target.
fn set_metrics<'a>(metrics: &Metrics, reports: impl Iterator<Item = &'a ServiceReport>) {
    let mut localities = Vec::new();
    let mut shares = Vec::new();
    for report in reports {
        for backend in &report.backends {
            localities.push(LocalityCapacity {
                service: report.service.clone(),
                region: backend.capacity.region.clone(),
                group: backend.capacity.group.clone(),
                capacity: backend.capacity.capacity,
                load: backend.load,
            });
        }
        for client in &report.clients {
            let sent = client.published.as_ref().unwrap_or(&client.target);
            for (group, share) in sent {
                shares.push(RegionShare {
                    service: report.service.clone(),
                    client_region: client.region.clone(),
                    group: group.clone(),
                    share: *share,
                });
            }
        }
    }
    metrics.capacity_observed(&localities, &shares);
}
