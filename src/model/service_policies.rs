//! What a backend service asks of the proxies in front of it besides balancing: limits on
//! its connections and requests (circuit breakers) and the headers added to its requests and
//! responses, whose values may carry facts about the client's connection. Plain data.

use serde::Serialize;

/// Limits on a service's connections and requests; an unwritten limit keeps the proxy's own.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakers {
    /// Connections to all of the service's endpoints together.
    pub max_connections: Option<u32>,
    /// Requests waiting for a connection.
    pub max_pending_requests: Option<u32>,
    /// Requests in flight.
    pub max_requests: Option<u32>,
    /// Requests one connection to an endpoint carries before it is closed.
    pub max_requests_per_connection: Option<u32>,
    /// Retries in flight.
    pub max_retries: Option<u32>,
}

/// Headers a service adds to the requests it is sent and to its responses.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomHeaders {
    pub request: Vec<CustomHeader>,
    pub response: Vec<CustomHeader>,
}

/// One added header: its name, and its value as literal text and facts about the connection.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomHeader {
    pub name: String,
    pub value: Vec<HeaderValuePart>,
}

/// A piece of an added header's value.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HeaderValuePart {
    Text(String),
    Fact(ConnectionFact),
}

/// What a proxy knows about a request's connection and can write into a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ConnectionFact {
    ClientAddress,
    ClientPort,
    /// `true` when the client connected over TLS, else `false`.
    ClientEncrypted,
    /// The HTTP version the client spoke (`HTTP/1.1`, `HTTP/2`).
    ClientProtocol,
    ServerAddress,
    ServerPort,
    /// The name the client asked for in TLS (SNI).
    TlsServerName,
    TlsVersion,
    TlsCipherSuite,
    /// The request's Origin header (for response headers).
    RequestOrigin,
}
