//! The newest pushed config as `serve --config-from-etcd` last read it from etcd, between the
//! task that follows etcd (which writes it) and the reloader (which reads it as it would read
//! the files, and validates it the same way). What was read stays when etcd goes away. Must
//! not: talk to etcd, or validate anything.

use std::sync::Mutex;

use tokio::sync::Notify;

use crate::config::source::{self, Sources};

use super::keys::history_prefix;
use super::record::Record;

/// What is known of etcd's config.
#[derive(Clone, Debug)]
enum Known {
    /// etcd has not answered yet.
    NotRead,
    /// etcd answered: nothing has been pushed.
    NothingPushed,
    /// The newest push, at this etcd revision.
    Pushed { revision: i64, sources: Sources },
}

/// The newest pushed config, and a wake-up for each new one.
pub struct LatestConfig {
    /// Where the config is kept, as the status shows it.
    place: String,
    known: Mutex<Known>,
    changed: Notify,
}

impl LatestConfig {
    /// Nothing known yet of the config kept under `prefix` in the etcd at `endpoints`.
    pub fn new(endpoints: &[String], prefix: &str) -> LatestConfig {
        LatestConfig {
            place: format!("etcd {} {}", endpoints.join(","), history_prefix(prefix)),
            known: Mutex::new(Known::NotRead),
            changed: Notify::new(),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// etcd holds `record` (or, None, nothing) at `revision`; wakes the reloader when that
    /// is news.
    pub fn read(&self, revision: i64, record: Option<Result<Record, String>>) {
        let now = match record {
            None => Known::NothingPushed,
            Some(record) => {
                let root = format!("{} revision {revision}", self.place);
                let sources = match record {
                    Ok(record) => record.sources(&root),
                    Err(reason) => source::sources_unavailable(
                        &root,
                        format!("the newest value under {}: {reason}", self.place),
                    ),
                };
                Known::Pushed { revision, sources }
            }
        };
        let mut known = self.known();
        let news = match (&*known, &now) {
            (Known::Pushed { revision: old, .. }, Known::Pushed { revision: new, .. }) => new > old,
            (Known::NothingPushed, Known::NothingPushed) => false,
            _ => true,
        };
        if news {
            *known = now;
            drop(known);
            self.changed.notify_one();
        }
    }

    /// Waits for news.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// Whether etcd has answered at least once.
    pub fn answered(&self) -> bool {
        !matches!(*self.known(), Known::NotRead)
    }

    /// The etcd revision of the config known, if any.
    pub fn revision(&self) -> Option<i64> {
        match &*self.known() {
            Known::Pushed { revision, .. } => Some(*revision),
            _ => None,
        }
    }

    /// What the status calls the config.
    pub fn describe(&self) -> String {
        match self.revision() {
            Some(revision) => format!("{} revision {revision}", self.place),
            None => self.place.clone(),
        }
    }

    /// The config to load, as sources: the newest push, or none with the reason.
    pub fn sources(&self) -> Sources {
        match &*self.known() {
            Known::Pushed { sources, .. } => sources.clone(),
            Known::NotRead => source::sources_unavailable(
                &self.place,
                format!(
                    "etcd has not answered yet ({}); nothing is served until the config is \
                     read from it",
                    self.place
                ),
            ),
            Known::NothingPushed => source::sources_unavailable(
                &self.place,
                format!(
                    "no config has been pushed to {} yet; nothing is served until \
                     `switchyard push PATH --etcd URL` writes one",
                    self.place
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::pushed::record::PushedFile;

    fn record(text: &str) -> Record {
        let file = PushedFile {
            name: "lb.yaml".into(),
            text: text.into(),
        };
        Record::new(vec![file], "h/u".into(), 1, None)
    }

    #[test]
    fn before_a_push_the_sources_say_why_there_is_nothing() {
        let latest = LatestConfig::new(&["http://e:2379".into()], "/s/");
        assert!(!latest.answered());
        assert!(latest
            .sources()
            .listing_error
            .unwrap()
            .contains("not answered"));
        latest.read(3, None);
        assert!(latest.answered());
        let reason = latest.sources().listing_error.unwrap();
        assert!(
            reason.contains("no config has been pushed to etcd http://e:2379 /s/config-history/"),
            "{reason}"
        );
    }

    #[test]
    fn only_a_newer_revision_replaces_the_config() {
        let latest = LatestConfig::new(&["http://e:2379".into()], "/s/");
        latest.read(5, Some(Ok(record("a: 1\n"))));
        latest.read(4, Some(Ok(record("a: 0\n"))));
        assert_eq!(latest.revision(), Some(5));
        let sources = latest.sources();
        assert_eq!(sources.files[0].display.as_ref(), "lb.yaml");
        assert_eq!(sources.files[0].text.as_deref(), Ok("a: 1\n"));
        assert!(latest.describe().ends_with("revision 5"));
        latest.read(6, Some(Err("not a config".into())));
        assert!(latest
            .sources()
            .listing_error
            .unwrap()
            .contains("not a config"));
    }
}
