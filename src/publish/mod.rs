//! Publishing: turns validated configs into snapshots in the cache. Keeps the endpoints an
//! edit removed DRAINING for their service's drainingTimeoutSec; holds back an edit that
//! would withdraw most of what is served (a truncated or half-written file looks like that)
//! until the files have stayed unchanged for a grace period; and keeps the config status.
//! Sources of endpoint status besides the config (the health checker) report through
//! [`Publisher::report_endpoints`], which re-publishes endpoints and nothing else. With a
//! measured load attached, the timer also takes capacity decisions every load-report interval
//! and re-publishes the endpoints of the services whose shares moved (at most once per
//! service per interval).
//!
//! Everything here is synchronous and may take long on a large config (translation and
//! encoding): callers run it off the async runtime. Must not: read files (the reload loop in
//! [`reload`] does) or talk to clients (the cache does).

pub mod access;
pub mod capacity_feed;
mod diagnostic_log;
pub mod endpoint_sources;
pub mod guard;
pub mod liveness;
pub mod load_feed;
pub mod reload;
pub mod slow_start;
pub mod status;
mod views;
pub mod wall_clock;

pub use views::{content_of, content_with};
use views::{endpoint_views_changing, endpoints_with};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::capacity::measured::MeasuredLoad;
use crate::capacity::report::CapacityBoard;
use crate::config::Loaded;
use crate::metrics::Metrics;
use crate::model::{DrainingEndpoint, Model};
use crate::translate::endpoints::Overlay;
use crate::translate::{self, endpoints, Resources};
use crate::xds::server::Cache;

use capacity_feed::CapacityFeed;
use endpoint_sources::{EndpointReport, EndpointSource, Layers};
use guard::{Removal, ServedNames};
use status::{ConfigStatus, LoadOutcome, PendingRemovalStatus};

/// How long an edit that withdraws most of what is served waits, by default.
pub const DEFAULT_REMOVAL_GRACE: Duration = Duration::from_secs(10);

/// What became of a config offered to the publisher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    Accepted,
    Rejected,
    /// Valid but held back by the removal guard; applied when the grace period ends.
    Held,
}

/// An edit held back by the removal guard.
struct Pending {
    loaded: Loaded,
    fingerprint: String,
    deadline: Instant,
}

/// What is served, and what is on its way in or out.
#[derive(Default)]
struct Served {
    model: Arc<Model>,
    /// The endpoints `model` serves (kept to compare the next config with).
    endpoints: BTreeSet<DrainingEndpoint>,
    names: ServedNames,
    /// Whether any config has been published yet.
    published: bool,
    /// Endpoints removed by an edit, kept DRAINING until their time.
    draining: BTreeMap<DrainingEndpoint, Instant>,
    /// What sources besides the config report about the endpoints.
    layers: Layers,
    /// Endpoints ramping up, for clients without slow start of their own.
    ramps: slow_start::RampState,
    /// Capacity decided from measured load, when a load source is attached.
    capacity: Option<CapacityFeed>,
    pending: Option<Pending>,
    /// What the log has said about configs (each warning, note and rejection once).
    log: diagnostic_log::DiagnosticLog,
}

impl Served {
    /// Builds with the served model and what changes its endpoints as of `now`: endpoints
    /// draining, the health sources report, and slow-start ramps.
    fn with_overlay<R>(&mut self, now: Instant, build: impl FnOnce(&Model, Overlay<'_>) -> R) -> R {
        let draining: Vec<DrainingEndpoint> = self.draining.keys().cloned().collect();
        let fractions = self.ramps.fractions(slow_start::Moment::at(now));
        let overlay = Overlay {
            draining: &draining,
            health: self.layers.combined(),
            ramps: &fractions,
            capacity: self
                .capacity
                .as_ref()
                .map(|feed| &feed.shares)
                .unwrap_or(&crate::translate::capacity_shares::NO_SHARES),
        };
        build(&self.model, overlay)
    }
}

/// Turns accepted configs into snapshots in the cache.
pub struct Publisher {
    cache: Cache,
    status: Arc<RwLock<ConfigStatus>>,
    metrics: Arc<Metrics>,
    removal_grace: Duration,
    sources: Vec<Arc<dyn EndpointSource>>,
    served: Mutex<Served>,
    /// Signalled when a timer deadline may have come closer (a ramp started).
    wake: tokio::sync::Notify,
    /// The model served, for parts that follow configs (what load to ask clients for).
    models: tokio::sync::watch::Sender<Arc<Model>>,
}

impl Publisher {
    pub fn new(
        cache: Cache,
        status: Arc<RwLock<ConfigStatus>>,
        metrics: Arc<Metrics>,
        removal_grace: Duration,
    ) -> Self {
        Publisher {
            cache,
            status,
            metrics,
            removal_grace,
            sources: Vec::new(),
            served: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            models: tokio::sync::watch::Sender::new(Arc::default()),
        }
    }

