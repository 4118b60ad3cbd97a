//! The resources of the internal model. Names are plain (`web`), never cloud URLs; every
//! reference keeps where it was written so that a dangling one can be reported precisely.

use std::collections::BTreeMap;
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

/// The whole load-balancing configuration, every map sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    pub health_checks: BTreeMap<String, HealthCheck>,
    pub endpoint_groups: BTreeMap<String, EndpointGroup>,
    pub backend_services: BTreeMap<String, BackendService>,
    pub url_maps: BTreeMap<String, UrlMap>,
    pub target_proxies: BTreeMap<String, TargetProxy>,
    pub forwarding_rules: BTreeMap<String, ForwardingRule>,
    pub ssl_certificates: BTreeMap<String, super::SslCertificate>,
    pub ssl_policies: BTreeMap<String, super::SslPolicy>,
    /// Failover preferences: client region → regions to try next, in order.
    pub region_order: BTreeMap<String, Vec<String>>,
    /// Who may use the xDS port and receive what; empty means everyone, everything.
    pub xds_clients: BTreeMap<String, super::XdsClientRule>,
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
    /// The field holding this type's details (`httpHealthCheck`, …).
    pub fn details_field(self) -> &'static str {
        match self {
            HealthCheckProtocol::Http => "httpHealthCheck",
            HealthCheckProtocol::Https => "httpsHealthCheck",
            HealthCheckProtocol::Http2 => "http2HealthCheck",
            HealthCheckProtocol::Grpc => "grpcHealthCheck",
            HealthCheckProtocol::Tcp => "tcpHealthCheck",
            HealthCheckProtocol::Ssl => "sslHealthCheck",
        }
    }

    /// HTTP, HTTPS and HTTP2 checks send a request to a path.
    pub fn is_http(self) -> bool {
        matches!(
            self,
            HealthCheckProtocol::Http | HealthCheckProtocol::Https | HealthCheckProtocol::Http2
        )
    }
}

cloud_enum!(
    /// Which port a check probes: its own `port`, the instance group's named port
    /// `portName`, or the port each endpoint serves on.
    PortSpecification {
        UseFixedPort => "USE_FIXED_PORT",
        UseNamedPort => "USE_NAMED_PORT",
        UseServingPort => "USE_SERVING_PORT",
    }
);

/// `healthChecks`: how the cloud probes endpoints, with its defaults filled in.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    pub protocol: HealthCheckProtocol,
    pub port_specification: PortSpecification,
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
    /// `/AWS.ALB/healthcheck`), and the grpc-status codes that pass, as inclusive ranges.
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

/// What kind of backend group this is; it decides which balancing modes are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GroupKind {
    /// An (unmanaged) instance group: ports come from its named ports.
    InstanceGroup,
    /// A zonal NEG of GCE_VM_IP_PORT endpoints.
    GceVmIpPortNeg,
    /// A hybrid connectivity NEG of NON_GCP_PRIVATE_IP_PORT endpoints.
    NonGcpPrivateIpPortNeg,
    /// A global internet NEG whose one endpoint is a name (INTERNET_FQDN_PORT), resolved by
    /// the proxy.
    InternetFqdnPortNeg,
    /// A global internet NEG whose one endpoint is an address (INTERNET_IP_PORT).
    InternetIpPortNeg,
    /// Plain targets in one zone, each with its own port and an equal share of traffic (the
    /// zone of an AWS target group).
    Targets,
}

impl GroupKind {
    pub fn is_instance_group(self) -> bool {
        self == GroupKind::InstanceGroup
    }

    /// The name users know the kind by.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupKind::InstanceGroup => "instance group",
            GroupKind::GceVmIpPortNeg => "GCE_VM_IP_PORT NEG",
            GroupKind::NonGcpPrivateIpPortNeg => "NON_GCP_PRIVATE_IP_PORT NEG",
            GroupKind::InternetFqdnPortNeg => "INTERNET_FQDN_PORT NEG",
            GroupKind::InternetIpPortNeg => "INTERNET_IP_PORT NEG",
            GroupKind::Targets => "targets",
        }
    }

    /// Internet NEGs: global, one endpoint, no balancing mode of their own.
    pub fn is_internet(self) -> bool {
        matches!(
            self,
            GroupKind::InternetFqdnPortNeg | GroupKind::InternetIpPortNeg
        )
    }
}

