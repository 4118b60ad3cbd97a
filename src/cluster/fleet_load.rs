//! The load capacity decisions read when replicas share through etcd: while this replica
//! shares (its lease confirmed within the TTL, itself a member), the sum of the values every
//! live member published, this replica's own included — its published value, not its live
//! window, so that every replica decides from the same inputs and publishes the same shares
//! once the values have reached it. Past the TTL without etcd it falls back to its own window,
//! as a lone replica would (`/cluster` says which). Must not: write anything.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::capacity::measured::{Load, Locality, MeasuredLoad, ReportWindow};

use super::load_sum::SummedLoad;
use super::Replicas;

/// The load capacity decisions read: with replicas, the set's (and this replica publishes
/// what `window` holds every `interval`); alone, `window`.
pub fn load_for_decisions(
    replicas: Option<&Arc<Replicas>>,
    window: Arc<ReportWindow>,
    interval: Duration,
) -> Arc<dyn MeasuredLoad> {
    match replicas {
        Some(replicas) => {
            replicas.load.publish_from(window.clone(), interval);
            Arc::new(FleetLoad::new(replicas.clone(), window))
        }
        None => window,
    }
}

/// The (load values, membership) versions of the view a sum was made from.
type SumStamp = (u64, u64);

/// The replica set's load, or this replica's own when it cannot share.
pub struct FleetLoad {
    replicas: Arc<Replicas>,
    local: Arc<ReportWindow>,
    /// The last sum, and the view it was made from.
    summed: Mutex<Option<(SumStamp, Arc<SummedLoad>)>>,
}

impl FleetLoad {
    pub fn new(replicas: Arc<Replicas>, local: Arc<ReportWindow>) -> FleetLoad {
        FleetLoad {
            replicas,
            local,
            summed: Mutex::new(None),
        }
    }

    /// The members' summed load, or None while this replica does not share.
    fn shared(&self) -> Option<Arc<SummedLoad>> {
        let view = self.replicas.view();
        if !view.sharing(Instant::now()) {
            return None;
        }
        let stamp = (view.loads_version, view.membership);
        let mut summed = self.summed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((made_for, sum)) = &*summed {
            if *made_for == stamp {
                return Some(sum.clone());
            }
        }
        let sum = Arc::new(SummedLoad::of(view.member_loads().map(|(_, load)| load)));
        *summed = Some((stamp, sum.clone()));
        Some(sum)
    }

    /// The load read now: the members' sum, or this replica's window.
    fn current(&self) -> Arc<dyn MeasuredLoad> {
        match self.shared() {
            Some(sum) => sum,
            None => self.local.clone(),
        }
    }
}

impl MeasuredLoad for FleetLoad {
    fn demand(&self, service: &str, client_region: &str) -> Load {
        self.current().demand(service, client_region)
    }

    fn client_regions(&self, service: &str) -> Vec<String> {
        self.current().client_regions(service)
    }

    fn arriving(&self, service: &str, upstream: &Locality) -> Load {
        self.current().arriving(service, upstream)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::capacity::measured::{Report, ReportedCounts, SeriesLoad, WindowSettings};
    use crate::cluster::load_value::{PublishedLoad, MAX_VALUE_BYTES};
    use crate::cluster::view::{Entry, Member};
    use crate::cluster::EtcdOptions;

    fn near() -> Locality {
        Locality {
            region: "us-central1".into(),
            zone: "us-central1-a".into(),
        }
    }

    fn published(rps: f64) -> PublishedLoad {
        let series = SeriesLoad {
            service: "web".into(),
            client_region: "us-central1".into(),
            upstream: near(),
            load: Load {
                requests_per_second: rps,
                ..Load::default()
            },
            utilization_weight: 0.0,
        };
        PublishedLoad::of(vec![series], 0.0, MAX_VALUE_BYTES)
    }

    /// Replica `a` of a set {a, b}, connected, and its window holding 15/s of its own.
    fn replica_a() -> (Arc<Replicas>, FleetLoad) {
        let replicas = Arc::new(Replicas::new(EtcdOptions {
            endpoints: Vec::new(),
            prefix: "/t/".into(),
            replica_name: "a".into(),
            lease: Duration::from_secs(10),
            tls: None,
            user: None,
        }));
        let window = Arc::new(ReportWindow::new(WindowSettings::for_interval(
            Duration::from_secs(1),
        )));
        // The window's clock is its own: reports over 9 s, read at 10 s.
        let start = Instant::now();
        window.advance(start);
        for second in 1..=9 {
            let report = Report {
                client: near(),
                service: "web".into(),
                upstream: vec![(
                    near(),
                    ReportedCounts {
                        issued_requests: 15,
                        ..Default::default()
                    },
                )],
                interval: Duration::from_secs(1),
            };
            window.record(&report, start + Duration::from_secs(second));
        }
        window.advance(start + Duration::from_secs(10));
        let members: BTreeMap<String, Member> = ["a", "b"]
            .into_iter()
            .map(|name| (name.to_string(), Member { granted_unix: 0.0 }))
            .collect();
        replicas
            .view()
            .connected(Instant::now(), members, HashMap::new());
        let load = FleetLoad::new(replicas.clone(), window);
        (replicas, load)
    }

    #[test]
    fn a_sharing_replica_reads_the_members_published_load_not_its_window() {
        let (replicas, load) = replica_a();
        // Nothing published yet: no load, although the window has some.
        assert_eq!(load.demand("web", "us-central1"), Load::default());
        replicas.view().set_load("a".into(), Some(published(15.0)));
        replicas.view().set_load("b".into(), Some(published(14.0)));
        assert_eq!(load.demand("web", "us-central1").requests_per_second, 29.0);
        assert_eq!(load.arriving("web", &near()).requests_per_second, 29.0);
        assert_eq!(load.client_regions("web"), ["us-central1"]);
        // A value left behind by a replica that is no member does not count.
        replicas
            .view()
            .set_load("gone".into(), Some(published(100.0)));
        assert_eq!(load.demand("web", "us-central1").requests_per_second, 29.0);
        // b leaves: its key and its load go with its lease.
        replicas.view().delete(Entry::Member("b".into()));
        assert_eq!(load.demand("web", "us-central1").requests_per_second, 15.0);
    }

    #[test]
    fn past_the_ttl_without_etcd_a_replica_decides_from_its_own_window() {
        let (replicas, load) = replica_a();
        replicas.view().set_load("a".into(), Some(published(15.0)));
        replicas.view().set_load("b".into(), Some(published(15.0)));
        assert_eq!(load.demand("web", "us-central1").requests_per_second, 30.0);
        let mut view = replicas.view();
        view.lost("connection refused".into());
        view.confirmed = Some(Instant::now() - Duration::from_secs(11));
        drop(view);
        let own = load.demand("web", "us-central1").requests_per_second;
        assert!((own - 15.0).abs() < 1e-9, "{own}");
    }
}
