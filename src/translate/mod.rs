//! Model → xDS resources. Pure and deterministic: the same model gives the same resources in
//! the same order (everything sorted by name), so encoded bytes and content-hash versions are
//! stable across restarts and replicas. No I/O here.

pub mod access_logs;
pub mod affinity;
pub mod application_cookie;
pub mod backend_protocol;
pub mod capacity_shares;
pub mod clusters;
pub mod custom_headers;
pub mod endpoints;
pub mod frontend;
pub mod internet;
pub mod json;
pub mod listeners;
pub mod proxyless;
pub mod references;
mod route_parts;
pub mod route_policies;
pub mod routes;
pub mod secrets;
pub mod slow_start;
pub mod source_address;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{
    config_source::ConfigSourceSpecifier, AggregatedConfigSource, ApiVersion, ConfigSource,
};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::{Any, Duration};

use crate::model::{DrainingEndpoint, Model};

/// Every xDS resource a model stands for, each list sorted by resource name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterLoadAssignment>,
    /// The certificates of target HTTPS proxies (SDS), for Envoy.
    pub secrets: Vec<Secret>,
    /// What proxyless gRPC clients get instead of `listeners` and `routes`.
    pub proxyless_listeners: Vec<Listener>,
    pub proxyless_routes: Vec<RouteConfiguration>,
}

/// Translates a validated model, with endpoints as a client that reports no region sees them.
pub fn translate(model: &Model) -> Resources {
    translate_with_draining(model, &[])
}

/// Translates a validated model, listing `draining` endpoints as DRAINING.
pub fn translate_with_draining(model: &Model, draining: &[DrainingEndpoint]) -> Resources {
    translate_with(model, endpoints::Overlay::draining_only(draining))
}

/// Translates a validated model, with what the config does not say about its endpoints.
pub fn translate_with(model: &Model, overlay: endpoints::Overlay<'_>) -> Resources {
    Resources {
        endpoints: endpoints::assignments_with(model, None, overlay),
        ..translate_except_endpoints(model)
    }
}

/// Everything but the endpoints (left empty), which depend on more than the config.
pub fn translate_except_endpoints(model: &Model) -> Resources {
    Resources {
        listeners: listeners::listeners_for(model),
        routes: routes::route_configurations_for(model),
        clusters: clusters::clusters_for(model),
        endpoints: Vec::new(),
        secrets: secrets::secrets_for(model),
        proxyless_listeners: proxyless::proxyless_listeners_for(model),
        proxyless_routes: proxyless::proxyless_route_configurations_for(model),
    }
}

/// Wraps a message in `Any`.
pub fn to_any<M: prost::Message + prost::Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

/// "Get this over ADS, v3".
pub fn ads_config_source() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        resource_api_version: ApiVersion::V3 as i32,
        ..Default::default()
    }
}

/// The longest span a protobuf Duration holds: 10,000 years of seconds.
const MAX_DURATION_SECONDS: u64 = 315_576_000_000;

/// `span` as a protobuf Duration, seconds and nanos exactly (a longer span, which validation
/// never lets through, is capped at the longest a Duration holds).
pub fn duration(span: std::time::Duration) -> Duration {
    if span.as_secs() > MAX_DURATION_SECONDS {
        return seconds(MAX_DURATION_SECONDS);
    }
    Duration {
        seconds: span.as_secs() as i64,
        nanos: span.subsec_nanos() as i32,
    }
}

/// Whole seconds as a protobuf Duration.
pub fn seconds(seconds: u64) -> Duration {
    Duration {
        seconds: seconds.min(MAX_DURATION_SECONDS) as i64,
        nanos: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_keeps_its_nanos_and_stops_at_the_longest_a_duration_holds() {
        let half = duration(std::time::Duration::from_millis(500));
        assert_eq!((half.seconds, half.nanos), (0, 500_000_000));
        let odd = duration(std::time::Duration::new(7, 1));
        assert_eq!((odd.seconds, odd.nanos), (7, 1));
        let longest = duration(std::time::Duration::new(315_576_000_000, 999_999_999));
        assert_eq!(
            (longest.seconds, longest.nanos),
            (315_576_000_000, 999_999_999)
        );
        let beyond = duration(std::time::Duration::from_secs(u64::MAX));
        assert_eq!((beyond.seconds, beyond.nanos), (315_576_000_000, 0));
    }
}
