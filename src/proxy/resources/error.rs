//! Why the sidecar refuses a resource, as values a caller can match: which resource, where in
//! it (a field path), and what is wrong there. The text of a [`ResourceError`] is the NACK's
//! `error_detail`, so every sentence is written here once; the management server records and
//! shows it, and tests compare it.
//!
//! Must not: decide anything (the converters do); this is only what they can say.

use std::fmt;

use super::listener::{HOST_WITH_LISTENER_PORT, HTTP_CONNECTION_MANAGER, ROUTER, TCP_PROXY};
use super::tls::TLS_TRANSPORT_SOCKET;
use crate::proxy::filters::application_cookie::NAME as APPLICATION_COOKIE;
use crate::xds::types::TypeUrl;

/// A resource the sidecar cannot apply: `Listener web: address: a port_value is required`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{} {name}: {fault}", .type_url.short_name())]
pub struct ResourceError {
    pub type_url: TypeUrl,
    pub name: String,
    pub fault: Fault,
}

/// What is wrong, and where in the resource: `at` is the path of the field at fault as the
/// NACK shows it (`virtual_hosts[0].routes[2].match.headers[1]`), empty for the resource as a
/// whole; a message embedded in a field (a typed_config) is named with the message's type.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub at: String,
    pub problem: Problem,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "{}: {}", self.at, self.problem)
        }
    }
}

impl From<Problem> for Fault {
    fn from(problem: Problem) -> Fault {
        Fault {
            at: String::new(),
            problem,
        }
    }
}

impl Fault {
    /// `problem` in the field at `at`.
    pub fn at(at: impl Into<String>, problem: Problem) -> Fault {
        Fault {
            at: at.into(),
            problem,
        }
    }

    /// The same fault seen from the message that holds the field `field`: `field.at`.
    pub fn under(self, field: &str) -> Fault {
        self.prefixed(field, ".")
    }

    /// The same fault seen from outside the embedded message `embedded` (a typed_config
    /// named with its type): `embedded: at`.
    pub fn inside(self, embedded: &str) -> Fault {
        self.prefixed(embedded, ": ")
    }

    fn prefixed(mut self, prefix: &str, separator: &str) -> Fault {
        self.at = if self.at.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}{separator}{}", self.at)
        };
        self
    }

    /// The fault as the refusal of the resource `name` of `type_url`.
    pub fn of(self, type_url: TypeUrl, name: &str) -> ResourceError {
        ResourceError {
            type_url,
            name: name.to_string(),
            fault: self,
        }
    }
}

