//! What a client subscribes to, and what it is missing — shared by the state-of-the-world and
//! delta state machines.
//!
//! A subscription is a wildcard flag and a set of names. Name sets are interned: a fleet of
//! Envoys subscribing to the same thousand endpoint names holds one copy of them, not one
//! per client. What a client is missing is computed against the view it was last brought up
//! to date with (its base): when that view is the direct predecessor of the current one, only
//! the names the cache listed as changed are looked at.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, Weak};

use super::cache::TypeView;
use crate::xds::wire::Resource;

pub type NameSet = BTreeSet<String>;

/// Interned name sets, shared by every stream of a server.
#[derive(Default)]
pub struct NameSets {
    sets: Mutex<HashMap<u64, Vec<Weak<NameSet>>>>,
}

impl NameSets {
    /// The shared copy of `names`.
    pub fn intern(&self, names: NameSet) -> Arc<NameSet> {
        if names.is_empty() {
            return empty_set();
        }
        let mut hasher = DefaultHasher::new();
        names.hash(&mut hasher);
        let key = hasher.finish();
        let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = sets.entry(key).or_default();
        bucket.retain(|weak| weak.strong_count() > 0);
        if let Some(found) = bucket
            .iter()
            .filter_map(Weak::upgrade)
            .find(|set| **set == names)
        {
            return found;
        }
        let set = Arc::new(names);
        bucket.push(Arc::downgrade(&set));
        if sets.len() > 64 && sets.len().is_power_of_two() {
            sets.retain(|_, bucket| bucket.iter().any(|weak| weak.strong_count() > 0));
        }
        set
    }

    /// How many distinct sets are held (for tests and metrics).
    pub fn len(&self) -> usize {
        let sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        sets.values()
            .flatten()
            .filter(|weak| weak.strong_count() > 0)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn empty_set() -> Arc<NameSet> {
    static EMPTY: std::sync::OnceLock<Arc<NameSet>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Arc::new(NameSet::new())).clone()
}

/// The names a client asked for, and whether it asked for everything.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub wildcard: bool,
    pub names: Arc<NameSet>,
}

impl Default for Subscription {
    fn default() -> Self {
        Subscription {
            wildcard: false,
            names: empty_set(),
        }
    }
}

impl PartialEq for Subscription {
    fn eq(&self, other: &Self) -> bool {
        self.wildcard == other.wildcard
            && (Arc::ptr_eq(&self.names, &other.names) || self.names == other.names)
    }
}

impl Subscription {
    pub fn contains(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// The resources of `view` this subscription covers, by name.
    pub fn select(&self, view: &TypeView) -> Vec<Arc<Resource>> {
        if self.wildcard {
            return view.resources.values().cloned().collect();
        }
        self.names
            .iter()
            .filter_map(|name| view.resources.get(name).cloned())
            .collect()
    }
}

/// What a client up to date with one view needs to be up to date with another.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// Resources added or changed.
    pub updated: Vec<Arc<Resource>>,
    /// Resources the client has that are gone.
    pub removed: Vec<Arc<Resource>>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.updated.is_empty() && self.removed.is_empty()
    }
}

/// The subscribed resources that differ between `base` and `view`.
pub fn changes(base: &TypeView, view: &TypeView, subscription: &Subscription) -> Changes {
    let mut changes = Changes::default();
    if base.generation == view.generation {
        return changes;
    }
    let mut look_at = |name: &str| {
        if !subscription.contains(name) {
            return;
        }
        match (base.resources.get(name), view.resources.get(name)) {
            (Some(old), Some(new)) if Arc::ptr_eq(old, new) || old.version == new.version => {}
            (_, Some(new)) => changes.updated.push(new.clone()),
            (Some(old), None) => changes.removed.push(old.clone()),
            (None, None) => {}
        }
    };
    match &view.changed_since {
        Some((since, names)) if *since == base.generation => {
            names.iter().for_each(|name| look_at(name));
        }
        _ if subscription.wildcard => {
            let names: BTreeSet<&String> =
                base.resources.keys().chain(view.resources.keys()).collect();
            names.into_iter().for_each(|name| look_at(name));
        }
        _ => subscription.names.iter().for_each(|name| look_at(name)),
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::server::cache::{Content, Snapshot, ViewKey};
    use crate::xds::types::TypeUrl;

    fn set(names: &[&str]) -> NameSet {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn equal_sets_are_one_copy() {
        let sets = NameSets::default();
        let a = sets.intern(set(&["x", "y"]));
        let b = sets.intern(set(&["y", "x"]));
        assert!(Arc::ptr_eq(&a, &b));
        let c = sets.intern(set(&["x"]));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(sets.len(), 2);
        drop((a, b));
        assert_eq!(sets.len(), 1, "a set nobody holds is gone");
    }

    fn view(items: &[(&str, &[u8])], previous: Option<&Snapshot>) -> Snapshot {
        let mut content = Content::default();
        content.views.insert(
            (TypeUrl::Endpoint, ViewKey::Region(String::new())),
            items
                .iter()
                .map(|(n, b)| (n.to_string(), bytes::Bytes::copy_from_slice(b)))
                .collect(),
        );
        Snapshot::build(content, previous)
    }

    fn names(resources: &[Arc<Resource>]) -> Vec<&str> {
        resources.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn changes_follow_the_subscription_on_the_fast_and_the_full_path() {
        let client = Default::default();
        let one = view(&[("a", b"1"), ("b", b"1"), ("c", b"1")], None);
        let two = view(&[("a", b"2"), ("b", b"1"), ("d", b"1")], Some(&one));
        let three = view(&[("a", b"3"), ("b", b"2"), ("d", b"1")], Some(&two));
        let (v1, v2, v3) = (
            one.view(TypeUrl::Endpoint, &client),
            two.view(TypeUrl::Endpoint, &client),
            three.view(TypeUrl::Endpoint, &client),
        );
        let named = Subscription {
            wildcard: false,
            names: Arc::new(set(&["a", "c", "d"])),
        };
        let fast = changes(v1, v2, &named);
        assert_eq!(names(&fast.updated), ["a", "d"]);
        assert_eq!(names(&fast.removed), ["c"]);
        let skipped_one = changes(v1, v3, &named);
        assert_eq!(names(&skipped_one.updated), ["a", "d"]);
        let everything = Subscription {
            wildcard: true,
            names: empty_set(),
        };
        let full = changes(v1, v3, &everything);
        assert_eq!(names(&full.updated), ["a", "b", "d"]);
        assert_eq!(names(&full.removed), ["c"]);
        assert!(changes(v2, v2, &everything).is_empty());
    }
}
