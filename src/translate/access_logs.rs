//! Backend services' logConfig → access logs: on the TCP proxies in front of a TCP or SSL
//! service, one line per connection; on the HTTP connection managers that route to HTTP
//! services, one log per logged service, kept to that service's requests (a CEL filter on the
//! upstream cluster) and to its sampleRate (a runtime filter with independent randomness),
//! written to the proxy's stdout in Envoy's default format. Pure.

use envoy_types::pb::envoy::config::accesslog::v3::{
    access_log, access_log_filter::FilterSpecifier, extension_filter, AccessLog, AccessLogFilter,
    AndFilter, ExtensionFilter, RuntimeFilter,
};
use envoy_types::pb::envoy::extensions::access_loggers::filters::cel::v3::ExpressionFilter;
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::StdoutAccessLog;
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};

use crate::model::{Model, RouteTable, Service};

use super::to_any;

const STDOUT: &str = "envoy.access_loggers.stdout";
const CEL: &str = "envoy.access_loggers.extension_filters.cel";

/// The access logs of a listener routing with `table`, one per service it routes to that
/// has logging on.
pub fn access_logs_for(model: &Model, table: &RouteTable) -> Vec<AccessLog> {
    table
        .services()
        .into_iter()
        .filter_map(|name| model.services.get(name))
        .filter_map(|service| Some((service.name.as_str(), service.log_sample_rate?)))
        .map(|(name, rate)| access_log(name, rate))
        .collect()
}

/// The access log of a TCP proxy to `service`, if it has logging on: one line per connection
/// (the proxy's only cluster is the service's), kept to its sampleRate.
pub fn tcp_access_logs_for(service: &Service) -> Vec<AccessLog> {
    let Some(rate) = service.log_sample_rate else {
        return Vec::new();
    };
    vec![AccessLog {
        name: STDOUT.to_string(),
        filter: (rate < 1.0).then(|| sampled(&service.name, rate)),
        config_type: Some(access_log::ConfigType::TypedConfig(to_any(
            &StdoutAccessLog::default(),
        ))),
    }]
}

/// Keeps `sample_rate` of the lines, drawn independently of request ids.
fn sampled(service: &str, sample_rate: f64) -> AccessLogFilter {
    AccessLogFilter {
        filter_specifier: Some(FilterSpecifier::RuntimeFilter(RuntimeFilter {
            runtime_key: format!("switchyard.log_sample.{service}"),
            percent_sampled: Some(FractionalPercent {
                numerator: (sample_rate.clamp(0.0, 1.0) * 1_000_000.0).round() as u32,
                denominator: DenominatorType::Million as i32,
            }),
            use_independent_randomness: true,
        })),
    }
}

fn access_log(service: &str, sample_rate: f64) -> AccessLog {
    let of_service = AccessLogFilter {
        filter_specifier: Some(FilterSpecifier::ExtensionFilter(ExtensionFilter {
            name: CEL.to_string(),
            config_type: Some(extension_filter::ConfigType::TypedConfig(to_any(
                &ExpressionFilter {
                    expression: format!("xds.cluster_name == '{service}'"),
                    ..Default::default()
                },
            ))),
        })),
    };
    let filter = if sample_rate >= 1.0 {
        of_service
    } else {
        AccessLogFilter {
            filter_specifier: Some(FilterSpecifier::AndFilter(AndFilter {
                filters: vec![of_service, sampled(service, sample_rate)],
            })),
        }
    };
    AccessLog {
        name: STDOUT.to_string(),
        filter: Some(filter),
        config_type: Some(access_log::ConfigType::TypedConfig(to_any(
            &StdoutAccessLog::default(),
        ))),
    }
}
