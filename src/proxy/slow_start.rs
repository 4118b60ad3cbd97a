//! Slow start, as Envoy's round robin and least request balancers apply it: an endpoint that
//! has just become healthy in a cluster gets a fraction of its weight that grows with the time
//! since, `max((t / window)^(1 / aggression), min_weight)`, until the window is over. Also
//! keeps, across the balancer rebuilds of every config change, when each endpoint of a cluster
//! started its ramp, and picks by the ramped weights (smooth weighted round robin over weights
//! recomputed at each pick, so that the shares follow the ramp closely).
//!
//! Must not: choose priorities or localities (proxy/balancer.rs does), or ramp a cluster that
//! has no slow_start_config.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::resources::cluster::Cluster;
use super::resources::endpoint::{Assignment, Health};

/// A cluster's slow_start_config.
#[derive(Clone, Debug, PartialEq)]
pub struct SlowStart {
    pub window: Duration,
    /// 1.0: a linear ramp; above 1, faster at first.
    pub aggression: f64,
    /// The least fraction (0..=1) of its weight a ramping endpoint gets.
    pub min_weight: f64,
}

impl SlowStart {
    /// The fraction of its weight an endpoint gets `elapsed` after its ramp started; 1.0 once
    /// the window is over. Envoy counts at least one millisecond.
    pub fn factor(&self, elapsed: Duration) -> f64 {
        if elapsed >= self.window || self.window.is_zero() {
            return 1.0;
        }
        let time = elapsed.max(Duration::from_millis(1)).as_secs_f64() / self.window.as_secs_f64();
        let ramped = if self.aggression == 1.0 {
            time
        } else {
            time.powf(1.0 / self.aggression)
        };
        ramped.max(self.min_weight)
    }
}

/// When each endpoint of each cluster with slow start started its ramp: the moment it was
/// first seen healthy in the cluster, as Envoy's hosts remember when they turned healthy. A
/// cluster that is new or changed ramps all its endpoints again (Envoy builds it anew); an
/// endpoint that leaves the assignment and comes back ramps again; one that turns unhealthy
/// and healthy again does not (Envoy keeps its first time when no active check runs).
#[derive(Debug, Default)]
pub struct RampStarts {
    clusters: Mutex<BTreeMap<String, ClusterRamps>>,
}

#[derive(Debug)]
struct ClusterRamps {
    cluster: Cluster,
    started: BTreeMap<SocketAddr, Instant>,
}

impl RampStarts {
    /// Notes the endpoints of `cluster` as of `now` and returns when each started its ramp
    /// (empty when the cluster has no slow start).
    pub fn update(
        &self,
        cluster: &Cluster,
        assignment: Option<&Assignment>,
        now: Instant,
    ) -> BTreeMap<SocketAddr, Instant> {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        if cluster.slow_start.is_none() {
            clusters.remove(&cluster.name);
            return BTreeMap::new();
        }
        let known = clusters
            .entry(cluster.name.clone())
            .or_insert_with(|| ClusterRamps {
                cluster: cluster.clone(),
                started: BTreeMap::new(),
            });
        if known.cluster != *cluster {
            *known = ClusterRamps {
                cluster: cluster.clone(),
                started: BTreeMap::new(),
            };
        }
        let endpoints = assignment
            .iter()
            .flat_map(|a| &a.localities)
            .flat_map(|l| &l.endpoints);
        let mut started = BTreeMap::new();
        for endpoint in endpoints {
            let since = known.started.get(&endpoint.address).copied();
            let since = since.or((endpoint.health == Health::Healthy).then_some(now));
            if let Some(since) = since {
                started.insert(endpoint.address, since);
            }
        }
        known.started = started.clone();
        started
    }

    /// Forgets the clusters not in `names`.
    pub fn retain(&self, names: &dyn Fn(&str) -> bool) {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        clusters.retain(|name, _| names(name));
    }
}

