//! A target group lowered into the model: a service (protocol from Protocol and
//! ProtocolVersion; algorithm, anomaly mitigation, slow start, stickiness, deregistration
//! delay, cross-zone and minimum healthy targets as its policies), one endpoint group per zone
//! of its targets, each target one equal share, and its health check for the centralized
//! checker. Must not: know xDS.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::model::{
    AddressSelection, Affinity, BackendProtocol, BalancingPolicy, Capacity, CapacityTarget,
    CapacityUnit, CapacityWritten, Diagnostics, Endpoint, EndpointGroup, GrpcCheckCall,
    HealthCheck, HealthCheckProtocol, HttpCookie, Members, MinimumHealthy, Model, OutlierDetection,
    PortSelection, Ref, Service, ServiceBackend, StickyCookie,
};

use super::attributes::{Algorithm, CrossZone, Stickiness};
use super::health_check::{CheckPort, Matcher};
use super::lower::insert;
use super::target_groups::{self, Protocol, ProtocolVersion, TargetGroup};

/// The service's request timeout: an ALB's default idle timeout. Envoy's routes of a
/// listener take their load balancer's idle timeout instead (`lower_frontends`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The name of the cookie lb_cookie stickiness issues.
pub const LB_COOKIE: &str = "AWSALB";

/// The name of the cookie app_cookie stickiness issues beside the application's own (an ALB
/// splits its encrypted value over AWSALBAPP-0 to -3; one is enough here).
pub const APP_COOKIE: &str = "AWSALBAPP-0";

/// The backend protocol of a target group's protocol and version.
fn backend_protocol(group: &TargetGroup) -> BackendProtocol {
    match (group.protocol, group.protocol_version) {
        (Protocol::Http, ProtocolVersion::Http1) => BackendProtocol::Http,
        (Protocol::Https, ProtocolVersion::Http1) => BackendProtocol::Https,
        (Protocol::Http, ProtocolVersion::Http2) => BackendProtocol::H2c,
        (Protocol::Http, ProtocolVersion::Grpc) => BackendProtocol::Grpc,
        // HTTP/2 over TLS carries gRPC as well.
        (Protocol::Https, ProtocolVersion::Http2 | ProtocolVersion::Grpc) => BackendProtocol::Http2,
    }
}

pub(super) fn lower_target_group(
    group: &TargetGroup,
    model: &mut Model,
    diagnostics: &mut Diagnostics,
) {
    let name = &group.logical_id;
    let attributes = &group.attributes;
    let mut zones: BTreeMap<&str, Vec<&target_groups::Target>> = BTreeMap::new();
    for target in &group.targets {
        zones.entry(target.zone.as_str()).or_default().push(target);
    }
    let mut backends = Vec::new();
    for (zone, targets) in &zones {
        let group_name = if zone.is_empty() {
            name.clone()
        } else {
            format!("{name}-{zone}")
        };
        let endpoint_group = EndpointGroup {
            name: group_name.clone(),
            loc: group.loc.clone(),
            members: Members::Endpoints,
            zone: zone.to_string(),
            region: targets[0].region().to_string(),
            named_ports: BTreeMap::new(),
            default_port: Some(group.port),
            endpoints: targets.iter().map(|target| endpoint(target)).collect(),
        };
        insert(
            &mut model.endpoint_groups,
            group_name.clone(),
            endpoint_group,
            &group.loc,
            diagnostics,
        );
        let count = targets.len();
        backends.push(ServiceBackend {
            group: Ref {
                name: group_name,
                loc: group.loc.clone(),
                path: format!("Resources.{name}.Properties.Targets"),
            },
            loc: group.loc.clone(),
            // One equal share per target, whatever its zone, as an ALB spreads requests.
            capacity: Capacity {
                unit: CapacityUnit::Weight,
                target: CapacityTarget::PerEndpoint(1.0),
                scaler: 1.0,
                written: CapacityWritten {
                    mode: "equal shares".to_string(),
                    formula: format!(
                        "one share per target × {count} target{}",
                        if count == 1 { "" } else { "s" }
                    ),
                },
            },
        });
    }
    let mut health_checks = Vec::new();
    if group.health_check.enabled {
        let check = health_check(group);
        health_checks.push(Ref {
            name: name.clone(),
            loc: group.loc.clone(),
            path: format!("Resources.{name}.Properties.HealthCheckEnabled"),
        });
        insert(
            &mut model.health_checks,
            name.clone(),
            check,
            &group.loc,
            diagnostics,
        );
    }
    let service = Service {
        name: name.clone(),
        loc: group.loc.clone(),
        path: format!("Resources.{name}"),
        protocol: backend_protocol(group),
        port_name: "http".to_string(),
        timeout: IDLE_TIMEOUT,
        health_checks,
        lb_policy: match attributes.algorithm {
            Algorithm::RoundRobin => BalancingPolicy::RoundRobin,
            Algorithm::LeastOutstandingRequests => BalancingPolicy::LeastRequest,
            Algorithm::WeightedRandom => BalancingPolicy::Random,
        },
        minimum_ring_size: None,
        backends,
        affinity: Affinity::None,
        draining_timeout: Duration::from_secs(u64::from(attributes.deregistration_delay_seconds)),
        ip_address_selection_policy: if group.ipv6 {
            AddressSelection::Ipv6Only
        } else {
            AddressSelection::Ipv4Only
        },
        max_stream_duration: None,
        circuit_breakers: None,
        custom_headers: Default::default(),
        outlier_detection: attributes.anomaly_mitigation.then(anomaly_mitigation),
        log_sample_rate: None,
        slow_start: (attributes.slow_start_seconds > 0)
            .then(|| Duration::from_secs(u64::from(attributes.slow_start_seconds))),
        sticky_cookie: attributes.stickiness.as_ref().map(sticky_cookie),
        prefer_client_zone: attributes.cross_zone == CrossZone::Disabled,
        minimum_healthy: Some(MinimumHealthy {
            count: attributes.minimum_healthy_count,
            percentage: attributes.minimum_healthy_percentage,
        }),
    };
    insert(
        &mut model.services,
        name.clone(),
        service,
        &group.loc,
        diagnostics,
    );
}

