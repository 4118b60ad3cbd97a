//! Which regions serve a client, in which order: the client's own region first, then the
//! regions its `regionOrder` entry lists (one priority each, in order), then the other regions
//! of its continent (the region name up to the first `-`: `us`, `europe`), then all the rest.
//! A client that reports no region sees every region as one tier.

use std::collections::{BTreeMap, BTreeSet};

/// Regions grouped into failover tiers (priority 0 first); every region appears once.
pub fn failover_tiers(
    region_order: &BTreeMap<String, Vec<String>>,
    client_region: Option<&str>,
    regions: &BTreeSet<String>,
) -> Vec<Vec<String>> {
    let Some(client) = client_region.filter(|r| !r.is_empty()) else {
        return vec![regions.iter().cloned().collect()]
            .into_iter()
            .filter(|t: &Vec<String>| !t.is_empty())
            .collect();
    };
    let mut placed = BTreeSet::new();
    let mut tiers: Vec<Vec<String>> = Vec::new();
    let mut place = |tier: Vec<&String>, placed: &mut BTreeSet<String>| {
        let fresh: Vec<String> = tier
            .into_iter()
            .filter(|r| placed.insert((*r).clone()))
            .cloned()
            .collect();
        if !fresh.is_empty() {
            tiers.push(fresh);
        }
    };
    place(
        regions.iter().filter(|r| *r == client).collect(),
        &mut placed,
    );
    for preferred in region_order.get(client).into_iter().flatten() {
        place(
            regions.iter().filter(|r| *r == preferred).collect(),
            &mut placed,
        );
    }
    place(
        regions
            .iter()
            .filter(|r| continent(r) == continent(client))
            .collect(),
        &mut placed,
    );
    place(regions.iter().collect(), &mut placed);
    tiers
}

/// The region a client's view can be computed as: regions that appear in the config stay as
/// they are; any other region sees exactly what a client of its continent would (its own
/// region has no backends), or, on a continent without backends, what a client without a
/// region sees. So clients reporting made-up regions share a bounded set of views.
pub fn view_region(
    region_order: &BTreeMap<String, Vec<String>>,
    known: &BTreeSet<String>,
    client_region: &str,
) -> String {
    if client_region.is_empty()
        || known.contains(client_region)
        || region_order.contains_key(client_region)
    {
        return client_region.to_string();
    }
    let continent = continent(client_region);
    if known.iter().any(|r| self::continent(r) == continent) {
        format!("{continent}-*")
    } else {
        String::new()
    }
}

/// Every region [`view_region`] can map a client to: none (`""`), the known regions, those
/// `regionOrder` names clients for, and `CONTINENT-*` for each continent with backends.
pub fn view_regions(
    region_order: &BTreeMap<String, Vec<String>>,
    known: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut regions: BTreeSet<String> = known.iter().cloned().collect();
    regions.extend(region_order.keys().cloned());
    regions.extend(known.iter().map(|r| format!("{}-*", continent(r))));
    regions.insert(String::new());
    regions
}

/// `us-central1` → `us`; `europe-west4` → `europe`.
pub fn continent(region: &str) -> &str {
    region.split('-').next().unwrap_or(region)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn own_region_then_continent_then_anywhere() {
        let all = regions(&[
            "asia-east1",
            "europe-west4",
            "us-central1",
            "us-east1",
            "us-west1",
        ]);
        let tiers = failover_tiers(&BTreeMap::new(), Some("us-central1"), &all);
        assert_eq!(
            tiers,
            vec![
                vec!["us-central1"],
                vec!["us-east1", "us-west1"],
                vec!["asia-east1", "europe-west4"]
            ]
        );
    }

    #[test]
    fn made_up_regions_share_their_continents_view() {
        let known = regions(&["europe-west4", "us-central1"]);
        let none = BTreeMap::new();
        assert_eq!(view_region(&none, &known, "us-central1"), "us-central1");
        assert_eq!(view_region(&none, &known, "us-nowhere9"), "us-*");
        assert_eq!(view_region(&none, &known, "mars-base1"), "");
        let tiers = |r: &str| failover_tiers(&none, Some(r), &known);
        assert_eq!(
            tiers("us-nowhere9"),
            tiers("us-*"),
            "the canonical region gives the same tiers"
        );
        assert_eq!(
            failover_tiers(&none, Some("mars-base1"), &known).concat(),
            tiers("").concat()
        );
    }

    #[test]
    fn region_order_comes_before_the_default_rule() {
        let all = regions(&["europe-west4", "us-central1", "us-east1"]);
        let order = BTreeMap::from([("us-central1".to_string(), vec!["europe-west4".to_string()])]);
        let tiers = failover_tiers(&order, Some("us-central1"), &all);
        assert_eq!(
            tiers,
            vec![vec!["us-central1"], vec!["europe-west4"], vec!["us-east1"]]
        );
    }

    #[test]
    fn a_client_without_region_or_outside_every_region_is_served_by_tiers_too() {
        let all = regions(&["europe-west4", "us-central1"]);
        assert_eq!(
            failover_tiers(&BTreeMap::new(), None, &all),
            vec![vec!["europe-west4", "us-central1"]]
        );
        assert_eq!(
            failover_tiers(&BTreeMap::new(), Some("us-east1"), &all),
            vec![vec!["us-central1"], vec!["europe-west4"]]
        );
    }
}
