//! Picks the endpoint of a cluster for each request or connection. Built once per change of a
//! cluster or its endpoints and shared read-only by every worker (picks advance atomic
//! counters; nothing is rebuilt per request).
//!
//! As Envoy does: the priority is chosen by health with the overprovisioning factor (a
//! priority whose healthy share, times the factor, is under 100% spills the rest to the next);
//! within it, localities by weight times their health (locality-weighted balancing); within a
//! locality, endpoints by the cluster's policy. UNHEALTHY and DRAINING endpoints get nothing.
//! Ring hash and Maglev use the request's hash, and fall back to random without one. Round
//! robin and least request ramp new endpoints up when the cluster has slow start
//! (proxy/slow_start.rs picks within a locality while a ramp lasts).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::load_stats::LocalityCounters;
use super::resources::cluster::{Cluster, LbPolicy};
use super::resources::endpoint::{Assignment, Health};
use super::slow_start::RampingPicker;

/// One endpoint as the balancer sees it.
#[derive(Debug)]
pub struct Host {
    pub address: SocketAddr,
    /// Other addresses of the same endpoint (the other IP family), tried after `address`.
    pub fallback: Vec<SocketAddr>,
    /// The endpoint's name for upstream requests (see [`super::endpoint_names`]).
    pub name: String,
    /// The name as a request target's authority, made once rather than per request.
    pub authority: Option<http::uri::Authority>,
    pub active: AtomicUsize,
    /// The counters of the endpoint's locality, for load reports.
    pub load: Arc<LocalityCounters>,
}

/// A weighted schedule: a sequence of indices in which each appears in proportion to its
/// weight, spread evenly (smooth weighted round robin), walked by an atomic counter.
#[derive(Debug, Default)]
struct Schedule {
    order: Vec<usize>,
    next: AtomicUsize,
}

/// The longest schedule built: weights are scaled down to fit.
const MAX_SCHEDULE: u64 = 4096;

impl Schedule {
    fn new(weights: &[u64]) -> Schedule {
        let total: u64 = weights.iter().sum();
        if total == 0 {
            return Schedule::default();
        }
        let scale = total.div_ceil(MAX_SCHEDULE).max(1);
        let weights: Vec<i64> = weights
            .iter()
            .map(|w| {
                if *w == 0 {
                    0
                } else {
                    (w / scale).max(1) as i64
                }
            })
            .collect();
        let total: i64 = weights.iter().sum();
        let mut current = vec![0i64; weights.len()];
        let mut order = Vec::with_capacity(total as usize);
        for _ in 0..total {
            for (c, w) in current.iter_mut().zip(&weights) {
                *c += w;
            }
            let (best, _) = current
                .iter()
                .enumerate()
                .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
                .expect("weights are not empty");
            current[best] -= total;
            order.push(best);
        }
        Schedule {
            order,
            next: AtomicUsize::new(0),
        }
    }

    fn pick(&self) -> Option<usize> {
        if self.order.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.order[n % self.order.len()])
    }
}

struct LocalityPool {
    hosts: Vec<Arc<Host>>,
    schedule: Schedule,
    /// While some of `hosts` ramp up (slow start): picks by their ramped weights.
    ramping: Option<RampingPicker>,
}

struct Priority {
    localities: Vec<LocalityPool>,
    schedule: Schedule,
    /// Share of traffic (0..=100) this priority takes.
    load: u64,
}

/// The balancer of one cluster.
pub struct Balancer {
    policy: LbPolicy,
    priorities: Vec<Priority>,
    /// Ring (hash, host) for ring hash and Maglev.
    ring: Vec<(u64, Arc<Host>)>,
    random: AtomicU64,
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balancer")
            .field("policy", &self.policy)
            .field("priorities", &self.priorities.len())
            .finish()
    }
}

impl Balancer {
    /// `counters`: each locality's load counters, in the assignment's order (a locality
    /// without gets counters of its own, which nothing reports).
    pub fn new(
        cluster: &Cluster,
        assignment: Option<&Assignment>,
        counters: &[Arc<LocalityCounters>],
    ) -> Balancer {
        Self::ramped(cluster, assignment, counters, &BTreeMap::new())
    }

