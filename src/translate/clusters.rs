//! Service → Cluster: EDS over ADS, the service's balancing policy (with its minimum ring
//! size), locality weighting for the non-hashing policies (so capacities take effect), and the
//! backend protocol. ORIGINAL_DESTINATION becomes an original-destination cluster, which takes
//! no endpoints.

use envoy_types::pb::envoy::config::cluster::v3::{
    circuit_breakers::Thresholds, CircuitBreakers, OutlierDetection as EnvoyOutlierDetection,
};
use envoy_types::pb::envoy::config::cluster::v3::{
    cluster::{
        common_lb_config::{LocalityConfigSpecifier, LocalityWeightedLbConfig},
        ClusterDiscoveryType, CommonLbConfig, DiscoveryType, EdsClusterConfig, LbConfig, LbPolicy,
        LeastRequestLbConfig, RingHashLbConfig, RoundRobinLbConfig, SlowStartConfig,
    },
    upstream_connection_options::{FirstAddressFamilyVersion, HappyEyeballsConfig},
    Cluster, UpstreamConnectionOptions,
};
use envoy_types::pb::envoy::config::core::v3::{
    config_source::ConfigSourceSpecifier, ApiVersion, ConfigSource, HealthStatus, HealthStatusSet,
    SelfConfigSource,
};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::{UInt32Value, UInt64Value};

use std::collections::BTreeSet;

use crate::model::{AddressSelection, BalancingPolicy, Handler, Model, Service};

use super::affinity::session_cookie;
use super::{ads_config_source, duration, seconds};

/// How long Envoy waits for a TCP connection to a backend.
pub const CONNECT_TIMEOUT_SEC: u64 = 5;

/// The cloud's default ring size for RING_HASH.
pub const DEFAULT_MINIMUM_RING_SIZE: u64 = 1024;

pub fn clusters_for(model: &Model) -> Vec<Cluster> {
    let proxy_header_v1: BTreeSet<&str> = model
        .frontends
        .values()
        .filter_map(|frontend| match &frontend.handler {
            Handler::Tcp {
                service,
                proxy_header_v1: true,
            } => Some(service.name.as_str()),
            _ => None,
        })
        .collect();
    model
        .services
        .values()
        .map(|service| {
            let mut cluster = cluster_for(service, proxy_header_v1.contains(service.name.as_str()));
            if let Some((host, port)) = super::internet::fqdn_target(model, service) {
                super::internet::resolve_by_name(&mut cluster, service, host, port);
            }
            cluster
        })
        .collect()
}

/// The cluster of `service`; `proxy_header_v1` when the TCP or SSL proxies in front of it send
/// a PROXY line.
pub fn cluster_for(service: &Service, proxy_header_v1: bool) -> Cluster {
    let policy = service.lb_policy;
    let mut cluster = Cluster {
        name: service.name.clone(),
        connect_timeout: Some(seconds(CONNECT_TIMEOUT_SEC)),
        lb_policy: lb_policy(policy) as i32,
        ..Default::default()
    };
    if policy == BalancingPolicy::OriginalDestination {
        cluster.cluster_discovery_type = Some(ClusterDiscoveryType::Type(
            DiscoveryType::OriginalDst as i32,
        ));
        return cluster;
    }
    cluster.cluster_discovery_type = Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
    // Load reports go to this control plane (gRPC reads this; Envoy ignores it).
    cluster.lrs_server = Some(ConfigSource {
        config_source_specifier: Some(ConfigSourceSpecifier::Self_(SelfConfigSource {
            transport_api_version: ApiVersion::V3 as i32,
        })),
        ..Default::default()
    });
    if let Some(outliers) = &service.outlier_detection {
        cluster.outlier_detection = Some(outlier_detection(outliers));
    }
    if let Some(breakers) = &service.circuit_breakers {
        cluster.circuit_breakers = Some(circuit_breakers(breakers));
    }
    cluster.eds_cluster_config = Some(EdsClusterConfig {
        eds_config: Some(ads_config_source()),
        service_name: service.name.clone(),
    });
    if policy == BalancingPolicy::RingHash {
        let minimum = service
            .minimum_ring_size
            .unwrap_or(DEFAULT_MINIMUM_RING_SIZE);
        cluster.lb_config = Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
            minimum_ring_size: Some(UInt64Value { value: minimum }),
            ..Default::default()
        }));
    }
    if let Some(window) = service.slow_start {
        let slow_start_config = Some(slow_start(window));
        cluster.lb_config = match policy {
            BalancingPolicy::LeastRequest => {
                Some(LbConfig::LeastRequestLbConfig(LeastRequestLbConfig {
                    slow_start_config,
                    ..Default::default()
                }))
            }
            _ => Some(LbConfig::RoundRobinLbConfig(RoundRobinLbConfig {
                slow_start_config,
            })),
        };
    }
    // Envoy's panic mode (on by default below 50% healthy) would send to unhealthy endpoints
    // when too few are healthy; the cloud never does: with none healthy, requests fail fast.
    let mut common = CommonLbConfig {
        healthy_panic_threshold: Some(Percent { value: 0.0 }),
        ..Default::default()
    };
    if !policy.is_consistent_hash() {
        common.locality_config_specifier = Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(
            LocalityWeightedLbConfig {},
        ));
    }
    if session_cookie(service).is_some() {
        // A session cookie may pin a request to any live endpoint, draining ones included
        // (they finish their sessions), as gRFC A55 describes.
        common.override_host_status = Some(HealthStatusSet {
            statuses: [
                HealthStatus::Unknown,
                HealthStatus::Healthy,
                HealthStatus::Draining,
            ]
            .map(|s| s as i32)
            .to_vec(),
        });
    }
    cluster.common_lb_config = Some(common);
    if service.ip_address_selection_policy == AddressSelection::PreferIpv6 {
        cluster.upstream_connection_options = Some(UpstreamConnectionOptions {
            happy_eyeballs_config: Some(HappyEyeballsConfig {
                first_address_family_version: FirstAddressFamilyVersion::V6 as i32,
                first_address_family_count: Some(UInt32Value { value: 1 }),
            }),
            ..Default::default()
        });
    }
    super::backend_protocol::apply(service, proxy_header_v1, &mut cluster);
    cluster
}

