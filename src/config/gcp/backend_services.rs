//! `backendServices` of the GCP dialect: protocol, timeouts, health checks, balancing
//! (locality policy, session affinity, consistent hash, subsetting), outlier detection,
//! connection draining, logging, and each backend's group with its balancing mode and
//! capacity. The cloud API's defaults fill what is not written. Circuit breakers, locality
//! policies and custom headers are read by `service_fields` and `custom_headers`.

use std::sync::Arc;

use crate::config::gcp::resources::{
    Backend, BackendService, BalancingMode, ConsistentHash, LoadBalancingScheme, SessionAffinity,
};
use crate::config::reader::Fields;
use crate::config::references;
use crate::config::yaml::Node;
use crate::model::{AddressSelection, BackendProtocol, Diagnostics, HttpCookie, OutlierDetection};

use super::durations::{duration, positive_duration, STREAM_LIMIT_OF_ZERO};
use super::{custom_headers, fields, open, reference, service_fields};

/// The largest timeoutSec the cloud accepts.
pub const MAX_TIMEOUT_SEC: i64 = 2_147_483_647;

/// The deprecated `port` that `gcloud compute backend-services describe` prints: a warning
/// that it changes nothing, unless portName says which port is used.
fn deprecated_port(
    fields: &mut Fields<'_>,
    port_name_written: bool,
    diagnostics: &mut Diagnostics,
) {
    if fields.get("port").is_some() && !port_name_written {
        diagnostics.warning(
            &fields.loc_of("port"),
            fields.field_path("port"),
            "deprecated in the cloud API and not used: backends are reached on their named port (portName, default `http`) or their NEG endpoint's port",
        );
    }
}

