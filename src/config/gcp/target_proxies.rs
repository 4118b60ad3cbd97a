//! The target proxies of the GCP dialect, one reader for the five collections: a proxy hands
//! requests to a URL map (`targetHttpProxies`, `targetHttpsProxies`, `targetGrpcProxies`) or
//! connections to one backend service (`targetTcpProxies`, `targetSslProxies`); the HTTPS and
//! SSL ones terminate TLS (their certificates and policy are read in `tls`), the TCP and SSL
//! ones may send a PROXY protocol line first.

use std::sync::Arc;

use crate::config::gcp::resources::{ProxyTarget, TargetProxy};
use crate::config::reader::Fields;
use crate::config::yaml::Node;
use crate::model::Diagnostics;

use super::{open, reference, tls};

/// A collection of target proxies.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ProxyKind {
    Https,
    Http,
    Ssl,
    Tcp,
    Grpc,
}

impl ProxyKind {
    /// Every kind, in the order a document's collections are read.
    pub(super) const ALL: [ProxyKind; 5] = [
        ProxyKind::Https,
        ProxyKind::Http,
        ProxyKind::Ssl,
        ProxyKind::Tcp,
        ProxyKind::Grpc,
    ];

    pub(super) fn collection(self) -> &'static str {
        match self {
            ProxyKind::Https => "targetHttpsProxies",
            ProxyKind::Http => "targetHttpProxies",
            ProxyKind::Ssl => "targetSslProxies",
            ProxyKind::Tcp => "targetTcpProxies",
            ProxyKind::Grpc => "targetGrpcProxies",
        }
    }

    /// The field naming where the proxy sends traffic, and the collection it refers to.
    fn destination(self) -> (&'static str, &'static str) {
        match self {
            ProxyKind::Http | ProxyKind::Https | ProxyKind::Grpc => ("urlMap", "urlMaps"),
            ProxyKind::Tcp | ProxyKind::Ssl => ("service", "backendServices"),
        }
    }
}

/// One target proxy of the collection `kind`.
pub(super) fn target_proxy(
    kind: ProxyKind,
    node: &Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<TargetProxy> {
    let (mut fields, name) = open(node, file, kind.collection(), diagnostics)?;
    let (key, collection) = kind.destination();
    let destination = reference(&mut fields, key, &[collection], diagnostics);
    fields.require(key, diagnostics);
    let tls = matches!(kind, ProxyKind::Https | ProxyKind::Ssl)
        .then(|| tls::proxy_tls(&mut fields, file, diagnostics));
    let proxy_header_v1 = match kind {
        ProxyKind::Tcp | ProxyKind::Ssl => proxy_header(&mut fields, diagnostics),
        _ => false,
    };
    let validate_for_proxyless = match kind {
        ProxyKind::Grpc => fields.bool("validateForProxyless", false, diagnostics),
        _ => false,
    };
    if kind == ProxyKind::Https {
        tls::quic_override(&mut fields, diagnostics);
    }
    let loc = fields.loc();
    fields.finish(diagnostics);
    let destination = destination?;
    let target = match kind {
        ProxyKind::Http | ProxyKind::Https => ProxyTarget::UrlMap(destination),
        ProxyKind::Tcp | ProxyKind::Ssl => ProxyTarget::Service(destination),
        ProxyKind::Grpc => ProxyTarget::Grpc {
            url_map: destination,
            validate_for_proxyless,
        },
    };
    Some(TargetProxy {
        name,
        loc,
        target,
        tls,
        proxy_header_v1,
    })
}

/// `proxyHeader` of a TCP or SSL proxy: NONE (the default) or PROXY_V1.
fn proxy_header(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> bool {
    fields
        .choice(
            "proxyHeader",
            &[("NONE", false), ("PROXY_V1", true)],
            diagnostics,
        )
        .unwrap_or(false)
}
