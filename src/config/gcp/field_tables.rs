//! The field tables of the GCP dialect, one per Compute API schema type it reads: every field
//! of the type (from the published v1 schema) with what Switchyard does with it, and the
//! fields it reads besides (newer API fields, gcloud's list output, its own). Data only; the
//! meaning of each treatment is in `fields`.

use super::fields::FieldTable;
use super::fields::Treatment::{
    Conditional, Honoured, Ignored, NotYet, Noted, Own, Refused, RefusedUnlessOff,
};

const OUTPUT: super::fields::Treatment = Ignored("output-only: the cloud sets it");
const TEXT: super::fields::Treatment = Ignored("free text for people");
const LOCKING: super::fields::Treatment =
    Ignored("output-only: the cloud's optimistic-locking hash of the resource");
const VPC: super::fields::Treatment = Ignored(
    "the VPC network the cloud places the resource in; Switchyard reaches the addresses \
     written, whatever network they are on",
);
const NO_CACHE: &str = "is a cloud field Switchyard does not serve (there is no cache); remove \
                        it or set it to false";
const PASSTHROUGH: &str = "belongs to passthrough Network Load Balancers, which forward packets \
                           without a proxy; Switchyard serves proxy load balancers only";
const SERVERLESS: &str = "points a serverless NEG at Cloud Run, App Engine or Cloud Functions, \
                          reached through Google's network, which is not available in a \
                          self-hosted control plane";
const PSC: &str = "belongs to Private Service Connect, which reaches services published inside \
                   Google's network, not available in a self-hosted control plane";
const CERTIFICATE_MANAGER: &str = "names a Certificate Manager map, a Google-run service; give \
                                   the certificates in sslCertificates";

