//! The GCP dialect: `healthChecks`, `instanceGroups`, `networkEndpointGroups`,
//! `backendServices`, `urlMaps`, `targetHttpProxies`, `forwardingRules`, with the cloud API's
//! field names and documented defaults, lowered straight into the internal model.
//! Field-level rules (types, enums, ranges) are checked here; cross-resource rules live in
//! `validate` (backends) and `validate_frontends` (URL maps, proxies, forwarding rules).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::config::gcp::resources::{
    Backend, BackendService, BalancingMode, ConsistentHash, EndpointGroup, ForwardingRule,
    GroupKind, LoadBalancingScheme, ProxyTarget, Resources, SessionAffinity, TargetProxy, UrlMap,
};
use crate::model::{
    AddressSelection, BackendProtocol, Diagnostics, Endpoint, HealthCheck, HttpCookie, Loc,
    OutlierDetection, Ref,
};

pub mod capacity;
mod custom_headers;
mod field_tables;
pub mod fields;
mod health_checks;
mod instance_groups;
mod internet_negs;
pub mod lower;
mod pasted;
mod path_templates;
pub mod regional_groups;
pub mod resources;
mod route_actions;
mod route_policies;
mod service_fields;
mod tls;
mod url_maps;
pub mod validate;
mod validate_frontends;

use super::dialect::{Dialect, DialectReader, Lowered};
use super::reader::{read_mapping, Fields};
use super::references::{self, region_of_zone};
use super::yaml::{Node, Value};

/// The largest timeoutSec the cloud accepts.
pub const MAX_TIMEOUT_SEC: i64 = 2_147_483_647;

/// The deprecated `port` that `gcloud compute backend-services describe` prints: a warning
/// that it changes nothing, unless portName says which port is used.
fn deprecated_port(
    fields: &mut Fields<'_>,
    port_name_written: bool,
    diagnostics: &mut Diagnostics,
) {
    if fields.get("port").is_some() && !port_name_written {
        diagnostics.warning(
            &fields.loc_of("port"),
            fields.field_path("port"),
            "deprecated in the cloud API and not used: backends are reached on their named port (portName, default `http`) or their NEG endpoint's port",
        );
    }
}

/// Subfolders of a config folder whose YAML files are read too, one bare resource of that
/// collection per file as `gcloud … export` writes them.
const COLLECTION_FOLDERS: &[&str] = &[
    "healthChecks",
    "instanceGroups",
    "networkEndpointGroups",
    "backendServices",
    "urlMaps",
    "targetHttpProxies",
    "targetHttpsProxies",
    "targetSslProxies",
    "targetTcpProxies",
    "targetGrpcProxies",
    "forwardingRules",
    "sslCertificates",
    "sslPolicies",
];

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
        COLLECTION_FOLDERS
    }

    fn reader(&self) -> Box<dyn DialectReader> {
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
        read_document(document, file, &mut self.resources, diagnostics);
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

/// Collections a bare resource (one resource as `gcloud … describe` or `edit` shows it,
/// rather than a file of collections) belongs to, by its `kind`.
const KINDS: [(&str, &str); 13] = [
    ("compute#healthCheck", "healthChecks"),
    ("compute#instanceGroup", "instanceGroups"),
    ("compute#networkEndpointGroup", "networkEndpointGroups"),
    ("compute#backendService", "backendServices"),
    ("compute#urlMap", "urlMaps"),
    ("compute#targetHttpProxy", "targetHttpProxies"),
    ("compute#targetHttpsProxy", "targetHttpsProxies"),
    ("compute#sslCertificate", "sslCertificates"),
    ("compute#sslPolicy", "sslPolicies"),
    ("compute#targetTcpProxy", "targetTcpProxies"),
    ("compute#targetSslProxy", "targetSslProxies"),
    ("compute#targetGrpcProxy", "targetGrpcProxies"),
    ("compute#forwardingRule", "forwardingRules"),
];

/// The collection a file's folder is named after (`…/backendServices/web.yaml`).
fn folder_collection(file: &str) -> Option<&'static str> {
    let folder = std::path::Path::new(file).parent()?.file_name()?.to_str()?;
    COLLECTION_FOLDERS
        .iter()
        .find(|collection| **collection == folder)
        .copied()
}

