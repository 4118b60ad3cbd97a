//! `instanceGroups` of the GCP dialect: a zonal group (`zone`), or a regional one (`region`,
//! as a regional managed instance group is) whose instances each name their `zone`; its
//! `namedPorts`, and its `instances` with their addresses. Reads and checks fields; a regional
//! group is split by zone once the whole config is valid (`regional_groups`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::gcp::resources::{EndpointGroup, GroupKind};
use crate::config::reader::Fields;
use crate::config::references::region_of_zone;
use crate::config::yaml::Node;
use crate::model::{Diagnostics, Endpoint};

use super::endpoints::{endpoint_addresses, finish_group, gcloud_endpoints};
use super::fields::classify;
use super::open;

/// Where a group's instances run: one zone, or the zones of one region.
enum Placement {
    Zone(String),
    Region(String),
}

/// The last segment of a link (`zones/us-central1-a`, a full URL) or the name as written.
fn last_segment(text: &str) -> String {
    text.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn placement(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> Placement {
    let zone = fields.string("zone", diagnostics).map(|z| last_segment(&z));
    let region = fields
        .string("region", diagnostics)
        .map(|r| last_segment(&r));
    match (zone, region) {
        (Some(zone), Some(region)) if region_of_zone(&zone) != region => {
            diagnostics.error(
                &fields.loc_of("region"),
                fields.field_path("region"),
                format!("zone {zone} is not in region {region}; a zonal group takes `zone` alone, a regional one `region` alone"),
            );
            Placement::Zone(zone)
        }
        (Some(zone), _) => Placement::Zone(zone),
        (None, Some(region)) => Placement::Region(region),
        (None, None) => {
            diagnostics.error(
                &fields.loc(),
                fields.field_path("zone"),
                "an instance group needs `zone` (a zonal group) or `region` (a regional group)",
            );
            Placement::Zone(String::new())
        }
    }
}

pub(super) fn instance_group(
    node: &Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<EndpointGroup> {
    let (mut fields, name) = open(node, file, "instanceGroups", diagnostics)?;
    let placement = placement(&mut fields, diagnostics);
    let named_ports = named_ports(&mut fields, diagnostics);
    let endpoints = gcloud_endpoints(&mut fields, "instances", diagnostics, |item, d| {
        instance(item, &placement, d)
    });
    let (zone, region) = match placement {
        Placement::Zone(zone) => (zone.clone(), region_of_zone(&zone)),
        Placement::Region(region) => (String::new(), region),
    };
    let group = EndpointGroup {
        name,
        loc: fields.loc(),
        kind: GroupKind::InstanceGroup,
        region,
        zone,
        named_ports,
        default_port: None,
        endpoints,
    };
    finish_group(fields, group, diagnostics)
}

fn named_ports(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> BTreeMap<String, u16> {
    let ports = fields.mappings("namedPorts", diagnostics, |port, diagnostics| {
        classify(port, "NamedPort", diagnostics);
        let port_name = port.required_string("name", diagnostics);
        let number = port.integer("port", 1, 65535, diagnostics);
        port.require("port", diagnostics);
        Some((port_name?, number? as u16))
    });
    ports.into_iter().collect()
}

/// One instance: its name, its addresses, and in a regional group the zone it runs in.
fn instance(
    instance: &mut Fields<'_>,
    placement: &Placement,
    diagnostics: &mut Diagnostics,
) -> Option<Endpoint> {
    let instance_name = instance.string("name", diagnostics);
    let addresses = endpoint_addresses(instance, GroupKind::InstanceGroup, diagnostics);
    let zone = instance
        .string("zone", diagnostics)
        .map(|zone| last_segment(&zone));
    let zone = match (placement, zone) {
        (Placement::Region(region), Some(zone)) if region_of_zone(&zone) != *region => {
            diagnostics.error(
                &instance.loc_of("zone"),
                instance.field_path("zone"),
                format!("{zone} is not a zone of the group's region {region}"),
            );
            None
        }
        (Placement::Region(_), Some(zone)) => Some(zone),
        (Placement::Region(region), None) => {
            diagnostics.error(
                &instance.loc(),
                instance.field_path("zone"),
                format!("an instance of a regional group needs the zone of {region} it runs in, e.g. `zone: {region}-a`"),
            );
            None
        }
        (Placement::Zone(group_zone), Some(zone)) if zone != *group_zone => {
            diagnostics.error(
                &instance.loc_of("zone"),
                instance.field_path("zone"),
                format!("{zone} is not the group's zone {group_zone}; an instance of a zonal group runs in its zone"),
            );
            None
        }
        (Placement::Zone(_), _) => None,
    };
    if matches!(placement, Placement::Region(_)) && zone.is_none() {
        return None;
    }
    let (ipv4, ipv6) = addresses?;
    Some(Endpoint {
        instance: instance_name,
        ipv4,
        ipv6,
        fqdn: None,
        port: None,
        weight: None,
        zone,
    })
}
