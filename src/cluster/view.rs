//! What this replica knows of the replica set: the members and when each granted its lease,
//! the standings replicas wrote, the load each published, the state of the etcd connection,
//! and from those whether it shares the probing (and sums the load) now. It shares while its
//! lease was confirmed alive within the lease's TTL and it is itself a member; otherwise it
//! probes everything (so etcd going away never leaves a target unprobed, nor pulls
//! endpoints) and decides from its own load. Pure: the clock is handed in; no I/O.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use crate::health::state::Standing;

use super::load_value::{parse_load, PublishedLoad};
use super::owners::owner;

/// One live member, as its key in etcd says.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// When it was granted the lease its key hangs on (Unix seconds).
    pub granted_unix: f64,
}

/// The etcd connection.
#[derive(Clone, Debug, PartialEq)]
pub enum Connection {
    Connecting,
    Connected,
    /// The last session ended with `error`; reconnecting.
    Lost {
        error: String,
    },
}

/// A key under the prefix, read.
#[derive(Debug, PartialEq)]
pub enum Entry {
    Member(String),
    Health(String),
    /// The load member `NAME` published.
    Load(String),
}

/// The key of member `name` under the prefix.
pub fn member_key(prefix: &str, name: &str) -> String {
    format!("{prefix}members/{name}")
}

/// The key of target `id`'s standing under the prefix.
pub fn health_key(prefix: &str, id: &str) -> String {
    format!("{prefix}health/{id}")
}

/// The key of the load member `name` published, under the prefix.
pub fn load_key(prefix: &str, name: &str) -> String {
    format!("{prefix}load/{name}")
}

/// What `key` is (None: not ours).
pub fn parse_key(prefix: &str, key: &str) -> Option<Entry> {
    let rest = key.strip_prefix(prefix)?;
    if let Some(name) = rest.strip_prefix("members/") {
        return Some(Entry::Member(name.to_string()));
    }
    if let Some(name) = rest.strip_prefix("load/") {
        return Some(Entry::Load(name.to_string()));
    }
    rest.strip_prefix("health/")
        .map(|id| Entry::Health(id.to_string()))
}

/// The value written for a standing: the standing first, then what it is of (for people
/// reading etcd), then when it changed (Unix milliseconds, by the prober's clock: slow-start
/// ramps start from it on every replica).
pub fn health_value(standing: Standing, what: &str, since: SystemTime) -> String {
    let millis = since
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{} {what} since={millis}", standing.as_str())
}

/// When the standing a value written by [`health_value`] carries changed (None: not said).
pub fn parse_since(value: &str) -> Option<SystemTime> {
    let millis: u64 = value
        .split_whitespace()
        .find_map(|word| word.strip_prefix("since="))?
        .parse()
        .ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(millis))
}

/// The standing a value written by [`health_value`] carries.
pub fn parse_health(value: &str) -> Option<Standing> {
    match value.split_whitespace().next()? {
        "HEALTHY" => Some(Standing::Healthy),
        "UNHEALTHY" => Some(Standing::Unhealthy),
        _ => None,
    }
}

/// A member's value: when it was granted its lease.
pub fn member_value(granted_unix: f64) -> String {
    serde_json::json!({ "granted_unix": granted_unix }).to_string()
}

/// The member a value written by [`member_value`] describes (a value it cannot read still
/// makes a member: membership is the key's existence).
pub fn parse_member(value: &str) -> Member {
    let granted_unix = serde_json::from_str::<serde_json::Value>(value)
        .ok()
        .and_then(|v| v["granted_unix"].as_f64())
        .unwrap_or(0.0);
    Member { granted_unix }
}

pub struct View {
    /// This replica's name.
    pub me: String,
    pub lease_ttl: Duration,
    pub members: BTreeMap<String, Member>,
    /// Changes whenever the member names may have changed (ownership is computed again).
    pub membership: u64,
    /// Target id → the standing etcd holds.
    pub shared: HashMap<String, Standing>,
    /// Target id → when its shared standing changed, where the writer said.
    pub shared_since: HashMap<String, SystemTime>,
    pub connection: Connection,
    /// When this replica's lease was last confirmed alive.
    pub confirmed: Option<Instant>,
    /// Member name → the load it published.
    pub loads: BTreeMap<String, PublishedLoad>,
    /// Changes whenever `loads` does.
    pub loads_version: u64,
}

impl View {
    pub fn new(me: String, lease_ttl: Duration) -> View {
        View {
            me,
            lease_ttl,
            members: BTreeMap::new(),
            membership: 0,
            shared: HashMap::new(),
            shared_since: HashMap::new(),
            connection: Connection::Connecting,
            confirmed: None,
            loads: BTreeMap::new(),
            loads_version: 0,
        }
    }

    /// Whether the probing is shared now (else this replica probes every target).
    pub fn sharing(&self, now: Instant) -> bool {
        let alive = self
            .confirmed
            .is_some_and(|at| now.saturating_duration_since(at) < self.lease_ttl);
        alive && self.members.contains_key(&self.me)
    }

    /// The member that owns target `id` (None when there is none).
    pub fn owner(&self, id: &str) -> Option<&str> {
        owner(id, self.members.keys().map(String::as_str))
    }

    /// Whether this replica probes target `id` now.
    pub fn probes(&self, id: &str, now: Instant) -> bool {
        !self.sharing(now) || self.owner(id) == Some(self.me.as_str())
    }

