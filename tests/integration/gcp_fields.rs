//! Every field of the Compute API resources the GCP dialect reads has a treatment, and the
//! readers act on it: each field of the published schema (google-compute1 6.0.0+20240604, read
//! for its field lists, not a dependency) is in a table; a mapping holding every field of its
//! type draws no "unknown field"; a refused field is named with its reason (never a "did you
//! mean"), a noted one gets a note, an ignored one nothing. gcloud's `describe` output of every
//! resource type loads from folders named after their collections, and a NEG or instance
//! group pasted without its members is warned about with the command that lists them.

use std::path::Path;

use switchyard::config::gcp::fields::{table, treatment, Treatment, TABLES};
use switchyard::config::load_str;

/// The fields of each schema type, as the published Compute API v1 schema lists them.
const SCHEMA: &[(&str, &[&str])] = &[
    (
        "ForwardingRule",
        &[
            "IPAddress",
            "IPProtocol",
            "allPorts",
            "allowGlobalAccess",
            "allowPscGlobalAccess",
            "backendService",
            "baseForwardingRule",
            "creationTimestamp",
            "description",
            "fingerprint",
            "id",
            "ipCollection",
            "ipVersion",
            "isMirroringCollector",
            "kind",
            "labelFingerprint",
            "labels",
            "loadBalancingScheme",
            "metadataFilters",
            "name",
            "network",
            "networkTier",
            "noAutomateDnsZone",
            "portRange",
            "ports",
            "pscConnectionId",
            "pscConnectionStatus",
            "region",
            "selfLink",
            "serviceDirectoryRegistrations",
            "serviceLabel",
            "serviceName",
            "sourceIpRanges",
            "subnetwork",
            "target",
        ],
    ),
    (
        "TargetHttpProxy",
        &[
            "creationTimestamp",
            "description",
            "fingerprint",
            "httpKeepAliveTimeoutSec",
            "id",
            "kind",
            "name",
            "proxyBind",
            "region",
            "selfLink",
            "urlMap",
        ],
    ),
    (
        "TargetHttpsProxy",
        &[
            "authorizationPolicy",
            "certificateMap",
            "creationTimestamp",
            "description",
            "fingerprint",
            "httpKeepAliveTimeoutSec",
            "id",
            "kind",
            "name",
            "proxyBind",
            "quicOverride",
            "region",
            "selfLink",
            "serverTlsPolicy",
            "sslCertificates",
            "sslPolicy",
            "tlsEarlyData",
            "urlMap",
        ],
    ),
    (
        "TargetSslProxy",
        &[
            "certificateMap",
            "creationTimestamp",
            "description",
            "id",
            "kind",
            "name",
            "proxyHeader",
            "selfLink",
            "service",
            "sslCertificates",
            "sslPolicy",
        ],
    ),
    (
        "TargetTcpProxy",
        &[
            "creationTimestamp",
            "description",
            "id",
            "kind",
            "name",
            "proxyBind",
            "proxyHeader",
            "region",
            "selfLink",
            "service",
        ],
    ),
    (
        "TargetGrpcProxy",
        &[
            "creationTimestamp",
            "description",
            "fingerprint",
            "id",
            "kind",
            "name",
            "selfLink",
            "selfLinkWithId",
            "urlMap",
            "validateForProxyless",
        ],
    ),
    (
        "SslCertificate",
        &[
            "certificate",
            "creationTimestamp",
            "description",
            "expireTime",
            "id",
            "kind",
            "managed",
            "name",
            "privateKey",
            "region",
            "selfLink",
            "selfManaged",
            "subjectAlternativeNames",
            "type",
        ],
    ),
    (
        "SslCertificateSelfManagedSslCertificate",
        &["certificate", "privateKey"],
    ),
    (
        "SslPolicy",
        &[
            "creationTimestamp",
            "customFeatures",
            "description",
            "enabledFeatures",
            "fingerprint",
            "id",
            "kind",
            "minTlsVersion",
            "name",
            "profile",
            "region",
            "selfLink",
            "warnings",
        ],
    ),
    (
        "UrlMap",
        &[
            "creationTimestamp",
            "defaultRouteAction",
            "defaultService",
            "defaultUrlRedirect",
            "description",
            "fingerprint",
            "headerAction",
            "hostRules",
            "id",
            "kind",
            "name",
            "pathMatchers",
            "region",
            "selfLink",
            "tests",
        ],
    ),
    ("HostRule", &["description", "hosts", "pathMatcher"]),
    (
        "PathMatcher",
        &[
            "defaultRouteAction",
            "defaultService",
            "defaultUrlRedirect",
            "description",
            "headerAction",
            "name",
            "pathRules",
            "routeRules",
        ],
    ),
    (
        "PathRule",
        &["paths", "routeAction", "service", "urlRedirect"],
    ),
    (
        "HttpRouteRule",
        &[
            "description",
            "headerAction",
            "matchRules",
            "priority",
            "routeAction",
            "service",
            "urlRedirect",
        ],
    ),
    (
        "HttpRouteRuleMatch",
        &[
            "fullPathMatch",
            "headerMatches",
            "ignoreCase",
            "metadataFilters",
            "pathTemplateMatch",
            "prefixMatch",
            "queryParameterMatches",
            "regexMatch",
        ],
    ),
    (
        "HttpHeaderMatch",
        &[
            "exactMatch",
            "headerName",
            "invertMatch",
            "prefixMatch",
            "presentMatch",
            "rangeMatch",
            "regexMatch",
            "suffixMatch",
        ],
    ),
    ("Int64RangeMatch", &["rangeEnd", "rangeStart"]),
    (
        "HttpQueryParameterMatch",
        &["exactMatch", "name", "presentMatch", "regexMatch"],
    ),
    (
        "HttpRouteAction",
        &[
            "corsPolicy",
            "faultInjectionPolicy",
            "maxStreamDuration",
            "requestMirrorPolicy",
            "retryPolicy",
            "timeout",
            "urlRewrite",
            "weightedBackendServices",
        ],
    ),
    (
        "WeightedBackendService",
        &["backendService", "headerAction", "weight"],
    ),
    (
        "UrlRewrite",
        &["hostRewrite", "pathPrefixRewrite", "pathTemplateRewrite"],
    ),
    (
        "HttpRetryPolicy",
        &["numRetries", "perTryTimeout", "retryConditions"],
    ),
    ("RequestMirrorPolicy", &["backendService"]),
    ("HttpFaultInjection", &["abort", "delay"]),
    ("HttpFaultAbort", &["httpStatus", "percentage"]),
    ("HttpFaultDelay", &["fixedDelay", "percentage"]),
    (
        "CorsPolicy",
        &[
            "allowCredentials",
            "allowHeaders",
            "allowMethods",
            "allowOriginRegexes",
            "allowOrigins",
            "disabled",
            "exposeHeaders",
            "maxAge",
        ],
    ),
    (
        "HttpRedirectAction",
        &[
            "hostRedirect",
            "httpsRedirect",
            "pathRedirect",
            "prefixRedirect",
            "redirectResponseCode",
            "stripQuery",
        ],
    ),
    (
        "HttpHeaderAction",
        &[
            "requestHeadersToAdd",
            "requestHeadersToRemove",
            "responseHeadersToAdd",
            "responseHeadersToRemove",
        ],
    ),
    (
        "HttpHeaderOption",
        &["headerName", "headerValue", "replace"],
    ),
    (
        "BackendService",
        &[
            "affinityCookieTtlSec",
            "backends",
            "cdnPolicy",
            "circuitBreakers",
            "compressionMode",
            "connectionDraining",
            "connectionTrackingPolicy",
            "consistentHash",
            "creationTimestamp",
            "customRequestHeaders",
            "customResponseHeaders",
            "description",
            "edgeSecurityPolicy",
            "enableCDN",
            "failoverPolicy",
            "fingerprint",
            "healthChecks",
            "iap",
            "id",
            "kind",
            "loadBalancingScheme",
            "localityLbPolicies",
            "localityLbPolicy",
            "logConfig",
            "maxStreamDuration",
            "metadatas",
            "name",
            "network",
            "outlierDetection",
            "port",
            "portName",
            "protocol",
            "region",
            "securityPolicy",
            "securitySettings",
            "selfLink",
            "serviceBindings",
            "serviceLbPolicy",
            "sessionAffinity",
            "subsetting",
            "timeoutSec",
            "usedBy",
        ],
    ),
    (
        "Backend",
        &[
            "balancingMode",
            "capacityScaler",
            "description",
            "failover",
            "group",
            "maxConnections",
            "maxConnectionsPerEndpoint",
            "maxConnectionsPerInstance",
            "maxRate",
            "maxRatePerEndpoint",
            "maxRatePerInstance",
            "maxUtilization",
            "preference",
        ],
    ),
    (
        "CircuitBreakers",
        &[
            "maxConnections",
            "maxPendingRequests",
            "maxRequests",
            "maxRequestsPerConnection",
            "maxRetries",
        ],
    ),
    ("ConnectionDraining", &["drainingTimeoutSec"]),
    (
        "ConsistentHashLoadBalancerSettings",
        &["httpCookie", "httpHeaderName", "minimumRingSize"],
    ),
    (
        "ConsistentHashLoadBalancerSettingsHttpCookie",
        &["name", "path", "ttl"],
    ),
    (
        "BackendServiceLocalityLoadBalancingPolicyConfig",
        &["customPolicy", "policy"],
    ),
    (
        "BackendServiceLocalityLoadBalancingPolicyConfigPolicy",
        &["name"],
    ),
    (
        "BackendServiceLogConfig",
        &["enable", "optionalFields", "optionalMode", "sampleRate"],
    ),
    (
        "OutlierDetection",
        &[
            "baseEjectionTime",
            "consecutiveErrors",
            "consecutiveGatewayFailure",
            "enforcingConsecutiveErrors",
            "enforcingConsecutiveGatewayFailure",
            "enforcingSuccessRate",
            "interval",
            "maxEjectionPercent",
            "successRateMinimumHosts",
            "successRateRequestVolume",
            "successRateStdevFactor",
        ],
    ),
    ("Subsetting", &["policy"]),
    ("Duration", &["nanos", "seconds"]),
    (
        "HealthCheck",
        &[
            "checkIntervalSec",
            "creationTimestamp",
            "description",
            "grpcHealthCheck",
            "healthyThreshold",
            "http2HealthCheck",
            "httpHealthCheck",
            "httpsHealthCheck",
            "id",
            "kind",
            "logConfig",
            "name",
            "region",
            "selfLink",
            "sslHealthCheck",
            "tcpHealthCheck",
            "timeoutSec",
            "type",
            "unhealthyThreshold",
        ],
    ),
    (
        "HTTPHealthCheck",
        &[
            "host",
            "port",
            "portName",
            "portSpecification",
            "proxyHeader",
            "requestPath",
            "response",
        ],
    ),
    (
        "HTTPSHealthCheck",
        &[
            "host",
            "port",
            "portName",
            "portSpecification",
            "proxyHeader",
            "requestPath",
            "response",
        ],
    ),
    (
        "HTTP2HealthCheck",
        &[
            "host",
            "port",
            "portName",
            "portSpecification",
            "proxyHeader",
            "requestPath",
            "response",
        ],
    ),
    (
        "GRPCHealthCheck",
        &["grpcServiceName", "port", "portName", "portSpecification"],
    ),
    (
        "TCPHealthCheck",
        &[
            "port",
            "portName",
            "portSpecification",
            "proxyHeader",
            "request",
            "response",
        ],
    ),
    (
        "SSLHealthCheck",
        &[
            "port",
            "portName",
            "portSpecification",
            "proxyHeader",
            "request",
            "response",
        ],
    ),
    (
        "NetworkEndpointGroup",
        &[
            "annotations",
            "appEngine",
            "cloudFunction",
            "cloudRun",
            "creationTimestamp",
            "defaultPort",
            "description",
            "id",
            "kind",
            "name",
            "network",
            "networkEndpointType",
            "pscData",
            "pscTargetService",
            "region",
            "selfLink",
            "size",
            "subnetwork",
            "zone",
        ],
    ),
    (
        "NetworkEndpoint",
        &["annotations", "fqdn", "instance", "ipAddress", "port"],
    ),
    (
        "InstanceGroup",
        &[
            "creationTimestamp",
            "description",
            "fingerprint",
            "id",
            "kind",
            "name",
            "namedPorts",
            "network",
            "region",
            "selfLink",
            "size",
            "subnetwork",
            "zone",
        ],
    ),
    ("NamedPort", &["name", "port"]),
];

