//! Shares decided from measured load (capacity filling the nearest region and spilling the
//! rest): for a client region whose traffic spills, every backend group that takes a share is
//! put in the first priority with a locality weight in proportion to its share, and the groups
//! without one keep their failover order after it. A client region without decided shares
//! keeps the static answer (its own region first, weighted by capacity). Pure: the shares
//! (service → client view region → group → share) come in. Must not: decide them (publish
//! fills them from `capacity`).

use std::collections::{BTreeMap, BTreeSet};

use crate::model::capacity::WEIGHT_SCALE;

use super::endpoints::PlannedLocality;

/// Decided shares: service → client (view) region → group → share of that region's traffic.
pub type CapacityShares = BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>;

/// No decided shares: every client gets the static answer.
pub static NO_SHARES: CapacityShares = BTreeMap::new();

/// The shares decided for `service`'s clients in `client_region`, if any.
pub fn shares_for<'a>(
    shares: &'a CapacityShares,
    service: &str,
    client_region: Option<&str>,
) -> Option<&'a BTreeMap<String, f64>> {
    shares.get(service)?.get(client_region?)
}

/// Whether any service has shares decided for clients in `client_region` (their endpoint
/// views then differ from those of regions with the same failover order).
pub fn decided_for(shares: &CapacityShares, client_region: Option<&str>) -> bool {
    client_region.is_some_and(|region| shares.values().any(|by| by.contains_key(region)))
}

/// Puts the groups with a share first, weighted by it: their localities get priority 0 and
/// every other locality moves one priority down, keeping its order. Does nothing when no
/// served group has a share (the config changed since the shares were decided).
pub fn apply(
    shares: &BTreeMap<String, f64>,
    planned: &mut [PlannedLocality<'_>],
    priorities: &mut BTreeMap<(String, String), u32>,
) {
    let share_of = |plan: &PlannedLocality<'_>| {
        shares
            .get(&plan.group.name)
            .copied()
            .filter(|share| *share > 0.0 && plan.weight.is_some())
    };
    let first: BTreeSet<(String, String)> = planned
        .iter()
        .filter(|plan| share_of(plan).is_some())
        .map(|plan| (plan.group.region.clone(), plan.group.zone.clone()))
        .collect();
    if first.is_empty() {
        return;
    }
    for plan in planned.iter_mut() {
        if let Some(share) = share_of(plan) {
            plan.weight = Some((share * WEIGHT_SCALE).round().max(1.0) as u32);
        }
    }
    let moved: BTreeMap<(String, String), u32> = priorities
        .iter()
        .map(|(locality, priority)| {
            let priority = if first.contains(locality) {
                0
            } else {
                priority + 1
            };
            (locality.clone(), priority)
        })
        .collect();
    let ranks: BTreeSet<u32> = moved.values().copied().collect();
    let dense: BTreeMap<u32, u32> = ranks
        .into_iter()
        .enumerate()
        .map(|(index, priority)| (priority, index as u32))
        .collect();
    *priorities = moved
        .into_iter()
        .map(|(locality, priority)| (locality, dense[&priority]))
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::endpoints::{assignment_with, Overlay};

    /// `svc` with a NEG (one endpoint, 20 requests/s) in each of three regions.
    fn model() -> crate::model::Model {
        let mut text = String::from("networkEndpointGroups:\n");
        let zones = [
            ("near", "us-central1-a"),
            ("next", "us-east1-b"),
            ("far", "europe-west1-b"),
        ];
        for (n, (name, zone)) in zones.iter().enumerate() {
            text += &format!(
                "- name: {name}\n  zone: {zone}\n  endpoints:\n  - {{ipAddress: 127.0.0.1, port: {}}}\n",
                9000 + n
            );
        }
        text += "backendServices:\n- name: svc\n  backends:\n";
        for (name, zone) in zones {
            text += &format!(
                "  - {{group: zones/{zone}/networkEndpointGroups/{name}, balancingMode: RATE, maxRatePerEndpoint: 20}}\n"
            );
        }
        let loaded = crate::config::load_str(&text, "capacity.yaml");
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        loaded.model
    }

    /// (group, priority, weight) of each locality.
    fn localities(
        model: &crate::model::Model,
        region: &str,
        shares: &CapacityShares,
    ) -> Vec<(String, u32, u32)> {
        let overlay = Overlay {
            capacity: shares,
            ..Overlay::draining_only(&[])
        };
        let assignment = assignment_with(model, &model.services["svc"], Some(region), overlay);
        let mut seen: Vec<(String, u32, u32)> = assignment
            .endpoints
            .iter()
            .map(|l| {
                (
                    l.locality.as_ref().unwrap().sub_zone.clone(),
                    l.priority,
                    l.load_balancing_weight.as_ref().unwrap().value,
                )
            })
            .collect();
        seen.sort();
        seen
    }

    fn triples(items: &[(&str, u32, u32)]) -> Vec<(String, u32, u32)> {
        items
            .iter()
            .map(|(g, p, w)| (g.to_string(), *p, *w))
            .collect()
    }

    #[test]
    fn groups_with_a_share_come_first_weighted_by_it() {
        let model = model();
        let shares = CapacityShares::from([(
            "svc".to_string(),
            BTreeMap::from([(
                "us-central1".to_string(),
                BTreeMap::from([("near".to_string(), 0.6), ("far".to_string(), 0.4)]),
            )]),
        )]);
        // far (priority 2 statically) joins near at 0; next keeps its place after them.
        assert_eq!(
            localities(&model, "us-central1", &shares),
            triples(&[("far", 0, 4000), ("near", 0, 6000), ("next", 1, 10000)])
        );
        // Clients of other regions keep the static answer.
        assert_eq!(
            localities(&model, "us-east1", &shares),
            localities(&model, "us-east1", &NO_SHARES)
        );
        assert_eq!(
            localities(&model, "us-central1", &NO_SHARES),
            triples(&[("far", 2, 10000), ("near", 0, 10000), ("next", 1, 10000)])
        );
    }

    #[test]
    fn shares_naming_no_served_group_are_ignored() {
        let model = model();
        let shares = CapacityShares::from([(
            "svc".to_string(),
            BTreeMap::from([(
                "us-central1".to_string(),
                BTreeMap::from([("gone".to_string(), 1.0)]),
            )]),
        )]);
        assert_eq!(
            localities(&model, "us-central1", &shares),
            localities(&model, "us-central1", &NO_SHARES)
        );
    }
}
