//! Durations of both dialects, from the YAML to the xDS, without sockets: a property over
//! generated values (fractions included) for every duration field — what the YAML says is
//! what the xDS says, seconds and nanos exactly. What is refused (a fraction in a field the
//! cloud keeps in whole seconds, a zero that means "no limit" or that Envoy rejects):
//! durations_refused.rs; through a real Envoy and grpcio: durations_served.rs.

use envoy_types::pb::envoy::config::cluster::v3::cluster::LbConfig;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::PolicySpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{FilterConfig, Route, RouteAction};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::stateful_session::v3::{
    stateful_session_per_route::Override, StatefulSessionPerRoute,
};
use envoy_types::pb::envoy::extensions::http::stateful_session::cookie::v3::CookieBasedSessionState;
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;
use proptest::prelude::*;
use prost::Message;
use switchyard::config::{load_str, Loaded};
use switchyard::translate::{translate, Resources};

/// A duration as the YAML writes it and as xDS carries it: (seconds, nanos).
type Span = (i64, i32);

/// The longest Duration the cloud API takes (10,000 years of seconds).
const MAX_SECONDS: i64 = 315_576_000_000;

/// 256 cases per property unless PROPTEST_CASES says otherwise; failures are kept next to
/// this file, as properties.rs keeps its own.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(256),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    }
}

/// Any Duration the cloud API takes: under a second, minutes, and the whole range, most
/// with a fraction; zero included.
fn any_span() -> impl Strategy<Value = Span> {
    prop_oneof![
        Just((0, 0)),
        (Just(0i64), 1..=999_999_999i32),
        (0..=3_600i64, 0..=999_999_999i32),
        (0..=MAX_SECONDS, 0..=999_999_999i32),
    ]
}

/// A Duration longer than zero.
fn positive_span() -> impl Strategy<Value = Span> {
    any_span().prop_filter("longer than zero", |&(s, n)| s > 0 || n > 0)
}

/// `span` as a YAML flow mapping, in one of the ways people and gcloud write it: both
/// fields, only the non-zero ones, or seconds quoted (gcloud prints int64 as a string).
fn span_yaml((seconds, nanos): Span, style: u8) -> String {
    match style % 3 {
        0 => format!("{{seconds: {seconds}, nanos: {nanos}}}"),
        1 if nanos == 0 => format!("{{seconds: {seconds}}}"),
        1 if seconds == 0 => format!("{{nanos: {nanos}}}"),
        2 => format!("{{seconds: '{seconds}', nanos: {nanos}}}"),
        _ => format!("{{nanos: {nanos}, seconds: {seconds}}}"),
    }
}

fn span_of(duration: Option<&ProtoDuration>) -> Span {
    let duration = duration.expect("the xDS field is set");
    (duration.seconds, duration.nanos)
}

fn loaded(text: &str) -> Loaded {
    let loaded = load_str(text, "lb.yaml");
    assert!(
        !loaded.diagnostics.has_errors(),
        "{}\n{text}",
        loaded.diagnostics
    );
    loaded
}

/// The route of `config` (Envoy's or the proxyless one) that matches `prefix`.
fn route<'a>(
    routes: &'a [envoy_types::pb::envoy::config::route::v3::RouteConfiguration],
    prefix: &str,
) -> &'a Route {
    routes
        .iter()
        .flat_map(|config| &config.virtual_hosts)
        .flat_map(|host| &host.routes)
        .find(|route| {
            route
                .r#match
                .as_ref()
                .and_then(|m| m.path_specifier.as_ref())
                == Some(&PathSpecifier::Prefix(prefix.to_string()))
        })
        .unwrap_or_else(|| panic!("a route for {prefix}"))
}

fn action(route: &Route) -> &RouteAction {
    match &route.action {
        Some(Action::Route(action)) => action,
        other => panic!("a route action, found {other:?}"),
    }
}

fn cluster<'a>(resources: &'a Resources, name: &str) -> &'a Cluster {
    resources
        .clusters
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("cluster {name}"))
}

fn stream_limit(route: &Route) -> Span {
    let limit = action(route).max_stream_duration.as_ref();
    span_of(limit.and_then(|m| m.max_stream_duration.as_ref()))
}