/// Where a mapping of a schema type is written: the type, a document with `FIELDS` where the
/// mapping goes, and the fields the reader needs to get that far (a name, a priority).
type Place = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const PLACES: &[Place] = &[
    ("ForwardingRule", "forwardingRules: [FIELDS]", &[("name", "f")]),
    ("TargetHttpProxy", "targetHttpProxies: [FIELDS]", &[("name", "p")]),
    ("TargetHttpsProxy", "targetHttpsProxies: [FIELDS]", &[("name", "p")]),
    ("TargetSslProxy", "targetSslProxies: [FIELDS]", &[("name", "p")]),
    ("TargetTcpProxy", "targetTcpProxies: [FIELDS]", &[("name", "p")]),
    ("TargetGrpcProxy", "targetGrpcProxies: [FIELDS]", &[("name", "p")]),
    ("SslCertificate", "sslCertificates: [FIELDS]", &[("name", "c")]),
    (
        "SslCertificateSelfManagedSslCertificate",
        "sslCertificates: [{name: c, selfManaged: FIELDS}]",
        &[],
    ),
    ("SslPolicy", "sslPolicies: [FIELDS]", &[("name", "s")]),
    ("UrlMap", "urlMaps: [FIELDS]", &[("name", "m")]),
    ("HostRule", "urlMaps: [{name: m, hostRules: [FIELDS]}]", &[]),
    (
        "PathMatcher",
        "urlMaps: [{name: m, pathMatchers: [FIELDS]}]",
        &[("name", "pm")],
    ),
    (
        "PathRule",
        "urlMaps: [{name: m, pathMatchers: [{name: pm, pathRules: [FIELDS]}]}]",
        &[],
    ),
    (
        "HttpRouteRule",
        "urlMaps: [{name: m, pathMatchers: [{name: pm, routeRules: [FIELDS]}]}]",
        &[("priority", "1")],
    ),
    (
        "HttpRouteRuleMatch",
        "urlMaps: [{name: m, pathMatchers: [{name: pm, routeRules: [{priority: 1, service: b, matchRules: [FIELDS]}]}]}]",
        &[],
    ),
    (
        "HttpHeaderMatch",
        "urlMaps: [{name: m, pathMatchers: [{name: pm, routeRules: [{priority: 1, service: b, matchRules: [{headerMatches: [FIELDS]}]}]}]}]",
        &[],
    ),
    (
        "Int64RangeMatch",
        "urlMaps: [{name: m, pathMatchers: [{name: pm, routeRules: [{priority: 1, service: b, matchRules: [{headerMatches: [{headerName: x, rangeMatch: FIELDS}]}]}]}]}]",
        &[],
    ),
    (
        "HttpQueryParameterMatch",
        "urlMaps: [{name: m, pathMatchers: [{name: pm, routeRules: [{priority: 1, service: b, matchRules: [{queryParameterMatches: [FIELDS]}]}]}]}]",
        &[],
    ),
    ("HttpRouteAction", "urlMaps: [{name: m, defaultRouteAction: FIELDS}]", &[]),
    (
        "WeightedBackendService",
        "urlMaps: [{name: m, defaultRouteAction: {weightedBackendServices: [FIELDS]}}]",
        &[],
    ),
    ("UrlRewrite", "urlMaps: [{name: m, defaultRouteAction: {urlRewrite: FIELDS}}]", &[]),
    ("HttpRetryPolicy", "urlMaps: [{name: m, defaultRouteAction: {retryPolicy: FIELDS}}]", &[]),
    (
        "RequestMirrorPolicy",
        "urlMaps: [{name: m, defaultRouteAction: {requestMirrorPolicy: FIELDS}}]",
        &[],
    ),
    (
        "HttpFaultInjection",
        "urlMaps: [{name: m, defaultRouteAction: {faultInjectionPolicy: FIELDS}}]",
        &[],
    ),
    (
        "HttpFaultAbort",
        "urlMaps: [{name: m, defaultRouteAction: {faultInjectionPolicy: {abort: FIELDS}}}]",
        &[],
    ),
    (
        "HttpFaultDelay",
        "urlMaps: [{name: m, defaultRouteAction: {faultInjectionPolicy: {delay: FIELDS}}}]",
        &[],
    ),
    ("CorsPolicy", "urlMaps: [{name: m, defaultRouteAction: {corsPolicy: FIELDS}}]", &[]),
    ("HttpRedirectAction", "urlMaps: [{name: m, defaultUrlRedirect: FIELDS}]", &[]),
    ("HttpHeaderAction", "urlMaps: [{name: m, headerAction: FIELDS}]", &[]),
    (
        "HttpHeaderOption",
        "urlMaps: [{name: m, headerAction: {requestHeadersToAdd: [FIELDS]}}]",
        &[],
    ),
    ("BackendService", "backendServices: [FIELDS]", &[("name", "b")]),
    ("Backend", "backendServices: [{name: b, backends: [FIELDS]}]", &[]),
    ("CircuitBreakers", "backendServices: [{name: b, circuitBreakers: FIELDS}]", &[]),
    ("ConnectionDraining", "backendServices: [{name: b, connectionDraining: FIELDS}]", &[]),
    (
        "ConsistentHashLoadBalancerSettings",
        "backendServices: [{name: b, consistentHash: FIELDS}]",
        &[],
    ),
    (
        "ConsistentHashLoadBalancerSettingsHttpCookie",
        "backendServices: [{name: b, consistentHash: {httpCookie: FIELDS}}]",
        &[("name", "c")],
    ),
    (
        "BackendServiceLocalityLoadBalancingPolicyConfig",
        "backendServices: [{name: b, localityLbPolicies: [FIELDS]}]",
        &[],
    ),
    (
        "BackendServiceLocalityLoadBalancingPolicyConfigPolicy",
        "backendServices: [{name: b, localityLbPolicies: [{policy: FIELDS}]}]",
        &[],
    ),
    ("BackendServiceLogConfig", "backendServices: [{name: b, logConfig: FIELDS}]", &[]),
    ("OutlierDetection", "backendServices: [{name: b, outlierDetection: FIELDS}]", &[]),
    ("Subsetting", "backendServices: [{name: b, subsetting: FIELDS}]", &[]),
    ("Duration", "backendServices: [{name: b, maxStreamDuration: FIELDS}]", &[]),
    ("HealthCheck", "healthChecks: [FIELDS]", &[("name", "h")]),
    ("HTTPHealthCheck", "healthChecks: [{name: h, type: HTTP, httpHealthCheck: FIELDS}]", &[]),
    ("HTTPSHealthCheck", "healthChecks: [{name: h, type: HTTPS, httpsHealthCheck: FIELDS}]", &[]),
    ("HTTP2HealthCheck", "healthChecks: [{name: h, type: HTTP2, http2HealthCheck: FIELDS}]", &[]),
    ("GRPCHealthCheck", "healthChecks: [{name: h, type: GRPC, grpcHealthCheck: FIELDS}]", &[]),
    ("TCPHealthCheck", "healthChecks: [{name: h, type: TCP, tcpHealthCheck: FIELDS}]", &[]),
    ("SSLHealthCheck", "healthChecks: [{name: h, type: SSL, sslHealthCheck: FIELDS}]", &[]),
    ("NetworkEndpointGroup", "networkEndpointGroups: [FIELDS]", &[("name", "n")]),
    (
        "NetworkEndpoint",
        "networkEndpointGroups: [{name: n, zone: us-central1-a, endpoints: [FIELDS]}]",
        &[],
    ),
    (
        "NetworkEndpoint",
        "networkEndpointGroups: [{name: n, networkEndpointType: INTERNET_FQDN_PORT, endpoints: [FIELDS]}]",
        &[],
    ),
    ("InstanceGroup", "instanceGroups: [FIELDS]", &[("name", "g")]),
    (
        "NamedPort",
        "instanceGroups: [{name: g, zone: us-central1-a, namedPorts: [FIELDS]}]",
        &[],
    ),
];