pub(super) fn backend_service(
    node: &Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<BackendService> {
    let (mut fields, name) = open(node, file, "backendServices", diagnostics)?;
    let load_balancing_scheme = fields
        .cloud_enum::<LoadBalancingScheme>("loadBalancingScheme", diagnostics)
        .unwrap_or(LoadBalancingScheme::External);
    let protocol = fields
        .cloud_enum::<BackendProtocol>("protocol", diagnostics)
        .unwrap_or(BackendProtocol::Http);
    let written_port_name = fields.string("portName", diagnostics);
    deprecated_port(&mut fields, written_port_name.is_some(), diagnostics);
    let log_sample_rate = fields.get("logConfig").and_then(|node| {
        log_config(
            node,
            fields.file(),
            fields.field_path("logConfig"),
            diagnostics,
        )
    });
    let port_name = written_port_name.unwrap_or_else(|| "http".to_string());
    let timeout_sec = fields
        .whole_seconds("timeoutSec", 1, MAX_TIMEOUT_SEC, diagnostics)
        .unwrap_or(30) as u32;
    let mut health_checks = Vec::new();
    for (index, text) in fields
        .strings("healthChecks", diagnostics)
        .into_iter()
        .enumerate()
    {
        let path = format!("{}.healthChecks[{index}]", fields.path);
        if let Some(check) = references::parse(
            &text,
            &["healthChecks"],
            &fields.loc_of("healthChecks"),
            &path,
            diagnostics,
        ) {
            health_checks.push(check);
        }
    }
    let locality_lb_policy = service_fields::locality_lb_policy(&mut fields, diagnostics);
    let policy_written =
        fields.get("localityLbPolicy").is_some() || fields.get("localityLbPolicies").is_some();
    let timeout_sec_written = fields.get("timeoutSec").is_some();
    let max_stream_duration = fields.get("maxStreamDuration").and_then(|node| {
        positive_duration(
            node,
            file,
            fields.field_path("maxStreamDuration"),
            STREAM_LIMIT_OF_ZERO,
            diagnostics,
        )
    });
    let circuit_breakers = fields.get("circuitBreakers").map(|node| {
        let path = fields.field_path("circuitBreakers");
        service_fields::circuit_breakers(node, file, path, diagnostics)
    });
    let custom_headers = custom_headers::custom_headers(&mut fields, diagnostics);
    let outlier_detection = fields.get("outlierDetection").map(|node| {
        outlier_detection(
            node,
            file,
            fields.field_path("outlierDetection"),
            diagnostics,
        )
    });
    let ip_address_selection_policy = fields
        .cloud_enum("ipAddressSelectionPolicy", diagnostics)
        .unwrap_or(AddressSelection::Ipv4Only);
    let session_affinity = fields
        .cloud_enum::<SessionAffinity>("sessionAffinity", diagnostics)
        .unwrap_or(SessionAffinity::None);
    let affinity_cookie_ttl_sec = fields
        .whole_seconds("affinityCookieTtlSec", 0, 86_400, diagnostics)
        .unwrap_or(0) as u32;
    let consistent_hash = fields
        .get("consistentHash")
        .map(|node| consistent_hash(node, file, fields.field_path("consistentHash"), diagnostics))
        .unwrap_or_default();
    let draining_timeout_sec = fields
        .mapping(
            "connectionDraining",
            diagnostics,
            |draining, diagnostics| {
                draining.whole_seconds("drainingTimeoutSec", 0, 3600, diagnostics)
            },
        )
        .unwrap_or(DEFAULT_DRAINING_TIMEOUT_SEC as i64) as u32;
    let subsetting = fields
        .mapping("subsetting", diagnostics, |subsetting, diagnostics| {
            subsetting.choice(
                "policy",
                &[("NONE", false), ("CONSISTENT_HASH_SUBSETTING", true)],
                diagnostics,
            )
        })
        .unwrap_or(false);
    let backends = fields.items("backends", diagnostics, |item, path, diagnostics| {
        backend(item, file, path, diagnostics)
    });
    let external = service_fields::external_affinity(
        load_balancing_scheme,
        session_affinity,
        affinity_cookie_ttl_sec,
        locality_lb_policy,
        policy_written,
    );
    service_fields::note_served_affinity(&fields, &external, session_affinity, diagnostics);
    if let Some(breakers) = &circuit_breakers {
        service_fields::check_per_connection_limit(&fields, breakers, protocol, diagnostics);
    }
    let loc = fields.loc();
    let field_locs = [
        "sessionAffinity",
        "localityLbPolicy",
        "subsetting",
        "protocol",
        "consistentHash",
    ]
    .into_iter()
    .map(|field| (field, fields.loc_of(field)))
    .collect();
    fields.finish(diagnostics);
    Some(BackendService {
        log_sample_rate,
        outlier_detection,
        timeout_sec_written,
        max_stream_duration,
        circuit_breakers,
        custom_headers,
        field_locs,
        ip_address_selection_policy,
        name,
        loc,
        load_balancing_scheme,
        protocol,
        port_name,
        timeout_sec,
        health_checks,
        locality_lb_policy: external.policy,
        backends,
        session_affinity,
        affinity_cookie_ttl_sec,
        consistent_hash,
        draining_timeout_sec,
        subsetting,
        slow_start: None,
        minimum_healthy: None,
        prefer_client_zone: false,
        sticky_cookie: external
            .sticky_cookie
            .map(|cookie| crate::model::StickyCookie {
                cookie,
                application_cookie: None,
            }),
    })
}

/// `logConfig`: the share of requests logged when `enable` is true (sampleRate, default 1).
fn log_config(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> Option<f64> {
    let mut fields = Fields::new(node, file, path, diagnostics);
    fields::classify(&mut fields, "BackendServiceLogConfig", diagnostics);
    let enable = fields.bool("enable", false, diagnostics);
    let rate = fields
        .number("sampleRate", 0.0, 1.0, diagnostics)
        .unwrap_or(1.0);
    fields.finish(diagnostics);
    enable.then_some(rate)
}

/// `outlierDetection`, with the cloud API's defaults for what is not written.
fn outlier_detection(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> OutlierDetection {
    let mut fields = Fields::new(node, file, path, diagnostics);
    let mut count = |key: &'static str, max: i64, default: u32, diagnostics: &mut Diagnostics| {
        fields
            .integer(key, 0, max, diagnostics)
            .map(|v| v as u32)
            .unwrap_or(default)
    };
    let consecutive_errors = count("consecutiveErrors", 1_000_000, 5, diagnostics);
    let consecutive_gateway_failure = count("consecutiveGatewayFailure", 1_000_000, 3, diagnostics);
    let enforcing_consecutive_errors = count("enforcingConsecutiveErrors", 100, 0, diagnostics);
    let enforcing_consecutive_gateway_failure =
        count("enforcingConsecutiveGatewayFailure", 100, 100, diagnostics);
    let enforcing_success_rate = count("enforcingSuccessRate", 100, 100, diagnostics);
    let max_ejection_percent = count("maxEjectionPercent", 100, 50, diagnostics);
    let success_rate_minimum_hosts = count("successRateMinimumHosts", 1_000_000, 5, diagnostics);
    let success_rate_request_volume =
        count("successRateRequestVolume", 1_000_000, 100, diagnostics);
    let success_rate_stdev_factor = count("successRateStdevFactor", 1_000_000, 1900, diagnostics);
    let mut duration_of =
        |key: &'static str, default: u64, why_not_zero: &str, diagnostics: &mut Diagnostics| {
            fields
                .get(key)
                .and_then(|node| {
                    positive_duration(
                        node,
                        file,
                        fields.field_path(key),
                        why_not_zero,
                        diagnostics,
                    )
                })
                .unwrap_or(std::time::Duration::from_secs(default))
        };
    let interval = duration_of(
        "interval",
        1,
        "Envoy refuses an ejection sweep interval of 0 (leave interval out for 1 second)",
        diagnostics,
    );
    let base_ejection_time = duration_of(
        "baseEjectionTime",
        30,
        "Envoy refuses an ejection time of 0 (leave baseEjectionTime out for 30 seconds)",
        diagnostics,
    );
    fields.finish(diagnostics);
    OutlierDetection {
        consecutive_errors,
        consecutive_gateway_failure,
        enforcing_consecutive_errors,
        enforcing_consecutive_gateway_failure,
        enforcing_success_rate,
        interval,
        base_ejection_time,
        max_ejection_percent,
        success_rate_minimum_hosts,
        success_rate_request_volume,
        success_rate_stdev_factor,
        // The cloud has no failure-percentage ejection: off, with Envoy's defaults.
        enforcing_failure_percentage: 0,
        failure_percentage_threshold: 85,
        failure_percentage_minimum_hosts: 5,
        failure_percentage_request_volume: 50,
    }
}

/// Default connectionDraining.drainingTimeoutSec, as for AWS deregistration delay.
pub const DEFAULT_DRAINING_TIMEOUT_SEC: u32 = 300;

/// `consistentHash`: httpHeaderName, httpCookie {name, path, ttl}, minimumRingSize.
fn consistent_hash(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> ConsistentHash {
    let mut fields = Fields::new(node, file, path, diagnostics);
    let http_header_name = fields.string("httpHeaderName", diagnostics);
    let minimum_ring_size = fields
        .integer("minimumRingSize", 1, 8_388_608, diagnostics)
        .map(|size| size as u64);
    let http_cookie = fields.mapping("httpCookie", diagnostics, |cookie, diagnostics| {
        let name = cookie.required_string("name", diagnostics);
        let cookie_path = cookie.string("path", diagnostics);
        // A ttl of 0 makes a session cookie, as affinityCookieTtlSec 0 does.
        let ttl = cookie
            .get("ttl")
            .and_then(|node| duration(node, file, cookie.field_path("ttl"), diagnostics));
        Some(HttpCookie {
            name: name?,
            path: cookie_path,
            ttl,
        })
    });
    fields.finish(diagnostics);
    ConsistentHash {
        http_header_name,
        http_cookie,
        minimum_ring_size,
    }
}

/// A backend with a field error is left out of the model, so that no rule reports the
/// consequences of a value that was never read.
fn backend(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> Option<Backend> {
    let errors_before = diagnostics.errors().count();
    let mut fields = Fields::new(node, file, path, diagnostics);
    fields::classify(&mut fields, "Backend", diagnostics);
    let group = reference(
        &mut fields,
        "group",
        &["instanceGroups", "networkEndpointGroups"],
        diagnostics,
    );
    fields.require("group", diagnostics);
    let balancing_mode = fields
        .cloud_enum::<BalancingMode>("balancingMode", diagnostics)
        .unwrap_or(BalancingMode::Utilization);
    const MAX: f64 = 2_147_483_647.0;
    let max_rate = fields.number("maxRate", 0.0, MAX, diagnostics);
    let max_rate_per_instance = fields.number("maxRatePerInstance", 0.0, MAX, diagnostics);
    let max_rate_per_endpoint = fields.number("maxRatePerEndpoint", 0.0, MAX, diagnostics);
    let max_connections = fields.number("maxConnections", 0.0, MAX, diagnostics);
    let max_connections_per_instance =
        fields.number("maxConnectionsPerInstance", 0.0, MAX, diagnostics);
    let max_connections_per_endpoint =
        fields.number("maxConnectionsPerEndpoint", 0.0, MAX, diagnostics);
    let max_utilization = fields.number("maxUtilization", 0.0, 1.0, diagnostics);
    let capacity_scaler = capacity_scaler(&mut fields, diagnostics);
    let loc = fields.loc();
    fields.finish(diagnostics);
    if diagnostics.errors().count() > errors_before {
        return None;
    }
    Some(Backend {
        group: group?,
        loc,
        balancing_mode,
        max_rate,
        max_rate_per_instance,
        max_rate_per_endpoint,
        max_connections,
        max_connections_per_instance,
        max_connections_per_endpoint,
        max_utilization,
        capacity_scaler,
    })
}

/// capacityScaler: exactly 0.0, or 0.1 to 1.0 (default 1.0).
fn capacity_scaler(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> f64 {
    let Some(value) = fields.number("capacityScaler", 0.0, 1.0, diagnostics) else {
        return 1.0;
    };
    if value != 0.0 && value < 0.1 {
        diagnostics.error(
            &fields.loc_of("capacityScaler"),
            fields.field_path("capacityScaler"),
            format!(
                "{value} is not allowed; capacityScaler must be exactly 0.0 or between 0.1 and 1.0"
            ),
        );
        return 1.0;
    }
    value
}
