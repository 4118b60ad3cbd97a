//! How the proxy in front of a URL map treats its clients: how long their connections may
//! idle and live, which header names it drops, and what it tells the backend about the client
//! (X-Forwarded-For, the Host, the TLS version and cipher). The default is what Switchyard has
//! always served for the cloud's proxies: Envoy's connection limits, the client's address then
//! the proxy's own in X-Forwarded-For, the Host without its port.

use serde::Serialize;

/// What X-Forwarded-For carries to the backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ForwardedFor {
    /// The client's address, then the address the client reached.
    #[default]
    ClientThenProxy,
    /// The client's address (with its port when `with_port`).
    Client { with_port: bool },
    /// The header as the client sent it.
    AsSent,
    /// No header.
    Removed,
}

/// The Host (`:authority`) the backend receives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ForwardedHost {
    /// The client's host without the port it wrote.
    #[default]
    WithoutPort,
    /// The client's host as written.
    AsSent,
    /// The client's host name with this port (the one the client reached).
    WithPort(u16),
}

/// Request headers that tell the backend the TLS version and cipher suite the client
/// negotiated (OpenSSL's names: `TLSv1.2`, `ECDHE-RSA-AES128-GCM-SHA256`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsHeaders {
    pub version: String,
    pub cipher_suite: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendHttp {
    /// No data on a client connection, or on one of its requests, for this many seconds
    /// closes it (None: the proxy's own limits).
    pub idle_timeout_sec: Option<u32>,
    /// A client connection is closed, after the request in flight, once this many seconds
    /// old (None: never).
    pub max_connection_duration_sec: Option<u32>,
    /// Request headers whose names hold an underscore are dropped (the only invalid names
    /// the proxy lets through otherwise).
    pub drop_underscore_headers: bool,
    pub forwarded_for: ForwardedFor,
    pub host: ForwardedHost,
    pub tls_headers: Option<TlsHeaders>,
}