/// The document of `place` with its mapping holding `fields` (name, YAML value) after the
/// place's own.
fn document(place: &Place, fields: &[(&str, String)]) -> String {
    let (_, template, needed) = place;
    let entries: Vec<String> = needed
        .iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .chain(
            fields
                .iter()
                .filter(|(name, _)| !needed.iter().any(|(needed, _)| needed == name))
                .map(|(name, value)| format!("{name}: {value}")),
        )
        .collect();
    template.replace("FIELDS", &format!("{{{}}}", entries.join(", ")))
}

fn diagnostics_of(text: &str) -> Vec<String> {
    let loaded = load_str(text, "f.yaml");
    loaded
        .diagnostics
        .items
        .iter()
        .chain(&loaded.diagnostics.notes)
        .map(ToString::to_string)
        .collect()
}

#[test]
fn every_field_of_the_schema_has_a_treatment() {
    let mut missing = Vec::new();
    for (api_type, fields) in SCHEMA {
        let Some(table) = table(api_type) else {
            missing.push(format!("{api_type}: no table"));
            continue;
        };
        for field in *fields {
            if !table.fields.iter().any(|(name, _)| name == field) {
                missing.push(format!("{api_type}.{field}"));
            }
        }
    }
    assert_eq!(missing, Vec::<String>::new(), "fields without a treatment");
    // Every table is checked against the schema and written somewhere the test can reach.
    for table in TABLES {
        assert!(
            SCHEMA
                .iter()
                .any(|(api_type, _)| *api_type == table.api_type),
            "{} is not in the schema lists",
            table.api_type
        );
        assert!(
            PLACES
                .iter()
                .any(|(api_type, ..)| *api_type == table.api_type),
            "{} has no place to be written",
            table.api_type
        );
    }
}