    /// The model served, now and after each accepted config.
    pub fn served_models(&self) -> tokio::sync::watch::Receiver<Arc<Model>> {
        self.models.subscribe()
    }

    /// Adds a source of endpoint status, asked for its layer whenever a config is served.
    pub fn with_source(mut self, source: Arc<dyn EndpointSource>) -> Self {
        self.sources.push(source);
        self
    }

    /// Takes capacity decisions from `load` every `interval` (the load-report interval) and
    /// posts how they came about on `board`.
    pub fn with_measured_load(
        self,
        load: Arc<dyn MeasuredLoad>,
        interval: Duration,
        board: Arc<CapacityBoard>,
    ) -> Self {
        self.lock().capacity = Some(CapacityFeed::new(load, interval, board));
        self
    }

    /// Serves `loaded` if it is valid and withdraws no more than the guard allows; holds it
    /// back if it withdraws more; else keeps what is served and says why. `fingerprint`
    /// identifies the file content it came from.
    pub fn offer(&self, loaded: Loaded, fingerprint: &str, now: Instant) -> Offered {
        let guarded = !self.removal_grace.is_zero();
        self.consider(&mut self.lock(), loaded, fingerprint, now, guarded)
    }

    fn consider(
        &self,
        served: &mut Served,
        loaded: Loaded,
        fingerprint: &str,
        now: Instant,
        guarded: bool,
    ) -> Offered {
        if loaded.diagnostics.has_errors() {
            // A held edit only stands while the files stay as they were.
            served.pending = None;
            self.reject(served, loaded, fingerprint);
            return Offered::Rejected;
        }
        let kept = endpoints::served_endpoints(&loaded.model);
        let draining = draining_after(served, &loaded.model, &kept, now);
        // Endpoints come last: only a config that is served is shown to endpoint sources.
        let mut resources = translate::translate_except_endpoints(&loaded.model);
        let names = ServedNames::of(&resources);
        let guarded = guarded && served.published;
        if let Some(removal) = guarded
            .then(|| guard::assess(&served.names, &names))
            .flatten()
        {
            drop(resources);
            self.hold(served, loaded, fingerprint, removal, now);
            return Offered::Held;
        }
        let mut layers = Layers::default();
        for source in &self.sources {
            layers.set(source.name(), source.adopt(&loaded.model));
        }
        resources.endpoints = endpoints_with(&loaded.model, &draining, layers.combined());
        served.pending = None;
        served.draining = draining;
        served.ramps.observe(
            &loaded.model,
            layers.combined(),
            &slow_start::StatusTimes::new(),
            slow_start::Moment::at(now),
        );
        served.layers = layers;
        served.endpoints = kept;
        served.model = Arc::new(loaded.model);
        served.names = names;
        served.log.accepted(&loaded.diagnostics);
        self.publish(served, resources, now);
        self.models.send_replace(served.model.clone());
        self.status_mut()
            .record_load(LoadOutcome::Accepted, loaded.diagnostics, None);
        Offered::Accepted
    }

    /// The fingerprint of the content held back, if any.
    pub fn pending_fingerprint(&self) -> Option<String> {
        self.lock().pending.as_ref().map(|p| p.fingerprint.clone())
    }

    /// Serves the held-back edit (its grace period is over and the files did not change).
    pub fn apply_pending(&self, now: Instant) {
        let mut served = self.lock();
        let Some(pending) = served.pending.take() else {
            return;
        };
        tracing::warn!(
            "applying the held-back edit: the files stayed unchanged for the {}s grace period",
            self.removal_grace.as_secs_f64()
        );
        self.consider(
            &mut served,
            pending.loaded,
            &pending.fingerprint,
            now,
            false,
        );
    }

