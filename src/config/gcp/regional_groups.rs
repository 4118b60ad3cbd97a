//! Regional (managed) instance groups: a group written with `region` instead of `zone`, whose
//! instances each carry the zone they run in. Validated as one group; once the whole config
//! is valid, split into one group per zone (`web-mig/us-central1-a`), each backend naming it
//! becoming one backend per zone with the group's capacity shared by instance count, so that
//! every instance is served in its own zone's locality like a zonal group's.

use crate::config::gcp::resources::{Backend, EndpointGroup, Resources};

/// Whether a group is regional: it has a region and no zone of its own.
pub fn is_regional(group: &EndpointGroup) -> bool {
    group.kind.is_instance_group() && group.zone.is_empty() && !group.region.is_empty()
}

/// Splits every regional group with instances into its zones, and the backends naming it.
pub fn split_by_zone(model: &mut Resources) {
    let regional: Vec<String> = model
        .endpoint_groups
        .values()
        .filter(|group| is_regional(group) && !group.endpoints.is_empty())
        .map(|group| group.name.clone())
        .collect();
    for name in regional {
        let Some(group) = model.endpoint_groups.remove(&name) else {
            continue;
        };
        let zonal = zonal_groups(&group);
        for service in model.backend_services.values_mut() {
            service.backends = std::mem::take(&mut service.backends)
                .into_iter()
                .flat_map(|backend| per_zone(backend, &group, &zonal))
                .collect();
        }
        for zonal_group in zonal {
            model
                .endpoint_groups
                .insert(zonal_group.name.clone(), zonal_group);
        }
    }
}

/// The name of a regional group's part in `zone`.
pub fn zonal_name(group: &str, zone: &str) -> String {
    format!("{group}/{zone}")
}

/// One group per zone the instances of `group` run in, sorted by zone.
fn zonal_groups(group: &EndpointGroup) -> Vec<EndpointGroup> {
    let mut zones: Vec<&str> = group
        .endpoints
        .iter()
        .filter_map(|endpoint| endpoint.zone.as_deref())
        .collect();
    zones.sort_unstable();
    zones.dedup();
    zones
        .into_iter()
        .map(|zone| EndpointGroup {
            name: zonal_name(&group.name, zone),
            zone: zone.to_string(),
            endpoints: group
                .endpoints
                .iter()
                .filter(|endpoint| endpoint.zone.as_deref() == Some(zone))
                .cloned()
                .collect(),
            ..group.clone()
        })
        .collect()
}

/// `backend` as one backend per zonal part when it names `group`, else unchanged. Per-instance
/// capacities carry over as written; whole-group ones (maxRate, maxConnections) are shared in
/// proportion to each zone's instances.
fn per_zone(backend: Backend, group: &EndpointGroup, zonal: &[EndpointGroup]) -> Vec<Backend> {
    if backend.group.name != group.name {
        return vec![backend];
    }
    let total = group.endpoints.len() as f64;
    zonal
        .iter()
        .map(|part| {
            let share = part.endpoints.len() as f64 / total;
            let mut split = backend.clone();
            split.group.name = part.name.clone();
            split.max_rate = backend.max_rate.map(|rate| rate * share);
            split.max_connections = backend.max_connections.map(|count| count * share);
            split
        })
        .collect()
}
