//! Runs the checker's probes: one task per target, which probes at the check's interval from a
//! random phase (so a large fleet's probes spread over the interval instead of arriving
//! together) with a little jitter each round, under a global bound on probes in flight; and
//! one task that hands endpoints whose standing changed to the publisher, a batch at a time,
//! off the async runtime. A target new to the config is first probed within a second (it
//! gets no traffic until it passes); a target of the first config within its interval (it
//! keeps its traffic until then). Must not: decide health (checker and state do).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::publish::Publisher;

use super::checker::{Checker, SOURCE};
use super::probe::{self, Session};
use super::targets::TargetKey;

/// Probes in flight at most, by default.
pub const DEFAULT_CONCURRENCY: usize = 1024;
/// How long changes are gathered before they are published together.
const BATCH: Duration = Duration::from_millis(20);
/// The longest a target new to the config waits for its first probe.
const FIRST_PROBE_OF_NEW: Duration = Duration::from_secs(1);

/// Starts the scheduler's tasks; they end with `shutdown`.
pub fn spawn(
    checker: Arc<Checker>,
    publisher: Arc<Publisher>,
    metrics: Arc<Metrics>,
    concurrency: usize,
    shutdown: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
    tokio::spawn(plan_loop(
        checker.clone(),
        limit,
        metrics.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(publish_loop(checker, publisher, metrics, shutdown));
}

/// Starts and stops target tasks as the checker adopts models.
async fn plan_loop(
    checker: Arc<Checker>,
    limit: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut running: HashMap<Arc<TargetKey>, CancellationToken> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = checker.replanned.notified() => {}
        }
        let changes = checker.take_target_changes();
        for key in changes.stopped {
            if let Some(token) = running.remove(&key) {
                token.cancel();
            }
        }
        for (key, new_to_config) in changes.started {
            let token = shutdown.child_token();
            if let Some(old) = running.insert(key.clone(), token.clone()) {
                old.cancel();
            }
            let window = if new_to_config {
                key.check.interval().min(FIRST_PROBE_OF_NEW)
            } else {
                key.check.interval()
            };
            let first = random_below(window, &key);
            tokio::spawn(probe_loop(
                checker.clone(),
                key,
                limit.clone(),
                metrics.clone(),
                first,
                token,
            ));
        }
        metrics.health_targets(running.len() as u64);
    }
}

/// Probes one target until it is no longer wanted.
async fn probe_loop(
    checker: Arc<Checker>,
    key: Arc<TargetKey>,
    limit: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    first: Duration,
    stop: CancellationToken,
) {
    let interval = key.check.interval();
    let timeout = key.check.timeout();
    let mut session = Session::default();
    let mut next = Instant::now() + first;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        let outcome = {
            let Ok(_permit) = limit.acquire().await else {
                return;
            };
            probe::run(
                &key.check.probe,
                &mut session,
                key.address,
                key.check.proxy_header_v1,
                timeout,
            )
            .await
        };
        metrics.health_probe(outcome.is_ok());
        if stop.is_cancelled() || !checker.record(&key, outcome, SystemTime::now()) {
            return;
        }
        // The next round, a little early or late (up to 1% of the interval) so targets that
        // share a phase drift apart; a round missed while waiting for a permit is skipped.
        let jitter = random_below(interval / 50, &(&key, next));
        next = (next + interval + jitter)
            .checked_sub(interval / 100)
            .unwrap_or(next + interval);
        let now = Instant::now();
        if next < now {
            next = now + interval;
        }
    }
}

/// Hands changed endpoints to the publisher, a batch at a time.
async fn publish_loop(
    checker: Arc<Checker>,
    publisher: Arc<Publisher>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = checker.changed.notified() => {}
        }
        tokio::time::sleep(BATCH).await;
        let reports = checker.take_reports();
        if !reports.is_empty() {
            let publisher = publisher.clone();
            let published =
                tokio::task::spawn_blocking(move || publisher.report_endpoints(SOURCE, &reports))
                    .await;
            if let Err(error) = published {
                tracing::error!(%error, "publishing endpoint health failed unexpectedly");
            }
        }
        metrics.health_endpoints(checker.counts());
    }
}

/// A random duration in [0, bound).
fn random_below(bound: Duration, seed: &impl std::hash::Hash) -> Duration {
    let nanos = bound.as_nanos() as u64;
    if nanos == 0 {
        return Duration::ZERO;
    }
    let random = std::collections::hash_map::RandomState::new().hash_one(seed);
    Duration::from_nanos(random % nanos)
}