/// Picks within one locality while some of its endpoints ramp: each pick recomputes every
/// endpoint's weight and takes the one furthest ahead of its share (smooth weighted round
/// robin), so that over any run of picks each gets its current weight's share.
#[derive(Debug)]
pub struct RampingPicker {
    config: SlowStart,
    /// Per endpoint: its weight and when its ramp started (None: at full weight).
    endpoints: Vec<(f64, Option<Instant>)>,
    /// When the last ramp ends: after it, the locality's fixed schedule takes over.
    ends: Instant,
    credit: Mutex<Vec<f64>>,
}

impl RampingPicker {
    /// A picker for endpoints of `weights` whose ramps started at `started`; None when none
    /// is ramping at `now`.
    pub fn new(
        config: &SlowStart,
        weights: &[u64],
        started: &[Option<Instant>],
        now: Instant,
    ) -> Option<RampingPicker> {
        let ramping = |since: &Option<Instant>| {
            since.filter(|since| now.saturating_duration_since(*since) < config.window)
        };
        let ends = started.iter().filter_map(ramping).max()? + config.window;
        Some(RampingPicker {
            config: config.clone(),
            endpoints: weights
                .iter()
                .zip(started)
                .map(|(weight, since)| (*weight as f64, ramping(since)))
                .collect(),
            ends,
            credit: Mutex::new(vec![0.0; weights.len()]),
        })
    }

    /// Whether an endpoint may still be ramping at `now`.
    pub fn ramping_at(&self, now: Instant) -> bool {
        now < self.ends
    }

    /// The index of the endpoint for the next request at `now`; `load` gives an endpoint's
    /// weight divisor (least request: its active requests plus one; round robin: 1).
    pub fn pick(&self, now: Instant, load: impl Fn(usize) -> f64) -> Option<usize> {
        let weights: Vec<f64> = self
            .endpoints
            .iter()
            .enumerate()
            .map(|(index, (weight, since))| {
                let factor = since.map_or(1.0, |since| {
                    self.config.factor(now.saturating_duration_since(since))
                });
                weight / load(index) * factor
            })
            .collect();
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return None;
        }
        let mut credit = self.credit.lock().unwrap_or_else(|e| e.into_inner());
        for (credit, weight) in credit.iter_mut().zip(&weights) {
            *credit += weight;
        }
        let best =
            (0..credit.len()).max_by(|a, b| credit[*a].total_cmp(&credit[*b]).then(b.cmp(a)))?;
        credit[best] -= total;
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linear(window: u64, min_weight: f64) -> SlowStart {
        SlowStart {
            window: Duration::from_secs(window),
            aggression: 1.0,
            min_weight,
        }
    }