/// The cloud's circuitBreakers as the default-priority thresholds; a limit not written keeps
/// Envoy's default. (maxRequestsPerConnection is a protocol option: `backend_protocol`.)
fn circuit_breakers(breakers: &crate::model::CircuitBreakers) -> CircuitBreakers {
    let limit = |value: Option<u32>| value.map(|value| UInt32Value { value });
    CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: limit(breakers.max_connections),
            max_pending_requests: limit(breakers.max_pending_requests),
            max_requests: limit(breakers.max_requests),
            max_retries: limit(breakers.max_retries),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The cloud's outlierDetection, field for field (consecutiveErrors counts 5xx responses).
fn outlier_detection(outliers: &crate::model::OutlierDetection) -> EnvoyOutlierDetection {
    let count = |value: u32| Some(UInt32Value { value });
    EnvoyOutlierDetection {
        consecutive_5xx: count(outliers.consecutive_errors),
        consecutive_gateway_failure: count(outliers.consecutive_gateway_failure),
        enforcing_consecutive_5xx: count(outliers.enforcing_consecutive_errors),
        enforcing_consecutive_gateway_failure: count(
            outliers.enforcing_consecutive_gateway_failure,
        ),
        enforcing_success_rate: count(outliers.enforcing_success_rate),
        interval: Some(duration(outliers.interval)),
        base_ejection_time: Some(duration(outliers.base_ejection_time)),
        max_ejection_percent: count(outliers.max_ejection_percent),
        success_rate_minimum_hosts: count(outliers.success_rate_minimum_hosts),
        success_rate_request_volume: count(outliers.success_rate_request_volume),
        success_rate_stdev_factor: count(outliers.success_rate_stdev_factor),
        enforcing_failure_percentage: count(outliers.enforcing_failure_percentage),
        failure_percentage_threshold: count(outliers.failure_percentage_threshold),
        failure_percentage_minimum_hosts: count(outliers.failure_percentage_minimum_hosts),
        failure_percentage_request_volume: count(outliers.failure_percentage_request_volume),
        ..Default::default()
    }
}

/// Envoy's slow start: a new endpoint's weight grows linearly (aggression 1) over `window`,
/// from 1% of its weight rather than Envoy's default 10%, so the ramp starts near nothing.
fn slow_start(window: std::time::Duration) -> SlowStartConfig {
    SlowStartConfig {
        slow_start_window: Some(duration(window)),
        aggression: None,
        min_weight_percent: Some(Percent { value: 1.0 }),
    }
}

fn lb_policy(policy: BalancingPolicy) -> LbPolicy {
    match policy {
        BalancingPolicy::RoundRobin => LbPolicy::RoundRobin,
        BalancingPolicy::LeastRequest => LbPolicy::LeastRequest,
        BalancingPolicy::RingHash => LbPolicy::RingHash,
        BalancingPolicy::Random => LbPolicy::Random,
        BalancingPolicy::Maglev | BalancingPolicy::WeightedMaglev => LbPolicy::Maglev,
        BalancingPolicy::OriginalDestination => LbPolicy::ClusterProvided,
    }
}
