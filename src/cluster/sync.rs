//! Brings the checker and etcd into agreement, one pass at a time: for a target this replica
//! owns it says which standings etcd lacks (to be written); for any other target, and for an
//! owned one not probed yet, it hands the checker the standing etcd holds. Does nothing while
//! the probing is not shared (etcd's word is stale then). Must not: talk to etcd (the session
//! writes what a pass returns).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::health::checker::{Checker, TargetEntry};
use crate::health::state::Standing;
use crate::health::targets::TargetKey;

use super::owners::target_id;
use super::view::View;
use super::Replicas;

/// The checker's targets with their ids and owners, read again when the checker adopts a
/// model, owners computed again when the members change (not on every probe or pass).
#[derive(Default)]
pub struct Index {
    /// The checker generation and view membership the entries were made for.
    stamp: Option<(u64, u64)>,
    pub entries: Vec<Indexed>,
    /// Whether this replica owns each target.
    mine: HashMap<Arc<TargetKey>, bool>,
}

/// A target with its id and owner.
pub struct Indexed {
    pub id: String,
    pub entry: TargetEntry,
    pub owner: Option<String>,
}

impl Index {
    /// Whether this replica owns `key` (None: a target not indexed yet).
    pub fn owns(&self, key: &TargetKey) -> Option<bool> {
        self.mine.get(key).copied()
    }

    /// Brings the entries up to date with the checker's targets and the view's members.
    fn refresh(&mut self, checker: &Checker, view: &View) {
        let generation = checker.generation();
        let stamp = (generation, view.membership);
        if self.stamp == Some(stamp) {
            return;
        }
        if self.stamp.map(|(g, _)| g) != Some(generation) {
            let mut entries: Vec<Indexed> = checker
                .entries()
                .into_iter()
                .map(|entry| Indexed {
                    id: target_id(&entry.0),
                    entry,
                    owner: None,
                })
                .collect();
            entries.sort_by(|a, b| a.id.cmp(&b.id));
            self.entries = entries;
        }
        self.mine.clear();
        for target in &mut self.entries {
            target.owner = view.owner(&target.id).map(str::to_string);
            let mine = target.owner.as_deref() == Some(view.me.as_str());
            self.mine.insert(target.entry.0.clone(), mine);
        }
        self.stamp = Some(stamp);
    }
}

/// A standing this replica must write: target id, standing, the address it is of, and when
/// it changed.
#[derive(Debug)]
pub struct Write {
    pub id: String,
    pub standing: Standing,
    pub address: SocketAddr,
    pub since: SystemTime,
}