    /// A fresh read of everything under the prefix, at (re)connection.
    pub fn connected(
        &mut self,
        now: Instant,
        members: BTreeMap<String, Member>,
        shared: HashMap<String, Standing>,
    ) {
        self.members = members;
        self.membership += 1;
        self.shared = shared;
        self.connection = Connection::Connected;
        self.confirmed = Some(now);
    }

    /// The loads read with everything under the prefix, at (re)connection.
    pub fn replace_loads(&mut self, loads: BTreeMap<String, PublishedLoad>) {
        self.loads = loads;
        self.loads_version += 1;
    }

    /// The load `name` published, `None` for a value that carries none.
    pub fn set_load(&mut self, name: String, load: Option<PublishedLoad>) {
        match load {
            Some(load) => {
                self.loads.insert(name, load);
            }
            None => {
                self.loads.remove(&name);
            }
        }
        self.loads_version += 1;
    }

    /// The loads of the live members, by name.
    pub fn member_loads(&self) -> impl Iterator<Item = (&String, &PublishedLoad)> {
        self.loads
            .iter()
            .filter(|(name, _)| self.members.contains_key(*name))
    }

    /// The lease was confirmed alive at `now`.
    pub fn kept_alive(&mut self, now: Instant) {
        self.confirmed = Some(now);
    }

    /// The session ended with `error`. What was known stands until the lease's TTL passes.
    pub fn lost(&mut self, error: String) {
        self.connection = Connection::Lost { error };
    }

    /// A key under the prefix was written.
    pub fn put(&mut self, entry: Entry, value: &str) {
        match entry {
            Entry::Member(name) => {
                if self.members.insert(name, parse_member(value)).is_none() {
                    self.membership += 1;
                }
            }
            Entry::Health(id) => {
                match parse_since(value) {
                    Some(since) => self.shared_since.insert(id.clone(), since),
                    None => self.shared_since.remove(&id),
                };
                match parse_health(value) {
                    Some(standing) => self.shared.insert(id, standing),
                    None => self.shared.remove(&id),
                };
            }
            Entry::Load(name) => self.set_load(name, parse_load(value)),
        }
    }

    /// A key under the prefix was deleted (or its lease expired).
    pub fn delete(&mut self, entry: Entry) {
        match entry {
            Entry::Member(name) => {
                if self.members.remove(&name).is_some() {
                    self.membership += 1;
                }
            }
            Entry::Health(id) => {
                self.shared.remove(&id);
                self.shared_since.remove(&id);
            }
            Entry::Load(name) => self.set_load(name, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view_of(members: &[&str]) -> (View, Instant) {
        let now = Instant::now();
        let mut view = View::new("a".into(), Duration::from_secs(10));
        let members = members
            .iter()
            .map(|m| (m.to_string(), Member { granted_unix: 1.0 }))
            .collect();
        view.connected(now, members, HashMap::new());
        (view, now)
    }

    #[test]
    fn a_replica_probes_its_share_while_its_lease_is_confirmed() {
        let (view, now) = view_of(&["a", "b", "c"]);
        let ids: Vec<String> = (0..300).map(|i| format!("t{i}")).collect();
        let mine = ids.iter().filter(|id| view.probes(id, now)).count();
        assert!((50..150).contains(&mine), "a probes {mine} of 300");
    }

    #[test]
    fn past_the_ttl_without_etcd_a_replica_probes_everything() {
        let (mut view, now) = view_of(&["a", "b", "c"]);
        view.lost("connection refused".into());
        let ids: Vec<String> = (0..60).map(|i| format!("t{i}")).collect();
        let within = now + Duration::from_secs(9);
        assert!(view.sharing(within), "the TTL has not passed: still shared");
        assert!(ids.iter().any(|id| !view.probes(id, within)));
        let past = now + Duration::from_secs(10);
        assert!(!view.sharing(past));
        assert!(ids.iter().all(|id| view.probes(id, past)));
        // Back: sharing again.
        view.connected(past, view.members.clone(), HashMap::new());
        assert!(ids.iter().any(|id| !view.probes(id, past)));
    }

    #[test]
    fn a_replica_that_is_no_member_probes_everything() {
        let (mut view, now) = view_of(&["a", "b"]);
        view.delete(Entry::Member("a".into()));
        assert!(!view.sharing(now));
        assert!(view.probes("anything", now));
    }

    #[test]
    fn keys_and_values_read_back() {
        let prefix = "/switchyard/";
        assert_eq!(
            parse_key(prefix, &member_key(prefix, "r1")),
            Some(Entry::Member("r1".into()))
        );
        assert_eq!(
            parse_key(prefix, &health_key(prefix, "abc")),
            Some(Entry::Health("abc".into()))
        );
        assert_eq!(
            parse_key(prefix, &load_key(prefix, "r1")),
            Some(Entry::Load("r1".into()))
        );
        assert_eq!(parse_key(prefix, "/other/members/x"), None);
        let since = SystemTime::UNIX_EPOCH + Duration::from_millis(1_765_100_000_123);
        let value = health_value(Standing::Unhealthy, "127.0.0.1:80", since);
        assert_eq!(parse_health(&value), Some(Standing::Unhealthy));
        assert_eq!(parse_since(&value), Some(since));
        assert_eq!(
            parse_since("HEALTHY 127.0.0.1:80"),
            None,
            "an older writer's value"
        );
        assert_eq!(parse_member(&member_value(12.5)).granted_unix, 12.5);
    }
}
