//! A listener lowered into the model: a route table of its rules by priority (the default
//! action a catch-all route after them), a frontend on each family of its load balancer (TLS
//! with certificates from files and the security policy's lowest version), and — with
//! `Metadata.Switchyard.ProxylessHosts` — the same routes for proxyless gRPC clients. Where the
//! load balancer listens comes from its `Metadata.Switchyard`, how the listener treats its
//! clients from the load balancer's and listener's attributes. Must not: know xDS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use std::collections::BTreeSet;

use crate::config::cipher_suites::{cipher_suite, profile_cipher_suites, SslProfile};
use crate::config::reader::Fields;
use crate::model::tls::Pem;
use crate::model::{
    Certificate, Diagnostics, ForwardedFor, ForwardedHost, Frontend, FrontendHttp, FrontendTls,
    Handler, MatchRule, Model, PathMatch, ProxylessRouting, Ref, Route, RouteExtras, RouteTable,
    TlsHeaders, TlsVersion, VirtualHost,
};

use super::balancer_attributes::{LoadBalancerAttributes, XffMode};
use super::listeners::{Listener, LoadBalancer, Rule};
use super::lower::insert;
use super::routes;
use super::template::Resource;

/// Where a load balancer listens, from its `Metadata.Switchyard`.
pub(super) struct Addresses {
    ipv4: IpAddr,
    /// Dualstack load balancers only.
    ipv6: Option<IpAddr>,
}

/// What a listener takes from its load balancer: where it listens, and the attributes.
pub(super) struct Front {
    pub addresses: Addresses,
    pub attributes: LoadBalancerAttributes,
}

/// `Metadata.Switchyard.ProxylessHosts` of a listener: the names proxyless gRPC clients dial
/// (`xds:///NAME` or `xds:///NAME:PORT`) to be routed by its rules.
pub(super) fn proxyless(
    resource: &Resource<'_>,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Vec<String> {
    let Some(mut fields) = switchyard_settings(resource, file, diagnostics) else {
        return Vec::new();
    };
    let hosts = fields.strings("ProxylessHosts", diagnostics);
    fields.finish(diagnostics);
    hosts
}

/// A resource's `Metadata.Switchyard` (Switchyard's own settings) as fields to read; None
/// when absent. The rest of the metadata belongs to other tools and is not looked at.
fn switchyard_settings<'n>(
    resource: &Resource<'n>,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<Fields<'n>> {
    let metadata = resource.metadata?;
    let path = format!("Resources.{}.Metadata", resource.logical_id);
    let mut fields = Fields::new(metadata, file, &path, diagnostics);
    let own = fields.get("Switchyard")?;
    Some(Fields::new(
        own,
        file,
        format!("{path}.Switchyard"),
        diagnostics,
    ))
}

/// Serves a listener's routing to proxyless gRPC clients under `hosts` as well: a gRPC
/// frontend on the same routes, named by the hosts (Envoy is unaffected).
pub(super) fn serve_proxyless(
    listener: &Listener,
    hosts: &[String],
    model: &mut Model,
    diagnostics: &mut Diagnostics,
) {
    if hosts.is_empty() {
        return;
    }
    let name = &listener.logical_id;
    let loc = &listener.loc;
    if let Some(table) = model.route_tables.get_mut(name) {
        // The same routes under the names proxyless clients dial.
        let routes = table.virtual_hosts[0].routes.clone();
        table.virtual_hosts.push(VirtualHost {
            name: format!("{RULES}-1"),
            domains: hosts.to_vec(),
            routes,
            header_action: Default::default(),
        });
    }
    let routing = ProxylessRouting {
        route_table: Ref {
            name: name.clone(),
            loc: loc.clone(),
            path: format!("Resources.{name}.Metadata.Switchyard.ProxylessHosts"),
        },
        ports: BTreeSet::from([listener.port]),
    };
    insert(
        &mut model.proxyless,
        format!("{name}-proxyless"),
        routing,
        loc,
        diagnostics,
    );
}

