//! Cluster → how the sidecar balances and connects to one cluster: its LB policy, connect
//! timeout, HTTP/2 to the upstream, the requests a connection may carry, and happy eyeballs.
//! Endpoints come separately over EDS, or, for STRICT_DNS and LOGICAL_DNS clusters, from the
//! names they resolve (dns_cluster.rs); an ORIGINAL_DST cluster has none: each connection goes
//! where the client was going (proxy/original_dst.rs).
//! (`lrs_server` is accepted and, as Envoy does, not acted on: the sidecar reports load when
//! its bootstrap has `cluster_manager.load_stats_config`, see proxy/lrs_client.rs.)

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType, LbConfig, LbPolicy as XdsLbPolicy},
    Cluster as XdsCluster,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{explicit_http_config::ProtocolConfig, UpstreamProtocolOptions},
    HttpProtocolOptions,
};

use envoy_types::pb::envoy::config::core::v3::{transport_socket, TransportSocket};
use envoy_types::pb::envoy::extensions::transport_sockets::proxy_protocol::v3::ProxyProtocolUpstreamTransport;
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use prost::Name;

use super::cluster_policies::{self, CIRCUIT_BREAKER_FIELDS, SLOW_START_FIELDS};
use super::dns_cluster::{self, DnsCluster, DnsKind};
use super::outlier_detection::{self, OUTLIER_FIELDS};
use super::proxy_protocol::{self, ProxyProtocolVersion};
use super::tls::{self, UpstreamTls};
use super::{decode_checked, duration, Fault, Problem, ResourceError};
use crate::proxy::circuit_breakers::Limits;
use crate::proxy::outlier::OutlierSettings;
use crate::proxy::slow_start::SlowStart;
use crate::xds::types::TypeUrl;

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
/// Envoy's default ring size floor.
const DEFAULT_MINIMUM_RING_SIZE: u64 = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin,
    LeastRequest,
    Random,
    RingHash {
        minimum_ring_size: u64,
    },
    Maglev,
    /// The cluster picks the host itself (ORIGINAL_DST clusters, and only those).
    ClusterProvided,
}

/// An ORIGINAL_DST cluster's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OriginalDst {
    /// How often hosts unused since the last sweep are dropped (Envoy's default: 5 s).
    pub cleanup_interval: Duration,
}

/// Envoy's default `cleanup_interval` of an ORIGINAL_DST cluster.
const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    pub name: String,
    /// The name its endpoints come under.
    pub service_name: String,
    pub lb: LbPolicy,
    pub connect_timeout: Duration,
    pub http2: bool,
    /// How long a connection to an endpoint may stay idle in the pool (Envoy's default, one
    /// hour, when the cluster names none).
    pub idle_timeout: Option<Duration>,
    /// IPv6 first when an endpoint has both families.
    pub prefer_ipv6: bool,
    /// TLS to the endpoints (UpstreamTlsContext), when the cluster asks for it.
    pub tls: Option<UpstreamTls>,
    /// `upstream_http_protocol_options.auto_sni`: the request's host is the SNI (when the
    /// context names none).
    pub auto_sni: bool,
    /// The names to resolve, for a DNS cluster (None: endpoints come over EDS).
    pub dns: Option<DnsCluster>,
    /// For an ORIGINAL_DST cluster: no endpoints, the client's original destination is the
    /// host (see proxy/original_dst.rs).
    pub original_dst: Option<OriginalDst>,
    /// `common_http_protocol_options.max_requests_per_connection`: an upstream connection
    /// closes after that many requests (None: no limit; see proxy/http1_pool.rs and
    /// proxy/http2_pool.rs).
    pub max_requests_per_connection: Option<u32>,
    /// A PROXY protocol header goes first on each connection to an endpoint
    /// (`upstream_proxy_protocol` around the TLS or raw socket). TCP proxies write it; the
    /// HTTP pools, shared by all clients, do not (Switchyard asks for it on TCP and SSL
    /// services only, which no URL map can route to).
    pub proxy_protocol: Option<ProxyProtocolVersion>,
    /// Round robin's or least request's slow start (see proxy/slow_start.rs).
    pub slow_start: Option<SlowStart>,
    /// The circuit breakers' thresholds (see proxy/circuit_breakers.rs).
    pub circuit_breakers: Limits,
    /// Outlier detection (see proxy/outlier/), when the cluster has it.
    pub outlier_detection: Option<OutlierSettings>,
}

/// What the sidecar applies of a Cluster: the fields below, [`SLOW_START_FIELDS`],
/// [`CIRCUIT_BREAKER_FIELDS`] and [`OUTLIER_FIELDS`].
pub(super) fn fields() -> Vec<&'static str> {
    FIELDS
        .iter()
        .chain(SLOW_START_FIELDS)
        .chain(CIRCUIT_BREAKER_FIELDS)
        .chain(OUTLIER_FIELDS)
        .copied()
        .collect()
}

