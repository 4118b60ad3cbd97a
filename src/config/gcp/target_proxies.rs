//! The plain target proxies of the GCP dialect: `targetHttpProxies` and `targetGrpcProxies`
//! (to a URL map) and `targetTcpProxies` (to one backend service). The TLS ones
//! (`targetHttpsProxies`, `targetSslProxies`) are read in `tls`.

use std::sync::Arc;

use crate::config::gcp::resources::{ProxyTarget, TargetProxy};
use crate::config::reader::Fields;
use crate::config::yaml::Node;
use crate::model::Diagnostics;

use super::{open, reference};

pub(super) fn target_http_proxy(
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

pub(super) fn target_grpc_proxy(
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

pub(super) fn target_tcp_proxy(
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