fn fault_delay(route: &Route) -> Span {
    let any = &route.typed_per_filter_config["envoy.filters.http.fault"];
    let fault = HttpFault::decode(any.value.as_slice()).unwrap();
    match fault.delay.and_then(|d| d.fault_delay_secifier) {
        Some(FaultDelaySecifier::FixedDelay(delay)) => (delay.seconds, delay.nanos),
        other => panic!("a fixed delay, found {other:?}"),
    }
}

fn hash_cookie_ttl(route: &Route) -> Span {
    match &action(route).hash_policy[0].policy_specifier {
        Some(PolicySpecifier::Cookie(cookie)) => span_of(cookie.ttl.as_ref()),
        other => panic!("a cookie hash policy, found {other:?}"),
    }
}

/// The ttl of the cookie a route's stateful session issues.
fn session_cookie_ttl(route: &Route) -> Span {
    let any = &route.typed_per_filter_config["envoy.filters.http.stateful_session"];
    let wrapper = FilterConfig::decode(any.value.as_slice()).unwrap();
    let per_route =
        StatefulSessionPerRoute::decode(wrapper.config.unwrap().value.as_slice()).unwrap();
    let Some(Override::StatefulSession(session)) = per_route.r#override else {
        panic!("a stateful session")
    };
    let state = session.session_state.unwrap().typed_config.unwrap();
    let state = CookieBasedSessionState::decode(state.value.as_slice()).unwrap();
    span_of(state.cookie.unwrap().ttl.as_ref())
}

/// Max-Age of the cookie a route sets on its responses.
fn set_cookie_max_age(route: &Route) -> i64 {
    let header = route
        .response_headers_to_add
        .iter()
        .filter_map(|option| option.header.as_ref())
        .find(|header| header.key.eq_ignore_ascii_case("set-cookie"))
        .expect("a set-cookie header");
    header
        .value
        .split("; ")
        .find_map(|part| part.strip_prefix("Max-Age="))
        .expect("the cookie has a Max-Age")
        .parse()
        .unwrap()
}

/// Interval and timeout of the single health check a model probes with.
fn probe_timing(model: &switchyard::model::Model) -> (std::time::Duration, std::time::Duration) {
    let plan = switchyard::health::targets::plan(model);
    let target = plan.targets.keys().next().expect("a probed target");
    (target.check.interval(), target.check.timeout())
}

fn seconds(duration: std::time::Duration) -> Span {
    (duration.as_secs() as i64, duration.subsec_nanos() as i32)
}

/// Every duration field of the GCP dialect, one value each.
#[derive(Clone, Debug)]
struct GcpDurations {
    route_timeout: Span,
    route_stream_limit: Span,
    per_try_timeout: Span,
    fixed_delay: Span,
    service_stream_limit: Span,
    outlier_interval: Span,
    base_ejection_time: Span,
    cookie_ttl: Span,
    timeout_sec: i64,
    affinity_cookie_ttl_sec: i64,
    draining_timeout_sec: i64,
    check_interval_sec: i64,
    check_timeout_sec: i64,
    /// How each Duration field is written (see `span_yaml`).
    styles: [u8; 8],
}

prop_compose! {
    fn gcp_durations()(
        route_timeout in positive_span(),
        route_stream_limit in positive_span(),
        per_try_timeout in positive_span(),
        fixed_delay in positive_span(),
        service_stream_limit in positive_span(),
        outlier_interval in positive_span(),
        base_ejection_time in positive_span(),
        cookie_ttl in any_span(),
        timeout_sec in prop_oneof![1..=600i64, 1..=2_147_483_647i64],
        affinity_cookie_ttl_sec in 0..=86_400i64,
        draining_timeout_sec in 0..=3_600i64,
        (check_interval_sec, check_timeout_sec) in (1..=300i64).prop_flat_map(|i| (Just(i), 1..=i)),
        styles in any::<[u8; 8]>(),
    ) -> GcpDurations {
        GcpDurations {
            route_timeout, route_stream_limit, per_try_timeout, fixed_delay,
            service_stream_limit, outlier_interval, base_ejection_time, cookie_ttl,
            timeout_sec, affinity_cookie_ttl_sec, draining_timeout_sec,
            check_interval_sec, check_timeout_sec, styles,
        }
    }
}

