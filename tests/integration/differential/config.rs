//! The load balancers the differential table is sent through: one GCP URL map and one AWS
//! ALB template, served from one config folder, using every route feature of examples/ that
//! the sidecar serves (and those of SPEC 3.4 besides); the template also has a load balancer
//! for each way of treating X-Forwarded-For and the Host (its attributes). Each service or
//! target group is one controllable echo backend named after it. Must not: hold requests or
//! expectations.

use std::collections::BTreeMap;

/// The GCP backend services, one echo backend each.
pub const GCP_SERVICES: [&str; 16] = [
    "web", "api", "admin", "mobile", "shop", "payments", "canary-a", "canary-b", "stable", "next",
    "sticky", "slow", "flaky", "hashed", "facts", "shadow",
];

/// The custom headers of the `facts` service: every connection fact Switchyard writes with a
/// formatter (`%PROTOCOL%`, `%DOWNSTREAM_TLS_VERSION%`, `%CEL(…)%`, …), request and response.
const FACT_HEADERS: &str = "customRequestHeaders: ['x-fact-protocol: {client_protocol}', \
    'x-fact-encrypted: {client_encrypted}', 'x-fact-tls: v={tls_version}', \
    'x-fact-cipher: {tls_cipher_suite}', 'x-fact-sni: {tls_sni_hostname}', \
    'x-fact-origin: {origin_request_header}'], \
    customResponseHeaders: ['x-fact-origin-response: {origin_request_header}', \
    'x-fact-protocol-response: {client_protocol}'], ";

/// The `/limited` route's maxStreamDuration: a backend asked to wait twice as long is cut off.
pub const STREAM_LIMIT_MS: u64 = 500;

/// The AWS target groups, one echo backend each.
pub const AWS_GROUPS: [&str; 9] = [
    "Web",
    "ApiTargets",
    "Blue",
    "Green",
    "Canary",
    "Query",
    "Method",
    "Shops",
    "Static",
];

/// Where a config's listeners are: the GCP URL map's, the ALB's with the default
/// attributes (the client's address appended to X-Forwarded-For, the listener's port to the
/// Host), and one ALB each with X-Forwarded-For and the Host kept as sent (and header names
/// with underscores dropped), X-Forwarded-For removed, and the client's port in it.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub gcp: u16,
    pub aws: u16,
    pub aws_kept: u16,
    pub aws_removed: u16,
    pub aws_ported: u16,
}

impl Ports {
    pub fn free() -> Ports {
        use crate::common::free_port;
        Ports {
            gcp: free_port(),
            aws: free_port(),
            aws_kept: free_port(),
            aws_removed: free_port(),
            aws_ported: free_port(),
        }
    }
}

/// Backend services with their special settings (timeouts, locality policy, affinity), from
/// quickstart.yaml and failover.yaml.
fn gcp_services(ports: &BTreeMap<&str, u16>) -> String {
    let mut text = String::from("networkEndpointGroups:\n");
    for service in GCP_SERVICES {
        text.push_str(&format!(
            "- {{name: {service}-neg, zone: us-central1-a, networkEndpointType: GCE_VM_IP_PORT, endpoints: [{{ipAddress: 127.0.0.1, port: {}}}]}}\n",
            ports[service]
        ));
    }
    text.push_str("backendServices:\n");
    for service in GCP_SERVICES {
        let settings = match service {
            "web" => "timeoutSec: 30, localityLbPolicy: ROUND_ROBIN, ",
            "api" => "timeoutSec: 10, ",
            "slow" => "timeoutSec: 1, ",
            "sticky" => {
                "localityLbPolicy: RING_HASH, sessionAffinity: GENERATED_COOKIE, affinityCookieTtlSec: 3600, "
            }
            "hashed" => {
                "localityLbPolicy: RING_HASH, sessionAffinity: HEADER_FIELD, consistentHash: {httpHeaderName: x-user}, "
            }
            "facts" => FACT_HEADERS,
            _ => "",
        };
        text.push_str(&format!(
            "- {{name: {service}, protocol: HTTP, {settings}backends: [{{group: zones/us-central1-a/networkEndpointGroups/{service}-neg, balancingMode: RATE, maxRatePerEndpoint: 100}}]}}\n"
        ));
    }
    text
}

/// The fixed delay of the `/fault/delay` route: long enough that a proxy ignoring it answers
/// in a fraction of it on loopback.
pub const FAULT_DELAY_NANOS: u32 = 400_000_000;