/// One pass; returns the writes etcd needs.
pub fn pass(replicas: &Replicas, checker: &Checker) -> Vec<Write> {
    let now = Instant::now();
    let mut index = replicas.index();
    let mut writes = Vec::new();
    let mut adopted = Vec::new();
    let mut owned = 0;
    {
        let view = replicas.view();
        index.refresh(checker, &view);
        let sharing = view.sharing(now);
        for target in &index.entries {
            let (key, cell) = &target.entry;
            let mine = target.owner.as_deref() == Some(view.me.as_str());
            owned += usize::from(mine);
            if !sharing {
                continue;
            }
            let local = cell.standing();
            let shared = view.shared.get(&target.id).copied();
            if mine && local != Standing::Unknown {
                if shared != Some(local) {
                    writes.push(Write {
                        id: target.id.clone(),
                        standing: local,
                        address: key.address,
                        since: cell.since(),
                    });
                }
            } else if let Some(shared) = shared.filter(|s| *s != local) {
                let since = view.shared_since.get(&target.id).copied();
                adopted.push((cell.clone(), shared, since));
            }
        }
        replicas.metrics.sharing.set(i64::from(sharing));
        replicas.metrics.members.set(view.members.len() as i64);
    }
    replicas.metrics.targets_owned.set(owned as i64);
    drop(index);
    for (cell, standing, since) in adopted {
        checker.set_shared_standing(&cell, standing, since);
    }
    writes
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::cluster::owners::owner;
    use crate::cluster::view::Member;
    use crate::cluster::EtcdOptions;
    use crate::health::sharing::Sharing;
    use crate::model::endpoint_facts::EndpointSource;

    fn replicas(me: &str) -> Arc<Replicas> {
        Arc::new(Replicas::new(EtcdOptions {
            endpoints: Vec::new(),
            prefix: "/t/".into(),
            replica_name: me.into(),
            lease: Duration::from_secs(10),
            tls: None,
            user: None,
        }))
    }

    /// Twenty checked endpoints.
    fn model() -> crate::model::Model {
        let endpoints: Vec<String> = (1..=20)
            .map(|i| format!("{{ipAddress: 10.0.0.{i}, port: 80}}"))
            .collect();
        let text = format!(
            "healthChecks:\n- {{name: hc, type: HTTP, checkIntervalSec: 5, timeoutSec: 1}}\n\
             networkEndpointGroups:\n- {{name: neg, zone: us-central1-a, endpoints: [{}]}}\n\
             backendServices:\n- {{name: web, healthChecks: [hc], backends: [{{group: neg, balancingMode: RATE, maxRate: 1}}]}}\n",
            endpoints.join(", ")
        );
        let loaded = crate::config::load_str(&text, "hc.yaml");
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        loaded.model
    }

    #[test]
    fn the_owner_writes_its_standings_and_the_others_take_etcd_s() {
        let replicas = replicas("a");
        let checker = Checker::with_sharing(replicas.clone());
        checker.adopt(&model());
        let owned_by = |id: &str| owner(id, ["a", "b"]).unwrap().to_string();
        let entries: Vec<(String, TargetEntry)> = checker
            .entries()
            .into_iter()
            .map(|entry| (target_id(&entry.0), entry))
            .collect();
        // b says every target it owns is unhealthy.
        let shared: HashMap<String, Standing> = entries
            .iter()
            .filter(|(id, _)| owned_by(id) == "b")
            .map(|(id, _)| (id.clone(), Standing::Unhealthy))
            .collect();
        assert!(!shared.is_empty() && shared.len() < entries.len());
        let members: BTreeMap<String, Member> = ["a", "b"]
            .into_iter()
            .map(|name| (name.to_string(), Member { granted_unix: 0.0 }))
            .collect();
        replicas.view().connected(Instant::now(), members, shared);
        // a probes its own: each passes.
        for (id, (key, cell)) in &entries {
            assert_eq!(replicas.probes(key), owned_by(id) == "a", "{key:?}");
            if owned_by(id) == "a" {
                checker.record(key, cell, Ok(()), SystemTime::now());
            }
        }
        let writes = pass(&replicas, &checker);
        let written: HashSet<&str> = writes.iter().map(|w| w.id.as_str()).collect();
        let mine: HashSet<&str> = entries
            .iter()
            .filter(|(id, _)| owned_by(id) == "a")
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(
            written, mine,
            "a writes exactly the standings of its own targets"
        );
        assert!(writes.iter().all(|w| w.standing == Standing::Healthy));
        for (id, (_, cell)) in &entries {
            let expected = if owned_by(id) == "a" {
                Standing::Healthy
            } else {
                Standing::Unhealthy
            };
            assert_eq!(cell.standing(), expected);
        }
        // Once etcd has them, nothing more to write.
        for write in writes {
            replicas.view().shared.insert(write.id, write.standing);
        }
        assert!(pass(&replicas, &checker).is_empty());
    }

    #[test]
    fn nothing_is_compared_while_the_probing_is_not_shared() {
        let replicas = replicas("a");
        let checker = Checker::with_sharing(replicas.clone());
        checker.adopt(&model());
        let (key, cell) = checker.entries().remove(0);
        assert!(replicas.probes(&key), "never connected: probes everything");
        checker.record(&key, &cell, Ok(()), SystemTime::now());
        assert!(pass(&replicas, &checker).is_empty());
    }
}
