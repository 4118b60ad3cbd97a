//! The resources of the internal model. Names are plain (`web`), never cloud URLs; every
//! reference keeps where it was written so that a dangling one can be reported precisely.

use std::net::IpAddr;

use serde::Serialize;

use super::Loc;

/// An enum the cloud API spells in UPPER_CASE: its values and their names, written once.
pub trait CloudEnum: Copy + 'static {
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
}

/// Declares a [`CloudEnum`] with the cloud's names for its variants.
macro_rules! cloud_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl CloudEnum for $name {
            const ALL: &'static [$name] = &[$($name::$variant),+];
            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                CloudEnum::as_str(self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

pub(crate) use cloud_enum;

/// A reference from one resource to another, by plain name, with where it was written.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ref {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    /// Resource path of the field holding the reference.
    #[serde(skip)]
    pub path: String,
}

cloud_enum!(HealthCheckProtocol {
    Http => "HTTP",
    Https => "HTTPS",
    Http2 => "HTTP2",
    Grpc => "GRPC",
    Tcp => "TCP",
    Ssl => "SSL",
});

impl HealthCheckProtocol {
    /// HTTP, HTTPS and HTTP2 checks send a request to a path.
    pub fn is_http(self) -> bool {
        matches!(
            self,
            HealthCheckProtocol::Http | HealthCheckProtocol::Https | HealthCheckProtocol::Http2
        )
    }
}

/// Which port a check probes: its own `port`, the group's named port `port_name`, or the
/// port each endpoint serves on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PortSelection {
    Fixed,
    Named,
    Serving,
}

/// How endpoints are probed, with every default filled in.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    pub protocol: HealthCheckProtocol,
    pub port_selection: PortSelection,
    pub port: Option<u16>,
    pub port_name: Option<String>,
    /// HTTP, HTTPS, HTTP2: the path asked for ("/" unless written).
    pub request_path: String,
    /// HTTP, HTTPS, HTTP2: the Host header sent (the endpoint's address when absent).
    pub host: Option<String>,
    /// TCP, SSL: bytes sent once connected.
    pub request: Option<String>,
    /// What the answer must begin with (HTTP family: the body; TCP, SSL: the first bytes).
    pub response: Option<String>,
    /// PROXY protocol v1 line before the check.
    pub proxy_header_v1: bool,
    /// GRPC: the service asked about in grpc.health.v1 (the server's overall health if empty).
    pub grpc_service_name: Option<String>,
    pub check_interval_sec: u32,
    pub timeout_sec: u32,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// HTTP family: the status codes that pass, as inclusive ranges (empty: 200 only).
    pub success_codes: Vec<(u16, u16)>,
    /// GRPC: the call asked instead of grpc.health.v1 (a full method path such as
    /// `/pkg.Service/Check`), and the grpc-status codes that pass, as inclusive ranges.
    pub grpc_call: Option<GrpcCheckCall>,
}

/// A gRPC health check that calls a method of the application's choosing and judges the
/// answer by its grpc-status alone.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcCheckCall {
    pub path: String,
    pub codes: Vec<(u16, u16)>,
    /// Over TLS (HTTP/2 with ALPN h2) rather than cleartext HTTP/2.
    pub tls: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub instance: Option<String>,
    pub ipv4: Option<std::net::Ipv4Addr>,
    pub ipv6: Option<std::net::Ipv6Addr>,
    /// A name the proxy resolves (an internet destination by name).
    pub fqdn: Option<String>,
    /// Endpoints may carry their own port; instances never do.
    pub port: Option<u16>,
    /// Relative weight inside the group (with WEIGHTED_MAGLEV); 1 when absent.
    pub weight: Option<u32>,
    /// The zone of an instance of a regional group (none: the group's zone).
    pub zone: Option<String>,
}

cloud_enum!(BackendProtocol {
    Http => "HTTP",
    Https => "HTTPS",
    Http2 => "HTTP2",
    H2c => "H2C",
    Grpc => "GRPC",
    Tcp => "TCP",
    Ssl => "SSL",
});

impl BackendProtocol {
    /// HTTP-family services (gRPC included) sit behind HTTP or gRPC proxies; TCP ones behind
    /// TCP proxies.
    pub fn is_http(self) -> bool {
        !matches!(self, BackendProtocol::Tcp | BackendProtocol::Ssl)
    }

    /// HTTPS, HTTP2 (HTTP/2 over TLS, as the cloud speaks it) and SSL reach backends over TLS.
    pub fn uses_tls(self) -> bool {
        matches!(
            self,
            BackendProtocol::Https | BackendProtocol::Http2 | BackendProtocol::Ssl
        )
    }

