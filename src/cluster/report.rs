//! `/cluster` on the admin port: this replica's name, the etcd connection, whether the probing
//! is shared, where capacity decisions take the load from, and each live member with its
//! lease's age, the targets it owns (as this replica computes ownership) and the load it last
//! published. Must not: change anything.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::view::Connection;
use super::Replicas;

#[derive(Debug, Serialize)]
pub struct ClusterReport {
    pub replica: String,
    pub prefix: String,
    pub etcd: EtcdReport,
    /// False while this replica probes every target itself (etcd out of reach past the TTL).
    pub sharing: bool,
    pub lease_ttl_sec: f64,
    pub targets: usize,
    /// Where capacity decisions take the measured load from: `members` (the sum of what every
    /// live member published) or `local` (this replica's own clients only, while etcd is out
    /// of reach past the TTL).
    pub load_decided_from: &'static str,
    pub members: Vec<MemberReport>,
}

#[derive(Debug, Serialize)]
pub struct EtcdReport {
    pub endpoints: Vec<String>,
    /// `connecting`, `connected` or `reconnecting`.
    pub state: &'static str,
    pub last_error: Option<String>,
    /// Seconds since this replica's lease was last confirmed alive.
    pub lease_confirmed_age_sec: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct MemberReport {
    pub name: String,
    /// Seconds since the member was granted the lease its key hangs on.
    pub lease_age_sec: f64,
    pub targets_owned: usize,
    /// The load it last published (None: none yet).
    pub load: Option<MemberLoadReport>,
}

#[derive(Debug, Serialize)]
pub struct MemberLoadReport {
    /// The services it has load for.
    pub services: usize,
    /// Requests per second over all of them.
    pub requests_per_second: f64,
    /// Seconds since it was written (by the member's clock; it is written again only when
    /// the figures change).
    pub age_sec: f64,
    /// Series left out to keep the value bounded.
    pub left_out: usize,
}

impl Replicas {
    pub fn report(&self) -> ClusterReport {
        let index = self.index();
        let view = self.view();
        let mut owned: BTreeMap<&str, usize> = BTreeMap::new();
        for owner in index.entries.iter().filter_map(|t| t.owner.as_deref()) {
            *owned.entry(owner).or_default() += 1;
        }
        let now_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let members = view
            .members
            .iter()
            .map(|(name, member)| MemberReport {
                name: name.clone(),
                lease_age_sec: (now_unix - member.granted_unix).max(0.0),
                targets_owned: owned.get(name.as_str()).copied().unwrap_or(0),
                load: view.loads.get(name).map(|load| MemberLoadReport {
                    services: load.services.len(),
                    requests_per_second: load.requests_per_second(),
                    age_sec: (now_unix - load.at).max(0.0),
                    left_out: load.left_out,
                }),
            })
            .collect();
        let (state, last_error) = match &view.connection {
            Connection::Connecting => ("connecting", None),
            Connection::Connected => ("connected", None),
            Connection::Lost { error } => ("reconnecting", Some(error.clone())),
        };
        let now = Instant::now();
        ClusterReport {
            replica: view.me.clone(),
            prefix: self.options.prefix.clone(),
            etcd: EtcdReport {
                endpoints: self.options.endpoints.clone(),
                state,
                last_error,
                lease_confirmed_age_sec: view
                    .confirmed
                    .map(|at| now.saturating_duration_since(at).as_secs_f64()),
            },
            sharing: view.sharing(now),
            load_decided_from: if view.sharing(now) {
                "members"
            } else {
                "local"
            },
            lease_ttl_sec: view.lease_ttl.as_secs_f64(),
            targets: index.entries.len(),
            members,
        }
    }
}
