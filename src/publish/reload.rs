//! The config source's driver: waits for the watcher (or, for a config kept in etcd, a new
//! push), a forced reload (SIGHUP) or a timer; lets a burst of file events settle; reads the
//! files (or takes the newest push) and offers new content to the publisher —
//! all of the reading, parsing and translating on a blocking thread, so the async runtime
//! keeps answering clients and the admin port whatever the config's size.
//!
//! Content is fingerprinted: a read that finds exactly what was last loaded stops there, so
//! touching a file costs one read, and a rejected content is reported once, not once per
//! event. Must not: decide what is served (the publisher does) or know YAML (config does).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio::sync::Notify;
use tokio::time::Duration;
use tokio_util::sync::CancellationToken;

use sha2::{Digest, Sha256};

use crate::cluster::pushed::latest::LatestConfig;
use crate::config::certificates::{self, ReferencedFile};
use crate::config::{self, source, watch::ConfigWatch, ReadLimits, TemplateInputs};
use crate::metrics::Metrics;

use super::liveness::ReloadLiveness;
use super::status::ConfigStatus;
use super::{Offered, Publisher};

/// How long the files must stay quiet after an event before they are read.
pub const QUIET: Duration = Duration::from_millis(50);
/// The longest a steady stream of events can put a read off.
pub const SETTLE_AT_MOST: Duration = Duration::from_secs(2);
/// How long after a load the memory it freed is trimmed.
const TRIM_AFTER: Duration = Duration::from_secs(2);

/// Why the files are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The first read at start.
    Start,
    /// The watcher saw a change.
    Changed,
    /// Asked for (SIGHUP): load even if the content is what was last loaded.
    Forced,
    /// A held-back edit's grace period is over: apply it if the files are still as they were.
    GraceOver,
}

/// Where the config is read from.
#[derive(Clone)]
pub enum Origin {
    /// A file or a folder of them.
    Files(PathBuf),
    /// The newest config pushed to etcd, as last read from it.
    Pushed(Arc<LatestConfig>),
}

/// Reads a config path and offers what is new in it to a publisher.
pub struct Reloader {
    origin: Origin,
    limits: ReadLimits,
    /// Values templates take from outside the files, the same for every load.
    inputs: TemplateInputs,
    publisher: Arc<Publisher>,
    status: Arc<RwLock<ConfigStatus>>,
    metrics: Arc<Metrics>,
    last_fingerprint: Mutex<Option<String>>,
    /// The files the last load read besides the YAML (certificates), with their digests.
    referenced: Mutex<Vec<ReferencedFile>>,
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        limits: ReadLimits,
        publisher: Arc<Publisher>,
        status: Arc<RwLock<ConfigStatus>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        status.write().unwrap_or_else(|e| e.into_inner()).config = path.display().to_string();
        Reloader {
            origin: Origin::Files(path),
            limits,
            inputs: TemplateInputs::default(),
            publisher,
            status,
            metrics,
            last_fingerprint: Mutex::new(None),
            referenced: Mutex::new(Vec::new()),
        }
    }

    /// The reloader, loading with `inputs` (template parameters and the like).
    pub fn with_inputs(mut self, inputs: TemplateInputs) -> Self {
        self.inputs = inputs;
        self
    }

    /// The reloader, reading the config pushed to etcd instead of files.
    pub fn with_pushed(mut self, latest: Arc<LatestConfig>) -> Self {
        self.status_mut().config = latest.describe();
        self.origin = Origin::Pushed(latest);
        self
    }

    /// The config as it is now.
    fn read_sources(&self) -> source::Sources {
        match &self.origin {
            Origin::Files(path) => source::read_sources(path, &self.limits),
            Origin::Pushed(latest) => {
                let sources = latest.sources();
                self.status_mut().config = latest.describe();
                sources
            }
        }
    }

    /// Reads the files and handles what they hold. Blocking; returns None when the content
    /// was already loaded.
    pub fn reload(&self, trigger: Trigger) -> Option<Offered> {
        let started = Instant::now();
        let sources = self.read_sources();
        self.status_mut().reads += 1;
        // A renewed certificate file is new content even when no YAML changed.
        let referenced_now = certificates::digests_now(&self.referenced_files());
        let fingerprint = combined_fingerprint(&sources.fingerprint, &referenced_now);
        if trigger == Trigger::GraceOver
            && self.publisher.pending_fingerprint().as_deref() == Some(fingerprint.as_str())
        {
            self.publisher.apply_pending(Instant::now());
            return Some(Offered::Accepted);
        }
        {
            let mut last = self
                .last_fingerprint
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if trigger != Trigger::Forced && last.as_deref() == Some(fingerprint.as_str()) {
                self.status_mut().unchanged_reads += 1;
                return None;
            }
            *last = Some(fingerprint.clone());
        }
        let bytes = sources.total_bytes() as u64;
        let loaded = config::load_sources_with(&sources, &self.limits, &self.inputs);
        // What the load read may differ from what was digested above (another set of files,
        // or a file written in between): remember the content that was loaded.
        let fingerprint = combined_fingerprint(&sources.fingerprint, &loaded.referenced);
        *self
            .last_fingerprint
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(fingerprint.clone());
        *self.referenced.lock().unwrap_or_else(|e| e.into_inner()) = loaded.referenced.clone();
        drop(sources);
        let offered = self.publisher.offer(loaded, &fingerprint, Instant::now());
        let elapsed = started.elapsed();
        let outcome = match offered {
            Offered::Accepted => "accepted",
            Offered::Rejected => "rejected",
            Offered::Held => "held",
        };
        self.metrics.config_loaded(outcome, elapsed);
        let mut status = self.status_mut();
        status.loads += 1;
        status.last_load_milliseconds = elapsed.as_millis() as u64;
        status.last_load_bytes = bytes;
        status.files_fingerprint = fingerprint;
        tracing::info!(
            ?trigger,
            outcome = ?offered,
            bytes,
            milliseconds = elapsed.as_millis() as u64,
            "config loaded"
        );
        Some(offered)
    }

    /// The files the last load read besides the YAML, to watch.
    pub fn referenced_files(&self) -> Vec<PathBuf> {
        let referenced = self.referenced.lock().unwrap_or_else(|e| e.into_inner());
        referenced.iter().map(|file| file.path.clone()).collect()
    }

    fn status_mut(&self) -> std::sync::RwLockWriteGuard<'_, ConfigStatus> {
        self.status.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `reloader.reload` on a blocking thread.