/// A document holding one bare resource, rewritten as a file with that resource in its
/// collection: by `kind` when gcloud printed it, else by the folder it sits in (`urlMaps/`, as
/// `gcloud … export` files are kept), else by the fields only that resource has
/// (a URL map from `gcloud compute url-maps edit`). None when `doc` is not a bare resource.
fn as_collection(doc: &Node, file: &Arc<str>, diagnostics: &mut Diagnostics) -> Option<Node> {
    let Value::Map(entries) = &doc.value else {
        return None;
    };
    let key = |name: &str| {
        entries
            .iter()
            .find(|(k, _)| k.as_scalar() == Some(name))
            .map(|(_, v)| v)
    };
    let has_collection_key = entries.iter().any(|(k, _)| {
        k.as_scalar().is_some_and(|name| {
            KINDS.iter().any(|(_, collection)| *collection == name)
                || ["xdsClients", "regionOrder"].contains(&name)
        })
    });
    // A backend service's own `healthChecks` list looks like a collection; its `kind` says
    // what it is.
    let kind = key("kind").and_then(Node::as_scalar);
    let folder = folder_collection(file);
    if key("name").is_none() || (kind.is_none() && folder.is_none() && has_collection_key) {
        return None;
    }
    let collection = match kind {
        Some(kind) => match KINDS.iter().find(|(known, _)| *known == kind) {
            Some((_, collection)) => *collection,
            None => {
                diagnostics.error(
                    &Loc::new(file.clone(), doc.line),
                    "kind",
                    format!(
                        "`{kind}` resources are not served; a single resource may be one of: {}",
                        KINDS.map(|(kind, _)| kind).join(", ")
                    ),
                );
                return Some(Node {
                    value: Value::Map(Vec::new()),
                    line: doc.line,
                });
            }
        },
        // `gcloud … export` writes no kind: the folder the file sits in names the collection.
        None if folder.is_some() => folder?,
        None if [
            "hostRules",
            "pathMatchers",
            "defaultService",
            "defaultUrlRedirect",
        ]
        .iter()
        .any(|field| key(field).is_some()) =>
        {
            "urlMaps"
        }
        None => return None,
    };
    let scalar = |text: &str| Node {
        value: Value::Scalar {
            text: text.to_string(),
            quoted: false,
        },
        line: doc.line,
    };
    Some(Node {
        value: Value::Map(vec![(
            scalar(collection),
            Node {
                value: Value::Seq(vec![doc.clone()]),
                line: doc.line,
            },
        )]),
        line: doc.line,
    })
}

/// Reads one YAML document of the GCP dialect into `model`.
fn read_document(
    doc: &Node,
    file: &Arc<str>,
    model: &mut Resources,
    diagnostics: &mut Diagnostics,
) {
    let wrapped = as_collection(doc, file, diagnostics);
    let doc = wrapped.as_ref().unwrap_or(doc);
    let mut top = Fields::new(doc, file, "", diagnostics);
    let mut collection = Collection {
        top: &mut top,
        file,
        diagnostics,
    };
    collection.read(
        "healthChecks",
        health_checks::health_check,
        &mut model.health_checks,
        "healthChecks",
    );
    let groups = "instanceGroups and networkEndpointGroups";
    collection.read(
        "instanceGroups",
        instance_groups::instance_group,
        &mut model.endpoint_groups,
        groups,
    );
    collection.read(
        "networkEndpointGroups",
        network_endpoint_group,
        &mut model.endpoint_groups,
        groups,
    );
    collection.read(
        "backendServices",
        backend_service,
        &mut model.backend_services,
        "backendServices",
    );
    collection.read("urlMaps", url_maps::url_map, &mut model.url_maps, "urlMaps");
    collection.read(
        "sslCertificates",
        tls::ssl_certificate,
        &mut model.ssl_certificates,
        "sslCertificates",
    );
    collection.read(
        "sslPolicies",
        tls::ssl_policy,
        &mut model.ssl_policies,
        "sslPolicies",
    );
    let proxies = "target proxies";
    collection.read(
        "targetHttpsProxies",
        tls::target_https_proxy,
        &mut model.target_proxies,
        proxies,
    );
    collection.read(
        "targetHttpProxies",
        target_http_proxy,
        &mut model.target_proxies,
        proxies,
    );
    collection.read(
        "targetSslProxies",
        tls::target_ssl_proxy,
        &mut model.target_proxies,
        proxies,
    );
    collection.read(
        "targetTcpProxies",
        target_tcp_proxy,
        &mut model.target_proxies,
        proxies,
    );
    collection.read(
        "targetGrpcProxies",
        target_grpc_proxy,
        &mut model.target_proxies,
        proxies,
    );
    collection.read(
        "forwardingRules",
        forwarding_rule,
        &mut model.forwarding_rules,
        "forwardingRules",
    );
    collection.read(
        "xdsClients",
        super::access::xds_client,
        &mut model.xds_clients,
        "xdsClients",
    );
    if top.get("backendBuckets").is_some() {
        diagnostics.error(
            &top.loc_of("backendBuckets"),
            "backendBuckets",
            "backendBuckets serve Cloud Storage buckets, which are not available in a self-hosted control plane; serve the files from a backend service instead",
        );
    }
    if let Some(node) = top.get("regionOrder") {
        region_order(node, file, model, diagnostics);
    }
    top.finish(diagnostics);
}

