//! The load the sidecar sends each cluster, per upstream locality, as Envoy keeps it for load
//! reports: requests issued, answered successfully, failed (a 5xx answer, or none: connect
//! failure, reset, timeout) and in progress. Each locality's counters are atomics made once,
//! when an EDS update first names the locality, and handed to the balancer's hosts, so a
//! request only bumps counters it already holds (no lock, no lookup). [`LoadStore`] keeps the
//! counters across config updates and gives the LRS client what accumulated since it last
//! took it.
//!
//! Two differences from Envoy, both from where hyper lets the sidecar see an attempt: an
//! attempt counts as issued when it starts, connect failures included (Envoy counts it once
//! a connection carries it), and it is in progress until the answer's head arrives (Envoy:
//! until the stream ends), as the least-request balancer's count is.
//!
//! Must not: lock or allocate per request, or know how the load is reported.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::resources::endpoint::{Assignment, LocalityEndpoints};

/// The counters of one locality of one cluster: totals since they were made, one bump when
/// an attempt starts and one when it ends (in progress is what started and has not ended). On
/// a cache line of their own, as every worker bumps them.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct LocalityCounters {
    issued: AtomicU64,
    successful: AtomicU64,
    errors: AtomicU64,
    /// Ended as neither success nor error.
    uncounted: AtomicU64,
}

/// How an attempt that was counted as issued ended, for the load report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The endpoint answered, other than 5xx.
    Success,
    /// A 5xx answer, or none (connect failure, reset, timeout).
    Error,
    /// Neither: the client's own request body failed, which is no fault of the endpoint.
    Uncounted,
}

impl Ended {
    /// What an answer with `status` counts as.
    pub fn of_status(status: http::StatusCode) -> Ended {
        if status.is_server_error() {
            Ended::Error
        } else {
            Ended::Success
        }
    }
}

/// An attempt in progress; it ends as [`Issued::end`] says, or uncounted when dropped first
/// (the client went away and the attempt was abandoned, as Envoy does not charge it either).
#[must_use]
pub struct Issued<'a> {
    counters: &'a LocalityCounters,
    ended: Ended,
}

impl Issued<'_> {
    /// The attempt has its answer (or none).
    pub fn end(mut self, ended: Ended) {
        self.ended = ended;
    }
}

impl Drop for Issued<'_> {
    fn drop(&mut self) {
        let counters = self.counters;
        let total = match self.ended {
            Ended::Success => &counters.successful,
            Ended::Error => &counters.errors,
            Ended::Uncounted => &counters.uncounted,
        };
        total.fetch_add(1, Ordering::Relaxed);
    }
}

impl LocalityCounters {
    /// An attempt to an endpoint of the locality starts; it is in progress while the answer
    /// lives.
    pub fn issue(&self) -> Issued<'_> {
        self.issued.fetch_add(1, Ordering::Relaxed);
        Issued {
            counters: self,
            ended: Ended::Uncounted,
        }
    }

    /// The totals now. The ends are read before the starts, so that what is in progress
    /// never comes out below zero.
    fn totals(&self) -> Totals {
        let successful = self.successful.load(Ordering::Acquire);
        let errors = self.errors.load(Ordering::Acquire);
        let uncounted = self.uncounted.load(Ordering::Acquire);
        Totals {
            issued: self.issued.load(Ordering::Acquire),
            successful,
            errors,
            uncounted,
        }
    }
}

/// A locality's totals at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Totals {
    issued: u64,
    successful: u64,
    errors: u64,
    uncounted: u64,
}

impl Totals {
    /// What was counted from `earlier` to these totals, and what is in progress now.
    fn since(&self, earlier: &Totals) -> LocalityLoad {
        let ended = self.successful + self.errors + self.uncounted;
        LocalityLoad {
            issued: self.issued - earlier.issued,
            successful: self.successful - earlier.successful,
            errors: self.errors - earlier.errors,
            in_progress: self.issued.saturating_sub(ended),
        }
    }
}

/// What one locality counted over one period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalityLoad {
    pub issued: u64,
    pub successful: u64,
    pub errors: u64,
    /// At the end of the period.
    pub in_progress: u64,
}

impl LocalityLoad {
    fn is_zero(&self) -> bool {
        *self == LocalityLoad::default()
    }
}

/// An upstream locality of a cluster, at its priority, as EDS names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct UpstreamLocality {
    pub region: String,
    pub zone: String,
    pub sub_zone: String,
    pub priority: u32,
}

