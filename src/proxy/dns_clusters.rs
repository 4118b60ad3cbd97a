//! DNS clusters kept resolved. One task per STRICT_DNS or LOGICAL_DNS cluster of the applied
//! config looks its names up (proxy/dns.rs) at the cluster's refresh rate, or when the
//! answer's TTL ends if it respects TTLs; a changed answer becomes the cluster's endpoints,
//! and the applier rebuilds that cluster's balancer as it does for an EDS update. Connections
//! already open keep their endpoint; new ones pick from the new answer. A failed lookup keeps
//! the last answer (as Envoy keeps its hosts); a first lookup that fails leaves the cluster
//! with no endpoint rather than warming.
//!
//! Must not: resolve (proxy/dns.rs does) or balance (proxy/balancer.rs does).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::{Applier, ProxyConfig};
use super::dns::{Answer, Resolver};
use super::resources::dns_cluster::{DnsCluster, DnsKind};
use super::resources::endpoint::{
    Assignment, Endpoint, Health, LocalityEndpoints, DEFAULT_OVERPROVISIONING,
};

/// The shortest wait between two lookups of a cluster, whatever a TTL says.
const SHORTEST_REFRESH: Duration = Duration::from_millis(100);

/// The settings a cluster was resolved with, and for each of its targets (in the cluster's
/// order) the addresses it resolved to.
type Resolved = (DnsCluster, Vec<Vec<IpAddr>>);

/// The latest answers of each DNS cluster, by cluster name.
#[derive(Debug, Default)]
pub struct DnsAnswers {
    by_cluster: Mutex<BTreeMap<String, Resolved>>,
}

impl DnsAnswers {
    /// The endpoints of cluster `name` resolved with `settings`; None before the first lookup
    /// (the cluster is warming).
    pub fn assignment(&self, name: &str, settings: &DnsCluster) -> Option<Assignment> {
        let answers = self.by_cluster.lock().unwrap_or_else(|e| e.into_inner());
        let (resolved_with, addresses) = answers.get(name)?;
        (resolved_with == settings).then(|| assignment_of(name, settings, addresses))
    }

    /// Records the addresses of `name`'s targets; whether they differ from the last ones.
    fn store(&self, name: &str, settings: &DnsCluster, addresses: Vec<Vec<IpAddr>>) -> bool {
        let mut answers = self.by_cluster.lock().unwrap_or_else(|e| e.into_inner());
        let entry = (settings.clone(), addresses);
        if answers.get(name) == Some(&entry) {
            return false;
        }
        answers.insert(name.to_string(), entry);
        true
    }

    fn has(&self, name: &str) -> bool {
        let answers = self.by_cluster.lock().unwrap_or_else(|e| e.into_inner());
        answers.contains_key(name)
    }

    fn forget(&self, name: &str) {
        let mut answers = self.by_cluster.lock().unwrap_or_else(|e| e.into_inner());
        answers.remove(name);
    }
}

/// The endpoints a DNS cluster has with `addresses` (per target): every address for
/// STRICT_DNS; for LOGICAL_DNS one endpoint, the first address, with the others as its
/// fallbacks. One locality, every endpoint healthy and of weight 1.
pub fn assignment_of(name: &str, settings: &DnsCluster, addresses: &[Vec<IpAddr>]) -> Assignment {
    let endpoint = |address: SocketAddr, additional: Vec<SocketAddr>| Endpoint {
        address,
        additional,
        weight: 1,
        health: Health::Healthy,
    };
    let endpoints = match settings.kind {
        DnsKind::Strict => settings
            .targets
            .iter()
            .zip(addresses)
            .flat_map(|(target, ips)| {
                ips.iter()
                    .map(|ip| endpoint(SocketAddr::new(*ip, target.port), Vec::new()))
            })
            .collect(),
        DnsKind::Logical => settings
            .targets
            .first()
            .zip(addresses.first())
            .and_then(|(target, ips)| {
                let mut all = ips.iter().map(|ip| SocketAddr::new(*ip, target.port));
                let first = all.next()?;
                Some(vec![endpoint(first, all.collect())])
            })
            .unwrap_or_default(),
    };
    Assignment {
        cluster: name.to_string(),
        localities: vec![LocalityEndpoints {
            region: String::new(),
            zone: String::new(),
            sub_zone: String::new(),
            priority: 0,
            weight: 1,
            endpoints,
        }],
        overprovisioning_factor: DEFAULT_OVERPROVISIONING,
    }
}

/// Keeps every DNS cluster of the applied config resolved until `shutdown`: starts a task for
/// each new (or changed) one, stops the tasks of clusters gone.
pub async fn run(
    applier: Arc<Applier>,
    mut config: watch::Receiver<Arc<ProxyConfig>>,
    resolver: Arc<Resolver>,
    shutdown: CancellationToken,
) {
    let mut running: BTreeMap<String, (DnsCluster, CancellationToken)> = BTreeMap::new();
    loop {
        let wanted = dns_clusters(&config.borrow_and_update());
        running.retain(|name, (settings, stop)| {
            let keep = wanted.get(name) == Some(settings);
            if !keep {
                stop.cancel();
                applier.dns_answers().forget(name);
            }
            keep
        });
        for (name, settings) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            let stop = shutdown.child_token();
            tokio::spawn(keep_resolved(
                name.clone(),
                settings.clone(),
                resolver.clone(),
                applier.clone(),
                stop.clone(),
            ));
            running.insert(name, (settings, stop));
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = config.changed() => if changed.is_err() { return },
        }
    }
}

