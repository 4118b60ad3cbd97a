//! Internet NEGs of the GCP dialect: global network endpoint groups whose one endpoint is a
//! name (INTERNET_FQDN_PORT, resolved by the proxy) or an address (INTERNET_IP_PORT) outside
//! the project's networks, reached on `port`, else `defaultPort`, else 443 for HTTPS
//! services and 80 otherwise (the port is chosen when translating).

use crate::config::gcp::resources::{EndpointGroup, GroupKind};
use crate::config::reader::Fields;
use crate::model::{Diagnostics, Endpoint};

use super::ip_address;

/// The internet kind a `networkEndpointType` names, if it names one.
pub(super) fn kind_of(written: &str) -> Option<GroupKind> {
    match written {
        "INTERNET_FQDN_PORT" => Some(GroupKind::InternetFqdnPortNeg),
        "INTERNET_IP_PORT" => Some(GroupKind::InternetIpPortNeg),
        _ => None,
    }
}

/// Reads the rest of an internet NEG opened as `fields`.
pub(super) fn internet_neg(
    mut fields: Fields<'_>,
    name: String,
    kind: GroupKind,
    diagnostics: &mut Diagnostics,
) -> Option<EndpointGroup> {
    // Internet NEGs are global; a zone written by gcloud's output is ignored.
    fields.ignore(&["zone"]);
    let default_port = fields
        .integer("defaultPort", 1, 65535, diagnostics)
        .map(|p| p as u16);
    let endpoints = fields.mappings("endpoints", diagnostics, |endpoint, diagnostics| {
        super::fields::classify(endpoint, "NetworkEndpoint", diagnostics);
        refuse_vm_fields(endpoint, diagnostics);
        let port = endpoint
            .integer("port", 1, 65535, diagnostics)
            .map(|p| p as u16);
        match kind {
            GroupKind::InternetFqdnPortNeg => fqdn_endpoint(endpoint, port, diagnostics),
            _ => ip_endpoint(endpoint, port, diagnostics),
        }
    });
    if endpoints.len() > 1 {
        diagnostics.error(
            &fields.loc_of("endpoints"),
            fields.field_path("endpoints"),
            format!(
                "an internet NEG holds one endpoint, not {}; make one NEG per endpoint",
                endpoints.len()
            ),
        );
    }
    let group = EndpointGroup {
        name,
        loc: fields.loc(),
        kind,
        zone: String::new(),
        region: String::new(),
        named_ports: Default::default(),
        default_port,
        endpoints,
    };
    super::endpoints::finish_group(fields, group, diagnostics)
}

fn fqdn_endpoint(
    endpoint: &mut Fields<'_>,
    port: Option<u16>,
    diagnostics: &mut Diagnostics,
) -> Option<Endpoint> {
    if endpoint.get("ipAddress").is_some() {
        diagnostics.error(
            &endpoint.loc_of("ipAddress"),
            endpoint.field_path("ipAddress"),
            "an INTERNET_FQDN_PORT endpoint is a name (`fqdn`); for an address use an INTERNET_IP_PORT NEG",
        );
        return None;
    }
    let fqdn = endpoint.required_string("fqdn", diagnostics)?;
    let valid = !fqdn.is_empty()
        && fqdn.len() <= 253
        && fqdn.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid {
        diagnostics.error(
            &endpoint.loc_of("fqdn"),
            endpoint.field_path("fqdn"),
            format!("`{fqdn}` is not a domain name (labels of letters, digits and hyphens, separated by dots)"),
        );
        return None;
    }
    Some(Endpoint {
        instance: None,
        ipv4: None,
        ipv6: None,
        fqdn: Some(fqdn.trim_end_matches('.').to_string()),
        port,
        weight: None,
        zone: None,
    })
}

fn ip_endpoint(
    endpoint: &mut Fields<'_>,
    port: Option<u16>,
    diagnostics: &mut Diagnostics,
) -> Option<Endpoint> {
    if endpoint.get("fqdn").is_some() {
        diagnostics.error(
            &endpoint.loc_of("fqdn"),
            endpoint.field_path("fqdn"),
            "an INTERNET_IP_PORT endpoint is an address (`ipAddress`); for a name use an INTERNET_FQDN_PORT NEG",
        );
        return None;
    }
    endpoint.require("ipAddress", diagnostics);
    let address = ip_address(endpoint, "ipAddress", diagnostics)?;
    let (ipv4, ipv6) = match address {
        std::net::IpAddr::V4(v4) => (Some(v4), None),
        std::net::IpAddr::V6(v6) => (None, Some(v6)),
    };
    Some(Endpoint {
        instance: None,
        ipv4,
        ipv6,
        fqdn: None,
        port,
        weight: None,
        zone: None,
    })
}

/// Fields of a VM endpoint, which an internet NEG's endpoint does not have.
fn refuse_vm_fields(endpoint: &mut Fields<'_>, diagnostics: &mut Diagnostics) {
    for key in ["instance", "ipv6Address", "weight"] {
        if endpoint.get(key).is_some() {
            diagnostics.error(
                &endpoint.loc_of(key),
                endpoint.field_path(key),
                format!("`{key}` belongs to the endpoints of zonal NEGs; an internet NEG's endpoint takes fqdn or ipAddress, and port"),
            );
        }
    }
}
