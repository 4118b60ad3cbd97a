//! Durations refused with file, line, path, value and what is allowed: a fraction in a field
//! the cloud keeps in whole seconds (both dialects), a fraction in Duration.seconds, a value
//! out of the cloud's range, and a zero that Envoy would read as "no limit" or rejects. Each
//! case breaks one field of the valid configs of durations.rs.

use switchyard::config::load_str;

use crate::durations::{aws_valid, gcp_valid};

/// The errors of config `text` read as `lb.yaml`, one per line.
fn errors_of(text: &str) -> Vec<String> {
    let loaded = load_str(text, "lb.yaml");
    loaded
        .diagnostics
        .errors()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_valid_configs_are_valid() {
    assert_eq!(errors_of(&gcp_valid()), Vec::<String>::new());
    assert_eq!(errors_of(&aws_valid()), Vec::<String>::new());
}

/// The errors of the valid GCP config with `from` replaced by `to` (once).
fn gcp_errors(from: &str, to: &str) -> Vec<String> {
    let valid = gcp_valid();
    assert!(valid.contains(from), "{from} is not in:\n{valid}");
    errors_of(&valid.replacen(from, to, 1))
}

const ROUTE: &str = "urlMaps[lb].pathMatchers[m].routeRules[0].routeAction";

/// What every refused zero says after its reason.
const MORE_THAN_ZERO: &str =
    "allowed: more than 0 (seconds 0 to 315576000000, nanos 0 to 999999999, not both 0)";

#[test]
fn a_zero_route_timeout_is_refused_not_served_as_no_timeout() {
    for zero in ["{seconds: 0}", "{nanos: 0}", "{seconds: 0, nanos: 0}", "{}"] {
        assert_eq!(
            gcp_errors("timeout: {seconds: 0, nanos: 500000000}", &format!("timeout: {zero}")),
            vec![format!("error: lb.yaml:35: {ROUTE}.timeout: a duration of 0 is not allowed here: Envoy reads a route timeout of 0 as no timeout at all (leave timeout out to use the backend services' timeoutSec); {MORE_THAN_ZERO}")],
            "{zero}"
        );
    }
}

#[test]
fn zero_durations_the_cloud_or_envoy_refuse_are_refused_by_path() {
    let cases = [
        (
            "maxStreamDuration: {seconds: 3, nanos: 0}",
            "maxStreamDuration: {seconds: 0}",
            format!("36: {ROUTE}.maxStreamDuration: a duration of 0 is not allowed here: Envoy and gRPC read a stream limit of 0 as no limit (leave maxStreamDuration out for no limit)"),
        ),
        (
            "perTryTimeout: {seconds: 1, nanos: 0}",
            "perTryTimeout: {nanos: 0}",
            format!("37: {ROUTE}.retryPolicy.perTryTimeout: a duration of 0 is not allowed here: the cloud requires a timeout per retry that is not zero (leave perTryTimeout out to use the route's timeout)"),
        ),
        (
            "fixedDelay: {seconds: 0, nanos: 250000000}",
            "fixedDelay: {seconds: 0, nanos: 0}",
            format!("38: {ROUTE}.faultInjectionPolicy.delay.fixedDelay: a duration of 0 is not allowed here: Envoy refuses a fault delay of 0, which would delay nothing (remove the delay instead)"),
        ),
        (
            "maxStreamDuration: {seconds: 5, nanos: 0}",
            "maxStreamDuration: {}",
            "10: backendServices[web].maxStreamDuration: a duration of 0 is not allowed here: Envoy and gRPC read a stream limit of 0 as no limit (leave maxStreamDuration out for no limit)".to_string(),
        ),
        (
            "interval: {seconds: 2, nanos: 0}",
            "interval: {seconds: 0}",
            "15: backendServices[web].outlierDetection.interval: a duration of 0 is not allowed here: Envoy refuses an ejection sweep interval of 0 (leave interval out for 1 second)".to_string(),
        ),
        (
            "baseEjectionTime: {seconds: 30, nanos: 0}",
            "baseEjectionTime: {seconds: '0'}",
            "15: backendServices[web].outlierDetection.baseEjectionTime: a duration of 0 is not allowed here: Envoy refuses an ejection time of 0 (leave baseEjectionTime out for 30 seconds)".to_string(),
        ),
    ];
    for (from, to, expected) in cases {
        assert_eq!(
            gcp_errors(from, to),
            vec![format!("error: lb.yaml:{expected}; {MORE_THAN_ZERO}")],
            "{to}"
        );
    }
}

#[test]
fn a_zero_cookie_ttl_is_a_session_cookie_and_zero_seconds_fields_keep_their_floor() {
    assert!(
        gcp_errors("ttl: {seconds: 0, nanos: 0}", "ttl: {}").is_empty(),
        "a cookie ttl of 0 makes a session cookie, as the cloud documents"
    );
    assert_eq!(
        gcp_errors("checkIntervalSec: 5", "checkIntervalSec: 0"),
        vec!["error: lb.yaml:4: healthChecks[hc].checkIntervalSec: 0 is out of range; allowed: 1 to 300"]
    );
    assert_eq!(
        gcp_errors("timeoutSec: 30", "timeoutSec: 0"),
        vec!["error: lb.yaml:9: backendServices[web].timeoutSec: 0 is out of range; allowed: 1 to 2147483647"]
    );
}

#[test]
fn a_duration_out_of_the_cloud_range_is_refused() {
    assert_eq!(
        gcp_errors(
            "timeout: {seconds: 0, nanos: 500000000}",
            "timeout: {seconds: 0, nanos: 1000000000}"
        ),
        vec![format!("error: lb.yaml:35: {ROUTE}.timeout.nanos: 1000000000 is out of range; allowed: 0 to 999999999")]
    );
    assert_eq!(
        gcp_errors(
            "timeout: {seconds: 0, nanos: 500000000}",
            "timeout: {seconds: 315576000001}"
        ),
        vec![format!("error: lb.yaml:35: {ROUTE}.timeout.seconds: 315576000001 is out of range; allowed: 0 to 315576000000")]
    );
    assert_eq!(
        gcp_errors(
            "timeout: {seconds: 0, nanos: 500000000}",
            "timeout: {seconds: -1, nanos: 500000000}"
        ),
        vec![format!("error: lb.yaml:35: {ROUTE}.timeout.seconds: -1 is out of range; allowed: 0 to 315576000000")]
    );
}

#[test]
fn a_fraction_in_duration_seconds_points_at_nanos() {
    assert_eq!(
        gcp_errors(
            "timeout: {seconds: 0, nanos: 500000000}",
            "timeout: {seconds: 1.5}"
        ),
        vec![format!("error: lb.yaml:35: {ROUTE}.timeout.seconds: `1.5` has a fraction; seconds takes whole seconds from 0 to 315576000000 (write the fraction in nanos: 1.5 s is {{seconds: 1, nanos: 500000000}})")]
    );
}

#[test]
fn a_fraction_in_a_whole_seconds_gcp_field_is_refused_by_name() {
    let cases = [
        (
            "timeoutSec: 30",
            "timeoutSec: 1.5",
            "9: backendServices[web].timeoutSec: `1.5` has a fraction; timeoutSec takes whole seconds from 1 to 2147483647",
        ),
        (
            "affinityCookieTtlSec: 60",
            "affinityCookieTtlSec: 0.5",
            "21: backendServices[generated].affinityCookieTtlSec: `0.5` has a fraction; affinityCookieTtlSec takes whole seconds from 0 to 86400",
        ),
        (
            "drainingTimeoutSec: 300",
            "drainingTimeoutSec: 2.5",
            "11: backendServices[web].connectionDraining.drainingTimeoutSec: `2.5` has a fraction; drainingTimeoutSec takes whole seconds from 0 to 3600",
        ),
        (
            "checkIntervalSec: 5",
            "checkIntervalSec: 4.5",
            "4: healthChecks[hc].checkIntervalSec: `4.5` has a fraction; checkIntervalSec takes whole seconds from 1 to 300",
        ),
        (
            "timeoutSec: 5}",
            "timeoutSec: 1.25}",
            "4: healthChecks[hc].timeoutSec: `1.25` has a fraction; timeoutSec takes whole seconds from 1 to 300",
        ),
    ];
    for (from, to, expected) in cases {
        assert_eq!(
            gcp_errors(from, to),
            vec![format!("error: lb.yaml:{expected}")],
            "{to}"
        );
    }
}

#[test]
fn a_fraction_in_an_aws_seconds_field_is_refused_by_name() {
    const WEB: &str = "Resources.Web.Properties";
    let cases = [
        (
            "DurationSeconds: 600",
            "DurationSeconds: 600.5",
            "15: Resources.Http.Properties.DefaultActions[0].ForwardConfig.TargetGroupStickinessConfig.DurationSeconds: `600.5` has a fraction; DurationSeconds takes whole seconds from 1 to 604800".to_string(),
        ),
        (
            "HealthCheckIntervalSeconds: 10",
            "HealthCheckIntervalSeconds: 10.5",
            format!("22: {WEB}.HealthCheckIntervalSeconds: `10.5` has a fraction; HealthCheckIntervalSeconds takes whole seconds from 5 to 300"),
        ),
        (
            "HealthCheckTimeoutSeconds: 5",
            "HealthCheckTimeoutSeconds: 2.5",
            format!("23: {WEB}.HealthCheckTimeoutSeconds: `2.5` has a fraction; HealthCheckTimeoutSeconds takes whole seconds from 2 to 120"),
        ),
        (
            "timeout_seconds, Value: \"30\"",
            "timeout_seconds, Value: \"30.5\"",
            format!("26: {WEB}.TargetGroupAttributes[deregistration_delay.timeout_seconds]: `30.5` is not allowed; deregistration_delay.timeout_seconds is an integer from 0 to 3600"),
        ),
        (
            "slow_start.duration_seconds, Value: \"60\"",
            "slow_start.duration_seconds, Value: \"60.5\"",
            format!("27: {WEB}.TargetGroupAttributes[slow_start.duration_seconds]: `60.5` is not allowed; slow_start.duration_seconds is 0 (off) or from 30 to 900 seconds"),
        ),
        (
            "lb_cookie.duration_seconds, Value: \"3600\"",
            "lb_cookie.duration_seconds, Value: \"3600.5\"",
            format!("30: {WEB}.TargetGroupAttributes[stickiness.lb_cookie.duration_seconds]: `3600.5` is not allowed; stickiness.lb_cookie.duration_seconds is an integer from 1 to 604800"),
        ),
    ];
    let valid = aws_valid();
    for (from, to, expected) in cases {
        assert!(valid.contains(from), "{from}");
        assert_eq!(
            errors_of(&valid.replacen(from, to, 1)),
            vec![format!("error: lb.yaml:{expected}")],
            "{to}"
        );
    }
}