const FIELDS: &[&str] = &[
    "name",
    "type",
    "eds_cluster_config.eds_config.ads",
    "eds_cluster_config.eds_config.resource_api_version",
    "eds_cluster_config.service_name",
    "connect_timeout",
    "lb_policy",
    "ring_hash_lb_config.minimum_ring_size",
    "common_lb_config.locality_weighted_lb_config",
    "common_lb_config.override_host_status",
    // The sidecar has no panic mode: it behaves as a threshold of 0 does.
    "common_lb_config.healthy_panic_threshold",
    "lrs_server",
    "upstream_connection_options.happy_eyeballs_config",
    "typed_extension_protocol_options",
    "transport_socket.name",
    "transport_socket.typed_config",
    // DNS clusters (STRICT_DNS, LOGICAL_DNS): see dns_cluster.rs.
    "dns_lookup_family",
    "dns_refresh_rate",
    "respect_dns_ttl",
    "load_assignment.cluster_name",
    "load_assignment.endpoints.lb_endpoints.endpoint.address.socket_address.address",
    "load_assignment.endpoints.lb_endpoints.endpoint.address.socket_address.port_value",
    // ORIGINAL_DST clusters: see proxy/original_dst.rs.
    "cleanup_interval",
];

/// What the sidecar applies of a cluster's HttpProtocolOptions.
pub(super) const HTTP_OPTIONS_FIELDS: &[&str] = &[
    "explicit_http_config.http_protocol_options",
    "explicit_http_config.http2_protocol_options",
    "common_http_protocol_options.idle_timeout",
    "common_http_protocol_options.max_requests_per_connection",
    "upstream_http_protocol_options.auto_sni",
];

/// Converts one Cluster resource.
pub fn convert(name: &str, bytes: &[u8]) -> Result<Cluster, ResourceError> {
    read(name, bytes).map_err(|fault| fault.of(TypeUrl::Cluster, name))
}

fn read(name: &str, bytes: &[u8]) -> Result<Cluster, Fault> {
    let cluster: XdsCluster = decode_checked(bytes, &fields())?;
    // Without a type a cluster is STATIC (a `cluster_type` extension is refused as a field).
    let kind = match cluster.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(t)) => t,
        _ => DiscoveryType::Static as i32,
    };
    let (dns, original_dst) = match DiscoveryType::try_from(kind) {
        Ok(DiscoveryType::Eds) => (None, None),
        Ok(DiscoveryType::StrictDns) => (Some(dns_cluster::read(&cluster, DnsKind::Strict)?), None),
        Ok(DiscoveryType::LogicalDns) => {
            (Some(dns_cluster::read(&cluster, DnsKind::Logical)?), None)
        }
        Ok(DiscoveryType::OriginalDst) => (None, Some(original_dst_settings(&cluster))),
        other => {
            let kind = other.map_or_else(|_| kind.to_string(), |d| d.as_str_name().to_string());
            return Err(Fault::at("type", Problem::DiscoveryType { kind }));
        }
    };
    let lb = lb_policy(&cluster)?;
    // As Envoy: ORIGINAL_DST goes with CLUSTER_PROVIDED, and CLUSTER_PROVIDED with it only.
    if original_dst.is_some() != (lb == LbPolicy::ClusterProvided) {
        return Err(Fault::at(
            "lb_policy",
            Problem::LbPolicy {
                policy: cluster.lb_policy,
            },
        ));
    }
    let mut http2 = false;
    let mut idle_timeout = None;
    let mut max_requests_per_connection = None;
    let mut auto_sni = false;
    for (key, options) in &cluster.typed_extension_protocol_options {
        if key != HTTP_PROTOCOL_OPTIONS {
            return Err(Problem::ProtocolOptions { key: key.clone() }.into());
        }
        let at = format!("typed_extension_protocol_options[{key}]");
        let options: HttpProtocolOptions = decode_checked(&options.value, HTTP_OPTIONS_FIELDS)
            .map_err(|fault| fault.inside(&at))?;
        let common = options.common_http_protocol_options.as_ref();
        idle_timeout = common
            .and_then(|common| common.idle_timeout.as_ref())
            .map(duration);
        // Envoy reads 0 as no limit.
        max_requests_per_connection = common
            .and_then(|common| common.max_requests_per_connection.as_ref())
            .map(|limit| limit.value)
            .filter(|limit| *limit > 0);
        auto_sni = options
            .upstream_http_protocol_options
            .as_ref()
            .is_some_and(|o| o.auto_sni);
        http2 = match options.upstream_protocol_options {
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(explicit)) => matches!(
                explicit.protocol_config,
                Some(ProtocolConfig::Http2ProtocolOptions(_))
            ),
            _ => return Err(Fault::at(at, Problem::NotExplicitHttpConfig)),
        };
    }
    let service_name = cluster
        .eds_cluster_config
        .as_ref()
        .map(|c| c.service_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| name.to_string());
    let (proxy_protocol, transport) = unwrap_proxy_protocol(cluster.transport_socket.as_ref())?;
    Ok(Cluster {
        name: name.to_string(),
        service_name,
        lb,
        connect_timeout: cluster
            .connect_timeout
            .as_ref()
            .map_or(Duration::from_secs(5), duration),
        http2,
        idle_timeout,
        prefer_ipv6: cluster
            .upstream_connection_options
            .as_ref()
            .and_then(|o| o.happy_eyeballs_config.as_ref())
            .is_some_and(|h| h.first_address_family_version == 1),
        tls: upstream_tls(transport.as_ref())?,
        auto_sni,
        dns,
        original_dst,
        max_requests_per_connection,
        proxy_protocol,
        slow_start: cluster_policies::slow_start(cluster.lb_config.as_ref()),
        circuit_breakers: cluster_policies::circuit_breakers(cluster.circuit_breakers.as_ref()),
        outlier_detection: outlier_detection::settings(cluster.outlier_detection.as_ref()),
    })
}

