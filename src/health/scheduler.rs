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

use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::model::endpoint_facts::EndpointReports;

use super::checker::{Checker, TargetCell, SOURCE};
use super::probe::{self, Session};
use super::targets::TargetKey;

/// Probes in flight at most, by default.
pub const DEFAULT_CONCURRENCY: usize = 1024;
/// How long changes are gathered before they are published together (at least; after a
/// publication that took longer, that long, so a busy publisher gets larger batches).
const BATCH: Duration = Duration::from_millis(20);
/// How often the health gauges are recomputed at most.
const COUNTS_EVERY: Duration = Duration::from_secs(1);
/// The longest a target new to the config waits for its first probe.
const FIRST_PROBE_OF_NEW: Duration = Duration::from_secs(1);

/// Starts the scheduler's tasks; they end with `shutdown`. Probes run on threads of their own
/// (one single-threaded runtime per CPU, each probing its share of the targets): thousands of
/// short connections a second then cost no wake-ups across the server's worker threads, and
/// a probing burst does not hold up xDS clients.
pub fn spawn(
    checker: Arc<Checker>,
    publisher: Arc<dyn EndpointReports>,
    metrics: Arc<Metrics>,
    concurrency: usize,
    shutdown: CancellationToken,
) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let probers: Vec<Handle> = (0..threads)
        .filter_map(|index| prober_thread(index, shutdown.clone()))
        .collect();
    if probers.is_empty() {
        tracing::error!("health checking could not start a probing thread");
        return;
    }
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
    tokio::spawn(plan_loop(
        checker.clone(),
        probers,
        limit,
        metrics.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(publish_loop(checker, publisher, metrics, shutdown));
}

/// A thread running a single-threaded runtime until `shutdown`; its handle.
fn prober_thread(index: usize, shutdown: CancellationToken) -> Option<Handle> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| tracing::error!(%error, "a health probing runtime"))
        .ok()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name(format!("health-probes-{index}"))
        .spawn(move || runtime.block_on(shutdown.cancelled()))
        .map_err(|error| tracing::error!(%error, "a health probing thread"))
        .ok()?;
    Some(handle)
}

/// Starts and stops target tasks as the checker adopts models.
async fn plan_loop(
    checker: Arc<Checker>,
    probers: Vec<Handle>,
    limit: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut running: HashMap<Arc<TargetKey>, CancellationToken> = HashMap::new();
    let mut next_prober = 0;
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
        for ((key, cell), fast_first_probe) in changes.started {
            let token = shutdown.child_token();
            if let Some(old) = running.insert(key.clone(), token.clone()) {
                old.cancel();
            }
            let window = if fast_first_probe {
                key.check.interval().min(FIRST_PROBE_OF_NEW)
            } else {
                key.check.interval()
            };
            let first = random_below(window, &key);
            next_prober = (next_prober + 1) % probers.len();
            probers[next_prober].spawn(probe_loop(
                checker.clone(),
                key,
                cell,
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
    cell: Arc<TargetCell>,
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
            _ = tokio::time::sleep_until(on_tick(next)) => {}
        }
        if !checker.probes(&key) {
            // Another replica owns the target this round; its verdicts arrive through etcd.
            next = next_round(next, interval, &key);
            continue;
        }
        let outcome = {
            let Ok(_permit) = limit.acquire().await else {
                return;
            };
            // Boxed: a waiting target holds only this loop's state, not a probe's (TLS and
            // HTTP/2 probes have large futures).
            Box::pin(probe::run(
                &key.check.probe,
                &mut session,
                key.address,
                key.check.proxy_header_v1,
                timeout,
            ))
            .await
        };
        metrics.health_probe(outcome.is_ok());
        if stop.is_cancelled() || !checker.record(&key, &cell, outcome, SystemTime::now()) {
            return;
        }
        next = next_round(next, interval, &key);
    }
}

/// The next round after the one due at `next`: a little early or late (up to 1% of the
/// interval) so targets that share a phase drift apart; a round missed while waiting for a
/// permit is skipped.
fn next_round(next: Instant, interval: Duration, key: &TargetKey) -> Instant {
    let jitter = random_below(interval / 50, &(key, next));
    let next = (next + interval + jitter)
        .checked_sub(interval / 100)
        .unwrap_or(next + interval);
    let now = Instant::now();
    if next < now {
        now + interval
    } else {
        next
    }
}

/// Hands changed endpoints to the publisher, a batch at a time.
async fn publish_loop(
    checker: Arc<Checker>,
    publisher: Arc<dyn EndpointReports>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut gather = BATCH;
    // The gauges trail the changes by at most COUNTS_EVERY.
    let mut count_at = Some(Instant::now() + COUNTS_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = checker.changed.notified() => {}
            _ = tokio::time::sleep_until(count_at.unwrap_or_else(Instant::now)), if count_at.is_some() => {
                count_at = None;
                let counts = checker.counts(None);
                metrics.health_endpoints(counts.healthy, counts.unhealthy, counts.unknown);
                continue;
            }
        }
        tokio::time::sleep(gather).await;
        let reports = checker.take_reports();
        if !reports.is_empty() {
            let publisher = publisher.clone();
            let started = Instant::now();
            let published =
                tokio::task::spawn_blocking(move || publisher.report_endpoints(SOURCE, &reports))
                    .await;
            if let Err(error) = published {
                tracing::error!(%error, "publishing endpoint health failed unexpectedly");
            }
            gather = started.elapsed().clamp(BATCH, Duration::from_secs(1));
            count_at.get_or_insert_with(|| Instant::now() + COUNTS_EVERY);
        }
    }
}

/// Probes start on 10 ms ticks: the probing thread wakes once per tick for every probe due
/// then, instead of once per probe.
const TICK: Duration = Duration::from_millis(10);

/// `at`, moved forward to the next tick.
fn on_tick(at: Instant) -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    let since = at.saturating_duration_since(base).as_nanos();
    let tick = TICK.as_nanos();
    let ticks = since.div_ceil(tick);
    base + Duration::from_nanos((ticks * tick) as u64)
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