    #[test]
    fn the_weight_grows_with_time_from_its_floor_and_aggression_bends_the_ramp() {
        let ramp = linear(30, 0.01);
        assert_eq!(ramp.factor(Duration::ZERO), 0.01);
        assert!((ramp.factor(Duration::from_secs(15)) - 0.5).abs() < 1e-9);
        assert_eq!(ramp.factor(Duration::from_secs(30)), 1.0);
        let floor = linear(30, 0.1);
        assert_eq!(floor.factor(Duration::from_secs(1)), 0.1);
        let aggressive = SlowStart {
            aggression: 2.0,
            ..linear(100, 0.0)
        };
        assert!((aggressive.factor(Duration::from_secs(25)) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_ramping_endpoint_gets_its_current_share_pick_by_pick() {
        let start = Instant::now();
        let config = linear(100, 0.01);
        // The second endpoint started 25 s before `now`: a quarter of its weight.
        let now = start + Duration::from_secs(25);
        let picker =
            RampingPicker::new(&config, &[1, 1], &[None, Some(start)], now).expect("ramping");
        let new = (0..1000)
            .filter(|_| picker.pick(now, |_| 1.0) == Some(1))
            .count();
        assert_eq!(new, 200, "0.25 / 1.25 of 1000 picks");
        assert!(picker.ramping_at(now));
        assert!(!picker.ramping_at(start + Duration::from_secs(100)));
    }

    fn cluster_with(slow_start: Option<SlowStart>) -> Cluster {
        Cluster {
            name: "web".into(),
            service_name: "web".into(),
            lb: crate::proxy::resources::cluster::LbPolicy::RoundRobin,
            connect_timeout: Duration::from_secs(1),
            http2: false,
            idle_timeout: None,
            prefer_ipv6: false,
            tls: None,
            auto_sni: false,
            dns: None,
            original_dst: None,
            max_requests_per_connection: None,
            proxy_protocol: None,
            slow_start,
            circuit_breakers: Default::default(),
            outlier_detection: None,
        }
    }

    fn assignment(endpoints: &[(u16, Health)]) -> Assignment {
        use crate::proxy::resources::endpoint::{Endpoint, LocalityEndpoints};
        Assignment {
            cluster: "web".into(),
            localities: vec![LocalityEndpoints {
                region: "r".into(),
                zone: "z".into(),
                sub_zone: String::new(),
                priority: 0,
                weight: 1,
                endpoints: endpoints
                    .iter()
                    .map(|(port, health)| Endpoint {
                        address: SocketAddr::from(([127, 0, 0, 1], *port)),
                        additional: Vec::new(),
                        weight: 1,
                        health: *health,
                    })
                    .collect(),
            }],
            overprovisioning_factor: 140,
        }
    }

    #[test]
    fn an_endpoint_ramps_from_when_it_is_first_seen_healthy_in_its_cluster() {
        let starts = RampStarts::default();
        let cluster = cluster_with(Some(linear(30, 0.01)));
        let at = |seconds| Instant::now() + Duration::from_secs(seconds);
        let port = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let (t0, t1, t2, t3) = (at(0), at(10), at(20), at(30));
        let first = starts.update(&cluster, Some(&assignment(&[(1, Health::Healthy)])), t0);
        assert_eq!(
            first[&port(1)],
            t0,
            "a new cluster's endpoints ramp from its start"
        );
        // 2 joins unhealthy: no ramp yet; it starts when 2 turns healthy.
        let joined = [(1, Health::Healthy), (2, Health::Unhealthy)];
        let second = starts.update(&cluster, Some(&assignment(&joined)), t1);
        assert_eq!((second[&port(1)], second.get(&port(2))), (t0, None));
        let healthy = [(1, Health::Healthy), (2, Health::Healthy)];
        let third = starts.update(&cluster, Some(&assignment(&healthy)), t2);
        assert_eq!(third[&port(2)], t2);
        // Unhealthy and back keeps the first time; leaving and coming back ramps again.
        let sick = [(1, Health::Unhealthy), (2, Health::Healthy)];
        starts.update(&cluster, Some(&assignment(&sick)), t3);
        assert_eq!(
            starts.update(&cluster, Some(&assignment(&healthy)), t3)[&port(1)],
            t0
        );
        starts.update(&cluster, Some(&assignment(&[(2, Health::Healthy)])), t3);
        assert_eq!(
            starts.update(&cluster, Some(&assignment(&healthy)), t3)[&port(1)],
            t3
        );
        // A changed cluster is a new one: everything ramps again.
        let changed = Cluster {
            connect_timeout: Duration::from_secs(2),
            ..cluster.clone()
        };
        let later = at(40);
        let again = starts.update(&changed, Some(&assignment(&healthy)), later);
        assert!(again.values().all(|since| *since == later), "{again:?}");
        assert!(starts
            .update(&cluster_with(None), Some(&assignment(&healthy)), later)
            .is_empty());
    }

    #[test]
    fn endpoints_past_their_window_make_no_picker() {
        let start = Instant::now();
        let now = start + Duration::from_secs(31);
        assert!(
            RampingPicker::new(&linear(30, 0.01), &[1, 1], &[Some(start), None], now).is_none()
        );
    }
}
