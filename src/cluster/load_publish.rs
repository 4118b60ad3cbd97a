//! What this replica publishes of its own load: once per load-report interval the etcd
//! session asks for the value, built from the local window ([`ReportWindow`]); it gets one
//! only when the figures differ from what it last wrote in this session (a steady or idle
//! load is not rewritten: the lease keeps the value). Must not: talk to etcd (the session
//! writes), or read anyone else's load.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::capacity::measured::ReportWindow;

use super::load_value::{PublishedLoad, MAX_VALUE_BYTES};

/// The window load is published from, and how often.
struct Source {
    window: Arc<ReportWindow>,
    interval: Duration,
}

#[derive(Default)]
pub struct LoadPublishing {
    source: OnceLock<Source>,
    /// What this session last wrote (None: nothing yet).
    written: Mutex<Option<PublishedLoad>>,
}

impl LoadPublishing {
    /// Publishes what `window` holds every `interval` (once; later calls change nothing).
    pub fn publish_from(&self, window: Arc<ReportWindow>, interval: Duration) {
        let _ = self.source.set(Source { window, interval });
    }

    /// How often a value is considered (None: nothing is published).
    pub fn interval(&self) -> Option<Duration> {
        self.source.get().map(|source| source.interval)
    }

    fn written(&self) -> MutexGuard<'_, Option<PublishedLoad>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session (a new lease): the next value is written whatever it says.
    pub fn forget(&self) {
        *self.written() = None;
    }

    /// The value to write now, if it says something new.
    pub fn next_value(&self, now_unix: f64) -> Option<PublishedLoad> {
        let source = self.source.get()?;
        let value = PublishedLoad::of(source.window.series_loads(), now_unix, MAX_VALUE_BYTES);
        match &*self.written() {
            Some(last) if last.same_figures(&value) => None,
            _ => Some(value),
        }
    }

    /// `value` was written.
    pub fn wrote(&self, value: PublishedLoad) {
        *self.written() = Some(value);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::capacity::measured::{Locality, Report, ReportedCounts, WindowSettings};

    fn report(issued: u64) -> Report {
        Report {
            client: Locality {
                region: "us-central1".into(),
                zone: "us-central1-a".into(),
            },
            service: "web".into(),
            upstream: vec![(
                Locality {
                    region: "us-central1".into(),
                    zone: "us-central1-a".into(),
                },
                ReportedCounts {
                    issued_requests: issued,
                    successful_requests: issued,
                    ..Default::default()
                },
            )],
            interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_value_is_offered_when_its_figures_change_and_after_a_new_session() {
        let publishing = LoadPublishing::default();
        assert!(publishing.next_value(0.0).is_none(), "no source: nothing");
        let window = Arc::new(ReportWindow::new(WindowSettings::for_interval(
            Duration::from_secs(1),
        )));
        publishing.publish_from(window.clone(), Duration::from_secs(1));
        let start = Instant::now();
        window.advance(start);
        // Even an empty window is published once: the others learn this replica has none.
        let empty = publishing.next_value(1.0).unwrap();
        assert!(empty.services.is_empty());
        publishing.wrote(empty);
        assert!(publishing.next_value(2.0).is_none());
        for second in 1..=6 {
            window.record(&report(15), start + Duration::from_secs(second));
        }
        let busy = publishing.next_value(3.0).unwrap();
        assert_eq!(busy.requests_per_second(), 15.0);
        publishing.wrote(busy);
        assert!(publishing.next_value(4.0).is_none(), "the same figures");
        publishing.forget();
        assert!(publishing.next_value(5.0).is_some(), "a new lease");
    }
}