/// An ORIGINAL_DST cluster's settings (its cleanup interval, else Envoy's default).
fn original_dst_settings(cluster: &XdsCluster) -> OriginalDst {
    OriginalDst {
        cleanup_interval: cluster
            .cleanup_interval
            .as_ref()
            .map(duration)
            .filter(|interval| !interval.is_zero())
            .unwrap_or(DEFAULT_CLEANUP_INTERVAL),
    }
}

/// The cluster's balancing policy.
fn lb_policy(cluster: &XdsCluster) -> Result<LbPolicy, Fault> {
    Ok(match XdsLbPolicy::try_from(cluster.lb_policy) {
        Ok(XdsLbPolicy::RoundRobin) => LbPolicy::RoundRobin,
        Ok(XdsLbPolicy::LeastRequest) => LbPolicy::LeastRequest,
        Ok(XdsLbPolicy::Random) => LbPolicy::Random,
        Ok(XdsLbPolicy::Maglev) => LbPolicy::Maglev,
        Ok(XdsLbPolicy::ClusterProvided) => LbPolicy::ClusterProvided,
        Ok(XdsLbPolicy::RingHash) => LbPolicy::RingHash {
            minimum_ring_size: match &cluster.lb_config {
                Some(LbConfig::RingHashLbConfig(ring)) => ring
                    .minimum_ring_size
                    .as_ref()
                    .map_or(DEFAULT_MINIMUM_RING_SIZE, |m| m.value),
                _ => DEFAULT_MINIMUM_RING_SIZE,
            },
        },
        _ => {
            return Err(Problem::LbPolicy {
                policy: cluster.lb_policy,
            }
            .into())
        }
    })
}

const UPSTREAM_PROXY_PROTOCOL: &str = "envoy.transport_sockets.upstream_proxy_protocol";
const RAW_BUFFER: &str = "envoy.transport_sockets.raw_buffer";

/// Takes the PROXY protocol wrapper off the cluster's transport socket: its version, and the
/// socket it wraps (else the socket as it is).
fn unwrap_proxy_protocol(
    socket: Option<&TransportSocket>,
) -> Result<(Option<ProxyProtocolVersion>, Option<TransportSocket>), Fault> {
    let Some(socket) = socket else {
        return Ok((None, None));
    };
    match &socket.config_type {
        Some(transport_socket::ConfigType::TypedConfig(config))
            if config.type_url == ProxyProtocolUpstreamTransport::type_url() =>
        {
            let (version, inner) = proxy_protocol::read(&config.value).map_err(|fault| {
                fault.inside("transport_socket.typed_config (ProxyProtocolUpstreamTransport)")
            })?;
            Ok((Some(version), inner))
        }
        _ if socket.name == UPSTREAM_PROXY_PROTOCOL => Err(Fault::at(
            "transport_socket",
            Problem::UpstreamTransportSocket {
                name: socket.name.clone(),
                type_url: String::new(),
            },
        )),
        _ => Ok((None, Some(socket.clone()))),
    }
}

/// Whether `socket` is the plain one: raw bytes, no TLS.
fn is_raw_buffer(socket: &TransportSocket) -> bool {
    match &socket.config_type {
        Some(transport_socket::ConfigType::TypedConfig(config)) => {
            config.type_url == RawBuffer::type_url()
        }
        _ => socket.name == RAW_BUFFER,
    }
}

