//! One cluster's outlier detector, as Envoy's: per endpoint, consecutive 5xx and gateway
//! failures (502, 503, 504; a failed connection counts as 503 and a timeout as 504) eject at
//! their thresholds; each interval, success rate (mean minus a factor of the standard
//! deviation) and failure percentage eject over the previous interval's requests. An ejection
//! happens only within the max ejection percent (of all endpoints) and with its enforcing
//! percentage's chance; it lasts the base ejection time times the endpoint's ejection count
//! (capped at the max ejection time, the count easing off while it stays healthy), and ends at
//! the first interval after that.
//!
//! Must not: sleep or read the clock itself (callers pass `now`, so unit tests drive time).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::Notify;

use super::stats::OutlierStats;
use super::OutlierSettings;
use crate::proxy::balancer::next_random;

/// Why an endpoint is ejected (the order of [`OutlierStats`]' counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ejection {
    Consecutive5xx = 0,
    ConsecutiveGatewayFailure = 1,
    SuccessRate = 2,
    FailurePercentage = 3,
}

/// What an attempt to an endpoint came to, as the detector counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reported {
    /// The endpoint answered with this status.
    Status(u16),
    /// No connection, or the stream was reset before an answer (counted as 503).
    Unanswered,
    /// The attempt's timeout ran out (counted as 504).
    TimedOut,
}

impl Reported {
    fn status(self) -> u16 {
        match self {
            Reported::Status(status) => status,
            Reported::Unanswered => 503,
            Reported::TimedOut => 504,
        }
    }
}

/// Requests and successes over one interval.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    total: u64,
    succeeded: u64,
}

/// One endpoint's record.
#[derive(Debug, Default)]
struct Monitor {
    consecutive_5xx: u32,
    consecutive_gateway_failure: u32,
    /// This interval's requests, and the last complete interval's.
    current: Bucket,
    previous: Bucket,
    ejected_at: Option<Instant>,
    last_unejected: Option<Instant>,
    /// How many base ejection times the next ejection lasts.
    backoff: u32,
}

#[derive(Debug, Default)]
struct State {
    /// By the endpoint's EDS address.
    hosts: HashMap<SocketAddr, Monitor>,
    /// Every address of an endpoint (its additional ones too) → its EDS address.
    aliases: HashMap<SocketAddr, SocketAddr>,
    ejected: usize,
}

pub struct Detector {
    pub settings: OutlierSettings,
    state: Mutex<State>,
    /// Set when an endpoint was ejected or returned since the balancer was last rebuilt.
    changed: AtomicBool,
    pub(super) wake: Notify,
    pub stats: OutlierStats,
    random: AtomicU64,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("settings", &self.settings)
            .finish()
    }
}

impl Detector {
    pub fn new(settings: OutlierSettings) -> Detector {
        Detector {
            settings,
            state: Mutex::default(),
            changed: AtomicBool::new(false),
            wake: Notify::new(),
            stats: OutlierStats::default(),
            random: AtomicU64::new(u64::from(std::process::id()) ^ 0x5DEE_CE66_D1CE_4E5B),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the cluster's endpoints (EDS address, every address) those watched: new ones
    /// start clean, gone ones are forgotten (and no longer count as ejected).
    pub fn set_hosts(&self, endpoints: &[(SocketAddr, Vec<SocketAddr>)]) {
        let mut state = self.state();
        let wanted: HashMap<SocketAddr, ()> = endpoints.iter().map(|(a, _)| (*a, ())).collect();
        state
            .hosts
            .retain(|address, _| wanted.contains_key(address));
        state.aliases.clear();
        for (address, all) in endpoints {
            state.hosts.entry(*address).or_default();
            for alias in all {
                state.aliases.insert(*alias, *address);
            }
        }
        self.recount_ejected(&mut state);
    }

    /// The EDS addresses of the endpoints ejected now.
    pub fn ejected(&self) -> Vec<SocketAddr> {
        let state = self.state();
        let mut ejected: Vec<SocketAddr> = state
            .hosts
            .iter()
            .filter(|(_, m)| m.ejected_at.is_some())
            .map(|(a, _)| *a)
            .collect();
        ejected.sort();
        ejected
    }

    /// Whether an endpoint was ejected or returned since the last call.
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::AcqRel)
    }