#[test]
fn a_mapping_with_every_field_of_its_type_has_no_unknown_field() {
    let mut unknown = Vec::new();
    for place in PLACES {
        let table = table(place.0).unwrap_or_else(|| panic!("no table for {}", place.0));
        let all: Vec<(&str, String)> = table
            .fields
            .iter()
            .map(|(name, _)| (*name, "null".to_string()))
            .collect();
        let text = document(place, &all);
        unknown.extend(
            diagnostics_of(&text)
                .into_iter()
                .filter(|d| d.contains("unknown field") || d.contains("did you mean"))
                .map(|d| format!("{}: {d}", place.0)),
        );
    }
    assert_eq!(unknown, Vec::<String>::new());
}

/// What a field written with `value` drew at its own path.
fn drawn_by(place: &Place, field: &str, value: &str) -> Vec<String> {
    let text = document(place, &[(field, value.to_string())]);
    diagnostics_of(&text)
        .into_iter()
        .filter(|d| d.contains(&format!(".{field}: ")) || d.contains(&format!("]{field}: ")))
        .collect()
}

#[test]
fn refused_fields_are_named_with_their_reason_and_the_rest_pass_quietly() {
    let mut wrong = Vec::new();
    for place in PLACES {
        let table = table(place.0).unwrap();
        for (field, treatment) in table.fields {
            let reason = treatment.reason();
            let refused = |drawn: &[String]| {
                drawn.iter().any(|d| {
                    d.starts_with("error: ")
                        && d.contains(&format!(": `{field}` "))
                        && !d.contains("unknown field")
                        && !d.contains("did you mean")
                })
            };
            match treatment {
                Treatment::Refused(_) | Treatment::NotYet(_) => {
                    let drawn = drawn_by(place, field, "{enabled: true}");
                    let named = refused(&drawn)
                        && (matches!(treatment, Treatment::NotYet(_))
                            || drawn.iter().any(|d| d.contains(reason)));
                    if !named {
                        wrong.push(format!(
                            "{}.{field} not refused with its reason: {drawn:?}",
                            place.0
                        ));
                    }
                }
                Treatment::RefusedUnlessOff(_) => {
                    let drawn = drawn_by(place, field, "{enabled: true}");
                    if !(refused(&drawn) && drawn.iter().any(|d| d.contains(reason))) {
                        wrong.push(format!("{}.{field} on not refused: {drawn:?}", place.0));
                    }
                    let off = drawn_by(place, field, "false");
                    if !off.is_empty() {
                        wrong.push(format!("{}.{field} off drew {off:?}", place.0));
                    }
                }
                Treatment::Noted(_) => {
                    let drawn = drawn_by(place, field, "{enabled: true}");
                    let noted = drawn.len() == 1
                        && drawn[0].starts_with("note: ")
                        && drawn[0].contains(reason);
                    if !noted {
                        wrong.push(format!("{}.{field} not noted: {drawn:?}", place.0));
                    }
                }
                Treatment::Ignored(_) => {
                    let drawn = drawn_by(place, field, "anything");
                    if !drawn.is_empty() {
                        wrong.push(format!("{}.{field} is ignored but drew {drawn:?}", place.0));
                    }
                }
                Treatment::Honoured | Treatment::Own(_) | Treatment::Conditional(_) => {}
            }
        }
    }
    assert_eq!(wrong, Vec::<String>::new());
}