/// An instance group or a network endpoint group: a set of addresses in one zone.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointGroup {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    pub kind: GroupKind,
    pub zone: String,
    pub region: String,
    /// Instance groups: port name → port.
    pub named_ports: BTreeMap<String, u16>,
    /// NEGs: the port of endpoints that do not name one.
    pub default_port: Option<u16>,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub instance: Option<String>,
    /// `ipAddress`: the IPv4 address.
    pub ipv4: Option<std::net::Ipv4Addr>,
    /// `ipv6Address`.
    pub ipv6: Option<std::net::Ipv6Addr>,
    /// `fqdn` of an INTERNET_FQDN_PORT endpoint: a name the proxy resolves.
    pub fqdn: Option<String>,
    /// NEG endpoints may carry their own port; instances never do.
    pub port: Option<u16>,
    /// Relative weight inside the group (WEIGHTED_MAGLEV); 1 when absent.
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

cloud_enum!(LocalityLbPolicy {
    RoundRobin => "ROUND_ROBIN",
    LeastRequest => "LEAST_REQUEST",
    RingHash => "RING_HASH",
    Random => "RANDOM",
    OriginalDestination => "ORIGINAL_DESTINATION",
    Maglev => "MAGLEV",
    WeightedMaglev => "WEIGHTED_MAGLEV",
});

impl LocalityLbPolicy {
    /// Policies that pick endpoints by hashing, and so can honour session affinity.
    pub fn is_consistent_hash(self) -> bool {
        matches!(
            self,
            LocalityLbPolicy::RingHash
                | LocalityLbPolicy::Maglev
                | LocalityLbPolicy::WeightedMaglev
        )
    }
}

cloud_enum!(SessionAffinity {
    None => "NONE",
    ClientIp => "CLIENT_IP",
    GeneratedCookie => "GENERATED_COOKIE",
    HeaderField => "HEADER_FIELD",
    HttpCookie => "HTTP_COOKIE",
});

/// `consistentHash` of a backend service.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistentHash {
    pub http_header_name: Option<String>,
    pub http_cookie: Option<HttpCookie>,
    pub minimum_ring_size: Option<u64>,
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

cloud_enum!(LoadBalancingScheme {
    External => "EXTERNAL",
    ExternalManaged => "EXTERNAL_MANAGED",
    InternalManaged => "INTERNAL_MANAGED",
    InternalSelfManaged => "INTERNAL_SELF_MANAGED",
});

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendService {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    pub load_balancing_scheme: LoadBalancingScheme,
    pub protocol: BackendProtocol,
    pub port_name: String,
    pub timeout_sec: u32,
    pub health_checks: Vec<Ref>,
    pub locality_lb_policy: LocalityLbPolicy,
    pub backends: Vec<Backend>,
    pub session_affinity: SessionAffinity,
    /// GENERATED_COOKIE lifetime; 0 makes a session cookie.
    pub affinity_cookie_ttl_sec: u32,
    pub consistent_hash: ConsistentHash,
    /// How long a removed endpoint is kept DRAINING (connectionDraining.drainingTimeoutSec).
    pub draining_timeout_sec: u32,
    /// subsetting.policy CONSISTENT_HASH_SUBSETTING (accepted, not applied).
    pub subsetting: bool,
    pub ip_address_selection_policy: IpAddressSelectionPolicy,
    /// Whether timeoutSec was written (proxyless gRPC does not support it).
    pub timeout_sec_written: bool,
    /// maxStreamDuration: the deadline of a whole stream (a gRPC call), retries included.
    pub max_stream_duration: Option<std::time::Duration>,
    /// circuitBreakers: limits on the connections and requests to the service.
    pub circuit_breakers: Option<super::CircuitBreakers>,
    /// Headers added to requests sent to the service and to its responses.
    pub custom_headers: super::CustomHeaders,
    /// outlierDetection: eject endpoints that keep failing.
    pub outlier_detection: Option<OutlierDetection>,
    /// logConfig with `enable: true`: the share of requests (0–1) the proxy logs.
    pub log_sample_rate: Option<f64>,
    /// A new endpoint's share rises linearly from almost nothing to its full weight over this
    /// window.
    pub slow_start: Option<std::time::Duration>,
    /// A cookie the proxy issues naming the endpoint that served, so that later requests
    /// carrying it go back there whatever the balancing policy.
    pub sticky_cookie: Option<StickyCookie>,
    /// Below this many (or this share of) healthy endpoints, every endpoint takes traffic,
    /// unhealthy ones included (fail open).
    pub minimum_healthy: Option<MinimumHealthy>,
    /// A client is served from endpoints in its own zone while any is healthy, the rest of
    /// its region next.
    pub prefer_client_zone: bool,
    /// Where some fields were written, for diagnostics about them.
    #[serde(skip)]
    pub field_locs: BTreeMap<&'static str, Loc>,
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
    IpAddressSelectionPolicy {
        Ipv4Only => "IPV4_ONLY",
        PreferIpv6 => "PREFER_IPV6",
        Ipv6Only => "IPV6_ONLY",
    }
);

