//! Where clients connect: frontends (an address and port, what the proxy does with what comes
//! in — route HTTP requests with a route table, or pass bytes to a service — and the TLS it
//! terminates), and the route tables proxyless gRPC clients look up by name, with the ports
//! their frontends listen on.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::Serialize;

use super::{FrontendTls, Loc, Ref};

/// One address and port clients connect to.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Frontend {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    pub address: IpAddr,
    pub port: u16,
    /// Bind even if the address is not (yet) on the host, as keepalived VIPs need.
    pub freebind: bool,
    /// The proxy the frontend belongs to: frontends of one proxy share its settings, and
    /// HTTP requests and responses carry `Via: 1.1 <proxy>`.
    pub proxy: String,
    pub handler: Handler,
    /// TLS terminated before the handler.
    pub tls: Option<FrontendTls>,
}

/// What a frontend does with a connection.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Handler {
    /// HTTP requests, routed by a route table.
    Http { route_table: Ref },
    /// The connection's bytes, to one service; with `proxy_header_v1` the service first
    /// gets a PROXY protocol (version 1) line saying who the client is.
    Tcp { service: Ref, proxy_header_v1: bool },
}

/// A route table that proxyless gRPC clients reach (by the host names in it) through a
/// proxy's frontends on these ports.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxylessRouting {
    pub route_table: Ref,
    pub ports: BTreeSet<u16>,
}
