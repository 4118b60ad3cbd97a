//! The content a publication hands the cache: every resource view, and the endpoint views by
//! who sees them — per region (priorities follow the client's region), per zone for services
//! that serve a client's own zone first, and for proxyless clients apart when a service has
//! slow start (they get Switchyard's ramp; Envoy ramps itself). Also the rebuild of only the
//! changed services' assignments when endpoint status moves. Pure; off the async runtime.
//! Must not: keep state (the publisher does).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

use crate::model::{regions, DrainingEndpoint, Model};
use crate::translate::capacity_shares::decided_for;
use crate::translate::endpoints::{Overlay, ReportedHealth};
use crate::translate::{endpoints, Resources};
use crate::xds::server::cache::{Audience, ClientView, Content, ViewKey};
use crate::xds::types::TypeUrl;

use super::access;

/// The endpoints of `model` as clients without a region see them.
pub(super) fn endpoints_with(
    model: &Model,
    draining: &BTreeMap<DrainingEndpoint, Instant>,
    health: &ReportedHealth,
) -> Vec<ClusterLoadAssignment> {
    let draining: Vec<DrainingEndpoint> = draining.keys().cloned().collect();
    let overlay = Overlay {
        draining: &draining,
        health,
        ramps: &crate::translate::slow_start::NO_RAMPS,
        capacity: &crate::translate::capacity_shares::NO_SHARES,
    };
    endpoints::assignments_with(model, None, overlay)
}

/// The endpoint views of `current` with the assignments of `changed` services rebuilt (each
/// distinct failover order once) and every other assignment's bytes kept as they are.
pub(super) fn endpoint_views_changing(
    model: &Model,
    current: &crate::xds::server::cache::Snapshot,
    changed: &BTreeSet<&str>,
    overlay: Overlay<'_>,
) -> BTreeMap<ViewKey, Vec<(String, Bytes)>> {
    let known = known_regions(model);
    let mut rebuilt: BTreeMap<Vec<Vec<String>>, BTreeMap<&str, Bytes>> = BTreeMap::new();
    let mut views = BTreeMap::new();
    let envoy_overlay = overlay.with_ramps(&crate::translate::slow_start::NO_RAMPS);
    for (key, view) in current.views_of(TypeUrl::Endpoint) {
        let ViewKey::Region(key_text) = key else {
            continue;
        };
        let (base, proxyless) = match key_text.strip_suffix(PROXYLESS_SUFFIX) {
            Some(base) => (base, true),
            None => (key_text.as_str(), false),
        };
        let (client, zone) = split_view_key(base);
        let tiers = regions::failover_tiers(&model.region_order, client, &known);
        // Zone and proxyless views, and those of regions with capacity shares decided, are
        // rebuilt each for itself (keyed apart from the tiers that region views share).
        let own = (zone.is_some() || proxyless || decided_for(overlay.capacity, client))
            .then(|| vec![vec![key_text.clone()]]);
        let this_overlay = if proxyless { overlay } else { envoy_overlay };
        let fresh = rebuilt.entry(own.unwrap_or(tiers)).or_insert_with(|| {
            changed
                .iter()
                .map(|service| {
                    let service_model = &model.services[*service];
                    let assignment =
                        endpoints::assignment_in(model, service_model, client, zone, this_overlay);
                    (
                        *service,
                        Bytes::from(prost::Message::encode_to_vec(&assignment)),
                    )
                })
                .collect()
        });
        let items = view
            .resources
            .iter()
            .map(|(name, resource)| {
                let bytes = fresh
                    .get(name.as_str())
                    .cloned()
                    .unwrap_or_else(|| resource.value.clone());
                (name.clone(), bytes)
            })
            .collect();
        views.insert(key.clone(), items);
    }
    views
}

/// The regions the model's endpoint groups are in.
fn known_regions(model: &Model) -> BTreeSet<String> {
    model
        .endpoint_groups
        .values()
        .map(|g| g.region.clone())
        .collect()
}

/// What the cache serves for `model`: its translated resources for each audience, and the
/// endpoints as the clients of each region see them (priorities follow the client's region),
/// every view computed here, once per publication, off the async runtime.
pub fn content_of(model: &Model, resources: Resources, draining: &[DrainingEndpoint]) -> Content {
    content_with(model, resources, Overlay::draining_only(draining))
}

