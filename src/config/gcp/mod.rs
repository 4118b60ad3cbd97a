//! The GCP dialect: `healthChecks`, `instanceGroups`, `networkEndpointGroups`,
//! `backendServices`, `urlMaps`, target proxies, `forwardingRules`, `sslCertificates` and
//! `sslPolicies`, with the cloud API's field names and documented defaults, read into the
//! dialect's resources (`resources`) and lowered into the neutral model (`lower`).
//! A document is dispatched to its collections in `document`; each collection has its reader
//! (`backend_services`, `network_endpoint_groups`, `url_maps`, …). This file holds the
//! dialect's entry point and what every resource reader shares: opening a named resource and
//! reading references and addresses. Field-level rules (types, enums, ranges) are checked by
//! the readers; cross-resource rules live in `validate` (backends) and `validate_frontends`
//! (URL maps, proxies, forwarding rules).

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::gcp::resources::Resources;
use crate::model::{Diagnostics, Ref};

mod backend_services;
pub mod capacity;
mod custom_headers;
mod document;
mod durations;
mod endpoints;
mod field_tables;
pub mod fields;
mod forwarding_rules;
mod health_checks;
mod instance_groups;
mod internet_negs;
pub mod lower;
mod network_endpoint_groups;
mod pasted;
mod path_templates;
pub mod regional_groups;
pub mod resources;
mod route_actions;
mod route_policies;
mod service_fields;
mod target_proxies;
mod tls;
mod url_maps;
pub mod validate;
mod validate_frontends;

use super::dialect::{Dialect, DialectReader, Lowered};
use super::inputs::TemplateInputs;
use super::reader::Fields;
use super::references;
use super::yaml::Node;

/// The GCP dialect: files of the Compute API's collections (`backendServices`, `urlMaps`, …),
/// or one resource as gcloud prints it. It takes every document no other dialect claims.
pub struct Gcp;

impl Dialect for Gcp {
    fn name(&self) -> &'static str {
        "GCP"
    }

    fn detects(&self, _document: &Node) -> bool {
        true
    }

    fn collection_folders(&self) -> &'static [&'static str] {
        document::COLLECTION_FOLDERS
    }

    fn reader(&self, _inputs: &TemplateInputs) -> Box<dyn DialectReader> {
        Box::new(GcpReader::default())
    }
}

/// The GCP resource graph of one load, as it is read.
#[derive(Default)]
struct GcpReader {
    resources: Resources,
}

impl DialectReader for GcpReader {
    fn read(&mut self, document: &Node, file: &Arc<str>, diagnostics: &mut Diagnostics) {
        document::read_document(document, file, &mut self.resources, diagnostics);
    }

    fn finish(mut self: Box<Self>, diagnostics: &mut Diagnostics) -> Lowered {
        let resources = &mut self.resources;
        let referenced =
            crate::config::certificates::resolve(&mut resources.ssl_certificates, diagnostics);
        validate::check(resources, diagnostics);
        regional_groups::split_by_zone(resources);
        Lowered {
            model: lower::lower(resources),
            referenced,
        }
    }
}

/// Opens a resource mapping and reads its `name`, so that its path can use it.
pub(super) fn open<'n>(
    node: &'n Node,
    file: &Arc<str>,
    collection: &str,
    diagnostics: &mut Diagnostics,
) -> Option<(Fields<'n>, String)> {
    let mut fields = Fields::new(
        node,
        file,
        format!("{collection}[line {}]", node.line),
        diagnostics,
    );
    let name = fields.required_string("name", diagnostics)?;
    if !valid_name(&name) {
        diagnostics.error(
            &fields.loc_of("name"),
            fields.field_path("name"),
            format!(
                "`{name}` is not a valid name: use 1-63 lowercase letters, digits or hyphens, \
                 starting with a letter and not ending with a hyphen"
            ),
        );
    }
    fields.path = format!("{collection}[{name}]");
    if let Some(api_type) = api_type_of(collection) {
        fields::classify(&mut fields, api_type, diagnostics);
    }
    Some((fields, name))
}

/// The Compute API schema type of a collection's resources.
fn api_type_of(collection: &str) -> Option<&'static str> {
    Some(match collection {
        "healthChecks" => "HealthCheck",
        "instanceGroups" => "InstanceGroup",
        "networkEndpointGroups" => "NetworkEndpointGroup",
        "backendServices" => "BackendService",
        "urlMaps" => "UrlMap",
        "targetHttpProxies" => "TargetHttpProxy",
        "targetHttpsProxies" => "TargetHttpsProxy",
        "targetSslProxies" => "TargetSslProxy",
        "targetTcpProxies" => "TargetTcpProxy",
        "targetGrpcProxies" => "TargetGrpcProxy",
        "forwardingRules" => "ForwardingRule",
        "sslCertificates" => "SslCertificate",
        "sslPolicies" => "SslPolicy",
        _ => return None,
    })
}

/// RFC 1035 names, with upper case allowed so that the documents' placeholders load as-is.
fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphabetic()
        && bytes.last() != Some(&b'-')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// A reference to a resource of one of `collections`, by name or link.
pub(super) fn reference(
    fields: &mut Fields<'_>,
    key: &'static str,
    collections: &[&str],
    diagnostics: &mut Diagnostics,
) -> Option<Ref> {
    let text = fields.string(key, diagnostics)?;
    references::parse(
        &text,
        collections,
        &fields.loc_of(key),
        &fields.field_path(key),
        diagnostics,
    )
}

/// An IPv4 or IPv6 address.
fn ip_address(
    fields: &mut Fields<'_>,
    key: &'static str,
    diagnostics: &mut Diagnostics,
) -> Option<IpAddr> {
    let text = fields.string(key, diagnostics)?;
    match text.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            diagnostics.error(
                &fields.loc_of(key),
                fields.field_path(key),
                format!("`{text}` is not an IPv4 or IPv6 address"),
            );
            None
        }
    }
}
