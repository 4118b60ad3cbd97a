//! A cluster's circuit breakers, as Envoy's default-priority thresholds apply them: at most
//! `max_connections` connections busy with a request (HTTP/1.1: one request per connection;
//! a request finding none free waits as pending), at most `max_pending_requests` waiting, at
//! most `max_requests` requests in flight. A request past a limit is turned away at once with
//! Envoy's overflow answer (503, `x-envoy-overloaded: true`), counted under Envoy's names:
//! `upstream_rq_pending_overflow` (the queue is full), `upstream_rq_active_overflow` (too many
//! requests), `upstream_cx_overflow` (a request queued with every connection busy). Envoy's
//! defaults (1024 each) hold when the cluster sets none. Retries: a retry holds one of
//! `max_retries` places (Envoy's default: 3) while it waits out its back-off; with none free
//! the retry is not made and `upstream_rq_retry_overflow` counts it.
//!
//! Must not: pick endpoints or open connections (the balancer and the upstream client do);
//! a request holds its place until its response headers arrive (the body is not waited for).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::prometheus::{label, Scrape};

/// Envoy's default for every threshold but retries.
pub const DEFAULT_LIMIT: u32 = 1024;

/// Envoy's default for `max_retries`.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// A cluster's thresholds (default priority).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
    pub max_retries: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: DEFAULT_LIMIT,
            max_pending_requests: DEFAULT_LIMIT,
            max_requests: DEFAULT_LIMIT,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }
}

/// Overflow counters, by Envoy's stat names.
#[derive(Debug, Default)]
pub struct OverflowStats {
    pub upstream_rq_pending_overflow: AtomicU64,
    pub upstream_rq_active_overflow: AtomicU64,
    pub upstream_cx_overflow: AtomicU64,
    pub upstream_rq_retry_overflow: AtomicU64,
}

/// The breakers of one cluster: its limits and what is in use now.
#[derive(Debug)]
pub struct Breakers {
    limits: Limits,
    connections: Arc<Semaphore>,
    pending: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    pub stats: OverflowStats,
}

/// A request was turned away.
#[derive(Debug, PartialEq, Eq)]
pub struct Overflow;

/// A request's place within the limits, given back when dropped.
#[derive(Debug)]
pub struct Admission<'a> {
    breakers: &'a Breakers,
    _connection: Option<OwnedSemaphorePermit>,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.breakers.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A retry's place while it waits out its back-off, given back when dropped.
#[derive(Debug)]
pub struct RetryPlace<'a> {
    breakers: &'a Breakers,
}

impl Drop for RetryPlace<'_> {
    fn drop(&mut self) {
        self.breakers.retries.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Breakers {
    pub fn new(limits: Limits) -> Breakers {
        Breakers {
            limits,
            connections: Arc::new(Semaphore::new(limits.max_connections as usize)),
            pending: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            stats: OverflowStats::default(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Admits one request (one attempt), waiting as pending for a free connection when
    /// `one_per_connection` (HTTP/1.1) and all are busy; Overflow when a limit is passed.
    pub async fn admit(&self, one_per_connection: bool) -> Result<Admission<'_>, Overflow> {
        let connection = match one_per_connection {
            true => Some(self.connection().await?),
            false => None,
        };
        if !take_below(&self.requests, self.limits.max_requests) {
            self.stats
                .upstream_rq_active_overflow
                .fetch_add(1, Ordering::Relaxed);
            return Err(Overflow);
        }
        Ok(Admission {
            breakers: self,
            _connection: connection,
        })
    }

    /// A place for one retry, or None (counted) when `max_retries` are already waiting.
    pub fn retry(&self) -> Option<RetryPlace<'_>> {
        if !take_below(&self.retries, self.limits.max_retries) {
            self.stats
                .upstream_rq_retry_overflow
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(RetryPlace { breakers: self })
    }

    /// A free connection, or a place in the queue to wait for one.
    async fn connection(&self) -> Result<OwnedSemaphorePermit, Overflow> {
        if let Ok(permit) = self.connections.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if !take_below(&self.pending, self.limits.max_pending_requests) {
            self.stats
                .upstream_rq_pending_overflow
                .fetch_add(1, Ordering::Relaxed);
            return Err(Overflow);
        }
        // Queued, and no connection may be opened for it (Envoy counts it so).
        self.stats
            .upstream_cx_overflow
            .fetch_add(1, Ordering::Relaxed);
        let waited = self.connections.clone().acquire_owned().await;
        self.pending.fetch_sub(1, Ordering::AcqRel);
        waited.map_err(|_| Overflow)
    }
}

/// Adds one to `counter` if it is below `limit`; whether it did.
fn take_below(counter: &AtomicU64, limit: u32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < u64::from(limit)).then_some(n + 1)
        })
        .is_ok()
}