/// The DNS settings of each DNS cluster of `config`, by name.
fn dns_clusters(config: &ProxyConfig) -> BTreeMap<String, DnsCluster> {
    config
        .clusters
        .iter()
        .filter_map(|(name, entry)| Some((name.clone(), entry.cluster.dns.clone()?)))
        .collect()
}

/// Looks up cluster `name`'s targets again and again until `stop`, handing each changed
/// answer to the applier.
async fn keep_resolved(
    name: String,
    settings: DnsCluster,
    resolver: Arc<Resolver>,
    applier: Arc<Applier>,
    stop: CancellationToken,
) {
    loop {
        let wait = match resolve_targets(&resolver, &settings).await {
            Ok(answers) => {
                let wait = next_refresh(&settings, &answers);
                let addresses = answers.into_iter().map(|a| a.addresses).collect();
                if !stop.is_cancelled() && applier.dns_answers().store(&name, &settings, addresses)
                {
                    tracing::info!(cluster = %name, "DNS answer changed; endpoints replaced");
                    applier.republish_dns();
                }
                wait
            }
            Err(error) => {
                tracing::warn!(cluster = %name, %error, "DNS lookup failed; the last answer stays");
                if !stop.is_cancelled() && !applier.dns_answers().has(&name) {
                    let none = vec![Vec::new(); settings.targets.len()];
                    applier.dns_answers().store(&name, &settings, none);
                    applier.republish_dns();
                }
                settings.refresh_rate
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Every target's answer, in the cluster's order.
async fn resolve_targets(
    resolver: &Resolver,
    settings: &DnsCluster,
) -> Result<Vec<Answer>, hickory_resolver::error::ResolveError> {
    let mut answers = Vec::with_capacity(settings.targets.len());
    for target in &settings.targets {
        answers.push(resolver.resolve(&target.host, settings.family).await?);
    }
    Ok(answers)
}

/// When to look again: at the refresh rate, or when the shortest TTL ends if the cluster
/// respects TTLs (a TTL of zero, or none, falls back to the refresh rate).
fn next_refresh(settings: &DnsCluster, answers: &[Answer]) -> Duration {
    if !settings.respect_ttl {
        return settings.refresh_rate;
    }
    answers
        .iter()
        .filter_map(|answer| answer.ttl)
        .filter(|ttl| !ttl.is_zero())
        .min()
        .map_or(settings.refresh_rate, |ttl| ttl.max(SHORTEST_REFRESH))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::resources::dns_cluster::{DnsTarget, LookupFamily};

    fn settings(kind: DnsKind, hosts: &[&str], respect_ttl: bool) -> DnsCluster {
        DnsCluster {
            kind,
            family: LookupFamily::All,
            refresh_rate: Duration::from_secs(5),
            respect_ttl,
            targets: hosts
                .iter()
                .map(|host| DnsTarget {
                    host: host.to_string(),
                    port: 8080,
                })
                .collect(),
        }
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    fn addresses(assignment: &Assignment) -> Vec<(String, Vec<String>)> {
        assignment.localities[0]
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.address.to_string(),
                    e.additional.iter().map(ToString::to_string).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn strict_dns_makes_every_address_an_endpoint_and_logical_dns_one() {
        let answers = [ips(&["192.0.2.1", "2001:db8::1"]), ips(&["192.0.2.9"])];
        let strict = assignment_of(
            "c",
            &settings(DnsKind::Strict, &["a", "b"], false),
            &answers,
        );
        assert_eq!(
            addresses(&strict),
            [
                ("192.0.2.1:8080".into(), vec![]),
                ("[2001:db8::1]:8080".into(), vec![]),
                ("192.0.2.9:8080".into(), vec![]),
            ]
        );
        let logical = assignment_of("c", &settings(DnsKind::Logical, &["a"], false), &answers);
        assert_eq!(
            addresses(&logical),
            [(
                "192.0.2.1:8080".to_string(),
                vec!["[2001:db8::1]:8080".to_string()]
            )]
        );
        let nothing = assignment_of("c", &settings(DnsKind::Logical, &["a"], false), &[vec![]]);
        assert!(addresses(&nothing).is_empty());
    }

    #[test]
    fn the_ttl_sets_the_refresh_only_when_respected() {
        let answer = |seconds: u64| Answer {
            addresses: Vec::new(),
            ttl: Some(Duration::from_secs(seconds)),
        };
        let answers = [answer(30), answer(2)];
        let respected = settings(DnsKind::Strict, &["a", "b"], true);
        assert_eq!(next_refresh(&respected, &answers), Duration::from_secs(2));
        let ignored = settings(DnsKind::Strict, &["a", "b"], false);
        assert_eq!(next_refresh(&ignored, &answers), Duration::from_secs(5));
        assert_eq!(
            next_refresh(&respected, &[answer(0)]),
            Duration::from_secs(5),
            "a TTL of zero falls back to the refresh rate"
        );
    }
}