/// What is wrong with a field (or the resource), in the words the NACK uses.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Problem {
    // Any resource.
    #[error("cannot be decoded: {0}")]
    Undecodable(prost::DecodeError),
    /// A field the sidecar does not implement is set (`field` with list indices).
    #[error("field `{field}` is not supported by the sidecar")]
    UnsupportedField { field: String },
    /// Something the sidecar needs is not there (`what`: "a port_value").
    #[error("{what} is required")]
    Missing { what: &'static str },
    /// `value` is not of the form the field takes (`expected`: "an IP address").
    #[error("`{value}` is not {expected}")]
    NotValid {
        value: String,
        expected: &'static str,
    },
    #[error("port {port} is out of range")]
    PortOutOfRange { port: u32 },
    /// An enum value this API version does not define.
    #[error("unknown {field} {value}")]
    UnknownCode { field: &'static str, value: i32 },

    // Listener.
    #[error("has no filter chain")]
    NoFilterChains,
    #[error(
        "has {count} filters; the sidecar runs one (an HTTP connection manager or a TCP proxy)"
    )]
    NetworkFilters { count: usize },
    #[error("has no typed_config")]
    NoTypedConfig,
    #[error(
        "the transport socket {name} ({type_url}) is not supported; the sidecar runs \
         {TLS_TRANSPORT_SOCKET} with a DownstreamTlsContext"
    )]
    TransportSocket { name: String, type_url: String },
    #[error(
        "the listener filter {name} is not supported; the sidecar runs \
         envoy.filters.listener.tls_inspector without settings"
    )]
    ListenerFilter { name: String },
    #[error(
        "the filter {name} ({type_url}) is not supported; the sidecar runs \
         {HTTP_CONNECTION_MANAGER} and {TCP_PROXY}"
    )]
    NetworkFilter { name: String, type_url: String },
    #[error("routes must come over RDS (rds.route_config_name)")]
    RoutesNotOverRds,
    #[error(
        "the HTTP filter {name} is not supported; the sidecar runs {}, {ROUTER} last and, of \
         Lua filters, only Switchyard's named steps {HOST_WITH_LISTENER_PORT} and \
         {APPLICATION_COOKIE}",
        crate::proxy::filters::registered_names()
    )]
    HttpFilter { name: String },
    /// A filter's config (listener or per-route) of a type the filter does not read.
    #[error("the type {type_url} is not {filter}'s config (it reads {expected})")]
    FilterConfigType {
        filter: &'static str,
        type_url: String,
        expected: String,
    },
    #[error("{name} comes after {ROUTER}, which must be the last HTTP filter")]
    FilterAfterRouter { name: String },
    /// A fractional percent's denominator this API version does not define.
    #[error("unknown denominator {value}; HUNDRED, TEN_THOUSAND or MILLION")]
    Denominator { value: i32 },
    #[error("{status} is not an HTTP status a fault abort can answer with (200–599)")]
    AbortStatus { status: u32 },
    /// A LuaPerRoute for Switchyard's application-cookie step that is not its script.
    #[error(
        "the sidecar runs no Lua: of {APPLICATION_COOKIE}, it knows only the script Switchyard \
         writes (`local APPLICATION = \"…\"`, `local ISSUED = \"…\"`)"
    )]
    ApplicationCookieScript,
    #[error("the type {type_url} is not the router's")]
    NotRouterConfig { type_url: String },
    #[error(
        "{action} is not supported; the sidecar allows such headers (ALLOW) or drops them \
         (DROP_HEADER)"
    )]
    UnderscoreHeadersAction { action: i32 },
    #[error("`{upgrade_type}` is not supported; the sidecar upgrades to websocket only")]
    UpgradeType { upgrade_type: String },

    // Access logs (HTTP connection manager and TCP proxy).
    #[error(
        "the access logger {name} ({type_url}) is not supported; the sidecar writes \
         envoy.access_loggers.stdout and envoy.access_loggers.stderr in Envoy's default format"
    )]
    AccessLogger { name: String, type_url: String },
    #[error(
        "the access log filter {name} ({type_url}) is not supported; the sidecar evaluates \
         envoy.access_loggers.extension_filters.cel with an ExpressionFilter"
    )]
    AccessLogExtensionFilter { name: String, type_url: String },
    #[error(
        "the CEL expression `{expression}` is not one the sidecar evaluates; it knows \
         `xds.cluster_name == '<cluster>'`"
    )]
    CelExpression { expression: String },
    #[error(
        "sampling by x-request-id (use_independent_randomness: false) is not supported; the \
         sidecar samples each entry independently"
    )]
    DependentSampling,

    // Cluster.
    /// A cluster type other than EDS, STRICT_DNS, LOGICAL_DNS and ORIGINAL_DST (`kind`: its name, or
    /// the extension's name for a `cluster_type`).
    #[error(
        "the cluster type {kind} is not supported; the sidecar takes EDS, STRICT_DNS, \
         LOGICAL_DNS and ORIGINAL_DST clusters"
    )]
    DiscoveryType { kind: String },
    #[error("lb_policy {policy} is not supported")]
    LbPolicy { policy: i32 },
    #[error("typed_extension_protocol_options[{key}] is not supported")]
    ProtocolOptions { key: String },
    #[error("only explicit_http_config is supported")]
    NotExplicitHttpConfig,
    #[error(
        "the transport socket {name} ({type_url}) is not supported; the sidecar runs \
         {TLS_TRANSPORT_SOCKET} with an UpstreamTlsContext or \
         envoy.transport_sockets.raw_buffer, either of them alone or inside \
         envoy.transport_sockets.upstream_proxy_protocol"
    )]
    UpstreamTransportSocket { name: String, type_url: String },

    // RouteConfiguration.
    #[error("the action must be route, redirect or direct_response")]
    RouteActionKind,
    #[error("this string matcher is not supported")]
    StringMatcher,
    #[error("only string_match and present_match are supported")]
    QueryMatcher,
    #[error("only header, cookie and source_ip hashing are supported")]
    HashPolicy,
    #[error(
        "a prefix rewrite needs a prefix, path or path_separated_prefix match, not safe_regex \
         or path_match_policy"
    )]
    PrefixRewriteOfRegex,
    #[error("the regex `{pattern}` does not compile: {error}")]
    Regex {
        pattern: String,
        error: regex::Error,
    },
    #[error("the value `{value}` has an unterminated %…% variable")]
    UnterminatedVariable { value: String },
    /// A header value uses a formatting variable the sidecar does not fill in.
    #[error(
        "the value `{value}` uses %{variable}%, which the sidecar does not fill in (it knows {})",
        super::route::known_variables()
    )]
    UnknownVariable { value: String, variable: String },
    #[error("`{name}`: pseudo-headers and Host cannot be changed")]
    ProtectedHeader { name: String },

    // TLS (DownstreamTlsContext, UpstreamTlsContext, Secret).
    #[error(
        "none of the cipher suites {named} is implemented by the sidecar (rustls offers {})",
        super::tls::SERVED_CIPHER_SUITES.join(", ")
    )]
    NoServedCipherSuite { named: String },
    #[error(
        "the cipher suite {name} is not known to the sidecar (rustls offers {})",
        super::tls::SERVED_CIPHER_SUITES.join(", ")
    )]
    UnknownCipherSuite { name: String },
    #[error(
        "the TLS versions allowed include neither TLS 1.2 nor TLS 1.3, the ones rustls speaks"
    )]
    TlsVersions,
    #[error("the PEM data cannot be used: {0}")]
    Pem(String),
}