    /// As [`Balancer::new`], with `started`: when each endpoint (by its EDS address) started
    /// its slow-start ramp (see [`super::slow_start::RampStarts`]).
    pub fn ramped(
        cluster: &Cluster,
        assignment: Option<&Assignment>,
        counters: &[Arc<LocalityCounters>],
        started: &BTreeMap<SocketAddr, Instant>,
    ) -> Balancer {
        let now = Instant::now();
        let empty = Assignment {
            cluster: cluster.name.clone(),
            localities: Vec::new(),
            overprovisioning_factor: 140,
        };
        let assignment = assignment.unwrap_or(&empty);
        let factor = u64::from(assignment.overprovisioning_factor);
        let levels = assignment
            .localities
            .iter()
            .map(|l| l.priority)
            .max()
            .map_or(0, |p| p + 1);
        let mut priorities = Vec::new();
        let mut all_hosts = Vec::new();
        for level in 0..levels {
            let mut localities = Vec::new();
            let mut locality_weights = Vec::new();
            let (mut healthy_total, mut total) = (0u64, 0u64);
            let at_level = assignment
                .localities
                .iter()
                .enumerate()
                .filter(|(_, l)| l.priority == level);
            for (index, locality) in at_level {
                let load = counters.get(index).cloned().unwrap_or_default();
                let healthy: Vec<_> = locality
                    .endpoints
                    .iter()
                    .filter(|e| e.health == Health::Healthy)
                    .collect();
                total += locality.endpoints.len() as u64;
                healthy_total += healthy.len() as u64;
                let hosts: Vec<Arc<Host>> = healthy
                    .iter()
                    .map(|e| {
                        let address = preferred(e.address, &e.additional, cluster.prefer_ipv6);
                        let fallback = fallbacks(e.address, &e.additional, cluster.prefer_ipv6);
                        let all: Vec<SocketAddr> = std::iter::once(address)
                            .chain(fallback.iter().copied())
                            .collect();
                        let name = super::endpoint_names::name_of(&all);
                        Arc::new(Host {
                            address,
                            fallback,
                            authority: name.parse().ok(),
                            name,
                            active: AtomicUsize::new(0),
                            load: load.clone(),
                        })
                    })
                    .collect();
                let weights: Vec<u64> = healthy.iter().map(|e| u64::from(e.weight)).collect();
                for (host, weight) in hosts.iter().zip(&weights) {
                    all_hosts.push((host.clone(), *weight));
                }
                // A locality's effective weight shrinks with its health.
                let health = if locality.endpoints.is_empty() {
                    0
                } else {
                    (factor * healthy.len() as u64 * 100 / locality.endpoints.len() as u64 / 100)
                        .min(100)
                };
                locality_weights.push(u64::from(locality.weight) * health);
                let starts: Vec<Option<Instant>> = healthy
                    .iter()
                    .map(|e| started.get(&e.address).copied())
                    .collect();
                localities.push(LocalityPool {
                    schedule: Schedule::new(&weights),
                    ramping: ramping_picker(cluster, &weights, &starts, now),
                    hosts,
                });
            }
            let health = (factor * healthy_total)
                .checked_div(total)
                .map_or(0, |h| h.min(100));
            priorities.push(Priority {
                schedule: Schedule::new(&locality_weights),
                localities,
                load: health,
            });
        }
        spread_load(&mut priorities);
        let ring = match cluster.lb {
            LbPolicy::RingHash { minimum_ring_size } => build_ring(&all_hosts, minimum_ring_size),
            LbPolicy::Maglev => build_ring(&all_hosts, 65_537),
            _ => Vec::new(),
        };
        Balancer {
            policy: cluster.lb.clone(),
            priorities,
            ring,
            random: AtomicU64::new(random_seed()),
        }
    }

    /// Whether any endpoint can take traffic.
    pub fn has_hosts(&self) -> bool {
        self.priorities
            .iter()
            .any(|p| p.localities.iter().any(|l| !l.hosts.is_empty()))
    }

    fn random(&self) -> u64 {
        next_random(&self.random)
    }

    /// The endpoint for a request whose hash (from the route's hash policies) is `hash`.
    pub fn pick(&self, hash: Option<u64>) -> Option<Arc<Host>> {
        if !self.ring.is_empty() {
            let key = hash.unwrap_or_else(|| self.random());
            let at = self.ring.partition_point(|(h, _)| *h < key) % self.ring.len();
            return Some(self.ring[at].1.clone());
        }
        let roll = self.random() % 100;
        let mut sum = 0;
        let priority = self
            .priorities
            .iter()
            .find(|p| {
                sum += p.load;
                roll < sum
            })
            .or_else(|| self.priorities.iter().find(|p| p.schedule.pick().is_some()))?;
        let locality = &priority.localities[priority.schedule.pick()?];
        self.pick_in(locality)
    }

    /// The endpoint of `locality` for the next request, by the cluster's policy.
    fn pick_in(&self, locality: &LocalityPool) -> Option<Arc<Host>> {
        if let Some(ramping) = &locality.ramping {
            let now = Instant::now();
            if ramping.ramping_at(now) {
                return self.pick_ramping(locality, ramping, now);
            }
        }
        match self.policy {
            LbPolicy::Random => {
                let n = locality.hosts.len() as u64;
                (n > 0).then(|| locality.hosts[(self.random() % n) as usize].clone())
            }
            LbPolicy::LeastRequest if locality.hosts.len() > 1 => {
                let n = locality.hosts.len() as u64;
                let a = &locality.hosts[(self.random() % n) as usize];
                let b = &locality.hosts[(self.random() % n) as usize];
                let fewer = if b.active.load(Ordering::Relaxed) < a.active.load(Ordering::Relaxed) {
                    b
                } else {
                    a
                };
                Some(fewer.clone())
            }
            _ => locality.schedule.pick().map(|i| locality.hosts[i].clone()),
        }
    }
}