/// `Metadata.Switchyard.Ipv4Address` / `Ipv6Address`: where the load balancer listens
/// (0.0.0.0 and, when dualstack, `::` unless written).
pub(super) fn addresses(
    resource: &Resource<'_>,
    load_balancer: &LoadBalancer,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Addresses {
    let mut addresses = Addresses {
        ipv4: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ipv6: load_balancer
            .dualstack
            .then_some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    };
    let Some(mut fields) = switchyard_settings(resource, file, diagnostics) else {
        return addresses;
    };
    let mut address = |key: &'static str, v6: bool, diagnostics: &mut Diagnostics| {
        let text = fields.string(key, diagnostics)?;
        match text.parse::<IpAddr>() {
            Ok(ip) if ip.is_ipv6() == v6 => Some(ip),
            _ => {
                diagnostics.error(
                    &fields.loc_of(key),
                    fields.field_path(key),
                    format!(
                        "`{text}` is not an {} address",
                        if v6 { "IPv6" } else { "IPv4" }
                    ),
                );
                None
            }
        }
    };
    if let Some(ipv4) = address("Ipv4Address", false, diagnostics) {
        addresses.ipv4 = ipv4;
    }
    let ipv6 = address("Ipv6Address", true, diagnostics);
    if ipv6.is_some() && !load_balancer.dualstack {
        diagnostics.error(
            &fields.loc_of("Ipv6Address"),
            fields.field_path("Ipv6Address"),
            "an IPv6 address needs a dualstack load balancer (IpAddressType: dualstack)",
        );
    } else if let Some(ipv6) = ipv6 {
        addresses.ipv6 = Some(ipv6);
    }
    fields.finish(diagnostics);
    addresses
}

/// The name of a listener's one set of rules (its virtual hosts are named after it).
const RULES: &str = "rules";

pub(super) fn lower_listener(
    listener: &Listener,
    rules: &[&Rule],
    front: &Front,
    file: &Arc<str>,
    model: &mut Model,
    diagnostics: &mut Diagnostics,
) {
    let name = &listener.logical_id;
    let loc = &listener.loc;
    let addresses = &front.addresses;
    // No total deadline: a request ends when neither side sends anything for the idle
    // timeout (the connection manager's stream idle timeout), as with an ALB.
    let extras = || RouteExtras {
        timeout: Some(std::time::Duration::ZERO),
        ..RouteExtras::default()
    };
    let mut by_priority = Vec::new();
    for rule in rules {
        let path = format!("Resources.{}.Properties", rule.logical_id);
        let matched = routes::match_rule(
            &rule.conditions,
            &rule.priority_loc,
            &format!("{path}.Conditions"),
            diagnostics,
        );
        let target = routes::route_target(
            &rule.action,
            &rule.priority_loc,
            &format!("{path}.Actions"),
            diagnostics,
        );
        if let (Some(matches), Some(target)) = (matched, target) {
            let route = Route {
                matches,
                target,
                extras: extras(),
            };
            by_priority.push((rule.priority, route));
        }
    }
    by_priority.sort_by_key(|(priority, _)| *priority);
    let mut routes: Vec<Route> = by_priority.into_iter().map(|(_, route)| route).collect();
    // The default action takes what no rule took: a route after all others, matching
    // everything.
    if let Some(target) = routes::route_target(
        &listener.default_action,
        loc,
        &format!("Resources.{name}.Properties.DefaultActions"),
        diagnostics,
    ) {
        routes.push(Route {
            matches: MatchRule {
                path: PathMatch::Prefix(String::new()),
                ignore_case: false,
                headers: Vec::new(),
                query_parameters: Vec::new(),
                source_blocks: Vec::new(),
            },
            target,
            extras: extras(),
        });
    }
    let table = RouteTable {
        name: name.clone(),
        loc: loc.clone(),
        virtual_hosts: vec![VirtualHost {
            name: format!("{RULES}-0"),
            domains: vec!["*".to_string()],
            routes,
            header_action: Default::default(),
        }],
        header_action: Default::default(),
        frontend: frontend(listener, &front.attributes),
    };
    insert(
        &mut model.route_tables,
        name.clone(),
        table,
        loc,
        diagnostics,
    );
    let tls = listener
        .https
        .then(|| listener_tls(listener, file, model, diagnostics));
    let frontends = std::iter::once((name.clone(), addresses.ipv4))
        .chain(addresses.ipv6.map(|ip| (format!("{name}-ipv6"), ip)));
    for (frontend_name, address) in frontends {
        let frontend = Frontend {
            name: frontend_name.clone(),
            loc: loc.clone(),
            address,
            port: listener.port,
            freebind: false,
            proxy: name.clone(),
            handler: Handler::Http {
                route_table: Ref {
                    name: name.clone(),
                    loc: loc.clone(),
                    path: format!("Resources.{name}"),
                },
            },
            tls: tls.clone(),
        };
        insert(
            &mut model.frontends,
            frontend_name,
            frontend,
            loc,
            diagnostics,
        );
    }
}