/// Every cluster's breakers, kept across config updates while its limits stay the same (what
/// is in flight stays counted), by cluster name.
#[derive(Debug, Default)]
pub struct BreakerStore {
    clusters: Mutex<BTreeMap<String, Arc<Breakers>>>,
}

impl BreakerStore {
    /// The breakers of cluster `name` with `limits`.
    pub fn for_cluster(&self, name: &str, limits: Limits) -> Arc<Breakers> {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        match clusters.get(name) {
            Some(kept) if kept.limits == limits => kept.clone(),
            _ => {
                let made = Arc::new(Breakers::new(limits));
                clusters.insert(name.to_string(), made.clone());
                made
            }
        }
    }

    /// Forgets the clusters for which `keep` says no.
    pub fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        clusters.retain(|name, _| keep(name));
    }
}

/// One counter of [`OverflowStats`].
type StatOf = fn(&OverflowStats) -> &AtomicU64;

/// Adds the overflow counters of every cluster to `scrape`, in Envoy's Prometheus form with
/// `_total` (`envoy_cluster_upstream_rq_pending_overflow_total{envoy_cluster_name="web"} 3`).
pub fn gather<'a>(
    clusters: impl Iterator<Item = (&'a String, &'a Breakers)> + Clone,
    scrape: &mut Scrape,
) {
    let counters: [(&str, StatOf); 4] = [
        ("upstream_rq_pending_overflow", |s| {
            &s.upstream_rq_pending_overflow
        }),
        ("upstream_rq_active_overflow", |s| {
            &s.upstream_rq_active_overflow
        }),
        ("upstream_cx_overflow", |s| &s.upstream_cx_overflow),
        ("upstream_rq_retry_overflow", |s| {
            &s.upstream_rq_retry_overflow
        }),
    ];
    for (stat, counter) in counters {
        let series = clusters
            .clone()
            .map(|(name, breakers)| {
                let value = counter(&breakers.stats).load(Ordering::Relaxed);
                (label("envoy_cluster_name", name), value)
            })
            .collect();
        scrape.counters(
            &format!("envoy_cluster_{stat}"),
            "Requests or connections refused by a circuit breaker, as Envoy counts them.",
            series,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(connections: u32, pending: u32, requests: u32) -> Limits {
        Limits {
            max_connections: connections,
            max_pending_requests: pending,
            max_requests: requests,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }

    #[test]
    fn a_retry_past_max_retries_is_not_made_and_a_freed_place_takes_the_next() {
        let breakers = Breakers::new(Limits {
            max_retries: 2,
            ..Limits::default()
        });
        let first = breakers.retry().expect("one place");
        let _second = breakers.retry().expect("two places");
        assert!(breakers.retry().is_none(), "a third is past the limit");
        assert_eq!(
            breakers
                .stats
                .upstream_rq_retry_overflow
                .load(Ordering::Relaxed),
            1
        );
        drop(first);
        assert!(
            breakers.retry().is_some(),
            "a place given back is taken again"
        );
    }

    #[tokio::test]
    async fn requests_past_the_limit_overflow_and_a_freed_place_admits_again() {
        let breakers = Breakers::new(limits(10, 10, 2));
        let first = breakers.admit(false).await.unwrap();
        let _second = breakers.admit(false).await.unwrap();
        assert_eq!(breakers.admit(false).await.unwrap_err(), Overflow);
        drop(first);
        assert!(breakers.admit(false).await.is_ok());
        let overflowed = &breakers.stats.upstream_rq_active_overflow;
        assert_eq!(overflowed.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn with_every_connection_busy_one_request_waits_and_the_next_overflows() {
        let breakers = Arc::new(Breakers::new(limits(1, 1, 10)));
        let busy = breakers.admit(true).await.unwrap();
        let waiting = {
            let breakers = breakers.clone();
            tokio::spawn(async move { breakers.admit(true).await.map(drop) })
        };
        while breakers.pending.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(breakers.admit(true).await.unwrap_err(), Overflow);
        drop(busy);
        assert_eq!(waiting.await.unwrap(), Ok(()));
        let stats = &breakers.stats;
        assert_eq!(stats.upstream_cx_overflow.load(Ordering::Relaxed), 1);
        assert_eq!(
            stats.upstream_rq_pending_overflow.load(Ordering::Relaxed),
            1
        );
    }
}