    /// Counts one attempt's result for the endpoint at `address`; ejects it when a
    /// consecutive-failure threshold is reached.
    pub fn report(&self, address: SocketAddr, result: Reported, now: Instant) {
        let status = result.status();
        let mut reached = [None, None];
        let mut state = self.state();
        let Some(key) = state.aliases.get(&address).copied() else {
            return;
        };
        let Some(monitor) = state.hosts.get_mut(&key) else {
            return;
        };
        monitor.current.total += 1;
        if (500..600).contains(&status) {
            if matches!(status, 502..=504) {
                monitor.consecutive_gateway_failure += 1;
                if monitor.consecutive_gateway_failure == self.settings.consecutive_gateway_failure
                {
                    reached[0] = Some(Ejection::ConsecutiveGatewayFailure);
                }
            } else {
                monitor.consecutive_gateway_failure = 0;
            }
            monitor.consecutive_5xx += 1;
            if monitor.consecutive_5xx == self.settings.consecutive_5xx {
                reached[1] = Some(Ejection::Consecutive5xx);
            }
        } else {
            monitor.current.succeeded += 1;
            monitor.consecutive_5xx = 0;
            monitor.consecutive_gateway_failure = 0;
        }
        for reason in reached.into_iter().flatten() {
            self.on_consecutive(&mut state, key, reason, now);
        }
    }

    /// A consecutive-failure threshold reached: eject (unless already out), then count again.
    /// Counts the hosts out now, for the ejection limit and `ejections_active`.
    fn recount_ejected(&self, state: &mut State) {
        state.ejected = state
            .hosts
            .values()
            .filter(|m| m.ejected_at.is_some())
            .count();
        self.stats
            .ejections_active
            .store(state.ejected as u64, Ordering::Relaxed);
    }

    fn on_consecutive(&self, state: &mut State, key: SocketAddr, reason: Ejection, now: Instant) {
        if state.hosts[&key].ejected_at.is_some() {
            return;
        }
        self.stats.detected(reason);
        self.eject(state, key, reason, now);
        let monitor = state.hosts.get_mut(&key).expect("checked above");
        match reason {
            Ejection::Consecutive5xx => monitor.consecutive_5xx = 0,
            _ => monitor.consecutive_gateway_failure = 0,
        }
    }