impl GcpDurations {
    /// A config writing each duration once: route `/timed` has every routeAction duration,
    /// `/plain` only its service's, `/generated` goes to a GENERATED_COOKIE service; the URL
    /// map is served to Envoy and to proxyless clients.
    fn yaml(&self) -> String {
        let d = |span: Span, field: usize| span_yaml(span, self.styles[field]);
        format!(
            r#"networkEndpointGroups:
- {{name: neg, zone: us-central1-a, endpoints: [{{ipAddress: 10.0.0.1, port: 80}}]}}
healthChecks:
- {{name: hc, type: HTTP, httpHealthCheck: {{port: 80}}, checkIntervalSec: {interval}, timeoutSec: {check_timeout}}}
backendServices:
- name: web
  loadBalancingScheme: INTERNAL_SELF_MANAGED
  healthChecks: [global/healthChecks/hc]
  timeoutSec: {timeout_sec}
  maxStreamDuration: {service_limit}
  connectionDraining: {{drainingTimeoutSec: {draining}}}
  localityLbPolicy: RING_HASH
  sessionAffinity: HTTP_COOKIE
  consistentHash: {{httpCookie: {{name: session, ttl: {cookie_ttl}}}}}
  outlierDetection: {{interval: {interval_span}, baseEjectionTime: {ejection}}}
  backends: [{{group: zones/us-central1-a/networkEndpointGroups/neg, balancingMode: RATE, maxRate: 10}}]
- name: generated
  loadBalancingScheme: INTERNAL_SELF_MANAGED
  localityLbPolicy: RING_HASH
  sessionAffinity: GENERATED_COOKIE
  affinityCookieTtlSec: {affinity_ttl}
  backends: [{{group: zones/us-central1-a/networkEndpointGroups/neg, balancingMode: RATE, maxRate: 10}}]
urlMaps:
- name: lb
  defaultService: global/backendServices/web
  hostRules: [{{hosts: ['*'], pathMatcher: m}}]
  pathMatchers:
  - name: m
    defaultService: global/backendServices/web
    routeRules:
    - priority: 1
      matchRules: [{{prefixMatch: /timed}}]
      service: global/backendServices/web
      routeAction:
        timeout: {route_timeout}
        maxStreamDuration: {route_limit}
        retryPolicy: {{retryConditions: [5xx], numRetries: 2, perTryTimeout: {per_try}}}
        faultInjectionPolicy: {{delay: {{fixedDelay: {delay}, percentage: 50}}}}
    - priority: 2
      matchRules: [{{prefixMatch: /plain}}]
      service: global/backendServices/web
    - priority: 3
      matchRules: [{{prefixMatch: /generated}}]
      service: global/backendServices/generated
targetHttpProxies: [{{name: http, urlMap: global/urlMaps/lb}}]
targetGrpcProxies: [{{name: grpc, urlMap: global/urlMaps/lb}}]
forwardingRules:
- {{name: envoy, loadBalancingScheme: INTERNAL_SELF_MANAGED, IPAddress: 127.0.0.1, portRange: '8080', target: global/targetHttpProxies/http}}
- {{name: proxyless, loadBalancingScheme: INTERNAL_SELF_MANAGED, IPAddress: 0.0.0.0, portRange: '9090', target: global/targetGrpcProxies/grpc}}
"#,
            interval = self.check_interval_sec,
            check_timeout = self.check_timeout_sec,
            timeout_sec = self.timeout_sec,
            service_limit = d(self.service_stream_limit, 0),
            draining = self.draining_timeout_sec,
            cookie_ttl = d(self.cookie_ttl, 1),
            interval_span = d(self.outlier_interval, 2),
            ejection = d(self.base_ejection_time, 3),
            affinity_ttl = self.affinity_cookie_ttl_sec,
            route_timeout = d(self.route_timeout, 4),
            route_limit = d(self.route_stream_limit, 5),
            per_try = d(self.per_try_timeout, 6),
            delay = d(self.fixed_delay, 7),
        )
    }
}

/// Every seconds attribute and property of the AWS dialect, one value each.
#[derive(Clone, Debug)]
struct AwsSeconds {
    deregistration_delay: i64,
    slow_start: i64,
    lb_cookie: i64,
    group_stickiness: i64,
    check_interval: i64,
    check_timeout: i64,
}