/// A resource that has a unique name within its collection.
trait Named {
    fn name(&self) -> &str;
    fn loc(&self) -> &Loc;
}

macro_rules! named {
    ($($kind:ty),+) => {
        $(impl Named for $kind {
            fn name(&self) -> &str {
                &self.name
            }
            fn loc(&self) -> &Loc {
                &self.loc
            }
        })+
    };
}

named!(
    crate::model::XdsClientRule,
    HealthCheck,
    EndpointGroup,
    BackendService,
    UrlMap,
    TargetProxy,
    ForwardingRule,
    crate::model::Certificate,
    crate::config::cipher_suites::SslPolicy
);

/// Reads the top-level lists of one document into the model.
struct Collection<'a, 'n> {
    top: &'a mut Fields<'n>,
    file: &'a Arc<str>,
    diagnostics: &'a mut Diagnostics,
}

type Reader<T> = fn(&Node, &Arc<str>, &mut Diagnostics) -> Option<T>;

impl Collection<'_, '_> {
    /// Reads every item of the list `key` with `read` into `into`, whose names must be unique
    /// across `unique_in`.
    fn read<T: Named>(
        &mut self,
        key: &'static str,
        read: Reader<T>,
        into: &mut BTreeMap<String, T>,
        unique_in: &str,
    ) {
        for node in self.top.list(key, self.diagnostics) {
            if let Some(resource) = read(node, self.file, self.diagnostics) {
                insert(into, resource, unique_in, self.diagnostics);
            }
        }
    }
}

