//! The GCP dialect's resources as read: forwarding rules, target proxies, URL maps (host
//! rules and path matchers), backend services with their backends' balancing modes, and
//! instance groups and NEGs by kind — the cloud's own shapes, checked in the cloud's words
//! (`validate`, `validate_frontends`) and then lowered into the neutral model (`lower`).
//! Must not: know xDS.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use crate::config::cipher_suites::SslPolicy;
use crate::model::{
    cloud_enum, AddressSelection, BackendProtocol, BalancingPolicy, Certificate, CircuitBreakers,
    CloudEnum, CustomHeaders, Endpoint, FrontendHttp, HeaderAction, HealthCheck, HttpCookie, Loc,
    MatchRule, MinimumHealthy, OutlierDetection, Ref, RouteExtras, RouteTarget, StickyCookie,
    UrlRedirect, WeightedService, XdsClientRule,
};

/// The whole load-balancing configuration, every map sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    pub health_checks: BTreeMap<String, HealthCheck>,
    pub endpoint_groups: BTreeMap<String, EndpointGroup>,
    pub backend_services: BTreeMap<String, BackendService>,
    pub url_maps: BTreeMap<String, UrlMap>,
    pub target_proxies: BTreeMap<String, TargetProxy>,
    pub forwarding_rules: BTreeMap<String, ForwardingRule>,
    pub ssl_certificates: BTreeMap<String, Certificate>,
    pub ssl_policies: BTreeMap<String, SslPolicy>,
    /// Failover preferences: client region → regions to try next, in order.
    pub region_order: BTreeMap<String, Vec<String>>,
    /// Who may use the xDS port and receive what; empty means everyone, everything.
    pub xds_clients: BTreeMap<String, XdsClientRule>,
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
    pub locality_lb_policy: BalancingPolicy,
    pub backends: Vec<Backend>,
    pub session_affinity: SessionAffinity,
    /// GENERATED_COOKIE lifetime; 0 makes a session cookie.
    pub affinity_cookie_ttl_sec: u32,
    pub consistent_hash: ConsistentHash,
    /// How long a removed endpoint is kept DRAINING (connectionDraining.drainingTimeoutSec).
    pub draining_timeout_sec: u32,
    /// subsetting.policy CONSISTENT_HASH_SUBSETTING (accepted, not applied).
    pub subsetting: bool,
    pub ip_address_selection_policy: AddressSelection,
    /// Whether timeoutSec was written (proxyless gRPC does not support it).
    pub timeout_sec_written: bool,
    /// maxStreamDuration: the deadline of a whole stream (a gRPC call), retries included.
    pub max_stream_duration: Option<std::time::Duration>,
    /// circuitBreakers: limits on the connections and requests to the service.
    pub circuit_breakers: Option<CircuitBreakers>,
    /// Headers added to requests sent to the service and to its responses.
    pub custom_headers: CustomHeaders,
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
    pub defaults: RouteDefaults,
    pub host_rules: Vec<HostRule>,
    pub path_matchers: Vec<PathMatcher>,
    pub header_action: HeaderAction,
    /// How the proxies routing with this map treat their clients (for Envoy).
    pub frontend: FrontendHttp,
}

/// What a URL map or path matcher does with requests no rule takes: at most one of
/// defaultService, defaultUrlRedirect and defaultRouteAction.weightedBackendServices, and the
/// rest of defaultRouteAction.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteDefaults {
    pub service: Option<Ref>,
    pub redirect: Option<UrlRedirect>,
    pub weighted: Option<Vec<WeightedService>>,
    /// The rest of defaultRouteAction, for requests that take the default.
    pub extras: RouteExtras,
}

impl RouteDefaults {
    /// Whether no default is written: requests no rule takes have nowhere to go.
    pub fn is_empty(&self) -> bool {
        self.service.is_none() && self.redirect.is_none() && self.weighted.is_none()
    }

    /// The backend services the default sends to.
    pub fn services(&self) -> impl Iterator<Item = &Ref> {
        let weighted = self.weighted.iter().flatten().map(|w| &w.service);
        self.service.iter().chain(weighted)
    }
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
    pub defaults: RouteDefaults,
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

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetProxy {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    pub target: ProxyTarget,
    /// targetHttpsProxies and targetSslProxies: the certificates and policy TLS is
    /// terminated with.
    pub tls: Option<ProxyTls>,
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

/// What a target HTTPS proxy adds to a target HTTP proxy.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyTls {
    /// In order: the first is served when the client's SNI matches none.
    pub certificates: Vec<Ref>,
    pub ssl_policy: Option<Ref>,
}

/// The backend services a path matcher's route and path rules send to.
pub fn rule_targets(matcher: &PathMatcher) -> impl Iterator<Item = &Ref> {
    let actions = matcher
        .route_rules
        .iter()
        .map(|r| &r.action)
        .chain(matcher.path_rules.iter().map(|r| &r.action));
    actions.flat_map(|action| match action {
        RouteTarget::Service(service) => vec![service],
        RouteTarget::Weighted { services, .. } => services.iter().map(|s| &s.service).collect(),
        RouteTarget::Redirect(_) | RouteTarget::FixedResponse(_) => Vec::new(),
    })
}

/// The names of every backend service a URL map routes to.
pub fn services_of(url_map: &UrlMap) -> BTreeSet<&str> {
    let defaults = url_map.defaults.services().chain(
        url_map
            .path_matchers
            .iter()
            .flat_map(|m| m.defaults.services()),
    );
    defaults
        .chain(url_map.path_matchers.iter().flat_map(rule_targets))
        .map(|r| r.name.as_str())
        .collect()
}
