//! What instance groups and NEGs share about their members: a member written the way gcloud
//! takes it (`instance=vm-a1,ip=10.0.0.1,port=80`) as well as the API's mapping, its IPv4
//! and IPv6 addresses (dual stack only where the cloud allows it), and a zonal group's zone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::gcp::resources::{EndpointGroup, GroupKind};
use crate::config::reader::{read_mapping, Fields};
use crate::config::yaml::{Node, Value};
use crate::model::{Diagnostics, Endpoint};

use super::{ip_address, pasted};

/// Ends reading `group` from `fields`: warns when it was pasted from `describe` without its
/// members, and reports its unknown fields.
pub(super) fn finish_group(
    mut fields: Fields<'_>,
    group: EndpointGroup,
    diagnostics: &mut Diagnostics,
) -> Option<EndpointGroup> {
    pasted::warn_without_members(&mut fields, &group, diagnostics);
    fields.finish(diagnostics);
    Some(group)
}

/// An endpoint written the way gcloud takes it, `instance=vm-a1,ip=10.0.0.1,ipv6=fd00::1,port=80`,
/// as the mapping the API uses (`instance`, `ipAddress`, `ipv6Address`, `port`).
fn gcloud_endpoint(node: &Node) -> Node {
    let Some(text) = node.as_scalar() else {
        return node.clone();
    };
    let scalar = |text: &str| Node {
        value: Value::Scalar {
            text: text.to_string(),
            quoted: false,
        },
        line: node.line,
    };
    let entries = text
        .split(',')
        .map(|pair| pair.trim().trim_matches('\\').trim())
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = match key.trim() {
                "ip" => "ipAddress",
                "ipv6" => "ipv6Address",
                other => other,
            };
            (scalar(key), scalar(value.trim()))
        })
        .collect();
    Node {
        value: Value::Map(entries),
        line: node.line,
    }
}

/// Each member of a group's list `key` (`instances`, `endpoints`), written as the API's
/// mapping or as gcloud takes it (`instance=vm-a1,ip=10.0.0.1,port=80`), opened at
/// `key[index]`, read by `read` and finished.
pub(super) fn gcloud_endpoints(
    fields: &mut Fields<'_>,
    key: &'static str,
    diagnostics: &mut Diagnostics,
    mut read: impl FnMut(&mut Fields<'_>, &mut Diagnostics) -> Option<Endpoint>,
) -> Vec<Endpoint> {
    let file = fields.file().clone();
    fields.items(key, diagnostics, |item, path, diagnostics| {
        let item = gcloud_endpoint(item);
        read_mapping(&item, &file, path, diagnostics, &mut read)
    })
}

/// `ipAddress` (IPv4) and `ipv6Address`: at least one; both only where the cloud allows dual
/// stack (instance groups and GCE_VM_IP_PORT NEGs).
pub(super) fn endpoint_addresses(
    fields: &mut Fields<'_>,
    kind: GroupKind,
    diagnostics: &mut Diagnostics,
) -> Option<(Option<Ipv4Addr>, Option<Ipv6Addr>)> {
    let ipv4 = address_in(
        fields,
        "ipAddress",
        |ip| match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        },
        "ipAddress takes an IPv4 address; write an IPv6 address in ipv6Address",
        diagnostics,
    )?;
    let ipv6 = address_in(
        fields,
        "ipv6Address",
        |ip| match ip {
            IpAddr::V6(v6) => Some(v6),
            IpAddr::V4(_) => None,
        },
        "ipv6Address takes an IPv6 address; write an IPv4 address in ipAddress",
        diagnostics,
    )?;
    if ipv4.is_none() && ipv6.is_none() {
        diagnostics.error(
            &fields.loc(),
            fields.field_path("ipAddress"),
            "an endpoint needs ipAddress, ipv6Address or both",
        );
        return None;
    }
    if ipv4.is_some() && ipv6.is_some() && kind == GroupKind::NonGcpPrivateIpPortNeg {
        diagnostics.error(
            &fields.loc_of("ipv6Address"),
            fields.field_path("ipv6Address"),
            "only instance groups and GCE_VM_IP_PORT NEGs may be dual stack; a \
             NON_GCP_PRIVATE_IP_PORT endpoint takes ipAddress or ipv6Address, not both",
        );
        return None;
    }
    Some((ipv4, ipv6))
}

/// The address written in `key`, if any, when it is of the family `family` accepts; None
/// once a problem is reported (`wrong_family` says which field takes the other family).
fn address_in<T>(
    fields: &mut Fields<'_>,
    key: &'static str,
    family: impl Fn(IpAddr) -> Option<T>,
    wrong_family: &str,
    diagnostics: &mut Diagnostics,
) -> Option<Option<T>> {
    let Some(written) = ip_address(fields, key, diagnostics) else {
        // Written and not an address: already reported.
        return fields.get(key).is_none().then_some(None);
    };
    let address = family(written);
    if address.is_none() {
        diagnostics.error(&fields.loc_of(key), fields.field_path(key), wrong_family);
        return None;
    }
    Some(address)
}

pub(super) fn zone_of(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> String {
    let zone = fields
        .required_string("zone", diagnostics)
        .unwrap_or_default();
    // A zone may be written as a link (`zones/us-central1-a` or a full URL).
    zone.rsplit('/').next().unwrap_or_default().to_string()
}