fn endpoint(target: &target_groups::Target) -> Endpoint {
    let (ipv4, ipv6) = match target.address {
        IpAddr::V4(v4) => (Some(v4), None),
        IpAddr::V6(v6) => (None, Some(v6)),
    };
    Endpoint {
        instance: None,
        ipv4,
        ipv6,
        fqdn: None,
        port: Some(target.port),
        weight: None,
        zone: None,
    }
}

/// Anomaly mitigation: a target whose requests fail (5xx, failed connections) far more often
/// than its peers' is taken out of rotation for a while, given at least three targets.
fn anomaly_mitigation() -> OutlierDetection {
    OutlierDetection {
        consecutive_errors: 5,
        consecutive_gateway_failure: 5,
        enforcing_consecutive_errors: 0,
        enforcing_consecutive_gateway_failure: 0,
        enforcing_success_rate: 100,
        interval: Duration::from_secs(5),
        base_ejection_time: Duration::from_secs(30),
        max_ejection_percent: 50,
        success_rate_minimum_hosts: 3,
        success_rate_request_volume: 20,
        success_rate_stdev_factor: 1900,
        enforcing_failure_percentage: 100,
        failure_percentage_threshold: 50,
        failure_percentage_minimum_hosts: 3,
        failure_percentage_request_volume: 20,
    }
}

/// lb_cookie: the proxy's own cookie for the duration. app_cookie: the proxy's cookie comes
/// with the application's and holds a client only together with it, as an ALB's AWSALBAPP
/// does; its lifetime is the stickiness duration (an ALB keeps its cookie 7 days and checks
/// the duration inside it; Envoy's cookie carries its expiry too).
fn sticky_cookie(stickiness: &Stickiness) -> StickyCookie {
    let (name, seconds, application_cookie) = match stickiness {
        Stickiness::LbCookie { duration_seconds } => (LB_COOKIE, *duration_seconds, None),
        Stickiness::AppCookie {
            cookie_name,
            duration_seconds,
        } => (APP_COOKIE, *duration_seconds, Some(cookie_name.clone())),
    };
    StickyCookie {
        cookie: HttpCookie {
            name: name.to_string(),
            path: None,
            ttl: Some(Duration::from_secs(u64::from(seconds))),
        },
        application_cookie,
    }
}

/// The target group's health check as the centralized checker runs it.
fn health_check(group: &TargetGroup) -> HealthCheck {
    let check = &group.health_check;
    let (protocol, success_codes, grpc_call) = match &check.matcher {
        Matcher::Http(codes) => (
            if check.protocol == Protocol::Https {
                HealthCheckProtocol::Https
            } else {
                HealthCheckProtocol::Http
            },
            codes.clone(),
            None,
        ),
        Matcher::Grpc(codes) => (
            HealthCheckProtocol::Grpc,
            Vec::new(),
            Some(GrpcCheckCall {
                path: check.path.clone(),
                codes: codes.clone(),
                tls: check.protocol == Protocol::Https,
            }),
        ),
    };
    let (port_specification, port) = match check.port {
        CheckPort::TrafficPort => (PortSelection::Serving, None),
        CheckPort::Port(port) => (PortSelection::Fixed, Some(port)),
    };
    HealthCheck {
        name: group.logical_id.clone(),
        loc: group.loc.clone(),
        protocol,
        port_selection: port_specification,
        port,
        port_name: None,
        request_path: check.path.clone(),
        host: None,
        request: None,
        response: None,
        proxy_header_v1: false,
        grpc_service_name: None,
        check_interval_sec: check.interval_seconds,
        timeout_sec: check.timeout_seconds,
        healthy_threshold: check.healthy_threshold,
        unhealthy_threshold: check.unhealthy_threshold,
        success_codes,
        grpc_call,
    }
}
