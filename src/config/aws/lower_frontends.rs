//! A listener lowered into the model: a URL map of its rules by priority (the default action
//! a catch-all rule after them), a target proxy (certificates from files, the security
//! policy's lowest TLS version), a forwarding rule on each family of its load balancer, and —
//! with `Metadata.Switchyard.ProxylessHosts` — a gRPC frontend on the same routes. Where the
//! load balancer listens comes from its `Metadata.Switchyard`, how the listener treats its
//! clients from the load balancer's and listener's attributes. Must not: know xDS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use crate::config::cipher_suites::{SslPolicy, SslProfile};
use crate::config::gcp::resources::{
    ForwardingRule, HostRule, PathMatcher, ProxyTarget, ProxyTls, Resources, RouteRule,
    TargetProxy, UrlMap,
};
use crate::config::reader::Fields;
use crate::model::tls::Pem;
use crate::model::{
    Certificate, Diagnostics, ForwardedFor, ForwardedHost, FrontendHttp, Ref, RouteExtras,
    TlsHeaders, TlsVersion,
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
    model: &mut Resources,
    diagnostics: &mut Diagnostics,
) {
    if hosts.is_empty() {
        return;
    }
    let name = &listener.logical_id;
    let loc = &listener.loc;
    if let Some(url_map) = model.url_maps.get_mut(name) {
        url_map.host_rules.push(HostRule {
            loc: loc.clone(),
            hosts: hosts.to_vec(),
            path_matcher: "rules".to_string(),
        });
    }
    let proxy_name = format!("{name}-proxyless");
    let reference = |target: &str| Ref {
        name: target.to_string(),
        loc: loc.clone(),
        path: format!("Resources.{name}.Metadata.Switchyard.ProxylessHosts"),
    };
    let proxy = TargetProxy {
        name: proxy_name.clone(),
        loc: loc.clone(),
        target: ProxyTarget::Grpc {
            url_map: reference(name),
            validate_for_proxyless: false,
        },
        tls: None,
        proxy_header_v1: false,
    };
    insert(
        &mut model.target_proxies,
        proxy_name.clone(),
        proxy,
        loc,
        diagnostics,
    );
    let rule = ForwardingRule {
        name: proxy_name.clone(),
        loc: loc.clone(),
        ip_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: listener.port,
        target: reference(&proxy_name),
        freebind: false,
        load_balancing_scheme: None,
    };
    insert(
        &mut model.forwarding_rules,
        proxy_name,
        rule,
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

pub(super) fn lower_listener(
    listener: &Listener,
    rules: &[&Rule],
    front: &Front,
    file: &Arc<str>,
    model: &mut Resources,
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
    let mut route_rules = Vec::new();
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
        if let (Some(matched), Some(action)) = (matched, target) {
            route_rules.push(RouteRule {
                priority: rule.priority,
                match_rules: vec![matched],
                action,
                extras: extras(),
            });
        }
    }
    // The default action takes what no rule took: a rule after all others, matching everything.
    if let Some(action) = routes::route_target(
        &listener.default_action,
        loc,
        &format!("Resources.{name}.Properties.DefaultActions"),
        diagnostics,
    ) {
        route_rules.push(RouteRule {
            priority: u32::MAX,
            match_rules: Vec::new(),
            action,
            extras: extras(),
        });
    }
    let url_map = UrlMap {
        name: name.clone(),
        loc: loc.clone(),
        default_service: None,
        default_url_redirect: None,
        default_weighted: None,
        default_extras: RouteExtras::default(),
        host_rules: vec![HostRule {
            loc: loc.clone(),
            hosts: vec!["*".to_string()],
            path_matcher: "rules".to_string(),
        }],
        path_matchers: vec![PathMatcher {
            name: "rules".to_string(),
            loc: loc.clone(),
            default_service: None,
            default_url_redirect: None,
            default_weighted: None,
            default_extras: RouteExtras::default(),
            path_rules: Vec::new(),
            route_rules,
            header_action: Default::default(),
        }],
        header_action: Default::default(),
        frontend: frontend(listener, &front.attributes),
    };
    insert(&mut model.url_maps, name.clone(), url_map, loc, diagnostics);
    let tls = listener
        .https
        .then(|| listener_tls(listener, file, model, diagnostics));
    let proxy = TargetProxy {
        name: name.clone(),
        loc: loc.clone(),
        target: ProxyTarget::UrlMap(Ref {
            name: name.clone(),
            loc: loc.clone(),
            path: format!("Resources.{name}"),
        }),
        tls,
        proxy_header_v1: false,
    };
    insert(
        &mut model.target_proxies,
        name.clone(),
        proxy,
        loc,
        diagnostics,
    );
    let frontends = std::iter::once((name.clone(), addresses.ipv4))
        .chain(addresses.ipv6.map(|ip| (format!("{name}-ipv6"), ip)));
    for (rule_name, ip_address) in frontends {
        let rule = ForwardingRule {
            name: rule_name.clone(),
            loc: loc.clone(),
            ip_address,
            port: listener.port,
            target: Ref {
                name: name.clone(),
                loc: loc.clone(),
                path: format!("Resources.{name}"),
            },
            freebind: false,
            load_balancing_scheme: None,
        };
        insert(
            &mut model.forwarding_rules,
            rule_name,
            rule,
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
    model: &mut Resources,
    diagnostics: &mut Diagnostics,
) -> ProxyTls {
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
            &mut model.ssl_certificates,
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
    let ssl_policy = listener.ssl_policy.as_ref().map(|policy| {
        let policy_name = format!("{name}-policy");
        let lowered = SslPolicy {
            name: policy_name.clone(),
            loc: listener.loc.clone(),
            min_tls_version: minimum_tls_version(policy),
            profile: if policy.contains("TLS13") {
                SslProfile::Modern
            } else {
                SslProfile::Compatible
            },
            custom_features: Vec::new(),
        };
        insert(
            &mut model.ssl_policies,
            policy_name.clone(),
            lowered,
            &listener.loc,
            diagnostics,
        );
        Ref {
            name: policy_name,
            loc: listener.loc.clone(),
            path: format!("Resources.{name}.Properties.SslPolicy"),
        }
    });
    ProxyTls {
        certificates,
        ssl_policy,
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