impl Balancer {
    /// The endpoint at `address` if it can take traffic (a stateful session's override host,
    /// as Envoy's load balancer honours one: only a healthy endpoint of the cluster). Scans
    /// the endpoints: asked only for requests that name one.
    pub fn override_host(&self, address: SocketAddr) -> Option<Arc<Host>> {
        self.priorities
            .iter()
            .flat_map(|p| p.localities.iter())
            .flat_map(|l| l.hosts.iter())
            .find(|host| host.address == address || host.fallback.contains(&address))
            .cloned()
    }

    /// Slow start's pick: by ramped weights; least request divides each weight by the
    /// endpoint's active requests plus one, as Envoy's does while weights differ.
    fn pick_ramping(
        &self,
        locality: &LocalityPool,
        ramping: &RampingPicker,
        now: Instant,
    ) -> Option<Arc<Host>> {
        let least_request = self.policy == LbPolicy::LeastRequest;
        let load = |index: usize| match least_request {
            true => locality.hosts[index].active.load(Ordering::Relaxed) as f64 + 1.0,
            false => 1.0,
        };
        ramping
            .pick(now, load)
            .map(|index| locality.hosts[index].clone())
    }
}

/// The slow-start picker of a locality whose endpoints have `weights` and started their ramps
/// at `starts`: only for round robin and least request (Envoy ramps no other), and only while
/// one of two endpoints or more ramps.
fn ramping_picker(
    cluster: &Cluster,
    weights: &[u64],
    starts: &[Option<Instant>],
    now: Instant,
) -> Option<RampingPicker> {
    let config = cluster.slow_start.as_ref()?;
    let ramps = matches!(cluster.lb, LbPolicy::RoundRobin | LbPolicy::LeastRequest);
    (ramps && weights.len() > 1)
        .then(|| RampingPicker::new(config, weights, starts, now))
        .flatten()
}

/// Envoy's priority load: each priority takes its health (capped at what is left), and when
/// the healths sum to less than 100 the loads are scaled up to 100.
fn spread_load(priorities: &mut [Priority]) {
    let mut left = 100u64;
    for priority in priorities.iter_mut() {
        priority.load = priority.load.min(left);
        left -= priority.load;
    }
    let total: u64 = priorities.iter().map(|p| p.load).sum();
    if total > 0 && total < 100 {
        let mut assigned = 0;
        let count = priorities.len();
        for (index, priority) in priorities.iter_mut().enumerate() {
            priority.load = if index + 1 == count {
                100 - assigned
            } else {
                priority.load * 100 / total
            };
            assigned += priority.load;
        }
    }
}

fn preferred(address: SocketAddr, additional: &[SocketAddr], prefer_ipv6: bool) -> SocketAddr {
    if prefer_ipv6 && !address.is_ipv6() {
        if let Some(v6) = additional.iter().find(|a| a.is_ipv6()) {
            return *v6;
        }
    }
    address
}

fn fallbacks(address: SocketAddr, additional: &[SocketAddr], prefer_ipv6: bool) -> Vec<SocketAddr> {
    let first = preferred(address, additional, prefer_ipv6);
    std::iter::once(address)
        .chain(additional.iter().copied())
        .filter(|a| *a != first)
        .collect()
}

/// A hash ring with at least `minimum` entries, each host placed in proportion to its weight.
fn build_ring(hosts: &[(Arc<Host>, u64)], minimum: u64) -> Vec<(u64, Arc<Host>)> {
    let total: u64 = hosts.iter().map(|(_, w)| *w).sum();
    if total == 0 {
        return Vec::new();
    }
    let size = minimum.clamp(1, 1 << 20);
    let mut ring = Vec::with_capacity(size as usize);
    for (host, weight) in hosts {
        let copies = (size * weight).div_ceil(total).max(1);
        for copy in 0..copies {
            ring.push((hash_text(&format!("{}_{copy}", host.address)), host.clone()));
        }
    }
    ring.sort_by_key(|(h, _)| *h);
    ring
}

/// A seed that differs per process and per balancer, so that sidecars side by side (and a
/// balancer rebuilt on an update) do not all make the same sequence of random picks.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // std keys each RandomState from the OS's randomness (once per thread, then stepped).
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x9E37_79B9_7F4A_7C15);
    hasher.finish()
}