    /// Whether backends are spoken to over HTTP/2.
    pub fn is_http2(self) -> bool {
        matches!(
            self,
            BackendProtocol::Http2 | BackendProtocol::H2c | BackendProtocol::Grpc
        )
    }
}

cloud_enum!(BalancingPolicy {
    RoundRobin => "ROUND_ROBIN",
    LeastRequest => "LEAST_REQUEST",
    RingHash => "RING_HASH",
    Random => "RANDOM",
    OriginalDestination => "ORIGINAL_DESTINATION",
    Maglev => "MAGLEV",
    WeightedMaglev => "WEIGHTED_MAGLEV",
});

impl BalancingPolicy {
    /// Policies that pick endpoints by hashing, and so can honour session affinity.
    pub fn is_consistent_hash(self) -> bool {
        matches!(
            self,
            BalancingPolicy::RingHash | BalancingPolicy::Maglev | BalancingPolicy::WeightedMaglev
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpCookie {
    pub name: String,
    pub path: Option<String>,
    /// Lifetime; None (or zero) makes a session cookie.
    pub ttl: Option<std::time::Duration>,
}

/// The cookie a proxy issues to keep a client on the endpoint that served it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StickyCookie {
    pub cookie: HttpCookie,
    /// When set, the session is the application's, kept in its cookie of this name: the
    /// proxy's cookie is issued only with a response that sets the application's cookie (or
    /// to a client that carries it), and a request is held only while it carries both.
    pub application_cookie: Option<String>,
}

/// `outlierDetection` of a backend service, with the cloud API's defaults filled in.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    pub consecutive_errors: u32,
    pub consecutive_gateway_failure: u32,
    pub enforcing_consecutive_errors: u32,
    pub enforcing_consecutive_gateway_failure: u32,
    pub enforcing_success_rate: u32,
    pub interval: std::time::Duration,
    pub base_ejection_time: std::time::Duration,
    pub max_ejection_percent: u32,
    pub success_rate_minimum_hosts: u32,
    pub success_rate_request_volume: u32,
    pub success_rate_stdev_factor: u32,
    /// Ejecting endpoints whose share of failed requests is above a threshold (off at 0).
    pub enforcing_failure_percentage: u32,
    pub failure_percentage_threshold: u32,
    pub failure_percentage_minimum_hosts: u32,
    pub failure_percentage_request_volume: u32,
}

/// When a service stops trusting its health checks: fewer healthy endpoints than `count`, or
/// a smaller share of them than `percentage`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MinimumHealthy {
    pub count: u32,
    pub percentage: Option<u32>,
}

impl MinimumHealthy {
    /// Whether `healthy` of `total` endpoints is too few, so the service fails open.
    pub fn fails_open(&self, healthy: usize, total: usize) -> bool {
        if total == 0 || healthy == total {
            return false;
        }
        let below_count = healthy < self.count as usize;
        let below_share = self
            .percentage
            .is_some_and(|percentage| healthy * 100 < percentage as usize * total);
        below_count || below_share
    }
}

cloud_enum!(
    /// Which address family of its endpoints a backend service connects to.
    AddressSelection {
        Ipv4Only => "IPV4_ONLY",
        PreferIpv6 => "PREFER_IPV6",
        Ipv6Only => "IPV6_ONLY",
    }
);

/// What a rule does to a request besides choosing where it goes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteExtras {
    /// routeAction.timeout, overriding the services' timeoutSec (never zero).
    pub timeout: Option<std::time::Duration>,
    pub url_rewrite: Option<UrlRewrite>,
    pub retry_policy: Option<RetryPolicy>,
    /// routeRules[].headerAction (path rules have none).
    pub header_action: HeaderAction,
    pub fault_injection: Option<super::FaultInjection>,
    pub request_mirror: Option<super::RequestMirror>,
    pub cors: Option<super::CorsPolicy>,
    /// routeAction.maxStreamDuration: the deadline of the whole stream, for Envoy and gRPC.
    pub max_stream_duration: Option<std::time::Duration>,
}

/// routeAction.urlRewrite: applied before the request reaches the backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlRewrite {
    pub path_prefix_rewrite: Option<String>,
    pub host_rewrite: Option<String>,
    /// pathTemplateRewrite: the path rebuilt from the variables of a pathTemplateMatch.
    pub path_template_rewrite: Option<String>,
}