#[test]
fn the_fields_document_matches_the_tables() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/gcp-fields.md");
    let rendered = switchyard::config::gcp::fields::markdown();
    if std::env::var_os("SWITCHYARD_WRITE_DOCS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        written == rendered,
        "docs/gcp-fields.md is not the tables' rendering; rewrite it with \
         SWITCHYARD_WRITE_DOCS=1 cargo test --test integration gcp_fields"
    );
}

#[test]
fn treatments_of_the_fields_issue_22_names() {
    // failoverPolicy and serviceBindings are refused with their reason, networkTier noted.
    assert!(matches!(
        treatment("BackendService", "failoverPolicy"),
        Some(Treatment::Refused(_))
    ));
    assert!(matches!(
        treatment("BackendService", "serviceBindings"),
        Some(Treatment::Refused(_))
    ));
    assert!(matches!(
        treatment("ForwardingRule", "networkTier"),
        Some(Treatment::Noted(_))
    ));
    let found = diagnostics_of(
        "backendServices:\n- name: b\n  failoverPolicy: {failoverRatio: 0.5}\n  serviceBindings: [projects/p/locations/global/serviceBindings/sb]\n\
         forwardingRules:\n- {name: f, IPAddress: 127.0.0.1, portRange: '80', target: p, networkTier: PREMIUM}\n\
         targetHttpProxies:\n- {name: p, urlMap: m}\nurlMaps:\n- {name: m, defaultService: b}\n",
    );
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("error: f.yaml:3: backendServices[b].failoverPolicy: `failoverPolicy` sets when a passthrough"), "{}", found[0]);
    assert!(found[1].starts_with("error: f.yaml:4: backendServices[b].serviceBindings: `serviceBindings` names Service Directory"), "{}", found[1]);
    assert!(found[2].starts_with("note: f.yaml:6: forwardingRules[f].networkTier: `networkTier` has no effect here: PREMIUM or STANDARD"), "{}", found[2]);
}