/// Adds a resource; of two with one name, the one written first in the files is kept and the
/// later one reported.
fn insert<T: Named>(
    map: &mut BTreeMap<String, T>,
    value: T,
    collection: &str,
    diagnostics: &mut Diagnostics,
) {
    let name = value.name().to_string();
    let Some(first) = map.get(&name) else {
        map.insert(name, value);
        return;
    };
    let (kept, duplicate) = if value.loc() < first.loc() {
        (value, map.remove(&name).unwrap())
    } else {
        (map.remove(&name).unwrap(), value)
    };
    diagnostics.clash(
        duplicate.loc(),
        kept.loc(),
        format!("{collection}[{name}]"),
        format!(
            "the name `{name}` is already used at {}; names must be unique in {collection}",
            kept.loc()
        ),
    );
    map.insert(name, kept);
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

/// An endpoint written the way gcloud takes it, `instance=vm-a1,ip=10.0.0.1,ipv6=fd00::1,port=80`,
/// as the mapping the API uses (`instance`, `ipAddress`, `ipv6Address`, `port`).
fn gcloud_endpoint(node: &Node) -> Node {
    let Some(text) = node.as_scalar() else {
        return node.clone();
    };
    let scalar = |text: &str| Node {
        value: super::yaml::Value::Scalar {
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
        value: super::yaml::Value::Map(entries),
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
    let ipv4 = match ip_address(fields, "ipAddress", diagnostics) {
        Some(IpAddr::V6(_)) => {
            diagnostics.error(
                &fields.loc_of("ipAddress"),
                fields.field_path("ipAddress"),
                "ipAddress takes an IPv4 address; write an IPv6 address in ipv6Address",
            );
            return None;
        }
        Some(IpAddr::V4(v4)) => Some(v4),
        None if fields.get("ipAddress").is_some() => return None,
        None => None,
    };
    let ipv6 = match ip_address(fields, "ipv6Address", diagnostics) {
        Some(IpAddr::V4(_)) => {
            diagnostics.error(
                &fields.loc_of("ipv6Address"),
                fields.field_path("ipv6Address"),
                "ipv6Address takes an IPv6 address; write an IPv4 address in ipAddress",
            );
            return None;
        }
        Some(IpAddr::V6(v6)) => Some(v6),
        None if fields.get("ipv6Address").is_some() => return None,
        None => None,
    };
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

pub(super) fn zone_of(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> String {
    let zone = fields
        .required_string("zone", diagnostics)
        .unwrap_or_default();
    // A zone may be written as a link (`zones/us-central1-a` or a full URL).
    zone.rsplit('/').next().unwrap_or_default().to_string()
}

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

fn network_endpoint_group(
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
    pasted::warn_without_members(
        &mut fields,
        pasted::Members::Endpoints,
        &name,
        &format!("--zone={zone}"),
        diagnostics,
    );
    let loc = fields.loc();
    fields.finish(diagnostics);
    Some(EndpointGroup {
        name,
        loc,
        kind,
        region: region_of_zone(&zone),
        zone,
        named_ports: BTreeMap::new(),
        default_port,
        endpoints,
    })
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

fn backend_service(
    node: &Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<BackendService> {
    let (mut fields, name) = open(node, file, "backendServices", diagnostics)?;
    let load_balancing_scheme = fields
        .cloud_enum::<LoadBalancingScheme>("loadBalancingScheme", diagnostics)
        .unwrap_or(LoadBalancingScheme::External);
    let protocol = fields
        .cloud_enum::<BackendProtocol>("protocol", diagnostics)
        .unwrap_or(BackendProtocol::Http);
    let written_port_name = fields.string("portName", diagnostics);
    deprecated_port(&mut fields, written_port_name.is_some(), diagnostics);
    let log_sample_rate = fields.get("logConfig").and_then(|node| {
        log_config(
            node,
            fields.file(),
            fields.field_path("logConfig"),
            diagnostics,
        )
    });
    let port_name = written_port_name.unwrap_or_else(|| "http".to_string());
    let timeout_sec = fields
        .whole_seconds("timeoutSec", 1, MAX_TIMEOUT_SEC, diagnostics)
        .unwrap_or(30) as u32;
    let mut health_checks = Vec::new();
    for (index, text) in fields
        .strings("healthChecks", diagnostics)
        .into_iter()
        .enumerate()
    {
        let path = format!("{}.healthChecks[{index}]", fields.path);
        if let Some(check) = references::parse(
            &text,
            &["healthChecks"],
            &fields.loc_of("healthChecks"),
            &path,
            diagnostics,
        ) {
            health_checks.push(check);
        }
    }
    let locality_lb_policy = service_fields::locality_lb_policy(&mut fields, diagnostics);
    let policy_written =
        fields.get("localityLbPolicy").is_some() || fields.get("localityLbPolicies").is_some();
    let timeout_sec_written = fields.get("timeoutSec").is_some();
    let max_stream_duration = fields.get("maxStreamDuration").and_then(|node| {
        positive_duration(
            node,
            file,
            fields.field_path("maxStreamDuration"),
            STREAM_LIMIT_OF_ZERO,
            diagnostics,
        )
    });
    let circuit_breakers = fields.get("circuitBreakers").map(|node| {
        let path = fields.field_path("circuitBreakers");
        service_fields::circuit_breakers(node, file, path, diagnostics)
    });
    let custom_headers = custom_headers::custom_headers(&mut fields, diagnostics);
    let outlier_detection = fields.get("outlierDetection").map(|node| {
        outlier_detection(
            node,
            file,
            fields.field_path("outlierDetection"),
            diagnostics,
        )
    });
    let ip_address_selection_policy = fields
        .cloud_enum("ipAddressSelectionPolicy", diagnostics)
        .unwrap_or(AddressSelection::Ipv4Only);
    let session_affinity = fields
        .cloud_enum::<SessionAffinity>("sessionAffinity", diagnostics)
        .unwrap_or(SessionAffinity::None);
    let affinity_cookie_ttl_sec = fields
        .whole_seconds("affinityCookieTtlSec", 0, 86_400, diagnostics)
        .unwrap_or(0) as u32;
    let consistent_hash = fields
        .get("consistentHash")
        .map(|node| consistent_hash(node, file, fields.field_path("consistentHash"), diagnostics))
        .unwrap_or_default();
    let draining_timeout_sec = fields
        .mapping(
            "connectionDraining",
            diagnostics,
            |draining, diagnostics| {
                draining.whole_seconds("drainingTimeoutSec", 0, 3600, diagnostics)
            },
        )
        .unwrap_or(DEFAULT_DRAINING_TIMEOUT_SEC as i64) as u32;
    let subsetting = fields
        .mapping("subsetting", diagnostics, |subsetting, diagnostics| {
            subsetting.choice(
                "policy",
                &[("NONE", false), ("CONSISTENT_HASH_SUBSETTING", true)],
                diagnostics,
            )
        })
        .unwrap_or(false);
    let backends = fields.items("backends", diagnostics, |item, path, diagnostics| {
        backend(item, file, path, diagnostics)
    });
    let external = service_fields::external_affinity(
        load_balancing_scheme,
        session_affinity,
        affinity_cookie_ttl_sec,
        locality_lb_policy,
        policy_written,
    );
    service_fields::note_served_affinity(&fields, &external, session_affinity, diagnostics);
    if let Some(breakers) = &circuit_breakers {
        service_fields::check_per_connection_limit(&fields, breakers, protocol, diagnostics);
    }
    let loc = fields.loc();
    let field_locs = [
        "sessionAffinity",
        "localityLbPolicy",
        "subsetting",
        "protocol",
        "consistentHash",
    ]
    .into_iter()
    .map(|field| (field, fields.loc_of(field)))
    .collect();
    fields.finish(diagnostics);
    Some(BackendService {
        log_sample_rate,
        outlier_detection,
        timeout_sec_written,
        max_stream_duration,
        circuit_breakers,
        custom_headers,
        field_locs,
        ip_address_selection_policy,
        name,
        loc,
        load_balancing_scheme,
        protocol,
        port_name,
        timeout_sec,
        health_checks,
        locality_lb_policy: external.policy,
        backends,
        session_affinity,
        affinity_cookie_ttl_sec,
        consistent_hash,
        draining_timeout_sec,
        subsetting,
        slow_start: None,
        minimum_healthy: None,
        prefer_client_zone: false,
        sticky_cookie: external
            .sticky_cookie
            .map(|cookie| crate::model::StickyCookie {
                cookie,
                application_cookie: None,
            }),
    })
}

/// The longest Duration the cloud API takes: 10,000 years of seconds.
const MAX_DURATION_SECONDS: i64 = 315_576_000_000;

/// A `{seconds, nanos}` duration (google.protobuf.Duration as the cloud API writes it),
/// fraction kept; `{}` is zero. None only after an error was reported.
pub(super) fn duration(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> Option<std::time::Duration> {
    let errors_before = diagnostics.errors().count();
    let mut fields = Fields::new(node, file, path, diagnostics);
    let seconds = duration_seconds(&mut fields, diagnostics);
    let nanos = fields.integer("nanos", 0, 999_999_999, diagnostics);
    fields.finish(diagnostics);
    if diagnostics.errors().count() > errors_before {
        return None;
    }
    Some(std::time::Duration::new(
        seconds.unwrap_or(0) as u64,
        nanos.unwrap_or(0) as u32,
    ))
}

/// `seconds` of a Duration; a fraction there is pointed at `nanos`.
fn duration_seconds(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> Option<i64> {
    let written = fields.get("seconds")?.as_scalar().unwrap_or("").trim();
    let value: f64 = written.parse().unwrap_or_default();
    if !super::reader::has_fraction(written) || value < 0.0 {
        return fields.integer("seconds", 0, MAX_DURATION_SECONDS, diagnostics);
    }
    let (whole, nanos) = (value.trunc(), (value.fract() * 1e9).round());
    diagnostics.error(
        &fields.loc_of("seconds"),
        fields.field_path("seconds"),
        format!(
            "`{written}` has a fraction; seconds takes whole seconds from 0 to \
             {MAX_DURATION_SECONDS} (write the fraction in nanos: {written} s is \
             {{seconds: {whole}, nanos: {nanos}}})"
        ),
    );
    None
}

/// Why a maxStreamDuration (of a backend service or a route) of 0 is refused.
pub(super) const STREAM_LIMIT_OF_ZERO: &str =
    "Envoy and gRPC read a stream limit of 0 as no limit (leave maxStreamDuration out for no limit)";

/// A duration that must be longer than zero: a zero (however written) is refused with
/// `why_not_zero` — what the cloud or the clients would make of it — never passed on.
pub(super) fn positive_duration(
    node: &Node,
    file: &Arc<str>,
    path: String,
    why_not_zero: &str,
    diagnostics: &mut Diagnostics,
) -> Option<std::time::Duration> {
    let duration = duration(node, file, path.clone(), diagnostics)?;
    if duration.is_zero() {
        diagnostics.error(
            &Loc::new(file.clone(), node.line),
            path,
            format!(
                "a duration of 0 is not allowed here: {why_not_zero}; allowed: more than 0 \
                 (seconds 0 to {MAX_DURATION_SECONDS}, nanos 0 to 999999999, not both 0)"
            ),
        );
        return None;
    }
    Some(duration)
}

/// `logConfig`: the share of requests logged when `enable` is true (sampleRate, default 1).
fn log_config(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> Option<f64> {
    let mut fields = Fields::new(node, file, path, diagnostics);
    fields::classify(&mut fields, "BackendServiceLogConfig", diagnostics);
    let enable = fields.bool("enable", false, diagnostics);
    let rate = fields
        .number("sampleRate", 0.0, 1.0, diagnostics)
        .unwrap_or(1.0);
    fields.finish(diagnostics);
    enable.then_some(rate)
}

/// `outlierDetection`, with the cloud API's defaults for what is not written.
fn outlier_detection(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> OutlierDetection {
    let mut fields = Fields::new(node, file, path, diagnostics);
    let mut count = |key: &'static str, max: i64, default: u32, diagnostics: &mut Diagnostics| {
        fields
            .integer(key, 0, max, diagnostics)
            .map(|v| v as u32)
            .unwrap_or(default)
    };
    let consecutive_errors = count("consecutiveErrors", 1_000_000, 5, diagnostics);
    let consecutive_gateway_failure = count("consecutiveGatewayFailure", 1_000_000, 3, diagnostics);
    let enforcing_consecutive_errors = count("enforcingConsecutiveErrors", 100, 0, diagnostics);
    let enforcing_consecutive_gateway_failure =
        count("enforcingConsecutiveGatewayFailure", 100, 100, diagnostics);
    let enforcing_success_rate = count("enforcingSuccessRate", 100, 100, diagnostics);
    let max_ejection_percent = count("maxEjectionPercent", 100, 50, diagnostics);
    let success_rate_minimum_hosts = count("successRateMinimumHosts", 1_000_000, 5, diagnostics);
    let success_rate_request_volume =
        count("successRateRequestVolume", 1_000_000, 100, diagnostics);
    let success_rate_stdev_factor = count("successRateStdevFactor", 1_000_000, 1900, diagnostics);
    let mut duration_of =
        |key: &'static str, default: u64, why_not_zero: &str, diagnostics: &mut Diagnostics| {
            fields
                .get(key)
                .and_then(|node| {
                    positive_duration(
                        node,
                        file,
                        fields.field_path(key),
                        why_not_zero,
                        diagnostics,
                    )
                })
                .unwrap_or(std::time::Duration::from_secs(default))
        };
    let interval = duration_of(
        "interval",
        1,
        "Envoy refuses an ejection sweep interval of 0 (leave interval out for 1 second)",
        diagnostics,
    );
    let base_ejection_time = duration_of(
        "baseEjectionTime",
        30,
        "Envoy refuses an ejection time of 0 (leave baseEjectionTime out for 30 seconds)",
        diagnostics,
    );
    fields.finish(diagnostics);
    OutlierDetection {
        consecutive_errors,
        consecutive_gateway_failure,
        enforcing_consecutive_errors,
        enforcing_consecutive_gateway_failure,
        enforcing_success_rate,
        interval,
        base_ejection_time,
        max_ejection_percent,
        success_rate_minimum_hosts,
        success_rate_request_volume,
        success_rate_stdev_factor,
        // The cloud has no failure-percentage ejection: off, with Envoy's defaults.
        enforcing_failure_percentage: 0,
        failure_percentage_threshold: 85,
        failure_percentage_minimum_hosts: 5,
        failure_percentage_request_volume: 50,
    }
}

/// Default connectionDraining.drainingTimeoutSec, as for AWS deregistration delay.
pub const DEFAULT_DRAINING_TIMEOUT_SEC: u32 = 300;

/// `consistentHash`: httpHeaderName, httpCookie {name, path, ttl}, minimumRingSize.
fn consistent_hash(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> ConsistentHash {
    let mut fields = Fields::new(node, file, path, diagnostics);
    let http_header_name = fields.string("httpHeaderName", diagnostics);
    let minimum_ring_size = fields
        .integer("minimumRingSize", 1, 8_388_608, diagnostics)
        .map(|size| size as u64);
    let http_cookie = fields.mapping("httpCookie", diagnostics, |cookie, diagnostics| {
        let name = cookie.required_string("name", diagnostics);
        let cookie_path = cookie.string("path", diagnostics);
        // A ttl of 0 makes a session cookie, as affinityCookieTtlSec 0 does.
        let ttl = cookie
            .get("ttl")
            .and_then(|node| duration(node, file, cookie.field_path("ttl"), diagnostics));
        Some(HttpCookie {
            name: name?,
            path: cookie_path,
            ttl,
        })
    });
    fields.finish(diagnostics);
    ConsistentHash {
        http_header_name,
        http_cookie,
        minimum_ring_size,
    }
}

/// A backend with a field error is left out of the model, so that no rule reports the
/// consequences of a value that was never read.
fn backend(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> Option<Backend> {
    let errors_before = diagnostics.errors().count();
    let mut fields = Fields::new(node, file, path, diagnostics);
    fields::classify(&mut fields, "Backend", diagnostics);
    let group = reference(
        &mut fields,
        "group",
        &["instanceGroups", "networkEndpointGroups"],
        diagnostics,
    );
    fields.require("group", diagnostics);
    let balancing_mode = fields
        .cloud_enum::<BalancingMode>("balancingMode", diagnostics)
        .unwrap_or(BalancingMode::Utilization);
    const MAX: f64 = 2_147_483_647.0;
    let max_rate = fields.number("maxRate", 0.0, MAX, diagnostics);
    let max_rate_per_instance = fields.number("maxRatePerInstance", 0.0, MAX, diagnostics);
    let max_rate_per_endpoint = fields.number("maxRatePerEndpoint", 0.0, MAX, diagnostics);
    let max_connections = fields.number("maxConnections", 0.0, MAX, diagnostics);
    let max_connections_per_instance =
        fields.number("maxConnectionsPerInstance", 0.0, MAX, diagnostics);
    let max_connections_per_endpoint =
        fields.number("maxConnectionsPerEndpoint", 0.0, MAX, diagnostics);
    let max_utilization = fields.number("maxUtilization", 0.0, 1.0, diagnostics);
    let capacity_scaler = capacity_scaler(&mut fields, diagnostics);
    let loc = fields.loc();
    fields.finish(diagnostics);
    if diagnostics.errors().count() > errors_before {
        return None;
    }
    Some(Backend {
        group: group?,
        loc,
        balancing_mode,
        max_rate,
        max_rate_per_instance,
        max_rate_per_endpoint,
        max_connections,
        max_connections_per_instance,
        max_connections_per_endpoint,
        max_utilization,
        capacity_scaler,
    })
}

/// capacityScaler: exactly 0.0, or 0.1 to 1.0 (default 1.0).
fn capacity_scaler(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> f64 {
    let Some(value) = fields.number("capacityScaler", 0.0, 1.0, diagnostics) else {
        return 1.0;
    };
    if value != 0.0 && value < 0.1 {
        diagnostics.error(
            &fields.loc_of("capacityScaler"),
            fields.field_path("capacityScaler"),
            format!(
                "{value} is not allowed; capacityScaler must be exactly 0.0 or between 0.1 and 1.0"
            ),
        );
        return 1.0;
    }
    value
}

fn target_http_proxy(
    node: &Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<TargetProxy> {
    let (mut fields, name) = open(node, file, "targetHttpProxies", diagnostics)?;
    let url_map = reference(&mut fields, "urlMap", &["urlMaps"], diagnostics);
    fields.require("urlMap", diagnostics);
    let loc = fields.loc();
    fields.finish(diagnostics);
    Some(TargetProxy {
        name,
        loc,
        target: ProxyTarget::UrlMap(url_map?),
        tls: None,
        proxy_header_v1: false,
    })
}

fn target_grpc_proxy(
    node: &Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<TargetProxy> {
    let (mut fields, name) = open(node, file, "targetGrpcProxies", diagnostics)?;
    let url_map = reference(&mut fields, "urlMap", &["urlMaps"], diagnostics);
    fields.require("urlMap", diagnostics);
    let validate_for_proxyless = fields.bool("validateForProxyless", false, diagnostics);
    let loc = fields.loc();
    fields.finish(diagnostics);
    Some(TargetProxy {
        name,
        loc,
        target: ProxyTarget::Grpc {
            url_map: url_map?,
            validate_for_proxyless,
        },
        tls: None,
        proxy_header_v1: false,
    })
}

fn target_tcp_proxy(
    node: &Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<TargetProxy> {
    let (mut fields, name) = open(node, file, "targetTcpProxies", diagnostics)?;
    let service = reference(&mut fields, "service", &["backendServices"], diagnostics);
    fields.require("service", diagnostics);
    let proxy_header_v1 = proxy_header(&mut fields, diagnostics);
    let loc = fields.loc();
    fields.finish(diagnostics);
    Some(TargetProxy {
        name,
        loc,
        target: ProxyTarget::Service(service?),
        tls: None,
        proxy_header_v1,
    })
}

/// `proxyHeader` of a TCP or SSL proxy: NONE (the default) or PROXY_V1.
pub(super) fn proxy_header(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> bool {
    fields
        .choice(
            "proxyHeader",
            &[("NONE", false), ("PROXY_V1", true)],
            diagnostics,
        )
        .unwrap_or(false)
}

/// `regionOrder`: client region → the regions it fails over to, in order.
fn region_order(
    node: &Node,
    file: &Arc<str>,
    model: &mut Resources,
    diagnostics: &mut Diagnostics,
) {
    let super::yaml::Value::Map(entries) = &node.value else {
        diagnostics.error(
            &Loc::new(file.clone(), node.line),
            "regionOrder",
            format!(
                "expected a mapping of region to a list of regions, found {}",
                node.kind()
            ),
        );
        return;
    };
    for (key, value) in entries {
        let region = key.as_scalar().unwrap_or_default().to_string();
        let path = format!("regionOrder[{region}]");
        let next: Option<Vec<String>> = match &value.value {
            super::yaml::Value::Seq(items) => items
                .iter()
                .map(|i| i.as_scalar().map(str::to_string))
                .collect(),
            _ => None,
        };
        match next {
            Some(next) => {
                model.region_order.insert(region, next);
            }
            None => diagnostics.error(
                &Loc::new(file.clone(), value.line),
                path,
                "expected a list of region names",
            ),
        }
    }
}

fn forwarding_rule(
    node: &Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<ForwardingRule> {
    let (mut fields, name) = open(node, file, "forwardingRules", diagnostics)?;
    let ip_version = fields.choice("ipVersion", &[("IPV4", false), ("IPV6", true)], diagnostics);
    let written = ip_address(&mut fields, "IPAddress", diagnostics);
    let any = |v6: bool| {
        if v6 {
            IpAddr::from([0u16; 8])
        } else {
            IpAddr::from([0u8; 4])
        }
    };
    let ip_address = written.unwrap_or_else(|| any(ip_version.unwrap_or(false)));
    if let (Some(v6), Some(written)) = (ip_version, written) {
        if written.is_ipv6() != v6 {
            diagnostics.error(
                &fields.loc_of("IPAddress"),
                fields.field_path("IPAddress"),
                format!(
                    "{written} is an {} address, but ipVersion is {}",
                    if written.is_ipv6() { "IPv6" } else { "IPv4" },
                    if v6 { "IPV6" } else { "IPV4" }
                ),
            );
        }
    }
    let freebind = fields.bool("freebind", false, diagnostics);
    fields.choice("IPProtocol", &[("TCP", ())], diagnostics);
    let load_balancing_scheme =
        fields.cloud_enum::<LoadBalancingScheme>("loadBalancingScheme", diagnostics);
    if fields.get("ports").is_some() {
        diagnostics.error(
            &fields.loc_of("ports"),
            fields.field_path("ports"),
            "`ports` lists the ports of a passthrough load balancer's forwarding rule; a rule \
             that targets a proxy takes one port in portRange",
        );
    }
    let port = port_range(&mut fields, diagnostics).unwrap_or(80);
    let target = reference(
        &mut fields,
        "target",
        &[
            "targetHttpProxies",
            "targetHttpsProxies",
            "targetTcpProxies",
            "targetSslProxies",
            "targetGrpcProxies",
        ],
        diagnostics,
    );
    fields.require("target", diagnostics);
    let loc = fields.loc();
    fields.finish(diagnostics);
    Some(ForwardingRule {
        name,
        loc,
        ip_address,
        port,
        target: target?,
        freebind,
        load_balancing_scheme,
    })
}

/// `portRange`: `80` or `80-80`; a target HTTP proxy listens on exactly one port.
fn port_range(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> Option<u16> {
    let text = fields.string("portRange", diagnostics)?;
    let (low, high) = text.split_once('-').unwrap_or((&text, &text));
    match (low.trim().parse::<u16>(), high.trim().parse::<u16>()) {
        (Ok(low), Ok(high)) if low == high && low > 0 => Some(low),
        _ => {
            diagnostics.error(
                &fields.loc_of("portRange"),
                fields.field_path("portRange"),
                format!("`{text}` is not allowed; a forwarding rule for an HTTP proxy takes one port from 1 to 65535 (e.g. 80 or 8080-8080)"),
            );
            None
        }
    }
}
