//! `forwardingRules` of the GCP dialect: the address and one port a listener binds, and the
//! target proxy it hands connections to.

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::gcp::resources::{ForwardingRule, LoadBalancingScheme};
use crate::config::reader::Fields;
use crate::config::yaml::Node;
use crate::model::Diagnostics;

use super::{ip_address, open, reference};

pub(super) fn forwarding_rule(
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