/// The next number of a splitmix64 sequence kept in `state`: cheap, shareable between threads,
/// and spread well enough to balance load (not for anything secret).
pub fn next_random(state: &AtomicU64) -> u64 {
    let mut z = state.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xxHash-like 64-bit hash of text (FNV-1a, then mixed), stable across runs.
pub fn hash_text(text: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in text.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::resources::endpoint::{Endpoint, LocalityEndpoints};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn cluster(lb: LbPolicy) -> Cluster {
        Cluster {
            name: "c".into(),
            service_name: "c".into(),
            lb,
            connect_timeout: Duration::from_secs(1),
            http2: false,
            idle_timeout: None,
            prefer_ipv6: false,
            tls: None,
            auto_sni: false,
            outlier_detection: None,
            dns: None,
            original_dst: None,
            max_requests_per_connection: None,
            proxy_protocol: None,
            slow_start: None,
            circuit_breakers: Default::default(),
        }
    }

    fn locality(
        zone: &str,
        priority: u32,
        weight: u32,
        ports: &[(u16, Health)],
    ) -> LocalityEndpoints {
        LocalityEndpoints {
            region: "r".into(),
            zone: zone.into(),
            sub_zone: String::new(),
            priority,
            weight,
            endpoints: ports
                .iter()
                .map(|(port, health)| Endpoint {
                    address: SocketAddr::from(([127, 0, 0, 1], *port)),
                    additional: Vec::new(),
                    weight: 1,
                    health: *health,
                })
                .collect(),
        }
    }

    fn tally(balancer: &Balancer, picks: usize) -> BTreeMap<u16, usize> {
        let mut seen = BTreeMap::new();
        for _ in 0..picks {
            *seen
                .entry(balancer.pick(None).unwrap().address.port())
                .or_default() += 1;
        }
        seen
    }

    #[test]
    fn localities_share_by_weight_and_unhealthy_or_draining_endpoints_get_nothing() {
        let assignment = Assignment {
            cluster: "c".into(),
            localities: vec![
                locality(
                    "a",
                    0,
                    30,
                    &[
                        (1, Health::Healthy),
                        (2, Health::Healthy),
                        (3, Health::Healthy),
                    ],
                ),
                locality(
                    "b",
                    0,
                    10,
                    &[
                        (4, Health::Healthy),
                        (5, Health::Draining),
                        (6, Health::Unhealthy),
                    ],
                ),
            ],
            overprovisioning_factor: 300,
        };
        let balancer = Balancer::new(&cluster(LbPolicy::RoundRobin), Some(&assignment), &[]);
        let seen = tally(&balancer, 4000);
        assert_eq!(seen.get(&1).copied(), Some(1000));
        assert_eq!(seen.get(&4).copied(), Some(1000));
        assert!(!seen.contains_key(&5) && !seen.contains_key(&6), "{seen:?}");
    }

    #[test]
    fn a_priority_short_of_healthy_endpoints_spills_to_the_next() {
        let assignment = Assignment {
            cluster: "c".into(),
            localities: vec![
                locality(
                    "a",
                    0,
                    1,
                    &[
                        (1, Health::Healthy),
                        (2, Health::Unhealthy),
                        (3, Health::Unhealthy),
                        (4, Health::Unhealthy),
                    ],
                ),
                locality("b", 1, 1, &[(5, Health::Healthy)]),
            ],
            overprovisioning_factor: 140,
        };
        // P0 health: 140% × 1/4 = 35%: 35% stays, 65% spills to P1.
        let balancer = Balancer::new(&cluster(LbPolicy::RoundRobin), Some(&assignment), &[]);
        let seen = tally(&balancer, 20_000);
        let p0 = seen[&1] as f64 / 20_000.0;
        assert!((p0 - 0.35).abs() < 0.02, "{seen:?}");
    }

    #[test]
    fn ring_hash_sends_one_hash_to_one_endpoint() {
        let assignment = Assignment {
            cluster: "c".into(),
            localities: vec![locality(
                "a",
                0,
                1,
                &[
                    (1, Health::Healthy),
                    (2, Health::Healthy),
                    (3, Health::Healthy),
                ],
            )],
            overprovisioning_factor: 140,
        };
        let balancer = Balancer::new(
            &cluster(LbPolicy::RingHash {
                minimum_ring_size: 1024,
            }),
            Some(&assignment),
            &[],
        );
        for user in ["alice", "bob", "carol"] {
            let first = balancer.pick(Some(hash_text(user))).unwrap().address;
            for _ in 0..10 {
                assert_eq!(balancer.pick(Some(hash_text(user))).unwrap().address, first);
            }
        }
        let spread: std::collections::BTreeSet<_> = (0..300)
            .map(|i| {
                balancer
                    .pick(Some(hash_text(&format!("u{i}"))))
                    .unwrap()
                    .address
            })
            .collect();
        assert_eq!(spread.len(), 3);
    }
}