type Entry = (&'static str, super::fields::Treatment);

/// The metadata every resource carries, as gcloud prints it.
const CREATED: Entry = ("creationTimestamp", OUTPUT);
const DESCRIPTION: Entry = ("description", TEXT);
const ID: Entry = ("id", OUTPUT);
const KIND: Entry = (
    "kind",
    Ignored(
        "output-only: names the resource type, which also places a bare resource in its collection",
    ),
);
const SELF_LINK: Entry = ("selfLink", OUTPUT);

const BACKEND_SERVICE: &[Entry] = &[
    ("affinityCookieTtlSec", Honoured),
    ("backends", Honoured),
    ("cdnPolicy", Refused("configures Cloud CDN, a Google-run service not available in a self-hosted control plane; remove the field")),
    ("circuitBreakers", Honoured),
    ("compressionMode", RefusedUnlessOff("asks the load balancer to compress responses (Brotli, gzip), which Switchyard's proxies do not do; compress in the backend, or write DISABLED")),
    ("connectionDraining", Honoured),
    ("connectionTrackingPolicy", Refused(PASSTHROUGH)),
    ("consistentHash", Honoured),
    CREATED,
    ("customRequestHeaders", Honoured),
    ("customResponseHeaders", Honoured),
    DESCRIPTION,
    ("edgeSecurityPolicy", Refused("names a Cloud Armor edge security policy, a Google-run service not available in a self-hosted control plane; remove the field")),
    ("enableCDN", RefusedUnlessOff(NO_CACHE)),
    ("failoverPolicy", Refused("sets when a passthrough Network Load Balancer switches to its failover backends; Switchyard serves proxy load balancers, which fail over by region and capacity (regionOrder and the balancing modes), so remove the field")),
    ("fingerprint", LOCKING),
    ("healthChecks", Honoured),
    ("iap", Refused("turns on Identity-Aware Proxy, a Google-run service not available in a self-hosted control plane; remove the field")),
    ID,
    KIND,
    ("loadBalancingScheme", Honoured),
    ("localityLbPolicies", Honoured),
    ("localityLbPolicy", Honoured),
    ("logConfig", Honoured),
    ("maxStreamDuration", Honoured),
    ("metadatas", Ignored("deployment metadata a GKE hub controller sets for its own use")),
    ("name", Honoured),
    ("network", VPC),
    ("outlierDetection", Honoured),
    ("port", Conditional("deprecated in favour of portName and not used; a warning when written without portName")),
    ("portName", Honoured),
    ("protocol", Honoured),
    ("region", Ignored("output-only: a regional service's region; its backends' zones place its endpoints")),
    ("securityPolicy", Refused("names a Cloud Armor security policy, a Google-run service not available in a self-hosted control plane; remove the field")),
    ("securitySettings", Refused("sets client TLS and identities from Traffic Director's security policies (networksecurity API), which Switchyard does not read; remove the field")),
    SELF_LINK,
    ("serviceBindings", Refused("names Service Directory service bindings, whose endpoints Switchyard cannot look up; list the endpoints in a NEG and name it in backends")),
    ("serviceLbPolicy", Refused("names a networkservices ServiceLbPolicy, a Google-run resource Switchyard does not read; capacity spill-over follows the balancing modes and regionOrder")),
    ("sessionAffinity", Honoured),
    ("subsetting", Conditional("CONSISTENT_HASH_SUBSETTING is accepted with a warning and not applied: every proxy gets every endpoint")),
    ("timeoutSec", Honoured),
    ("usedBy", OUTPUT),
];

const BACKEND: &[Entry] = &[
    ("balancingMode", Honoured),
    ("capacityScaler", Honoured),
    ("description", TEXT),
    ("failover", RefusedUnlessOff(PASSTHROUGH)),
    ("group", Honoured),
    ("maxConnections", Honoured),
    ("maxConnectionsPerEndpoint", Honoured),
    ("maxConnectionsPerInstance", Honoured),
    ("maxRate", Honoured),
    ("maxRatePerEndpoint", Honoured),
    ("maxRatePerInstance", Honoured),
    ("maxUtilization", Honoured),
    ("preference", RefusedUnlessOff("ranks backends for a service load-balancing policy (networkservices API), which Switchyard does not read; remove it or write DEFAULT")),
];

const CIRCUIT_BREAKERS: &[Entry] = &[
    ("maxConnections", Honoured),
    ("maxPendingRequests", Honoured),
    ("maxRequests", Honoured),
    ("maxRequestsPerConnection", Honoured),
    ("maxRetries", Honoured),
];

const LOCALITY_POLICY: &[Entry] = &[
    ("customPolicy", Refused("names a policy implementation compiled into gRPC clients, which Switchyard cannot serve to Envoy or its sidecar; use one of the built-in policies in `policy`")),
    ("policy", Honoured),
];

const LOG_CONFIG: &[Entry] = &[
    ("enable", Honoured),
    ("optionalFields", Ignored("chooses optional fields of Cloud Logging entries; the proxy's access log line has a fixed format")),
    ("optionalMode", Ignored("chooses optional fields of Cloud Logging entries; the proxy's access log line has a fixed format")),
    ("sampleRate", Honoured),
];

const OUTLIER_DETECTION: &[Entry] = &[
    ("baseEjectionTime", Honoured),
    ("consecutiveErrors", Honoured),
    ("consecutiveGatewayFailure", Honoured),
    ("enforcingConsecutiveErrors", Honoured),
    ("enforcingConsecutiveGatewayFailure", Honoured),
    ("enforcingSuccessRate", Honoured),
    ("interval", Honoured),
    ("maxEjectionPercent", Honoured),
    ("successRateMinimumHosts", Honoured),
    ("successRateRequestVolume", Honoured),
    ("successRateStdevFactor", Honoured),
];

const HEALTH_CHECK: &[Entry] = &[
    ("checkIntervalSec", Honoured),
    CREATED,
    DESCRIPTION,
    ("grpcHealthCheck", Honoured),
    ("healthyThreshold", Honoured),
    ("http2HealthCheck", Honoured),
    ("httpHealthCheck", Honoured),
    ("httpsHealthCheck", Honoured),
    ID,
    KIND,
    ("logConfig", Noted("health-check logs go to Cloud Logging; Switchyard reports each endpoint's health on its admin /health page and in its metrics")),
    ("name", Honoured),
    ("region", Ignored("output-only: a regional check's region; checks run from the control plane")),
    SELF_LINK,
    ("sslHealthCheck", Honoured),
    ("tcpHealthCheck", Honoured),
    ("timeoutSec", Honoured),
    ("type", Honoured),
    ("unhealthyThreshold", Honoured),
];

const HTTP_DETAILS: &[Entry] = &[
    ("host", Honoured),
    ("port", Honoured),
    ("portName", Honoured),
    ("portSpecification", Honoured),
    ("proxyHeader", Honoured),
    ("requestPath", Honoured),
    ("response", Honoured),
];

const GRPC_DETAILS: &[Entry] = &[
    ("grpcServiceName", Honoured),
    ("port", Honoured),
    ("portName", Honoured),
    ("portSpecification", Honoured),
];

const TCP_DETAILS: &[Entry] = &[
    ("port", Honoured),
    ("portName", Honoured),
    ("portSpecification", Honoured),
    ("proxyHeader", Honoured),
    ("request", Honoured),
    ("response", Honoured),
];

const NETWORK_ENDPOINT_GROUP: &[Entry] = &[
    ("annotations", Ignored("metadata for the controllers that manage the NEG (GKE)")),
    ("appEngine", Refused(SERVERLESS)),
    ("cloudFunction", Refused(SERVERLESS)),
    ("cloudRun", Refused(SERVERLESS)),
    CREATED,
    ("defaultPort", Honoured),
    DESCRIPTION,
    ("endpoints", Own("the NEG's endpoints as `gcloud compute network-endpoint-groups list-network-endpoints` prints them; `describe` does not list them, and a NEG pasted without them is warned about")),
    ID,
    KIND,
    ("name", Honoured),
    ("network", VPC),
    ("networkEndpointType", Conditional("GCE_VM_IP_PORT, NON_GCP_PRIVATE_IP_PORT, INTERNET_FQDN_PORT and INTERNET_IP_PORT are served; SERVERLESS, PRIVATE_SERVICE_CONNECT and GCE_VM_IP are refused as not available in a self-hosted control plane")),
    ("pscData", Refused(PSC)),
    ("pscTargetService", Refused(PSC)),
    ("region", Ignored("output-only: the region of a regional NEG; zonal NEGs are placed by `zone`")),
    SELF_LINK,
    ("size", Ignored("output-only: the cloud's count of endpoints; Switchyard counts `endpoints`")),
    ("subnetwork", VPC),
    ("zone", Honoured),
];

const NETWORK_ENDPOINT: &[Entry] = &[
    (
        "annotations",
        Ignored("metadata for the controllers that manage the NEG (GKE)"),
    ),
    ("fqdn", Honoured),
    ("instance", Honoured),
    ("ipAddress", Honoured),
    (
        "ipv6Address",
        Own("an endpoint's IPv6 address (dual stack), newer than the schema read"),
    ),
    ("port", Honoured),
    (
        "weight",
        Own("the endpoint's weight under WEIGHTED_MAGLEV, newer than the schema read"),
    ),
];

const INSTANCE_GROUP: &[Entry] = &[
    CREATED,
    DESCRIPTION,
    ("fingerprint", LOCKING),
    ID,
    ("instances", Own("the group's instances (`name`, `ipAddress`, `ipv6Address`, and `zone` in a regional group); `describe` does not list them, and a group pasted without them is warned about")),
    KIND,
    ("name", Honoured),
    ("namedPorts", Honoured),
    ("network", VPC),
    ("region", Honoured),
    SELF_LINK,
    ("size", Ignored("output-only: the cloud's count of instances; Switchyard counts `instances`")),
    ("subnetwork", VPC),
    ("zone", Honoured),
];

const NAMED_PORT: &[Entry] = &[("name", Honoured), ("port", Honoured)];

const SSL_POLICY: &[Entry] = &[
    CREATED,
    ("customFeatures", Honoured),
    DESCRIPTION,
    (
        "enabledFeatures",
        Ignored("output-only: the cipher suites the profile allows, computed by the cloud"),
    ),
    ("fingerprint", LOCKING),
    ID,
    KIND,
    ("minTlsVersion", Honoured),
    ("name", Honoured),
    ("profile", Honoured),
    ("region", Ignored("output-only: a regional policy's region")),
    SELF_LINK,
    ("warnings", OUTPUT),
];

const SSL_CERTIFICATE: &[Entry] = &[
    ("certificate", Honoured),
    ("certificateFile", Own("a path to the PEM certificate, instead of the PEM text")),
    CREATED,
    DESCRIPTION,
    ("expireTime", Ignored("output-only: read from the certificate itself")),
    ID,
    KIND,
    ("managed", Conditional("a Google-managed certificate is refused: Google's certificate authority is not available in a self-hosted control plane")),
    ("name", Honoured),
    ("privateKey", Honoured),
    ("privateKeyFile", Own("a path to the PEM private key, instead of the PEM text; `describe` never prints the key, so a pasted certificate needs one of the two")),
    ("region", Ignored("output-only: a regional certificate's region")),
    SELF_LINK,
    ("selfManaged", Honoured),
    ("subjectAlternativeNames", Ignored("output-only: read from the certificate itself")),
    ("type", Conditional("SELF_MANAGED is served; MANAGED is refused: Google's certificate authority is not available in a self-hosted control plane")),
];

const SELF_MANAGED: &[Entry] = &[
    ("certificate", Honoured),
    (
        "certificateFile",
        Own("a path to the PEM certificate, instead of the PEM text"),
    ),
    ("privateKey", Honoured),
    (
        "privateKeyFile",
        Own("a path to the PEM private key, instead of the PEM text"),
    ),
];

const FORWARDING_RULE: &[Entry] = &[
    ("IPAddress", Honoured),
    ("IPProtocol", Conditional("TCP is served; UDP and the other protocols of passthrough load balancers are refused")),
    ("allPorts", RefusedUnlessOff(PASSTHROUGH)),
    ("allowGlobalAccess", Ignored("lets clients of other regions reach an internal load balancer; a self-hosted listener takes every client that can reach its address")),
    ("allowPscGlobalAccess", RefusedUnlessOff(PSC)),
    ("backendService", Refused("names the backend service of a passthrough Network Load Balancer, which forwards packets without a proxy; a proxy rule names its target proxy in `target`")),
    ("baseForwardingRule", OUTPUT),
    CREATED,
    DESCRIPTION,
    ("fingerprint", LOCKING),
    ("freebind", Own("binds the address even when it is not (yet) on the host, as keepalived addresses need")),
    ID,
    ("ipCollection", Ignored("the public delegated prefix (BYOIP) the cloud takes the address from; the listener binds IPAddress")),
    ("ipVersion", Honoured),
    ("isMirroringCollector", RefusedUnlessOff("marks a collector of Packet Mirroring, which copies packets inside Google's network; not available in a self-hosted control plane")),
    KIND,
    ("labelFingerprint", Ignored("output-only: the cloud's optimistic-locking hash of the labels")),
    ("labels", Ignored("labels for billing and search in the cloud; nothing is served differently")),
    ("loadBalancingScheme", Honoured),
    ("metadataFilters", Refused("chooses Traffic Director clients by node metadata; Switchyard chooses which clients get which resources with `xdsClients` rules")),
    ("name", Honoured),
    ("network", VPC),
    ("networkTier", Noted("PREMIUM or STANDARD chooses how Google's network carries traffic to a cloud address; a self-hosted listener is reached over whatever network leads to it")),
    ("noAutomateDnsZone", Ignored("stops the cloud from creating a Service Directory DNS zone; Switchyard creates none")),
    ("portRange", Honoured),
    ("ports", Conditional("refused: a rule that targets a proxy takes one port in portRange; `ports` belongs to passthrough load balancers")),
    ("pscConnectionId", OUTPUT),
    ("pscConnectionStatus", OUTPUT),
    ("region", Ignored("output-only: a regional rule's region; the listener binds IPAddress")),
    SELF_LINK,
    ("serviceDirectoryRegistrations", Refused("registers the rule in Service Directory, which Switchyard does not write to; remove the field")),
    ("serviceLabel", Refused("makes the cloud publish a DNS name for an internal passthrough load balancer; Switchyard publishes no names")),
    ("serviceName", OUTPUT),
    ("sourceIpRanges", Refused("limits the clients of a regional external passthrough load balancer; filter clients with a firewall in front of the listener")),
    ("subnetwork", VPC),
    ("target", Honoured),
];

const PROXY_BIND: super::fields::Treatment = Noted(
    "Traffic Director's Envoys bind the forwarding rule's address only when it is true; \
     Switchyard's listeners always bind it",
);

const TARGET_HTTP_PROXY: &[Entry] = &[
    CREATED,
    DESCRIPTION,
    ("fingerprint", LOCKING),
    ("httpKeepAliveTimeoutSec", NotYet("the client connection's keepalive timeout is Envoy's default (no idle limit set by Switchyard)")),
    ID,
    KIND,
    ("name", Honoured),
    ("proxyBind", PROXY_BIND),
    ("region", Ignored("output-only: a regional proxy's region")),
    SELF_LINK,
    ("urlMap", Honoured),
];

const TARGET_HTTPS_PROXY: &[Entry] = &[
    ("authorizationPolicy", NotYet("names a networksecurity authorization policy, which Switchyard does not read")),
    ("certificateMap", NotYet(CERTIFICATE_MANAGER)),
    CREATED,
    DESCRIPTION,
    ("fingerprint", LOCKING),
    ("httpKeepAliveTimeoutSec", NotYet("the client connection's keepalive timeout is Envoy's default (no idle limit set by Switchyard)")),
    ID,
    KIND,
    ("name", Honoured),
    ("proxyBind", PROXY_BIND),
    ("quicOverride", Conditional("NONE and DISABLE are served; ENABLE is accepted with a warning: HTTP/3 is not advertised")),
    ("region", Ignored("output-only: a regional proxy's region")),
    SELF_LINK,
    ("serverTlsPolicy", NotYet("names a networksecurity ServerTlsPolicy (client certificates), which Switchyard does not read")),
    ("sslCertificates", Honoured),
    ("sslPolicy", Honoured),
    ("tlsEarlyData", RefusedUnlessOff("asks for TLS 1.3 early data (0-RTT), which Switchyard's listeners do not accept; remove it or write DISABLED")),
    ("urlMap", Honoured),
];

const TARGET_SSL_PROXY: &[Entry] = &[
    ("certificateMap", NotYet(CERTIFICATE_MANAGER)),
    CREATED,
    DESCRIPTION,
    ID,
    KIND,
    ("name", Honoured),
    ("proxyHeader", Honoured),
    SELF_LINK,
    ("service", Honoured),
    ("sslCertificates", Honoured),
    ("sslPolicy", Honoured),
];

const TARGET_TCP_PROXY: &[Entry] = &[
    CREATED,
    DESCRIPTION,
    ID,
    KIND,
    ("name", Honoured),
    ("proxyBind", PROXY_BIND),
    ("proxyHeader", Honoured),
    ("region", Ignored("output-only: a regional proxy's region")),
    SELF_LINK,
    ("service", Honoured),
];

const TARGET_GRPC_PROXY: &[Entry] = &[
    CREATED,
    DESCRIPTION,
    ("fingerprint", LOCKING),
    ID,
    KIND,
    ("name", Honoured),
    SELF_LINK,
    ("selfLinkWithId", OUTPUT),
    ("urlMap", Honoured),
    ("validateForProxyless", Honoured),
];

const URL_MAP: &[Entry] = &[
    CREATED,
    ("defaultCustomErrorResponsePolicy", NotYet("custom error pages from a backend bucket or service")),
    ("defaultRouteAction", Honoured),
    ("defaultService", Honoured),
    ("defaultUrlRedirect", Honoured),
    DESCRIPTION,
    ("fingerprint", LOCKING),
    ("headerAction", Honoured),
    ("hostRules", Honoured),
    ID,
    KIND,
    ("name", Honoured),
    ("pathMatchers", Honoured),
    ("region", Ignored("output-only: a regional map's region")),
    SELF_LINK,
    ("tests", Noted("the cloud checks these expected routes when the map is saved; Switchyard does not run them")),
];

const HOST_RULE: &[Entry] = &[
    ("description", TEXT),
    ("hosts", Honoured),
    ("pathMatcher", Honoured),
];

const PATH_MATCHER: &[Entry] = &[
    (
        "defaultCustomErrorResponsePolicy",
        NotYet("custom error pages from a backend bucket or service"),
    ),
    ("defaultRouteAction", Honoured),
    ("defaultService", Honoured),
    ("defaultUrlRedirect", Honoured),
    ("description", TEXT),
    ("headerAction", Honoured),
    ("name", Honoured),
    ("pathRules", Honoured),
    ("routeRules", Honoured),
];

const PATH_RULE: &[Entry] = &[
    ("paths", Honoured),
    ("routeAction", Honoured),
    ("service", Honoured),
    ("urlRedirect", Honoured),
];

const ROUTE_RULE: &[Entry] = &[
    (
        "customErrorResponsePolicy",
        NotYet("custom error pages from a backend bucket or service"),
    ),
    ("description", TEXT),
    ("headerAction", Honoured),
    (
        "httpFilterConfigs",
        NotYet("configuration for Traffic Director's Envoy filters"),
    ),
    (
        "httpFilterMetadata",
        NotYet("metadata for Traffic Director's Envoy filters"),
    ),
    ("matchRules", Honoured),
    ("priority", Honoured),
    ("routeAction", Honoured),
    ("service", Honoured),
    ("urlRedirect", Honoured),
];

const MATCH_RULE: &[Entry] = &[
    ("fullPathMatch", Honoured),
    ("headerMatches", Honoured),
    ("ignoreCase", Honoured),
    (
        "metadataFilters",
        NotYet("chooses Traffic Director clients by node metadata"),
    ),
    ("pathTemplateMatch", Honoured),
    ("prefixMatch", Honoured),
    ("queryParameterMatches", Honoured),
    ("regexMatch", Honoured),
];

const HEADER_MATCH: &[Entry] = &[
    ("exactMatch", Honoured),
    ("headerName", Honoured),
    ("invertMatch", Honoured),
    ("prefixMatch", Honoured),
    ("presentMatch", Honoured),
    ("rangeMatch", Honoured),
    ("regexMatch", Honoured),
    ("suffixMatch", Honoured),
];

const RANGE_MATCH: &[Entry] = &[("rangeEnd", Honoured), ("rangeStart", Honoured)];

const QUERY_PARAMETER_MATCH: &[Entry] = &[
    ("exactMatch", Honoured),
    ("name", Honoured),
    ("presentMatch", Honoured),
    ("regexMatch", Honoured),
];

const ROUTE_ACTION: &[Entry] = &[
    ("corsPolicy", Honoured),
    ("faultInjectionPolicy", Honoured),
    ("maxStreamDuration", Honoured),
    ("requestMirrorPolicy", Honoured),
    ("retryPolicy", Honoured),
    ("timeout", Honoured),
    ("urlRewrite", Honoured),
    ("weightedBackendServices", Honoured),
];

const CORS_POLICY: &[Entry] = &[
    ("allowCredentials", Honoured),
    ("allowHeaders", Honoured),
    ("allowMethods", Honoured),
    ("allowOriginRegexes", Honoured),
    ("allowOrigins", Honoured),
    ("disabled", Honoured),
    ("exposeHeaders", Honoured),
    ("maxAge", Honoured),
];

const FAULT_INJECTION: &[Entry] = &[("abort", Honoured), ("delay", Honoured)];

const FAULT_ABORT: &[Entry] = &[("httpStatus", Honoured), ("percentage", Honoured)];

const FAULT_DELAY: &[Entry] = &[("fixedDelay", Honoured), ("percentage", Honoured)];

const MIRROR_POLICY: &[Entry] = &[
    ("backendService", Honoured),
    (
        "mirrorPercent",
        Own("the share of requests mirrored, newer than the schema read"),
    ),
];

const RETRY_POLICY: &[Entry] = &[
    ("numRetries", Honoured),
    ("perTryTimeout", Honoured),
    ("retryConditions", Honoured),
];

const URL_REWRITE: &[Entry] = &[
    ("hostRewrite", Honoured),
    ("pathPrefixRewrite", Honoured),
    ("pathTemplateRewrite", Honoured),
];

const WEIGHTED_SERVICE: &[Entry] = &[
    ("backendService", Honoured),
    ("headerAction", Honoured),
    ("weight", Honoured),
];

const REDIRECT: &[Entry] = &[
    ("hostRedirect", Honoured),
    ("httpsRedirect", Honoured),
    ("pathRedirect", Honoured),
    ("prefixRedirect", Honoured),
    ("redirectResponseCode", Honoured),
    ("stripQuery", Honoured),
];

const HEADER_ACTION: &[Entry] = &[
    ("requestHeadersToAdd", Honoured),
    ("requestHeadersToRemove", Honoured),
    ("responseHeadersToAdd", Honoured),
    ("responseHeadersToRemove", Honoured),
];

const HEADER_OPTION: &[Entry] = &[
    ("headerName", Honoured),
    ("headerValue", Honoured),
    ("replace", Honoured),
];

const DURATION: &[Entry] = &[("nanos", Honoured), ("seconds", Honoured)];

const fn table(
    api_type: &'static str,
    written_at: &'static str,
    fields: &'static [Entry],
) -> FieldTable {
    FieldTable {
        api_type,
        written_at,
        fields,
    }
}

/// Every table, resource types first, each followed by the types nested in it.
pub const TABLES: &[FieldTable] = &[
    table("ForwardingRule", "forwardingRules[]", FORWARDING_RULE),
    table("TargetHttpProxy", "targetHttpProxies[]", TARGET_HTTP_PROXY),
    table(
        "TargetHttpsProxy",
        "targetHttpsProxies[]",
        TARGET_HTTPS_PROXY,
    ),
    table("TargetSslProxy", "targetSslProxies[]", TARGET_SSL_PROXY),
    table("TargetTcpProxy", "targetTcpProxies[]", TARGET_TCP_PROXY),
    table("TargetGrpcProxy", "targetGrpcProxies[]", TARGET_GRPC_PROXY),
    table("SslCertificate", "sslCertificates[]", SSL_CERTIFICATE),
    table(
        "SslCertificateSelfManagedSslCertificate",
        "sslCertificates[].selfManaged",
        SELF_MANAGED,
    ),
    table("SslPolicy", "sslPolicies[]", SSL_POLICY),
    table("UrlMap", "urlMaps[]", URL_MAP),
    table("HostRule", "urlMaps[].hostRules[]", HOST_RULE),
    table("PathMatcher", "urlMaps[].pathMatchers[]", PATH_MATCHER),
    table("PathRule", "…pathMatchers[].pathRules[]", PATH_RULE),
    table("HttpRouteRule", "…pathMatchers[].routeRules[]", ROUTE_RULE),
    table(
        "HttpRouteRuleMatch",
        "…routeRules[].matchRules[]",
        MATCH_RULE,
    ),
    table(
        "HttpHeaderMatch",
        "…matchRules[].headerMatches[]",
        HEADER_MATCH,
    ),
    table(
        "Int64RangeMatch",
        "…headerMatches[].rangeMatch",
        RANGE_MATCH,
    ),
    table(
        "HttpQueryParameterMatch",
        "…matchRules[].queryParameterMatches[]",
        QUERY_PARAMETER_MATCH,
    ),
    table(
        "HttpRouteAction",
        "every routeAction and defaultRouteAction",
        ROUTE_ACTION,
    ),
    table(
        "WeightedBackendService",
        "…routeAction.weightedBackendServices[]",
        WEIGHTED_SERVICE,
    ),
    table("UrlRewrite", "…routeAction.urlRewrite", URL_REWRITE),
    table("HttpRetryPolicy", "…routeAction.retryPolicy", RETRY_POLICY),
    table(
        "RequestMirrorPolicy",
        "…routeAction.requestMirrorPolicy",
        MIRROR_POLICY,
    ),
    table(
        "HttpFaultInjection",
        "…routeAction.faultInjectionPolicy",
        FAULT_INJECTION,
    ),
    table("HttpFaultAbort", "…faultInjectionPolicy.abort", FAULT_ABORT),
    table("HttpFaultDelay", "…faultInjectionPolicy.delay", FAULT_DELAY),
    table("CorsPolicy", "…routeAction.corsPolicy", CORS_POLICY),
    table(
        "HttpRedirectAction",
        "every urlRedirect and defaultUrlRedirect",
        REDIRECT,
    ),
    table("HttpHeaderAction", "every headerAction", HEADER_ACTION),
    table(
        "HttpHeaderOption",
        "…headerAction.*HeadersToAdd[]",
        HEADER_OPTION,
    ),
    table("BackendService", "backendServices[]", BACKEND_SERVICE),
    table("Backend", "backendServices[].backends[]", BACKEND),
    table(
        "CircuitBreakers",
        "backendServices[].circuitBreakers",
        CIRCUIT_BREAKERS,
    ),
    table(
        "ConnectionDraining",
        "backendServices[].connectionDraining",
        &[("drainingTimeoutSec", Honoured)],
    ),
    table(
        "ConsistentHashLoadBalancerSettings",
        "backendServices[].consistentHash",
        &[
            ("httpCookie", Honoured),
            ("httpHeaderName", Honoured),
            ("minimumRingSize", Honoured),
        ],
    ),
    table(
        "ConsistentHashLoadBalancerSettingsHttpCookie",
        "backendServices[].consistentHash.httpCookie",
        &[("name", Honoured), ("path", Honoured), ("ttl", Honoured)],
    ),
    table(
        "BackendServiceLocalityLoadBalancingPolicyConfig",
        "backendServices[].localityLbPolicies[]",
        LOCALITY_POLICY,
    ),
    table(
        "BackendServiceLocalityLoadBalancingPolicyConfigPolicy",
        "backendServices[].localityLbPolicies[].policy",
        &[("name", Honoured)],
    ),
    table(
        "BackendServiceLogConfig",
        "backendServices[].logConfig",
        LOG_CONFIG,
    ),
    table(
        "OutlierDetection",
        "backendServices[].outlierDetection",
        OUTLIER_DETECTION,
    ),
    table(
        "Subsetting",
        "backendServices[].subsetting",
        &[("policy", Honoured)],
    ),
    table("Duration", "every `{seconds, nanos}` duration", DURATION),
    table("HealthCheck", "healthChecks[]", HEALTH_CHECK),
    table(
        "HTTPHealthCheck",
        "healthChecks[].httpHealthCheck",
        HTTP_DETAILS,
    ),
    table(
        "HTTPSHealthCheck",
        "healthChecks[].httpsHealthCheck",
        HTTP_DETAILS,
    ),
    table(
        "HTTP2HealthCheck",
        "healthChecks[].http2HealthCheck",
        HTTP_DETAILS,
    ),
    table(
        "GRPCHealthCheck",
        "healthChecks[].grpcHealthCheck",
        GRPC_DETAILS,
    ),
    table(
        "TCPHealthCheck",
        "healthChecks[].tcpHealthCheck",
        TCP_DETAILS,
    ),
    table(
        "SSLHealthCheck",
        "healthChecks[].sslHealthCheck",
        TCP_DETAILS,
    ),
    table(
        "NetworkEndpointGroup",
        "networkEndpointGroups[]",
        NETWORK_ENDPOINT_GROUP,
    ),
    table(
        "NetworkEndpoint",
        "networkEndpointGroups[].endpoints[]",
        NETWORK_ENDPOINT,
    ),
    table("InstanceGroup", "instanceGroups[]", INSTANCE_GROUP),
    table("NamedPort", "instanceGroups[].namedPorts[]", NAMED_PORT),
];
