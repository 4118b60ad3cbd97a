//! The removal guard: decides whether an edit withdraws so much of what is served that it is
//! more likely a truncated or half-written file than an intent — every listener, every
//! cluster, or more than half of the named resources. Such an edit is held back for a grace
//! period instead of served at once. Pure: compares names, knows nothing of files or time.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::translate::Resources;

/// The names of what a config serves, by kind (both audiences' listeners and routes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServedNames {
    pub listeners: BTreeSet<String>,
    pub routes: BTreeSet<String>,
    pub clusters: BTreeSet<String>,
}

impl ServedNames {
    pub fn of(resources: &Resources) -> ServedNames {
        let names = |items: &mut dyn Iterator<Item = &String>| items.cloned().collect();
        ServedNames {
            listeners: names(
                &mut resources
                    .listeners
                    .iter()
                    .chain(&resources.proxyless_listeners)
                    .map(|l| &l.name),
            ),
            routes: names(
                &mut resources
                    .routes
                    .iter()
                    .chain(&resources.proxyless_routes)
                    .map(|r| &r.name),
            ),
            clusters: names(&mut resources.clusters.iter().map(|c| &c.name)),
        }
    }

    fn len(&self) -> usize {
        self.listeners.len() + self.routes.len() + self.clusters.len()
    }
}

/// How many names of each kind a [`Removal`] lists (it counts them all).
pub const NAMES_SHOWN: usize = 100;

/// What an edit would remove, when that is enough to hold it back: the first
/// [`NAMES_SHOWN`] names of each kind, and the counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// Why the edit is held: which rule it trips.
    pub reason: String,
    pub listeners: Vec<String>,
    pub routes: Vec<String>,
    pub clusters: Vec<String>,
    /// Named resources served now, and how many of them the edit removes.
    pub served: usize,
    pub removed: usize,
}

/// The removal `next` makes to `served`, if it must be held back: it withdraws every listener,
/// every cluster, or more than half of the listeners, routes and clusters served.
pub fn assess(served: &ServedNames, next: &ServedNames) -> Option<Removal> {
    let removed = [
        (&served.listeners, &next.listeners),
        (&served.routes, &next.routes),
        (&served.clusters, &next.clusters),
    ]
    .iter()
    .map(|(now, then)| now.difference(then).count())
    .sum::<usize>();
    let reason = if !served.listeners.is_empty() && next.listeners.is_empty() {
        format!("it withdraws every listener ({})", served.listeners.len())
    } else if !served.clusters.is_empty() && next.clusters.is_empty() {
        format!("it withdraws every cluster ({})", served.clusters.len())
    } else if removed * 2 > served.len() {
        format!(
            "it removes {removed} of the {} listeners, routes and clusters served, more than half",
            served.len()
        )
    } else {
        return None;
    };
    let gone = |now: &BTreeSet<String>, then: &BTreeSet<String>| -> Vec<String> {
        now.difference(then).take(NAMES_SHOWN).cloned().collect()
    };
    Some(Removal {
        reason,
        listeners: gone(&served.listeners, &next.listeners),
        routes: gone(&served.routes, &next.routes),
        clusters: gone(&served.clusters, &next.clusters),
        served: served.len(),
        removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(listeners: &[&str], routes: &[&str], clusters: &[&str]) -> ServedNames {
        let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        ServedNames {
            listeners: set(listeners),
            routes: set(routes),
            clusters: set(clusters),
        }
    }

    #[test]
    fn withdrawing_every_listener_or_cluster_is_held() {
        let served = names(&["l"], &["r"], &["a", "b", "c", "d"]);
        let no_listener = assess(&served, &names(&[], &["r"], &["a", "b", "c", "d"])).unwrap();
        assert_eq!(no_listener.reason, "it withdraws every listener (1)");
        assert_eq!(no_listener.listeners, ["l"]);
        let no_cluster = assess(&served, &names(&["l"], &["r"], &[])).unwrap();
        assert_eq!(no_cluster.reason, "it withdraws every cluster (4)");
        assert_eq!(no_cluster.removed, 4);
    }

    #[test]
    fn more_than_half_is_held_and_half_is_not() {
        let served = names(&["l"], &["r"], &["a", "b", "c", "d", "e", "f"]);
        assert_eq!(
            assess(&served, &names(&["l"], &["r"], &["a", "b", "c", "z"])),
            None,
            "3 of 8 removed"
        );
        assert_eq!(
            assess(&served, &names(&["l"], &["r"], &["a", "b"])),
            None,
            "4 of 8 removed: half, not more"
        );
        let held = assess(&served, &names(&["l"], &["r"], &["a"])).unwrap();
        assert_eq!(
            held.reason,
            "it removes 5 of the 8 listeners, routes and clusters served, more than half"
        );
    }

    #[test]
    fn nothing_served_holds_nothing_back() {
        assert_eq!(
            assess(&ServedNames::default(), &ServedNames::default()),
            None
        );
        assert_eq!(
            assess(&ServedNames::default(), &names(&["l"], &[], &["a"])),
            None
        );
    }
}
