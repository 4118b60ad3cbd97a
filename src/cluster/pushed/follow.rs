//! `serve --config-from-etcd`'s link to etcd: reads the newest pushed config, then watches the
//! history for new pushes and hands each to [`LatestConfig`] (the reloader validates and
//! serves it, or rejects it, as it would a file edit). Any failure ends the session and a new
//! one starts a second later; what was read stays served meanwhile. Must not: validate or
//! publish anything.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};
use tokio_util::sync::CancellationToken;

use crate::cluster::etcd::SessionError;
use crate::cluster::EtcdOptions;

use super::keys::{history_prefix, sequence_of};
use super::latest::LatestConfig;
use super::store::{entry_of, Entry, Store};

/// The pause between sessions.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Follows etcd's config until `shutdown`.
pub async fn run(options: EtcdOptions, latest: Arc<LatestConfig>, shutdown: CancellationToken) {
    let mut failures = 0u32;
    loop {
        let ended = tokio::select! {
            _ = shutdown.cancelled() => return,
            ended = session(&options, &latest, &mut failures) => ended,
        };
        if let Err(error) = ended {
            // Once per outage at warning level: etcd down is retried every second.
            if failures == 0 {
                tracing::warn!(%error, "reading the config from etcd failed; serving what was read, retrying every second");
            } else {
                tracing::debug!(%error, "reading the config from etcd failed again");
            }
            failures += 1;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RECONNECT_AFTER) => {}
        }
    }
}

/// Hands one read entry (or nothing pushed) to `latest`.
fn hand_over(latest: &LatestConfig, revision: i64, entry: Option<Entry>) {
    match entry {
        None => {
            if latest.revision().is_none() {
                tracing::warn!(
                    "no config has been pushed to etcd yet: serving nothing until one is \
                     (`switchyard push PATH --etcd URL`)"
                );
            }
            latest.read(revision, None);
        }
        Some(entry) => {
            if latest.revision() != Some(entry.revision) {
                tracing::info!(
                    revision = entry.revision,
                    "a pushed config was read from etcd"
                );
            }
            latest.read(entry.revision, Some(entry.record));
        }
    }
}

/// One session: the newest config, then every new push, until a failure.
async fn session(
    options: &EtcdOptions,
    latest: &LatestConfig,
    failures: &mut u32,
) -> Result<(), SessionError> {
    let prefix = options.prefix.as_str();
    let mut store = Store::connect(options).await?;
    let (revision, newest) = store.latest().await?;
    if *failures > 0 {
        tracing::info!("etcd answers again: following the pushed config");
    }
    *failures = 0;
    hand_over(latest, revision, newest);
    let watch_options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let mut watch = store
        .client()
        .watch(history_prefix(prefix), Some(watch_options))
        .await?;
    loop {
        let news = watch
            .message()
            .await?
            .ok_or(SessionError::Closed("watch"))?;
        if news.canceled() {
            return Err(SessionError::Closed("watch"));
        }
        // The newest push of the batch; deletions are the history's trimming.
        let newest = news
            .events()
            .iter()
            .filter(|e| e.event_type() == EventType::Put)
            .filter_map(|e| {
                let kv = e.kv()?;
                Some(entry_of(sequence_of(prefix, kv.key_str().ok()?)?, kv))
            })
            .max_by_key(|entry| entry.sequence);
        if let Some(entry) = newest {
            hand_over(latest, entry.revision, Some(entry));
        }
    }
}