    /// Drops endpoints whose draining time is up and steps the slow-start ramps. Returns true
    /// when the held-back edit's grace period is over (the caller checks the files and
    /// applies it).
    pub fn on_timer(&self, now: Instant) -> bool {
        let mut served = self.lock();
        if served.draining.values().any(|until| *until <= now) {
            served.draining.retain(|_, until| *until > now);
            let mut resources = translate::translate_except_endpoints(&served.model);
            resources.endpoints =
                endpoints_with(&served.model, &served.draining, served.layers.combined());
            self.publish(&mut served, resources, now);
        }
        let moment = slow_start::Moment::at(now);
        if served
            .ramps
            .next_step(moment)
            .is_some_and(|step| step <= now)
        {
            self.step_ramps(&mut served, now);
        }
        if served
            .capacity
            .as_ref()
            .is_some_and(|feed| feed.next_step() <= now)
        {
            self.step_capacity(&mut served, now);
        }
        served.pending.as_ref().is_some_and(|p| p.deadline <= now)
    }

    /// When [`Publisher::on_timer`] has something to do next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let served = self.lock();
        let drain = served.draining.values().min().copied();
        let pending = served.pending.as_ref().map(|p| p.deadline);
        let ramp = served
            .ramps
            .next_step(slow_start::Moment::at(Instant::now()));
        let capacity = served.capacity.as_ref().map(CapacityFeed::next_step);
        drain
            .into_iter()
            .chain(pending)
            .chain(ramp)
            .chain(capacity)
            .min()
    }

    /// Completes when a deadline may have come closer than the one last asked for.
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// Re-publishes the endpoints of the services ramping up, one step further.
    fn step_ramps(&self, served: &mut Served, now: Instant) {
        let ramping = served.ramps.ramping();
        served.ramps.stepped(slow_start::Moment::at(now));
        let changed: BTreeSet<&str> = ramping.iter().map(String::as_str).collect();
        self.publish_endpoint_changes(served, &changed, now);
    }

    /// Takes the next capacity decision and re-publishes the endpoints of the services whose
    /// shares moved.
    fn step_capacity(&self, served: &mut Served, now: Instant) {
        let Served {
            capacity,
            model,
            layers,
            published,
            ..
        } = served;
        let Some(feed) = capacity.as_mut() else {
            return;
        };
        let changed = feed.step(model, layers.combined(), &self.metrics, now);
        if !*published {
            return;
        }
        let changed: BTreeSet<&str> = changed
            .iter()
            .map(String::as_str)
            .filter(|service| served.model.services.contains_key(*service))
            .collect();
        if !changed.is_empty() && self.publish_endpoint_changes(served, &changed, now) {
            tracing::debug!(
                services = changed.len(),
                version = %self.cache.current().version,
                "capacity shares re-published"
            );
        }
    }

    /// Rebuilds the endpoint views of `changed` services and publishes them.
    fn publish_endpoint_changes(
        &self,
        served: &mut Served,
        changed: &BTreeSet<&str>,
        now: Instant,
    ) -> bool {
        let current = self.cache.current();
        let views = served.with_overlay(now, |model, overlay| {
            endpoint_views_changing(model, &current, changed, overlay)
        });
        let metrics = &self.metrics;
        let published = self.cache.publish_endpoints(views, |snapshot| {
            metrics.snapshot_published(&snapshot.version);
        });
        if published {
            self.status_mut().serving_version = self.cache.current().version.clone();
        }
        published
    }

    /// Takes a source's changes of endpoint status and re-publishes the endpoints of the
    /// services whose status changed — no listener, route or cluster is translated or sent.
    /// Returns whether anything was published.
    pub fn report_endpoints(&self, source: &'static str, reports: &[EndpointReport]) -> bool {
        let mut served = self.lock();
        let now = Instant::now();
        let mut changed = served.layers.apply(source, reports);
        let model = served.model.clone();
        let Served { ramps, layers, .. } = &mut *served;
        let times: slow_start::StatusTimes = reports
            .iter()
            .filter_map(|report| Some(((report.service.clone(), report.address), report.since?)))
            .collect();
        let ramps_changed = ramps.observe(
            &model,
            layers.combined(),
            &times,
            slow_start::Moment::at(now),
        );
        if !ramps_changed.is_empty() {
            self.wake.notify_one();
        }
        changed.extend(ramps_changed);
        let changed: BTreeSet<&str> = changed
            .iter()
            .map(String::as_str)
            .filter(|service| served.model.services.contains_key(*service))
            .collect();
        if changed.is_empty() || !served.published {
            return false;
        }
        let published = self.publish_endpoint_changes(&mut served, &changed, now);
        if published {
            tracing::debug!(
                source,
                services = changed.len(),
                version = %self.cache.current().version,
                "endpoint status re-published"
            );
        }
        published
    }