#[test]
fn describe_output_of_every_resource_type_loads_as_printed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gcloud/described");
    let loaded = switchyard::config::load(&dir);
    let found: Vec<String> = loaded
        .diagnostics
        .items
        .iter()
        .chain(&loaded.diagnostics.notes)
        .map(|d| {
            let file = d.loc.file.rsplit("described/").next().unwrap_or_default();
            format!("{:?} {file}:{} {}", d.severity, d.loc.line, d.path)
        })
        .collect();
    // What is said is what a reader needs to know; nothing is an error.
    assert_eq!(
        found,
        [
            "Warning backendServices/greeter.yaml:1 backendServices[greeter].timeoutSec",
            "Warning backendServices/greeter.yaml:19 backendServices[greeter].port",
            "Warning instanceGroups/mail-a.yaml:1 instanceGroups[mail-a].instances",
            "Warning instanceGroups/web-mig.yaml:1 instanceGroups[web-mig].instances",
            "Warning networkEndpointGroups/greeter-neg.yaml:1 networkEndpointGroups[greeter-neg].endpoints",
            "Note forwardingRules/mail-ssl.yaml:12 forwardingRules[mail-ssl].networkTier",
            "Note forwardingRules/mail-tcp.yaml:12 forwardingRules[mail-tcp].networkTier",
            "Note forwardingRules/web-http.yaml:12 forwardingRules[web-http].networkTier",
            "Note forwardingRules/web-https.yaml:12 forwardingRules[web-https].networkTier",
        ]
    );
    let model = &loaded.model;
    let served = model.frontends.len() + model.proxyless.len();
    assert_eq!(served, 5, "every forwarding rule serves through its proxy");
    assert_eq!(model.route_tables.len(), 2);
    assert_eq!(model.services.len(), 3);
    assert_eq!(model.health_checks.len(), 3);
    assert_eq!(model.certificates.len(), 1);
    assert_eq!(model.endpoint_groups.len(), 3);
    assert_eq!(model.services["web"].log_sample_rate, Some(1.0));
}

#[test]
fn a_neg_pasted_from_describe_is_told_where_its_endpoints_go() {
    let text = "kind: compute#networkEndpointGroup\nname: neg-a\nnetworkEndpointType: GCE_VM_IP_PORT\nsize: 2\nzone: https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a\n";
    let found = diagnostics_of(text);
    assert_eq!(
        found,
        ["warning: f.yaml:1: networkEndpointGroups[neg-a].endpoints: `gcloud compute network-endpoint-groups describe` does not list a NEG's endpoints, so this one has none to serve; list them with `gcloud compute network-endpoint-groups list-network-endpoints neg-a --zone=us-central1-a` and write them in this resource under `endpoints:`, one `{instance: VM, ipAddress: ADDRESS, port: PORT}` each"]
    );
    // Written with its endpoints, the same NEG draws nothing.
    let with_endpoints =
        format!("{text}endpoints:\n- {{instance: vm-1, ipAddress: 10.0.0.1, port: 80}}\n");
    assert_eq!(diagnostics_of(&with_endpoints), Vec::<String>::new());
}