impl UpstreamLocality {
    fn of(endpoints: &LocalityEndpoints) -> UpstreamLocality {
        UpstreamLocality {
            region: endpoints.region.clone(),
            zone: endpoints.zone.clone(),
            sub_zone: endpoints.sub_zone.clone(),
            priority: endpoints.priority,
        }
    }
}

/// What a cluster sent over one period, for one load report.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterLoad {
    pub cluster: String,
    /// The name its endpoints come under (EDS).
    pub service_name: String,
    /// Localities that counted anything, or have (or just had) requests in progress.
    pub localities: Vec<(UpstreamLocality, LocalityLoad)>,
    /// When the period began (the last take, or when the counters were made).
    pub since: Instant,
}

struct TrackedLocality {
    counters: Arc<LocalityCounters>,
    /// The config round that last named it.
    round: u64,
    /// The totals at the last take.
    taken: Totals,
}

struct TrackedCluster {
    service_name: String,
    since: Instant,
    localities: BTreeMap<UpstreamLocality, TrackedLocality>,
    round: u64,
}

/// Config rounds a retired locality's counts wait for a report at most, so that localities
/// the LRS server never asks about cannot pile up.
const KEEP_RETIRED_ROUNDS: u64 = 16;

impl TrackedLocality {
    /// Whether retired counters may still be reported: a request or balancer still counts on
    /// them, or they hold counts not yet taken, and they retired recently.
    fn worth_keeping(&self, round: u64) -> bool {
        let held = Arc::strong_count(&self.counters) > 1;
        let counted = self.counters.totals() != self.taken;
        round - self.round <= KEEP_RETIRED_ROUNDS && (held || counted)
    }
}

#[derive(Default)]
struct Tracked {
    clusters: BTreeMap<String, TrackedCluster>,
    round: u64,
}

/// Every cluster's counters, kept across config updates. Counters a new config no longer
/// names stay until their counts are taken (when load is reported) and no request or
/// balancer holds them; when nothing reports, they go with the config that dropped them.
pub struct LoadStore {
    reported: bool,
    tracked: Mutex<Tracked>,
}