prop_compose! {
    fn aws_seconds()(
        deregistration_delay in 0..=3_600i64,
        slow_start in 30..=900i64,
        lb_cookie in 1..=604_800i64,
        group_stickiness in 1..=604_800i64,
        (check_interval, check_timeout) in (5..=300i64).prop_flat_map(|i| (Just(i), 2..=(i - 1).min(120))),
    ) -> AwsSeconds {
        AwsSeconds { deregistration_delay, slow_start, lb_cookie, group_stickiness, check_interval, check_timeout }
    }
}

impl AwsSeconds {
    /// A listener splitting between `Web` (every seconds attribute) and `Other`, with group
    /// stickiness.
    fn yaml(&self) -> String {
        format!(
            r#"Resources:
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: {{Type: application}}
  Http:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: 8080
      Protocol: HTTP
      DefaultActions:
      - Type: forward
        ForwardConfig:
          TargetGroups: [{{TargetGroupArn: !Ref Web, Weight: 1}}, {{TargetGroupArn: !Ref Other, Weight: 1}}]
          TargetGroupStickinessConfig: {{Enabled: true, DurationSeconds: {group}}}
  Web:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      TargetType: ip
      Protocol: HTTP
      Port: 80
      HealthCheckIntervalSeconds: {interval}
      HealthCheckTimeoutSeconds: {timeout}
      Targets: [{{Id: 10.0.0.1, Port: 80, AvailabilityZone: us-east-1a}}]
      TargetGroupAttributes:
      - {{Key: deregistration_delay.timeout_seconds, Value: "{deregistration}"}}
      - {{Key: slow_start.duration_seconds, Value: "{slow_start}"}}
      - {{Key: stickiness.enabled, Value: "true"}}
      - {{Key: stickiness.type, Value: lb_cookie}}
      - {{Key: stickiness.lb_cookie.duration_seconds, Value: "{lb_cookie}"}}
  Other:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      TargetType: ip
      Protocol: HTTP
      Port: 80
      HealthCheckEnabled: false
      Targets: [{{Id: 10.0.0.2, Port: 80, AvailabilityZone: us-east-1a}}]
"#,
            group = self.group_stickiness,
            interval = self.check_interval,
            timeout = self.check_timeout,
            deregistration = self.deregistration_delay,
            slow_start = self.slow_start,
            lb_cookie = self.lb_cookie,
        )
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_gcp_duration_reaches_xds_as_written(written in gcp_durations()) {
        let text = written.yaml();
        let loaded = loaded(&text);
        let out = translate(&loaded.model);

        let timed = route(&out.routes, "/timed");
        prop_assert_eq!(span_of(action(timed).timeout.as_ref()), written.route_timeout, "routeAction.timeout");
        prop_assert_eq!(stream_limit(timed), written.route_stream_limit, "routeAction.maxStreamDuration");
        let retry = action(timed).retry_policy.as_ref().expect("a retry policy");
        prop_assert_eq!(span_of(retry.per_try_timeout.as_ref()), written.per_try_timeout, "perTryTimeout");
        prop_assert_eq!(fault_delay(timed), written.fixed_delay, "fixedDelay");
        prop_assert_eq!(hash_cookie_ttl(timed), written.cookie_ttl, "consistentHash.httpCookie.ttl");
        let plain = route(&out.routes, "/plain");
        prop_assert_eq!(span_of(action(plain).timeout.as_ref()), (written.timeout_sec, 0), "timeoutSec");
        let generated = route(&out.routes, "/generated");
        prop_assert_eq!(hash_cookie_ttl(generated), (written.affinity_cookie_ttl_sec, 0), "affinityCookieTtlSec");

        let outliers = cluster(&out, "web").outlier_detection.as_ref().expect("outlier detection");
        prop_assert_eq!(span_of(outliers.interval.as_ref()), written.outlier_interval, "outlierDetection.interval");
        prop_assert_eq!(span_of(outliers.base_ejection_time.as_ref()), written.base_ejection_time, "baseEjectionTime");

        // Proxyless clients get the same durations, and the service's stream limit.
        let timed = route(&out.proxyless_routes, "/timed");
        prop_assert_eq!(stream_limit(timed), written.route_stream_limit, "proxyless routeAction.maxStreamDuration");
        prop_assert_eq!(fault_delay(timed), written.fixed_delay, "proxyless fixedDelay");
        prop_assert_eq!(session_cookie_ttl(timed), written.cookie_ttl, "proxyless httpCookie.ttl");
        let plain = route(&out.proxyless_routes, "/plain");
        prop_assert_eq!(stream_limit(plain), written.service_stream_limit, "backend service maxStreamDuration");

        // Not xDS: the draining the publisher applies and the checker's probe timing.
        let web = &loaded.model.services["web"];
        prop_assert_eq!(web.draining_timeout.as_secs() as i64, written.draining_timeout_sec);
        let (interval, timeout) = probe_timing(&loaded.model);
        prop_assert_eq!(seconds(interval), (written.check_interval_sec, 0), "checkIntervalSec");
        prop_assert_eq!(seconds(timeout), (written.check_timeout_sec, 0), "healthChecks timeoutSec");
    }

    #[test]
    fn every_aws_seconds_field_reaches_xds_as_written(written in aws_seconds()) {
        let text = written.yaml();
        let loaded = loaded(&text);
        let out = translate(&loaded.model);

        let web = cluster(&out, "Web");
        let Some(LbConfig::RoundRobinLbConfig(round_robin)) = &web.lb_config else {
            panic!("round robin with slow start: {:?}", web.lb_config)
        };
        let window = round_robin.slow_start_config.as_ref().and_then(|s| s.slow_start_window.as_ref());
        prop_assert_eq!(span_of(window), (written.slow_start, 0), "slow_start.duration_seconds");

        // The split's routes: one per group for clients carrying the group cookie (Web's
        // also issues its lb_cookie), then the split, which sets the group cookie.
        let routes: Vec<&Route> = out.routes.iter().flat_map(|c| &c.virtual_hosts).flat_map(|h| &h.routes).collect();
        let sticky_web = routes.iter().find(|r| r.typed_per_filter_config.contains_key("envoy.filters.http.stateful_session")).expect("Web's sticky route");
        prop_assert_eq!(session_cookie_ttl(sticky_web), (written.lb_cookie, 0), "stickiness.lb_cookie.duration_seconds");
        prop_assert_eq!(set_cookie_max_age(sticky_web), written.group_stickiness, "DurationSeconds");

        let model_web = &loaded.model.services["Web"];
        prop_assert_eq!(model_web.draining_timeout.as_secs() as i64, written.deregistration_delay, "deregistration_delay.timeout_seconds");
        let (interval, timeout) = probe_timing(&loaded.model);
        prop_assert_eq!(seconds(interval), (written.check_interval, 0), "HealthCheckIntervalSeconds");
        prop_assert_eq!(seconds(timeout), (written.check_timeout, 0), "HealthCheckTimeoutSeconds");
    }
}

/// A valid GCP config with every duration field written as in `GcpDurations`.
pub fn gcp_valid() -> String {
    GcpDurations {
        route_timeout: (0, 500_000_000),
        route_stream_limit: (3, 0),
        per_try_timeout: (1, 0),
        fixed_delay: (0, 250_000_000),
        service_stream_limit: (5, 0),
        outlier_interval: (2, 0),
        base_ejection_time: (30, 0),
        cookie_ttl: (0, 0),
        timeout_sec: 30,
        affinity_cookie_ttl_sec: 60,
        draining_timeout_sec: 300,
        check_interval_sec: 5,
        check_timeout_sec: 5,
        styles: [0; 8],
    }
    .yaml()
}

/// A valid AWS template with every seconds field written as in `AwsSeconds`.
pub fn aws_valid() -> String {
    AwsSeconds {
        deregistration_delay: 30,
        slow_start: 60,
        lb_cookie: 3_600,
        group_stickiness: 600,
        check_interval: 10,
        check_timeout: 5,
    }
    .yaml()
}

#[test]
fn a_half_second_route_timeout_is_half_a_second() {
    let out = translate(&loaded(&gcp_valid()).model);
    let timeout = action(route(&out.routes, "/timed")).timeout;
    assert_eq!(
        timeout.map(|t| (t.seconds, t.nanos)),
        Some((0, 500_000_000)),
        "{{nanos: 500000000}} is 0.5 s, not 0 s (which Envoy reads as no timeout)"
    );
}