pub async fn reload_off_runtime(reloader: &Arc<Reloader>, trigger: Trigger) -> Option<Offered> {
    let reloader = reloader.clone();
    tokio::task::spawn_blocking(move || reloader.reload(trigger))
        .await
        .unwrap_or_else(|error| {
            tracing::error!(%error, "loading the config failed unexpectedly");
            None
        })
}

/// Reloads on every change, on every `force` and when a timer of the publisher (draining, a
/// held-back edit) is due; returns when `shutdown` is cancelled, even while a read is stuck.
pub async fn run(
    reloader: Arc<Reloader>,
    changes: Changes,
    force: Arc<Notify>,
    liveness: Arc<ReloadLiveness>,
    shutdown: CancellationToken,
) {
    // The memory a load freed is given back a little later, off the path of the push (the
    // first load happened before this loop started).
    let mut trim_at = Some(Instant::now() + TRIM_AFTER);
    // The certificate files the first load read.
    let files = reloader.referenced_files();
    if !changes
        .on_watch(&shutdown, move |watch| watch.set_referenced(files))
        .await
    {
        return;
    }
    loop {
        let deadline = reloader.publisher.next_deadline();
        let trigger = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sleep_until(trim_at) => {
                trim_at = None;
                let _ = tokio::task::spawn_blocking(crate::memory::trim).await;
                continue;
            }
            _ = changes.changed() => {
                changes.settle().await;
                Trigger::Changed
            }
            _ = force.notified() => Trigger::Forced,
            // A ramp started: the next deadline may be sooner than the one slept on.
            _ = reloader.publisher.woken() => continue,
            _ = sleep_until(deadline) => {
                let publisher = reloader.publisher.clone();
                let grace_over = tokio::task::spawn_blocking(move || publisher.on_timer(Instant::now()))
                    .await
                    .unwrap_or(false);
                if !grace_over {
                    continue;
                }
                Trigger::GraceOver
            }
        };
        if !changes.on_watch(&shutdown, ConfigWatch::rearm).await {
            return;
        }
        liveness.attempt_started(Instant::now());
        let loaded = tokio::select! {
            _ = shutdown.cancelled() => return,
            offered = reload_off_runtime(&reloader, trigger) => offered,
        };
        liveness.attempt_finished();
        if loaded.is_some() {
            trim_at = Some(Instant::now() + TRIM_AFTER);
        }
        let files = reloader.referenced_files();
        if !changes
            .on_watch(&shutdown, move |watch| watch.set_referenced(files))
            .await
        {
            return;
        }
    }
}

/// What says the config may have changed.
pub enum Changes {
    /// The watch of the files.
    Files(Arc<ConfigWatch>),
    /// A new push read from etcd.
    Pushed(Arc<LatestConfig>),
}

impl Changes {
    async fn changed(&self) {
        match self {
            Changes::Files(watch) => watch.changed().await,
            Changes::Pushed(latest) => latest.changed().await,
        }
    }

    /// Lets a burst of file events settle (a push comes whole).
    async fn settle(&self) {
        if let Changes::Files(watch) = self {
            settle(watch).await;
        }
    }

    /// Runs `call` on the file watch, if there is one (see [`watch_off_runtime`]).
    async fn on_watch(
        &self,
        shutdown: &CancellationToken,
        call: impl FnOnce(&ConfigWatch) + Send + 'static,
    ) -> bool {
        match self {
            Changes::Files(watch) => watch_off_runtime(watch, shutdown, call).await,
            Changes::Pushed(_) => !shutdown.is_cancelled(),
        }
    }
}

/// Runs a blocking call on the watch (it touches the file system and waits for notify's
/// thread) on a blocking thread; false when `shutdown` came first.
async fn watch_off_runtime(
    watch: &Arc<ConfigWatch>,
    shutdown: &CancellationToken,
    call: impl FnOnce(&ConfigWatch) + Send + 'static,
) -> bool {
    let watch = watch.clone();
    let done = tokio::task::spawn_blocking(move || call(&watch));
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = done => true,
    }
}

/// Waits until no event has come for [`QUIET`], or [`SETTLE_AT_MOST`] has passed.
async fn settle(watch: &ConfigWatch) {
    let started = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = watch.changed() => {
                if started.elapsed() >= SETTLE_AT_MOST {
                    return;
                }
            }
            _ = tokio::time::sleep(QUIET) => return,
        }
    }
}

/// The YAML's fingerprint extended with the digests of the files it names, so that equal
/// fingerprints still mean equal configs.
fn combined_fingerprint(yaml: &str, referenced: &[ReferencedFile]) -> String {
    if referenced.is_empty() {
        return yaml.to_string();
    }
    let mut hasher = Sha256::new();
    hasher.update(yaml.as_bytes());
    for file in referenced {
        hasher.update(file.path.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        hasher.update(file.digest.as_bytes());
    }
    format!("{:x}", hasher.finalize())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await,
        None => std::future::pending().await,
    }
}
