//! Brings the checker and etcd into agreement, one pass at a time: for a target this replica
//! owns it says which standings etcd lacks (to be written); for any other target, and for an
//! owned one not probed yet, it hands the checker the standing etcd holds. Does nothing while
//! the probing is not shared (etcd's word is stale then). Must not: talk to etcd (the session
//! writes what a pass returns).

use std::net::SocketAddr;
use std::time::Instant;

use crate::health::checker::{Checker, TargetEntry};
use crate::health::state::Standing;

use super::owners::target_id;
use super::Replicas;

/// The checker's targets with their ids, read again when the checker adopts a model.
#[derive(Default)]
pub struct Index {
    generation: Option<u64>,
    pub entries: Vec<(String, TargetEntry)>,
}

impl Index {
    /// Reads the checker's targets again if it adopted a model since the last read.
    fn refresh(&mut self, checker: &Checker) {
        let generation = checker.generation();
        if self.generation == Some(generation) {
            return;
        }
        self.entries = checker
            .entries()
            .into_iter()
            .map(|entry| (target_id(&entry.0), entry))
            .collect();
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        self.generation = Some(generation);
    }
}

/// A standing this replica must write: target id, standing, and the address it is of.
#[derive(Debug)]
pub struct Write {
    pub id: String,
    pub standing: Standing,
    pub address: SocketAddr,
}

/// One pass; returns the writes etcd needs.
pub fn pass(replicas: &Replicas, checker: &Checker) -> Vec<Write> {
    let now = Instant::now();
    let mut index = replicas.index();
    index.refresh(checker);
    let mut writes = Vec::new();
    let mut adopted = Vec::new();
    let mut owned = 0;
    {
        let view = replicas.view();
        let sharing = view.sharing(now);
        for (id, (key, cell)) in &index.entries {
            let mine = view.owner(id) == Some(view.me.as_str());
            owned += usize::from(mine);
            if !sharing {
                continue;
            }
            let local = cell.standing();
            let shared = view.shared.get(id).copied();
            if mine && local != Standing::Unknown {
                if shared != Some(local) {
                    writes.push(Write {
                        id: id.clone(),
                        standing: local,
                        address: key.address,
                    });
                }
            } else if let Some(shared) = shared.filter(|s| *s != local) {
                adopted.push((cell.clone(), shared));
            }
        }
        replicas.metrics.sharing.set(i64::from(sharing));
        replicas.metrics.members.set(view.members.len() as i64);
    }
    replicas.metrics.targets_owned.set(owned as i64);
    drop(index);
    for (cell, standing) in adopted {
        checker.set_shared_standing(&cell, standing);
    }
    writes
}