    /// Ejects the endpoint if the max ejection percent allows and the enforcing percentage's
    /// roll says so.
    fn eject(&self, state: &mut State, key: SocketAddr, reason: Ejection, now: Instant) {
        let settings = &self.settings;
        let percent = 100.0 * (state.ejected + 1) as f64 / state.hosts.len().max(1) as f64;
        let allowed = percent <= f64::from(settings.max_ejection_percent)
            || (settings.always_eject_one_host && state.ejected == 0);
        if !allowed {
            self.stats
                .ejections_overflow
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !self.enforced(reason) {
            return;
        }
        state.ejected += 1;
        self.stats
            .ejections_active
            .store(state.ejected as u64, Ordering::Relaxed);
        self.stats.enforced(reason);
        let base = settings.base_ejection_time;
        let cap = settings.max_ejection_time;
        let monitor = state.hosts.get_mut(&key).expect("a watched endpoint");
        monitor.ejected_at = Some(now);
        if base.saturating_mul(monitor.backoff) < cap.saturating_add(base) {
            monitor.backoff += 1;
        }
        self.changed.store(true, Ordering::Release);
        self.wake.notify_one();
        tracing::info!(endpoint = %key, ?reason, "outlier ejected");
    }

    /// Whether an ejection for `reason` is enforced: its enforcing percentage, rolled.
    fn enforced(&self, reason: Ejection) -> bool {
        let settings = &self.settings;
        let percent = match reason {
            Ejection::Consecutive5xx => settings.enforcing_consecutive_5xx,
            Ejection::ConsecutiveGatewayFailure => settings.enforcing_consecutive_gateway_failure,
            Ejection::SuccessRate => settings.enforcing_success_rate,
            Ejection::FailurePercentage => settings.enforcing_failure_percentage,
        };
        next_random(&self.random) % 100 < u64::from(percent)
    }

    /// The interval's work: return endpoints whose ejection is over, close the interval's
    /// counts, eject by success rate and failure percentage, and ease the backoff of
    /// endpoints that stayed in.
    pub fn on_interval(&self, now: Instant) {
        let mut state = self.state();
        let settings = &self.settings;
        for (address, monitor) in state.hosts.iter_mut() {
            if let Some(at) = monitor.ejected_at {
                let out_for = settings
                    .base_ejection_time
                    .saturating_mul(monitor.backoff)
                    .min(settings.max_ejection_time);
                if now.saturating_duration_since(at) >= out_for {
                    monitor.ejected_at = None;
                    monitor.last_unejected = Some(now);
                    monitor.consecutive_5xx = 0;
                    monitor.consecutive_gateway_failure = 0;
                    self.changed.store(true, Ordering::Release);
                    tracing::info!(endpoint = %address, "outlier returned");
                }
            }
            monitor.previous = std::mem::take(&mut monitor.current);
        }
        self.recount_ejected(&mut state);
        self.eject_by_rates(&mut state, now);
        for monitor in state.hosts.values_mut() {
            let stayed = monitor.ejected_at.is_none()
                && monitor
                    .last_unejected
                    .is_some_and(|at| now.saturating_duration_since(at) >= settings.interval);
            if stayed {
                monitor.backoff = monitor.backoff.saturating_sub(1);
            }
        }
    }

    /// Success-rate and failure-percentage ejections over the last interval's requests.
    fn eject_by_rates(&self, state: &mut State, now: Instant) {
        let settings = &self.settings;
        let hosts = state.hosts.len() as u64;
        if hosts < u64::from(settings.success_rate_minimum_hosts)
            && hosts < u64::from(settings.failure_percentage_minimum_hosts)
        {
            return;
        }
        let rates: Vec<(SocketAddr, f64, u64)> = state
            .hosts
            .iter()
            .filter(|(_, m)| m.ejected_at.is_none() && m.previous.total > 0)
            .map(|(a, m)| {
                let rate = m.previous.succeeded as f64 * 100.0 / m.previous.total as f64;
                (*a, rate, m.previous.total)
            })
            .collect();
        let by_success: Vec<(SocketAddr, f64)> = rates
            .iter()
            .filter(|(_, _, volume)| *volume >= u64::from(settings.success_rate_request_volume))
            .map(|(a, r, _)| (*a, *r))
            .collect();
        if !by_success.is_empty()
            && by_success.len() as u64 >= u64::from(settings.success_rate_minimum_hosts)
        {
            let factor = f64::from(settings.success_rate_stdev_factor) / 1000.0;
            let threshold = success_rate_threshold(&by_success, factor);
            for (address, rate) in &by_success {
                if *rate < threshold {
                    self.stats.detected(Ejection::SuccessRate);
                    self.eject_if_in(state, *address, Ejection::SuccessRate, now);
                }
            }
        }
        let by_failures: Vec<(SocketAddr, f64)> = rates
            .iter()
            .filter(|(_, _, volume)| {
                *volume >= u64::from(settings.failure_percentage_request_volume)
            })
            .map(|(a, r, _)| (*a, *r))
            .collect();
        if !by_failures.is_empty()
            && by_failures.len() as u64 >= u64::from(settings.failure_percentage_minimum_hosts)
        {
            let threshold = f64::from(settings.failure_percentage_threshold);
            for (address, rate) in &by_failures {
                if 100.0 - rate >= threshold {
                    self.stats.detected(Ejection::FailurePercentage);
                    self.eject_if_in(state, *address, Ejection::FailurePercentage, now);
                }
            }
        }
    }

    /// Ejects the endpoint unless it already is out (both rates may pick the same one).
    fn eject_if_in(&self, state: &mut State, key: SocketAddr, reason: Ejection, now: Instant) {
        if state.hosts[&key].ejected_at.is_none() {
            self.eject(state, key, reason, now);
        }
    }
}

/// Envoy's success-rate ejection threshold: the mean of the rates minus `factor` standard
/// deviations.
fn success_rate_threshold(rates: &[(SocketAddr, f64)], factor: f64) -> f64 {
    let count = rates.len() as f64;
    let mean = rates.iter().map(|(_, r)| r).sum::<f64>() / count;
    let variance = rates.iter().map(|(_, r)| (r - mean).powi(2)).sum::<f64>() / count;
    mean - factor * variance.sqrt()
}

#[cfg(test)]
#[path = "detector_tests.rs"]
mod tests;
