//! Zonal `networkEndpointGroups` of the GCP dialect: GCE_VM_IP_PORT and
//! NON_GCP_PRIVATE_IP_PORT NEGs with their endpoints (address, port, weight). Internet NEGs
//! are read by `internet_negs`; NEG types that only exist inside Google's network are refused
//! with the reason.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::gcp::resources::{EndpointGroup, GroupKind};
use crate::config::reader::Fields;
use crate::config::references::region_of_zone;
use crate::config::yaml::Node;
use crate::model::{Diagnostics, Endpoint};

use super::endpoints::{endpoint_addresses, finish_group, gcloud_endpoints, zone_of};
use super::{fields, internet_negs, open};

/// Why a NEG type the cloud has cannot be served here, if it cannot.
fn unavailable_neg_type(kind: &str) -> Option<String> {
    let what = match kind {
        "SERVERLESS" => "serverless NEGs reach Cloud Run, App Engine and Cloud Functions through Google's network",
        "PRIVATE_SERVICE_CONNECT" => "Private Service Connect NEGs reach services published inside Google's network",
        "GCE_VM_IP" => "GCE_VM_IP NEGs back passthrough load balancers, which forward packets without a proxy",
        _ => return None,
    };
    Some(format!(
        "`{kind}`: {what}, which is not available in a self-hosted control plane; use GCE_VM_IP_PORT or NON_GCP_PRIVATE_IP_PORT with the addresses to reach"
    ))
}

pub(super) fn network_endpoint_group(
    node: &Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<EndpointGroup> {
    let (mut fields, name) = open(node, file, "networkEndpointGroups", diagnostics)?;
    if let Some(reason) = fields
        .string("networkEndpointType", diagnostics)
        .and_then(|kind| unavailable_neg_type(&kind))
    {
        diagnostics.error(
            &fields.loc_of("networkEndpointType"),
            fields.field_path("networkEndpointType"),
            reason,
        );
        return None;
    }
    if let Some(kind) = fields
        .string("networkEndpointType", diagnostics)
        .and_then(|kind| internet_negs::kind_of(&kind))
    {
        return internet_negs::internet_neg(fields, name, kind, diagnostics);
    }
    let zone = zone_of(&mut fields, diagnostics);
    let kind = fields
        .choice(
            "networkEndpointType",
            &[
                ("GCE_VM_IP_PORT", GroupKind::GceVmIpPortNeg),
                ("NON_GCP_PRIVATE_IP_PORT", GroupKind::NonGcpPrivateIpPortNeg),
                ("INTERNET_FQDN_PORT", GroupKind::InternetFqdnPortNeg),
                ("INTERNET_IP_PORT", GroupKind::InternetIpPortNeg),
            ],
            diagnostics,
        )
        .unwrap_or(GroupKind::GceVmIpPortNeg);
    let default_port = fields
        .integer("defaultPort", 1, 65535, diagnostics)
        .map(|p| p as u16);
    let endpoints = gcloud_endpoints(&mut fields, "endpoints", diagnostics, |endpoint, d| {
        neg_endpoint(endpoint, kind, d)
    });
    let group = EndpointGroup {
        name,
        loc: fields.loc(),
        kind,
        region: region_of_zone(&zone),
        zone,
        named_ports: BTreeMap::new(),
        default_port,
        endpoints,
    };
    finish_group(fields, group, diagnostics)
}

/// One endpoint of a zonal NEG (GCE_VM_IP_PORT or NON_GCP_PRIVATE_IP_PORT).
fn neg_endpoint(
    endpoint: &mut Fields<'_>,
    kind: GroupKind,
    diagnostics: &mut Diagnostics,
) -> Option<Endpoint> {
    fields::classify(endpoint, "NetworkEndpoint", diagnostics);
    if endpoint.get("fqdn").is_some() {
        diagnostics.error(
            &endpoint.loc_of("fqdn"),
            endpoint.field_path("fqdn"),
            format!(
                "`fqdn` names the endpoint of an INTERNET_FQDN_PORT NEG; a {} endpoint takes ipAddress",
                kind.as_str()
            ),
        );
    }
    let instance = endpoint.string("instance", diagnostics);
    let addresses = endpoint_addresses(endpoint, kind, diagnostics);
    let port = endpoint
        .integer("port", 1, 65535, diagnostics)
        .map(|p| p as u16);
    let weight = endpoint
        .integer("weight", 1, 1_000_000, diagnostics)
        .map(|w| w as u32);
    if kind == GroupKind::NonGcpPrivateIpPortNeg && instance.is_some() {
        diagnostics.error(
            &endpoint.loc_of("instance"),
            endpoint.field_path("instance"),
            "NON_GCP_PRIVATE_IP_PORT endpoints are not VM instances; remove `instance`",
        );
    }
    let (ipv4, ipv6) = addresses?;
    Some(Endpoint {
        instance,
        ipv4,
        ipv6,
        fqdn: None,
        port,
        weight,
        zone: None,
    })
}