/// routeAction.retryPolicy.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    pub retry_conditions: Vec<String>,
    pub num_retries: u32,
    pub per_try_timeout: Option<std::time::Duration>,
}

/// headerAction: headers added to and removed from requests and responses.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderAction {
    pub request_headers_to_add: Vec<HeaderToAdd>,
    pub request_headers_to_remove: Vec<String>,
    pub response_headers_to_add: Vec<HeaderToAdd>,
    pub response_headers_to_remove: Vec<String>,
}

impl HeaderAction {
    pub fn is_empty(&self) -> bool {
        self.request_headers_to_add.is_empty()
            && self.request_headers_to_remove.is_empty()
            && self.response_headers_to_add.is_empty()
            && self.response_headers_to_remove.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderToAdd {
    pub header_name: String,
    pub header_value: String,
    /// Replace any value the header has; otherwise add one more.
    pub replace: bool,
}

/// urlRedirect / defaultUrlRedirect: the client is sent elsewhere.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlRedirect {
    pub host_redirect: Option<String>,
    pub path_redirect: Option<String>,
    pub prefix_redirect: Option<String>,
    pub https_redirect: bool,
    /// 301, 302, 303, 307 or 308.
    pub response_code: u16,
    pub strip_query: bool,
    /// The port of the new location (the request's when absent).
    pub port_redirect: Option<u16>,
    /// The new path built from the old one: a regular expression over the whole path and its
    /// substitution (`\1` for the first group).
    pub path_rewrite: Option<(String, String)>,
}

/// How a request path is matched.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PathMatch {
    Prefix(String),
    Full(String),
    /// regexMatch: RE2 syntax, matching the whole path.
    Regex(String),
    /// pathTemplateMatch: `/users/{id}/**`-style segments (checked when read).
    Template(String),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchRule {
    pub path: PathMatch,
    pub ignore_case: bool,
    /// headerMatches: every one must hold.
    pub headers: Vec<HeaderMatch>,
    /// queryParameterMatches: every one must hold.
    pub query_parameters: Vec<QueryParameterMatch>,
    /// The client's address must be in one of these blocks (address, prefix length); empty:
    /// any client. IPv6 blocks are whole addresses (/128) or every address (/0).
    pub source_blocks: Vec<(IpAddr, u8)>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryParameterMatch {
    pub name: String,
    pub kind: QueryParameterMatchKind,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum QueryParameterMatchKind {
    Exact(String),
    Regex(String),
    Present,
}

/// One of a match rule's headerMatches.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    pub header_name: String,
    pub kind: HeaderMatchKind,
    pub invert_match: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HeaderMatchKind {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Regex(String),
    Present(bool),
    /// rangeMatch: rangeStart inclusive, rangeEnd exclusive.
    Range(i64, i64),
}

/// Where a matched request goes: one backend service, or a weighted split.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RouteTarget {
    Service(Ref),
    Weighted {
        services: Vec<WeightedService>,
        /// A cookie, issued by the proxy, that keeps a client on the service it was first
        /// sent to (its value names the service).
        sticky_cookie: Option<HttpCookie>,
    },
    Redirect(UrlRedirect),
    /// The proxy answers itself.
    FixedResponse(FixedResponse),
}

/// A response the proxy writes without asking a backend.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FixedResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedService {
    pub service: Ref,
    pub weight: u32,
    pub header_action: HeaderAction,
}

/// An endpoint removed from the config that is kept, DRAINING, for its service's
/// drainingTimeoutSec so that requests in flight can finish.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainingEndpoint {
    pub service: String,
    pub group: String,
    pub region: String,
    pub zone: String,
    pub address: std::net::SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::MinimumHealthy;

    #[test]
    fn a_service_fails_open_below_either_minimum() {
        let count = MinimumHealthy {
            count: 2,
            percentage: None,
        };
        assert!(count.fails_open(1, 4), "1 healthy of 4 is below 2");
        assert!(!count.fails_open(2, 4));
        assert!(!count.fails_open(0, 0), "no endpoints: nothing to open");
        assert!(
            !count.fails_open(1, 1),
            "all healthy is never below the minimum"
        );
        let share = MinimumHealthy {
            count: 1,
            percentage: Some(50),
        };
        assert!(share.fails_open(1, 3), "33% is below 50%");
        assert!(!share.fails_open(2, 4), "50% is not below 50%");
        let default = MinimumHealthy {
            count: 1,
            percentage: None,
        };
        assert!(
            default.fails_open(0, 3),
            "none healthy: every target takes traffic"
        );
    }
}
