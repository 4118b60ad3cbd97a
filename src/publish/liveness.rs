//! Whether the reloader keeps up: when it last started a load, and since when a change (a file
//! event or a SIGHUP) has waited for it — to be picked up, or for the load that picked it up
//! to finish. Written from notify's thread, the signal handler and
//! the reloader; read by `/ready` and `/metrics`. Lock-free, so that a reloader stuck on a lock
//! or a blocking read cannot stop the readers from saying so.
//! Must not: decide what is loaded or served.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::metrics::Metrics;

/// How long a change may wait for the reloader before `/ready` says it is stuck: far beyond
/// the settling time and the load time of a large config.
pub const DEFAULT_STALL_LIMIT: Duration = Duration::from_secs(30);

/// Times are kept as milliseconds since `epoch`, plus one, so that 0 means "none".
pub struct ReloadLiveness {
    epoch: Instant,
    epoch_unix: Duration,
    last_attempt: AtomicU64,
    /// The earliest change no load has picked up yet.
    waiting_since: AtomicU64,
    /// The load under way: since when what it handles has waited.
    loading_since: AtomicU64,
    stall_limit: Duration,
    metrics: Arc<Metrics>,
}

/// A change that has waited longer than the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stall {
    pub waited: Duration,
    pub limit: Duration,
}

impl ReloadLiveness {
    pub fn new(stall_limit: Duration, metrics: Arc<Metrics>) -> Self {
        ReloadLiveness {
            epoch: Instant::now(),
            epoch_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            last_attempt: AtomicU64::new(0),
            waiting_since: AtomicU64::new(0),
            loading_since: AtomicU64::new(0),
            stall_limit,
            metrics,
        }
    }

    /// Something may have changed the config (a file event, a forced reload). Keeps the
    /// earliest unprocessed one.
    pub fn change_seen(&self, now: Instant) {
        let mark = self.mark(now);
        let _ = self
            .waiting_since
            .compare_exchange(0, mark, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// The reloader is about to read the files: every change seen so far is being handled
    /// (and still waits until [`ReloadLiveness::attempt_finished`]).
    pub fn attempt_started(&self, now: Instant) {
        let mark = self.mark(now);
        let waited_since = match self.waiting_since.swap(0, Ordering::AcqRel) {
            0 => mark,
            since => since.min(mark),
        };
        self.loading_since.store(waited_since, Ordering::Release);
        self.last_attempt.store(mark, Ordering::Release);
        self.metrics
            .config_reload_attempted(self.unix_seconds(mark).unwrap_or(0.0));
    }

    /// The load started last has ended (whatever its outcome).
    pub fn attempt_finished(&self) {
        self.loading_since.store(0, Ordering::Release);
    }

    /// The change that has waited longer than the limit, if any.
    pub fn stall(&self, now: Instant) -> Option<Stall> {
        let marks = [
            self.waiting_since.load(Ordering::Acquire),
            self.loading_since.load(Ordering::Acquire),
        ];
        let earliest = marks.into_iter().filter(|mark| *mark != 0).min()?;
        let since = self.at(earliest)?;
        let waited = now.saturating_duration_since(since);
        (waited > self.stall_limit).then_some(Stall {
            waited,
            limit: self.stall_limit,
        })
    }

    /// When the last load was started, in seconds since the Unix epoch.
    pub fn last_attempt_unix_seconds(&self) -> Option<f64> {
        self.unix_seconds(self.last_attempt.load(Ordering::Acquire))
    }

    fn mark(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64 + 1
    }

    fn at(&self, mark: u64) -> Option<Instant> {
        (mark != 0).then(|| self.epoch + Duration::from_millis(mark - 1))
    }

    fn unix_seconds(&self, mark: u64) -> Option<f64> {
        (mark != 0).then(|| (self.epoch_unix + Duration::from_millis(mark - 1)).as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn liveness() -> ReloadLiveness {
        ReloadLiveness::new(Duration::from_secs(30), Arc::new(Metrics::default()))
    }

    #[test]
    fn a_change_waiting_past_the_limit_is_a_stall() {
        let live = liveness();
        let start = Instant::now();
        live.change_seen(start);
        assert_eq!(live.stall(start + Duration::from_secs(29)), None);
        let stall = live
            .stall(start + Duration::from_secs(31))
            .expect("stalled");
        assert!(stall.waited >= Duration::from_secs(30));
    }

    #[test]
    fn the_earliest_waiting_change_counts() {
        let live = liveness();
        let start = Instant::now();
        live.change_seen(start);
        live.change_seen(start + Duration::from_secs(20));
        assert!(live.stall(start + Duration::from_secs(31)).is_some());
    }

    #[test]
    fn an_attempt_clears_what_waited_and_is_remembered() {
        let live = liveness();
        let start = Instant::now();
        assert_eq!(live.last_attempt_unix_seconds(), None);
        live.change_seen(start);
        live.attempt_started(start + Duration::from_secs(1));
        live.attempt_finished();
        assert_eq!(live.stall(start + Duration::from_secs(100)), None);
        assert!(live.last_attempt_unix_seconds().unwrap() > 1.6e9);
        live.change_seen(start + Duration::from_secs(50));
        assert_eq!(live.stall(start + Duration::from_secs(79)), None);
        assert!(live.stall(start + Duration::from_secs(81)).is_some());
    }

    #[test]
    fn a_load_that_never_ends_is_a_stall_from_the_change_it_handles() {
        let live = liveness();
        let start = Instant::now();
        live.change_seen(start);
        live.attempt_started(start + Duration::from_secs(10));
        assert_eq!(live.stall(start + Duration::from_secs(29)), None);
        assert!(live.stall(start + Duration::from_secs(31)).is_some());
        live.attempt_finished();
        assert_eq!(live.stall(start + Duration::from_secs(31)), None);
    }

    #[test]
    fn nothing_waiting_is_never_a_stall() {
        let live = liveness();
        assert_eq!(live.stall(Instant::now() + Duration::from_secs(3600)), None);
    }
}