impl BackendService {
    /// Where `field` was written, or where the service starts.
    pub fn loc_of(&self, field: &str) -> &Loc {
        self.field_locs.get(field).unwrap_or(&self.loc)
    }
}

cloud_enum!(BalancingMode {
    Rate => "RATE",
    Utilization => "UTILIZATION",
    Connection => "CONNECTION",
});

/// One backend of a backend service: a group plus how much traffic it is meant to take.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    pub group: Ref,
    #[serde(skip)]
    pub loc: Loc,
    pub balancing_mode: BalancingMode,
    pub max_rate: Option<f64>,
    pub max_rate_per_instance: Option<f64>,
    pub max_rate_per_endpoint: Option<f64>,
    pub max_connections: Option<f64>,
    pub max_connections_per_instance: Option<f64>,
    pub max_connections_per_endpoint: Option<f64>,
    pub max_utilization: Option<f64>,
    pub capacity_scaler: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlMap {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    pub default_service: Option<Ref>,
    /// defaultUrlRedirect: instead of a default service.
    pub default_url_redirect: Option<UrlRedirect>,
    /// defaultRouteAction.weightedBackendServices: instead of a default service.
    pub default_weighted: Option<Vec<WeightedService>>,
    /// The rest of defaultRouteAction, for requests that take the default.
    pub default_extras: RouteExtras,
    pub host_rules: Vec<HostRule>,
    pub path_matchers: Vec<PathMatcher>,
    pub header_action: HeaderAction,
    /// How the proxies routing with this map treat their clients (for Envoy).
    pub frontend: super::FrontendHttp,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostRule {
    #[serde(skip)]
    pub loc: Loc,
    pub hosts: Vec<String>,
    pub path_matcher: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathMatcher {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    pub default_service: Option<Ref>,
    pub default_url_redirect: Option<UrlRedirect>,
    pub default_weighted: Option<Vec<WeightedService>>,
    pub default_extras: RouteExtras,
    pub path_rules: Vec<PathRule>,
    pub route_rules: Vec<RouteRule>,
    pub header_action: HeaderAction,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathRule {
    pub paths: Vec<String>,
    pub action: RouteTarget,
    pub extras: RouteExtras,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteRule {
    pub priority: u32,
    pub match_rules: Vec<MatchRule>,
    pub action: RouteTarget,
    pub extras: RouteExtras,
}

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
    pub backend_service: Ref,
    pub weight: u32,
    pub header_action: HeaderAction,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetProxy {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    pub target: ProxyTarget,
    /// targetHttpsProxies and targetSslProxies: the certificates and policy TLS is
    /// terminated with.
    pub tls: Option<super::ProxyTls>,
    /// targetTcpProxies and targetSslProxies: PROXY_V1 tells backends who the client is with
    /// a PROXY protocol (version 1) line before the client's bytes.
    pub proxy_header_v1: bool,
}

/// What a target proxy hands connections to.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProxyTarget {
    /// targetHttpProxies: requests are routed by a URL map.
    UrlMap(Ref),
    /// targetTcpProxies and targetSslProxies: connections go to one backend service.
    Service(Ref),
    /// targetGrpcProxies: proxyless gRPC clients route with a URL map.
    Grpc {
        url_map: Ref,
        validate_for_proxyless: bool,
    },
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

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardingRule {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    pub ip_address: IpAddr,
    pub port: u16,
    pub target: Ref,
    /// Bind even if the address is not (yet) on the host, as keepalived VIPs need.
    pub freebind: bool,
    /// As written; unwritten, the rule is served as INTERNAL_SELF_MANAGED (any port).
    pub load_balancing_scheme: Option<LoadBalancingScheme>,
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