/// The cluster's transport socket: TLS with an UpstreamTlsContext, or nothing.
fn upstream_tls(socket: Option<&TransportSocket>) -> Result<Option<UpstreamTls>, Fault> {
    let Some(socket) = socket.filter(|socket| !is_raw_buffer(socket)) else {
        return Ok(None);
    };
    match &socket.config_type {
        Some(transport_socket::ConfigType::TypedConfig(config))
            if config.type_url == UpstreamTlsContext::type_url() =>
        {
            tls::upstream(&config.value)
                .map(Some)
                .map_err(|fault| fault.inside("transport_socket.typed_config (UpstreamTlsContext)"))
        }
        other => Err(Fault::at(
            "transport_socket",
            Problem::UpstreamTransportSocket {
                name: socket.name.clone(),
                type_url: match other {
                    Some(transport_socket::ConfigType::TypedConfig(config)) => {
                        config.type_url.clone()
                    }
                    _ => String::new(),
                },
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{
        HttpProtocolOptions as Common, UpstreamHttpProtocolOptions,
    };
    use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::ExplicitHttpConfig;
    use envoy_types::pb::google::protobuf::{Duration as XdsDuration, UInt32Value};
    use prost::Message;

    fn cluster_with(options: HttpProtocolOptions) -> Vec<u8> {
        let cluster = XdsCluster {
            name: "web".into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            typed_extension_protocol_options: [(
                HTTP_PROTOCOL_OPTIONS.to_string(),
                envoy_types::pb::google::protobuf::Any {
                    type_url: <HttpProtocolOptions as prost::Name>::type_url(),
                    value: options.encode_to_vec(),
                },
            )]
            .into(),
            ..Default::default()
        };
        cluster.encode_to_vec()
    }

    fn http1_with_idle(seconds: i64) -> HttpProtocolOptions {
        HttpProtocolOptions {
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(ProtocolConfig::HttpProtocolOptions(Default::default())),
                },
            )),
            common_http_protocol_options: Some(Common {
                idle_timeout: Some(XdsDuration { seconds, nanos: 0 }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_idle_timeout_is_applied_and_other_protocol_options_are_nacked_by_name() {
        let converted = convert("web", &cluster_with(http1_with_idle(600))).unwrap();
        assert_eq!(converted.idle_timeout, Some(Duration::from_secs(600)));
        assert!(!converted.http2);
        let mut sni = http1_with_idle(600);
        sni.upstream_http_protocol_options = Some(UpstreamHttpProtocolOptions {
            auto_sni: true,
            auto_san_validation: true,
            ..Default::default()
        });
        let refused = convert("web", &cluster_with(sni)).unwrap_err();
        assert_eq!(
            refused.fault,
            Fault::at(
                format!("typed_extension_protocol_options[{HTTP_PROTOCOL_OPTIONS}]"),
                Problem::UnsupportedField {
                    field: "upstream_http_protocol_options.auto_san_validation".into()
                }
            )
        );
    }

    #[test]
    fn max_requests_per_connection_is_read_and_zero_means_no_limit() {
        let with_limit = |value: u32| {
            let mut options = http1_with_idle(600);
            options
                .common_http_protocol_options
                .as_mut()
                .unwrap()
                .max_requests_per_connection = Some(UInt32Value { value });
            convert("web", &cluster_with(options))
                .unwrap()
                .max_requests_per_connection
        };
        assert_eq!(with_limit(11), Some(11));
        assert_eq!(with_limit(0), None);
    }

    #[test]
    fn original_dst_goes_with_cluster_provided_only_and_cleans_up_every_5_s_by_default() {
        let original_dst = |lb_policy: XdsLbPolicy| {
            XdsCluster {
                name: "passthrough".into(),
                cluster_discovery_type: Some(ClusterDiscoveryType::Type(
                    DiscoveryType::OriginalDst as i32,
                )),
                lb_policy: lb_policy as i32,
                ..Default::default()
            }
            .encode_to_vec()
        };
        let converted =
            convert("passthrough", &original_dst(XdsLbPolicy::ClusterProvided)).unwrap();
        assert_eq!(
            converted.original_dst,
            Some(OriginalDst {
                cleanup_interval: Duration::from_secs(5)
            })
        );
        let refused = convert("passthrough", &original_dst(XdsLbPolicy::RoundRobin)).unwrap_err();
        assert_eq!(
            refused.fault,
            Fault::at("lb_policy", Problem::LbPolicy { policy: 0 })
        );
        let mut eds = XdsCluster::decode(cluster_with(http1_with_idle(1)).as_slice()).unwrap();
        eds.lb_policy = XdsLbPolicy::ClusterProvided as i32;
        assert!(convert("web", &eds.encode_to_vec()).is_err());
    }
}