/// How the listener treats its clients, from its load balancer's attributes and its own:
/// connections idle and live as long as the ALB lets them, X-Forwarded-For and the Host are
/// processed as the attributes say (by default the client's address appended, and the
/// listener's port appended to the Host unless it is the scheme's own, 80 or 443), and an
/// HTTPS listener may tell targets the TLS version and cipher.
fn frontend(listener: &Listener, attributes: &LoadBalancerAttributes) -> FrontendHttp {
    let default_port = if listener.https { 443 } else { 80 };
    FrontendHttp {
        idle_timeout_sec: Some(attributes.idle_timeout_seconds),
        max_connection_duration_sec: Some(attributes.client_keep_alive_seconds),
        drop_underscore_headers: attributes.drop_invalid_header_fields,
        forwarded_for: match attributes.xff_mode {
            XffMode::Append => ForwardedFor::Client {
                with_port: attributes.xff_client_port,
            },
            XffMode::Preserve => ForwardedFor::AsSent,
            XffMode::Remove => ForwardedFor::Removed,
        },
        host: if attributes.preserve_host_header {
            ForwardedHost::AsSent
        } else if listener.port == default_port {
            ForwardedHost::WithoutPort
        } else {
            ForwardedHost::WithPort(listener.port)
        },
        tls_headers: (listener.https && attributes.tls_headers).then(|| TlsHeaders {
            version: listener.attributes.tls_version_header.clone(),
            cipher_suite: listener.attributes.tls_cipher_suite_header.clone(),
        }),
    }
}

/// An HTTPS listener's certificates (PEM files beside the template) and security policy.
fn listener_tls(
    listener: &Listener,
    file: &Arc<str>,
    model: &mut Model,
    diagnostics: &mut Diagnostics,
) -> FrontendTls {
    let base = Path::new(file.as_ref()).parent().unwrap_or(Path::new(""));
    let name = &listener.logical_id;
    let mut certificates = Vec::new();
    for (index, files) in listener.certificates.iter().enumerate() {
        let path = format!("Resources.{name}.Properties.Certificates[{index}]");
        let pem = |written: &str, key: &str| Pem {
            text: String::new(),
            file: Some(base.join(written)),
            loc: files.loc.clone(),
            path: format!("{path}.{key}"),
        };
        let certificate_name = format!("{name}-certificate-{index}");
        let certificate = Certificate {
            name: certificate_name.clone(),
            loc: files.loc.clone(),
            certificate: pem(&files.certificate_file, "CertificateFile"),
            private_key: pem(&files.private_key_file, "PrivateKeyFile"),
            dns_names: Vec::new(),
        };
        insert(
            &mut model.certificates,
            certificate_name.clone(),
            certificate,
            &files.loc,
            diagnostics,
        );
        certificates.push(Ref {
            name: certificate_name,
            loc: files.loc.clone(),
            path,
        });
    }
    // A security policy's lowest version; its suites as the closest pre-defined profile
    // (the TLS 1.3 policies leave out the RSA key exchange, as MODERN does). Without one,
    // TLS 1.0 and up with every suite.
    let (min_version, profile) = match &listener.ssl_policy {
        Some(policy) if policy.contains("TLS13") => {
            (minimum_tls_version(policy), SslProfile::Modern)
        }
        Some(policy) => (minimum_tls_version(policy), SslProfile::Compatible),
        None => (TlsVersion::Tls10, SslProfile::Compatible),
    };
    FrontendTls {
        certificates,
        min_version,
        cipher_suites: profile_cipher_suites(profile)
            .into_iter()
            .filter_map(cipher_suite)
            .map(|suite| suite.envoy_name.to_string())
            .collect(),
    }
}

/// The lowest TLS version an ELB security policy accepts, from its name
/// (`ELBSecurityPolicy-TLS13-1-2-2021-06` → 1.2; the 2016-08 default → 1.0).
fn minimum_tls_version(policy: &str) -> TlsVersion {
    let rest = policy
        .trim_start_matches("ELBSecurityPolicy-")
        .trim_start_matches("TLS13-")
        .trim_start_matches("FS-")
        .trim_start_matches("TLS-");
    if rest.starts_with("1-3") {
        TlsVersion::Tls13
    } else if rest.starts_with("1-2") {
        TlsVersion::Tls12
    } else if rest.starts_with("1-1") {
        TlsVersion::Tls11
    } else {
        TlsVersion::Tls10
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_policies_give_their_lowest_version() {
        assert_eq!(
            minimum_tls_version("ELBSecurityPolicy-2016-08"),
            TlsVersion::Tls10
        );
        assert_eq!(
            minimum_tls_version("ELBSecurityPolicy-TLS13-1-2-2021-06"),
            TlsVersion::Tls12
        );
        assert_eq!(
            minimum_tls_version("ELBSecurityPolicy-TLS13-1-3-2021-06"),
            TlsVersion::Tls13
        );
        assert_eq!(
            minimum_tls_version("ELBSecurityPolicy-TLS-1-1-2017-01"),
            TlsVersion::Tls11
        );
        assert_eq!(
            minimum_tls_version("ELBSecurityPolicy-FS-1-2-Res-2020-10"),
            TlsVersion::Tls12
        );
    }
}