impl LoadStore {
    /// `reported`: whether an LRS client takes the counts.
    pub fn new(reported: bool) -> LoadStore {
        LoadStore {
            reported,
            tracked: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.tracked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts building a config: what it names from now on is current.
    pub fn begin_round(&self) {
        self.lock().round += 1;
    }

    /// The counters of each locality of `assignment` (in its order) for cluster `name`: the
    /// ones already made, or new ones.
    pub fn counters(
        &self,
        name: &str,
        service_name: &str,
        assignment: Option<&Assignment>,
    ) -> Vec<Arc<LocalityCounters>> {
        let mut tracked = self.lock();
        let round = tracked.round;
        let cluster = tracked
            .clusters
            .entry(name.to_string())
            .or_insert_with(|| TrackedCluster {
                service_name: service_name.to_string(),
                since: Instant::now(),
                localities: BTreeMap::new(),
                round,
            });
        cluster.round = round;
        cluster.service_name = service_name.to_string();
        let localities = assignment.map_or(&[][..], |a| a.localities.as_slice());
        localities
            .iter()
            .map(|endpoints| {
                let locality = cluster
                    .localities
                    .entry(UpstreamLocality::of(endpoints))
                    .or_insert_with(|| TrackedLocality {
                        counters: Arc::default(),
                        round,
                        taken: Totals::default(),
                    });
                locality.round = round;
                locality.counters.clone()
            })
            .collect()
    }

    /// The config is built: what it did not name is retired (and dropped, when no one
    /// reports load).
    pub fn end_round(&self) {
        let mut tracked = self.lock();
        let round = tracked.round;
        let reported = self.reported;
        for cluster in tracked.clusters.values_mut() {
            cluster.localities.retain(|_, locality| {
                locality.round == round || (reported && locality.worth_keeping(round))
            });
        }
        tracked.clusters.retain(|_, cluster| {
            cluster.round == round || (reported && !cluster.localities.is_empty())
        });
    }

    /// The names of the clusters the current config has.
    pub fn current_clusters(&self) -> Vec<String> {
        let tracked = self.lock();
        tracked
            .clusters
            .iter()
            .filter(|(_, cluster)| cluster.round == tracked.round)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// What cluster `name` counted since the last take (None when it has no counters), and
    /// `now` begins its next period. Retired counters nothing holds any longer go.
    pub fn take(&self, name: &str, now: Instant) -> Option<ClusterLoad> {
        let mut tracked = self.lock();
        let round = tracked.round;
        let cluster = tracked.clusters.get_mut(name)?;
        let localities = cluster
            .localities
            .iter_mut()
            .filter_map(|(locality, tracked)| {
                let now = tracked.counters.totals();
                let load = now.since(&tracked.taken);
                // A locality whose last requests ended uncounted is reported once more, so
                // that the server does not keep a stale count in progress.
                let was_in_progress = tracked.taken.since(&Totals::default()).in_progress;
                tracked.taken = now;
                (!load.is_zero() || was_in_progress > 0).then(|| (locality.clone(), load))
            })
            .collect();
        let since = std::mem::replace(&mut cluster.since, now);
        let load = ClusterLoad {
            cluster: name.to_string(),
            service_name: cluster.service_name.clone(),
            localities,
            since,
        };
        // Counted up to now, and no balancer or request can count on them again.
        cluster.localities.retain(|_, locality| {
            locality.round == round || Arc::strong_count(&locality.counters) > 1
        });
        if cluster.round != round && cluster.localities.is_empty() {
            tracked.clusters.remove(name);
        }
        Some(load)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::resources::endpoint::LocalityEndpoints;

    fn assignment(zones: &[&str]) -> Assignment {
        Assignment {
            cluster: "web".into(),
            localities: zones
                .iter()
                .map(|zone| LocalityEndpoints {
                    region: "r".into(),
                    zone: zone.to_string(),
                    sub_zone: String::new(),
                    priority: 0,
                    weight: 1,
                    endpoints: Vec::new(),
                })
                .collect(),
            overprovisioning_factor: 140,
        }
    }

    fn build(store: &LoadStore, zones: &[&str]) -> Vec<Arc<LocalityCounters>> {
        store.begin_round();
        let counters = store.counters("web", "web-eds", Some(&assignment(zones)));
        store.end_round();
        counters
    }

    fn loads(store: &LoadStore) -> Vec<(String, LocalityLoad)> {
        store
            .take("web", Instant::now())
            .unwrap()
            .localities
            .into_iter()
            .map(|(locality, load)| (locality.zone, load))
            .collect()
    }

    #[test]
    fn counts_are_per_locality_and_each_take_starts_a_new_period() {
        let store = LoadStore::new(true);
        let counters = build(&store, &["a", "b"]);
        for ended in [Ended::Success, Ended::Success, Ended::Error] {
            counters[0].issue().end(ended);
        }
        let held = counters[1].issue();
        let counted = loads(&store);
        assert_eq!(
            counted,
            [
                (
                    "a".to_string(),
                    LocalityLoad {
                        issued: 3,
                        successful: 2,
                        errors: 1,
                        in_progress: 0
                    }
                ),
                (
                    "b".to_string(),
                    LocalityLoad {
                        issued: 1,
                        successful: 0,
                        errors: 0,
                        in_progress: 1
                    }
                ),
            ]
        );
        drop(held);
        // b's request ended uncounted: b is reported once more, with nothing in progress.
        assert_eq!(loads(&store), [("b".to_string(), LocalityLoad::default())]);
        assert_eq!(loads(&store), []);
    }

    #[test]
    fn an_update_keeps_the_counters_of_localities_it_still_names() {
        let store = LoadStore::new(true);
        let before = build(&store, &["a", "b"]);
        let issued = before[0].issue();
        let after = build(&store, &["a"]);
        assert!(Arc::ptr_eq(&before[0], &after[0]));
        issued.end(Ended::Success);
        assert_eq!(
            loads(&store),
            [(
                "a".to_string(),
                LocalityLoad {
                    issued: 1,
                    successful: 1,
                    errors: 0,
                    in_progress: 0
                }
            )]
        );
    }

    #[test]
    fn a_retired_locality_is_reported_once_more_then_goes_when_nothing_holds_it() {
        let store = LoadStore::new(true);
        let before = build(&store, &["a", "b"]);
        before[1].issue().end(Ended::Error);
        let held = before[1].clone();
        drop(before);
        build(&store, &["a"]);
        // A request still holds b's counters: it stays through the take.
        assert_eq!(loads(&store)[0].0, "b");
        drop(held);
        assert_eq!(loads(&store), []);
        assert_eq!(store.lock().clusters["web"].localities.len(), 1);

        let unreported = LoadStore::new(false);
        build(&unreported, &["a", "b"]);
        build(&unreported, &["a"]);
        assert_eq!(unreported.lock().clusters["web"].localities.len(), 1);
        unreported.begin_round();
        unreported.end_round();
        assert!(unreported.current_clusters().is_empty());
        assert!(unreported.lock().clusters.is_empty());
    }
}