    fn reject(&self, served: &mut Served, loaded: Loaded, fingerprint: &str) {
        if !served.log.rejected(fingerprint, &loaded.diagnostics) {
            tracing::debug!("the same files as the last rejected ones; still rejected");
        } else if served.published {
            tracing::error!(
                "config change rejected; still serving version {}",
                self.cache.current().version
            );
        } else {
            tracing::error!("the config is not valid; nothing is served until it is fixed");
        }
        self.status_mut()
            .record_load(LoadOutcome::Rejected, loaded.diagnostics, None);
    }

    fn hold(
        &self,
        served: &mut Served,
        loaded: Loaded,
        fingerprint: &str,
        removal: Removal,
        now: Instant,
    ) {
        let deadline = match &served.pending {
            Some(pending) if pending.fingerprint == fingerprint => pending.deadline,
            _ => {
                tracing::warn!(
                    "holding back an edit: {}; it would remove listeners {}, routes {}, clusters {}. It is applied in {}s if the files stay as they are; write them again to cancel (a truncated or half-written file looks like this)",
                    removal.reason,
                    sample(&removal.listeners),
                    sample(&removal.routes),
                    sample(&removal.clusters),
                    self.removal_grace.as_secs_f64(),
                );
                now + self.removal_grace
            }
        };
        let applies_in = deadline.saturating_duration_since(now);
        let held = PendingRemovalStatus {
            removal,
            grace_seconds: self.removal_grace.as_secs(),
            applies_at_unix: (SystemTime::now() + applies_in)
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        self.status_mut().record_load(
            LoadOutcome::PendingRemoval,
            loaded.diagnostics.clone(),
            Some(held),
        );
        served.pending = Some(Pending {
            loaded,
            fingerprint: fingerprint.to_string(),
            deadline,
        });
    }

    fn publish(&self, served: &mut Served, resources: Resources, now: Instant) {
        served.published = true;
        let content = served.with_overlay(now, |model, overlay| {
            content_with(model, resources, overlay)
        });
        let metrics = &self.metrics;
        let published = self.cache.publish_observed(content, |snapshot| {
            metrics.snapshot_published(&snapshot.version);
        });
        if published {
            tracing::info!(version = %self.cache.current().version, draining = served.draining.len(), "serving a new config");
        }
        let mut status = self.status_mut();
        status.serving = true;
        status.serving_version = self.cache.current().version.clone();
        status.draining_count = served.draining.len();
        status.inputs.clone_from(&served.model.inputs);
        status.draining = served
            .draining
            .iter()
            .take(status::DRAINING_SHOWN)
            .map(|(endpoint, until)| {
                format!(
                    "{} {} ({}s left)",
                    endpoint.service,
                    endpoint.address,
                    until.saturating_duration_since(now).as_secs()
                )
            })
            .collect();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Served> {
        self.served.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn status_mut(&self) -> std::sync::RwLockWriteGuard<'_, ConfigStatus> {
        self.status.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The draining set after serving `next`, whose endpoints are `kept`: what is draining now
/// and still gone, plus the endpoints the served config had and `next` drops, each until its
/// service's drainingTimeoutSec is up.
fn draining_after(
    served: &Served,
    next: &Model,
    kept: &BTreeSet<DrainingEndpoint>,
    now: Instant,
) -> BTreeMap<DrainingEndpoint, Instant> {
    let mut draining = served.draining.clone();
    for removed in served.endpoints.difference(kept) {
        let timeout = served
            .model
            .services
            .get(&removed.service)
            .map(|s| s.draining_timeout)
            .unwrap_or_default();
        if !timeout.is_zero() {
            let until = now + timeout;
            draining.entry(removed.clone()).or_insert(until);
        }
    }
    draining.retain(|endpoint, until| {
        *until > now && !kept.contains(endpoint) && next.services.contains_key(&endpoint.service)
    });
    draining
}

/// Up to ten names, for a log line.
fn sample(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_string();
    }
    let shown: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
    match names.len() {
        n if n > 10 => format!("{} and {} more", shown.join(", "), n - 10),
        _ => shown.join(", "),
    }
}

impl crate::model::endpoint_facts::EndpointReports for Publisher {
    fn report_endpoints(&self, source: &'static str, reports: &[EndpointReport]) -> bool {
        Publisher::report_endpoints(self, source, reports)
    }
}