/// The URL map: host rules (exact, wildcard, `*`), path rules (quickstart, authorized), route
/// rules with every match kind, rewrites (https.yaml's /v1/ → /), redirects of every kind
/// (https.yaml's default redirect among them), header actions at the four levels, weighted
/// splits (dual-stack.yaml's 95/5 on an empty prefix), timeouts, retries, affinity, fault
/// injection (an abort of half the requests, a delay of all, an abort of all) and CORS
/// policies.
fn gcp_url_map(listen: u16) -> String {
    let bs = "global/backendServices";
    let limit_nanos = STREAM_LIMIT_MS * 1_000_000;
    format!(
        r#"urlMaps:
- name: site
  defaultService: {bs}/web
  headerAction:
    requestHeadersToAdd: [{{headerName: x-level, headerValue: map, replace: true}}, {{headerName: x-map, headerValue: site}}]
    responseHeadersToAdd: [{{headerName: x-map-response, headerValue: "100%"}}]
    responseHeadersToRemove: [x-drop-me]
  hostRules:
  - {{hosts: [shop.example.com], pathMatcher: shop}}
  - {{hosts: [old.example.com], pathMatcher: moved}}
  - {{hosts: [api.example.test], pathMatcher: api}}
  - {{hosts: [split.example], pathMatcher: migration}}
  - {{hosts: ['*.example.com', '*'], pathMatcher: main}}
  pathMatchers:
  - name: shop
    defaultService: {bs}/shop
    pathRules:
    - {{paths: [/checkout, /checkout/*], service: {bs}/payments}}
    - {{paths: [/cart, /cart/*], service: {bs}/api}}
    - {{paths: [/cart/special], service: {bs}/admin}}
  - name: moved
    defaultUrlRedirect: {{httpsRedirect: true, redirectResponseCode: MOVED_PERMANENTLY_DEFAULT}}
  - name: api
    defaultService: {bs}/api
    routeRules:
    - priority: 10
      matchRules: [{{prefixMatch: /v1/}}]
      routeAction:
        urlRewrite: {{pathPrefixRewrite: /}}
        weightedBackendServices: [{{backendService: {bs}/api, weight: 100}}]
    - priority: 20
      matchRules: [{{prefixMatch: /}}]
      service: {bs}/api
  - name: migration
    defaultService: {bs}/stable
    routeRules:
    - priority: 1
      matchRules: [{{prefixMatch: ''}}]
      routeAction:
        weightedBackendServices:
        - {{backendService: {bs}/stable, weight: 95}}
        - {{backendService: {bs}/next, weight: 5}}
  - name: main
    defaultService: {bs}/web
    headerAction:
      requestHeadersToAdd: [{{headerName: x-matcher, headerValue: main}}, {{headerName: x-level, headerValue: matcher, replace: true}}]
      requestHeadersToRemove: [x-secret]
    routeRules:
    - {{priority: 1, service: {bs}/mobile, matchRules: [{{prefixMatch: /, headerMatches: [{{headerName: x-client, exactMatch: mobile}}]}}]}}
    - {{priority: 2, service: {bs}/admin, matchRules: [{{prefixMatch: /admin, headerMatches: [{{headerName: x-role, presentMatch: true}}]}}]}}
    - {{priority: 3, service: {bs}/admin, matchRules: [{{fullPathMatch: /exact}}]}}
    - {{priority: 4, service: {bs}/api, matchRules: [{{prefixMatch: /api}}]}}
    - {{priority: 5, service: {bs}/api, matchRules: [{{prefixMatch: /v, headerMatches: [{{headerName: x-version, regexMatch: 'v[0-9]+'}}]}}]}}
    - {{priority: 6, service: {bs}/admin, matchRules: [{{prefixMatch: /range, headerMatches: [{{headerName: x-n, rangeMatch: {{rangeStart: 1, rangeEnd: 10}}}}]}}]}}
    - {{priority: 7, service: {bs}/admin, matchRules: [{{prefixMatch: /ci/, ignoreCase: true}}]}}
    - {{priority: 8, service: {bs}/api, matchRules: [{{prefixMatch: /not, headerMatches: [{{headerName: x-debug, prefixMatch: 'on', invertMatch: true}}]}}]}}
    - {{priority: 9, service: {bs}/admin, matchRules: [{{prefixMatch: /agent, headerMatches: [{{headerName: x-agent, suffixMatch: '-bot'}}]}}]}}
    - {{priority: 10, service: {bs}/api, matchRules: [{{prefixMatch: /q, queryParameterMatches: [{{name: lang, exactMatch: en}}]}}]}}
    - {{priority: 11, service: {bs}/admin, matchRules: [{{prefixMatch: /q, queryParameterMatches: [{{name: v, regexMatch: '[0-9]+'}}]}}]}}
    - {{priority: 12, service: {bs}/mobile, matchRules: [{{prefixMatch: /q, queryParameterMatches: [{{name: debug, presentMatch: true}}]}}]}}
    - {{priority: 13, service: {bs}/shop, matchRules: [{{regexMatch: '/items/[0-9]+'}}]}}
    - {{priority: 14, service: {bs}/mobile, matchRules: [{{prefixMatch: /either/a}}, {{prefixMatch: /either/b}}]}}
    - priority: 20
      matchRules: [{{prefixMatch: /legacy/}}]
      urlRedirect: {{prefixRedirect: /modern/, redirectResponseCode: FOUND}}
    - priority: 21
      matchRules: [{{prefixMatch: /go-https}}]
      urlRedirect: {{httpsRedirect: true, redirectResponseCode: PERMANENT_REDIRECT}}
    - priority: 22
      matchRules: [{{prefixMatch: /elsewhere}}]
      urlRedirect: {{hostRedirect: new.example.com, pathRedirect: /landing, stripQuery: true, redirectResponseCode: SEE_OTHER}}
    - priority: 23
      matchRules: [{{prefixMatch: /temporary}}]
      urlRedirect: {{pathRedirect: /kept, redirectResponseCode: TEMPORARY_REDIRECT}}
    - priority: 30
      matchRules: [{{prefixMatch: /rewrite/}}]
      service: {bs}/api
      routeAction:
        urlRewrite: {{pathPrefixRewrite: /new/, hostRewrite: internal.example}}
      headerAction:
        requestHeadersToAdd: [{{headerName: x-route, headerValue: added}}, {{headerName: x-level, headerValue: route, replace: true}}]
        requestHeadersToRemove: [x-remove-me]
        responseHeadersToAdd: [{{headerName: x-route-response, headerValue: 'yes'}}, {{headerName: set-cookie, headerValue: 'route=1; Path=/'}}]
        responseHeadersToRemove: [x-backend]
    - priority: 31
      matchRules: [{{prefixMatch: /split}}]
      routeAction:
        weightedBackendServices:
        - backendService: {bs}/canary-a
          weight: 75
          headerAction:
            requestHeadersToAdd: [{{headerName: x-canary, headerValue: a, replace: true}}]
            responseHeadersToAdd: [{{headerName: x-canary-response, headerValue: a}}]
        - backendService: {bs}/canary-b
          weight: 25
          headerAction:
            requestHeadersToAdd: [{{headerName: x-canary, headerValue: b, replace: true}}]
            responseHeadersToRemove: [x-backend]
    - {{priority: 32, service: {bs}/slow, matchRules: [{{prefixMatch: /slow}}]}}
    - priority: 33
      matchRules: [{{prefixMatch: /deadline}}]
      service: {bs}/web
      routeAction: {{timeout: {{seconds: 1}}}}
    - priority: 34
      matchRules: [{{prefixMatch: /retry}}]
      service: {bs}/flaky
      routeAction: {{retryPolicy: {{retryConditions: [5xx], numRetries: 2}}}}
    - priority: 35
      matchRules: [{{prefixMatch: /gateway}}]
      service: {bs}/flaky
      routeAction: {{retryPolicy: {{retryConditions: [gateway-error], numRetries: 1}}}}
    - {{priority: 36, service: {bs}/flaky, matchRules: [{{prefixMatch: /once}}]}}
    - {{priority: 37, service: {bs}/sticky, matchRules: [{{prefixMatch: /sticky}}]}}
    - {{priority: 38, service: {bs}/hashed, matchRules: [{{prefixMatch: /hashed}}]}}
    - priority: 40
      matchRules: [{{prefixMatch: /fault/abort}}]
      service: {bs}/web
      routeAction: {{faultInjectionPolicy: {{abort: {{httpStatus: 503, percentage: 50}}}}}}
    - priority: 41
      matchRules: [{{prefixMatch: /fault/delay}}]
      service: {bs}/web
      routeAction: {{faultInjectionPolicy: {{delay: {{fixedDelay: {{nanos: {FAULT_DELAY_NANOS}}}, percentage: 100}}}}}}
    - priority: 42
      matchRules: [{{prefixMatch: /fault/all}}]
      service: {bs}/web
      routeAction: {{faultInjectionPolicy: {{abort: {{httpStatus: 418, percentage: 100}}}}}}
    - priority: 43
      matchRules: [{{prefixMatch: /cors}}]
      service: {bs}/web
      routeAction:
        corsPolicy:
          allowOrigins: [https://app.example]
          allowOriginRegexes: ['https://[a-z]+\.trusted\.example']
          allowMethods: [GET, PUT]
          allowHeaders: [x-custom, content-type]
          exposeHeaders: [x-backend]
          maxAge: 600
          allowCredentials: true
    - priority: 44
      matchRules: [{{prefixMatch: /open-cors}}]
      service: {bs}/web
      routeAction: {{corsPolicy: {{allowOrigins: ['*'], allowMethods: [GET]}}}}
    - priority: 45
      matchRules: [{{pathTemplateMatch: '/tpl/{{id}}/{{rest=**}}'}}]
      service: {bs}/api
      routeAction: {{urlRewrite: {{pathTemplateRewrite: '/t/{{rest}}/of/{{id}}'}}}}
    - {{priority: 46, service: {bs}/admin, matchRules: [{{pathTemplateMatch: '/files/*/{{name}}'}}]}}
    - priority: 47
      matchRules: [{{prefixMatch: /limited}}]
      service: {bs}/web
      routeAction: {{maxStreamDuration: {{nanos: {limit_nanos}}}}}
    - priority: 48
      matchRules: [{{prefixMatch: /mirrored}}]
      service: {bs}/web
      routeAction: {{requestMirrorPolicy: {{backendService: {bs}/shadow}}}}
    - {{priority: 49, service: {bs}/facts, matchRules: [{{prefixMatch: /facts}}]}}
targetHttpProxies:
- {{name: site-proxy, urlMap: global/urlMaps/site}}
forwardingRules:
- {{name: site-http, IPAddress: 127.0.0.1, portRange: "{listen}", target: global/targetHttpProxies/site-proxy}}
"#
    )
}

/// The GCP file of the config folder.
pub fn gcp(listen: u16, ports: &BTreeMap<&str, u16>) -> String {
    format!("{}{}", gcp_services(ports), gcp_url_map(listen))
}

/// One listener rule: its priority, conditions and actions (flow YAML).
fn rule(name: &str, priority: u32, conditions: &str, actions: &str) -> String {
    format!(
        r#"  {name}:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Http
      Priority: {priority}
      Conditions: {conditions}
      Actions: {actions}
"#
    )
}

fn forward(group: &str) -> String {
    format!("[{{Type: forward, TargetGroupArn: !Ref {group}}}]")
}

/// The rules of aws-alb.yaml (a path rule to a least-outstanding-requests group, a host rule
/// with a fixed response, a redirect, an 80/20 split) and one of each other condition type.
fn aws_rules() -> String {
    [
        rule("ApiRule", 10, r#"[{Field: path-pattern, PathPatternConfig: {Values: ["/api/*"]}}]"#, &forward("ApiTargets")),
        rule(
            "AdminRule",
            20,
            r#"[{Field: host-header, HostHeaderConfig: {Values: ["admin.example.com"]}}]"#,
            r#"[{Type: fixed-response, FixedResponseConfig: {StatusCode: "403", ContentType: text/plain, MessageBody: "admin is closed"}}]"#,
        ),
        rule(
            "MovedRule",
            30,
            r#"[{Field: path-pattern, PathPatternConfig: {Values: ["/old/*"]}}]"#,
            r#"[{Type: redirect, RedirectConfig: {Path: "/new", StatusCode: HTTP_301}}]"#,
        ),
        rule(
            "SecureRule",
            31,
            r#"[{Field: path-pattern, PathPatternConfig: {Values: ["/secure/*"]}}]"#,
            r#"[{Type: redirect, RedirectConfig: {Protocol: HTTPS, Port: "8443", StatusCode: HTTP_302}}]"#,
        ),
        rule(
            "AwayRule",
            32,
            r#"[{Field: path-pattern, PathPatternConfig: {Values: ["/away"]}}]"#,
            r#"[{Type: redirect, RedirectConfig: {Host: new.example, Path: "/landing", Query: "from=alb", StatusCode: HTTP_301}}]"#,
        ),
        rule(
            "KeptPathRule",
            33,
            r#"[{Field: path-pattern, PathPatternConfig: {Values: ["/keep/*"]}}]"#,
            r#"[{Type: redirect, RedirectConfig: {Path: "/new/#{path}", StatusCode: HTTP_301}}]"#,
        ),
        rule(
            "SplitRule",
            40,
            r#"[{Field: path-pattern, PathPatternConfig: {Values: ["/blue-green/*"]}}]"#,
            "[{Type: forward, ForwardConfig: {TargetGroups: [{TargetGroupArn: !Ref Blue, Weight: 80}, {TargetGroupArn: !Ref Green, Weight: 20}]}}]",
        ),
        rule("HeaderRule", 50, r#"[{Field: http-header, HttpHeaderConfig: {HttpHeaderName: X-Canary, Values: ["yes", "tru*"]}}]"#, &forward("Canary")),
        rule("QueryRule", 60, r#"[{Field: query-string, QueryStringConfig: {Values: [{Key: version, Value: "v2*"}, {Value: beta}]}}]"#, &forward("Query")),
        rule("MethodRule", 70, "[{Field: http-request-method, HttpRequestMethodConfig: {Values: [POST, PUT]}}]", &forward("Method")),
        rule("HostsRule", 80, r#"[{Field: host-header, HostHeaderConfig: {Values: ["*.shop.example", "shop?.example"]}}]"#, &forward("Shops")),
        rule("StaticRule", 90, r#"[{Field: path-pattern, PathPatternConfig: {Values: ["/img/*.png", "/v?/static/*"]}}]"#, &forward("Static")),
        rule(
            "MissingRule",
            100,
            r#"[{Field: path-pattern, PathPatternConfig: {Values: ["/missing"]}}]"#,
            r#"[{Type: fixed-response, FixedResponseConfig: {StatusCode: "404", ContentType: application/json, MessageBody: "{\"error\": \"missing\"}"}}]"#,
        ),
        rule(
            "GoneRule",
            101,
            r#"[{Field: path-pattern, PathPatternConfig: {Values: ["/gone"]}}]"#,
            r#"[{Type: fixed-response, FixedResponseConfig: {StatusCode: "410"}}]"#,
        ),
    ]
    .concat()
}

/// A load balancer `name` with `attributes`, and its HTTP listener on `listen` forwarding
/// everything to Web.
fn attributed_balancer(name: &str, listen: u16, attributes: &[(&str, &str)]) -> String {
    let attributes: String = attributes
        .iter()
        .map(|(key, value)| format!("{{Key: {key}, Value: \"{value}\"}}, "))
        .collect();
    format!(
        r#"  {name}:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Metadata: {{Switchyard: {{Ipv4Address: 127.0.0.1}}}}
    Properties: {{Type: application, LoadBalancerAttributes: [{attributes}]}}
  {name}Http:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref {name}
      Port: {listen}
      Protocol: HTTP
      DefaultActions: {}
"#,
        forward("Web")
    )
}

/// The load balancers whose attributes change what the backend is told of the client.
fn attributed_balancers(listen: Ports) -> String {
    [
        attributed_balancer(
            "Kept",
            listen.aws_kept,
            &[
                ("routing.http.xff_header_processing.mode", "preserve"),
                ("routing.http.preserve_host_header.enabled", "true"),
                ("routing.http.drop_invalid_header_fields.enabled", "true"),
            ],
        ),
        attributed_balancer(
            "Removed",
            listen.aws_removed,
            &[("routing.http.xff_header_processing.mode", "remove")],
        ),
        attributed_balancer(
            "Ported",
            listen.aws_ported,
            &[("routing.http.xff_client_port.enabled", "true")],
        ),
    ]
    .concat()
}

/// The AWS file of the config folder: a load balancer, its HTTP listener forwarding to Web
/// by default, the rules, the load balancers of attributes, and the target groups (health
/// checks off: each table row counts the requests its backends get).
pub fn aws(listen: Ports, ports: &BTreeMap<&str, u16>) -> String {
    let mut text = format!(
        r#"AWSTemplateFormatVersion: "2010-09-09"
Resources:
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Metadata: {{Switchyard: {{Ipv4Address: 127.0.0.1}}}}
    Properties: {{Type: application}}
  Http:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: {}
      Protocol: HTTP
      DefaultActions: {}
{}{}"#,
        listen.aws,
        forward("Web"),
        aws_rules(),
        attributed_balancers(listen),
    );
    for group in AWS_GROUPS {
        let attributes = if group == "ApiTargets" {
            "\n      TargetGroupAttributes: [{Key: load_balancing.algorithm.type, Value: least_outstanding_requests}]"
        } else {
            ""
        };
        text.push_str(&format!(
            r#"  {group}:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      TargetType: ip
      Protocol: HTTP
      Port: {}
      HealthCheckEnabled: false
      Targets: [{{Id: 127.0.0.1, AvailabilityZone: us-east-1a}}]{attributes}
"#,
            ports[group]
        ));
    }
    text
}