/// As [`content_of`], with reported endpoint health.
pub fn content_with(model: &Model, resources: Resources, overlay: Overlay<'_>) -> Content {
    let envoy_overlay = overlay.with_ramps(&crate::translate::slow_start::NO_RAMPS);
    fn encoded<M: prost::Message>(items: &[M], name: impl Fn(&M) -> &str) -> Vec<(String, Bytes)> {
        items
            .iter()
            .map(|item| (name(item).to_string(), Bytes::from(item.encode_to_vec())))
            .collect()
    }
    let access = access::access_policy(model, &resources);
    let mut views = BTreeMap::new();
    views.insert(
        (TypeUrl::Cluster, ViewKey::Shared),
        encoded(&resources.clusters, |c| &c.name),
    );
    views.insert(
        (TypeUrl::Secret, ViewKey::Shared),
        encoded(&resources.secrets, |s| &s.name),
    );
    let envoy = ViewKey::Audience(Audience::Envoy);
    let proxyless = ViewKey::Audience(Audience::Proxyless);
    views.insert(
        (TypeUrl::Listener, envoy.clone()),
        encoded(&resources.listeners, |l| &l.name),
    );
    views.insert(
        (TypeUrl::Route, envoy),
        encoded(&resources.routes, |r| &r.name),
    );
    views.insert(
        (TypeUrl::Listener, proxyless.clone()),
        encoded(&resources.proxyless_listeners, |l| &l.name),
    );
    views.insert(
        (TypeUrl::Route, proxyless),
        encoded(&resources.proxyless_routes, |r| &r.name),
    );
    let known = known_regions(model);
    // Clients whose regions fail over through the same tiers see the same endpoints: build
    // each distinct view once and share it (a region with capacity shares decided has its own).
    let mut built: BTreeMap<SharedViewKey<'_>, Vec<(String, Bytes)>> = BTreeMap::new();
    let no_region = regions::failover_tiers(&model.region_order, None, &known);
    built.insert(
        (no_region, None),
        encoded(&resources.endpoints, |e| &e.cluster_name),
    );
    let view_regions = regions::view_regions(&model.region_order, &known);
    for region in &view_regions {
        let client = Some(region.as_str()).filter(|r| !r.is_empty());
        let tiers = regions::failover_tiers(&model.region_order, client, &known);
        let decided = client.filter(|_| decided_for(overlay.capacity, client));
        let assignments = built
            .entry((tiers, decided))
            .or_insert_with(|| {
                encoded(
                    &endpoints::assignments_with(model, client, envoy_overlay),
                    |e| &e.cluster_name,
                )
            })
            .clone();
        views.insert(
            (TypeUrl::Endpoint, ViewKey::Region(region.clone())),
            assignments,
        );
    }
    let zones = client_zones(model);
    for (region, zone) in &zones {
        let assignments = endpoints::assignments_in(
            model,
            Some(region.as_str()),
            Some(zone.as_str()),
            envoy_overlay,
        );
        views.insert(
            (
                TypeUrl::Endpoint,
                ViewKey::Region(zone_view_key(region, zone)),
            ),
            encoded(&assignments, |e| &e.cluster_name),
        );
    }
    // Clients without slow start of their own get the ramps from us, in views of their own.
    let ramped = has_slow_start(model);
    if ramped {
        let endpoint_keys: Vec<String> = views
            .keys()
            .filter_map(|(type_url, key)| match (type_url, key) {
                (TypeUrl::Endpoint, ViewKey::Region(key)) => Some(key.clone()),
                _ => None,
            })
            .collect();
        for key in endpoint_keys {
            let (region, zone) = split_view_key(&key);
            let assignments = endpoints::assignments_in(model, region, zone, overlay);
            views.insert(
                (
                    TypeUrl::Endpoint,
                    ViewKey::Region(format!("{key}{PROXYLESS_SUFFIX}")),
                ),
                encoded(&assignments, |e| &e.cluster_name),
            );
        }
    }
    let region_order = model.region_order.clone();
    Content {
        views,
        region_key: Arc::new(move |client: &ClientView| {
            let (region, zone) = (client.region.as_str(), client.zone.as_str());
            let key = if zones.contains(&(region.to_string(), zone.to_string())) {
                zone_view_key(region, zone)
            } else {
                regions::view_region(&region_order, &known, region)
            };
            if ramped && client.audience == Audience::Proxyless {
                format!("{key}{PROXYLESS_SUFFIX}")
            } else {
                key
            }
        }),
        access,
    }
}

/// What makes two regions' endpoint views the same: their failover tiers, and the region
/// itself when it has capacity shares decided.
type SharedViewKey<'a> = (Vec<Vec<String>>, Option<&'a str>);

/// Marks the endpoint views of proxyless clients, which carry slow-start ramps.
const PROXYLESS_SUFFIX: &str = "#proxyless";

fn has_slow_start(model: &Model) -> bool {
    model
        .services
        .values()
        .any(|service| service.slow_start.is_some())
}

/// The region (None: no region) and zone of an endpoint view key `region[/zone]`.
fn split_view_key(key: &str) -> (Option<&str>, Option<&str>) {
    let (region, zone) = match key.split_once('/') {
        Some((region, zone)) => (region, Some(zone)),
        None => (key, None),
    };
    (Some(region).filter(|r| !r.is_empty()), zone)
}

/// The (region, zone) pairs whose clients get endpoint views of their own: the zones of
/// services that serve clients from their own zone first.
fn client_zones(model: &Model) -> BTreeSet<(String, String)> {
    model
        .services
        .values()
        .filter(|service| service.prefer_client_zone)
        .flat_map(|service| &service.backends)
        .filter_map(|backend| model.endpoint_groups.get(&backend.group.name))
        .filter(|group| !group.zone.is_empty())
        .map(|group| (group.region.clone(), group.zone.clone()))
        .collect()
}

/// The endpoint view key of the clients of one zone: `region/zone` (region keys have no `/`).
fn zone_view_key(region: &str, zone: &str) -> String {
    format!("{region}/{zone}")
}
