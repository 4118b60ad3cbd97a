//! A route's request policies → Envoy: fault injection and CORS as per-route configs of
//! their HTTP filters (which a listener carries only when its URL map uses them, so that
//! clients without those filters are not handed them), mirroring and maxStreamDuration on the
//! route action, and path templates as Envoy's uri_template extensions. Pure.

use envoy_types::pb::envoy::config::core::v3::{RuntimeFractionalPercent, TypedExtensionConfig};
use envoy_types::pb::envoy::config::route::v3::{
    route::Action, route_action::MaxStreamDuration, route_action::RequestMirrorPolicy, Route,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{
    fault_delay::FaultDelaySecifier, FaultDelay,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy as EnvoyCors};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort::ErrorType, FaultAbort, HttpFault,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::extensions::path::r#match::uri_template::v3::UriTemplateMatchConfig;
use envoy_types::pb::envoy::extensions::path::rewrite::uri_template::v3::UriTemplateRewriteConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    regex_matcher, string_matcher::MatchPattern, RegexMatcher, StringMatcher,
};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::BoolValue;

use crate::model::{CorsPolicy, FaultInjection, RouteExtras, RouteTable};

use super::{duration, to_any};

pub const FAULT: &str = "envoy.filters.http.fault";
pub const CORS: &str = "envoy.filters.http.cors";
const URI_TEMPLATE_MATCHER: &str = "envoy.path.match.uri_template.uri_template_matcher";
const URI_TEMPLATE_REWRITER: &str = "envoy.path.rewrite.uri_template.uri_template_rewriter";

/// Applies `extras`' fault injection, CORS, mirror and stream deadline to `route`.
pub fn apply(extras: &RouteExtras, route: &mut Route) {
    if let Some(fault) = &extras.fault_injection {
        route
            .typed_per_filter_config
            .insert(FAULT.to_string(), to_any(&http_fault(fault)));
    }
    if let Some(cors) = extras.cors.as_ref().filter(|c| !c.disabled) {
        route
            .typed_per_filter_config
            .insert(CORS.to_string(), to_any(&cors_policy(cors)));
    }
    let Some(Action::Route(action)) = &mut route.action else {
        return;
    };
    if let Some(mirror) = &extras.request_mirror {
        action.request_mirror_policies = vec![RequestMirrorPolicy {
            cluster: mirror.service.name.clone(),
            runtime_fraction: Some(RuntimeFractionalPercent {
                default_value: Some(percent(mirror.percentage)),
                ..Default::default()
            }),
            ..Default::default()
        }];
    }
    if let Some(limit) = extras.max_stream_duration {
        action.max_stream_duration = Some(MaxStreamDuration {
            max_stream_duration: Some(duration(limit)),
            ..Default::default()
        });
    }
}

/// The HTTP filters a listener routing with `table` needs before its router: CORS
/// (`with_cors`; proxyless clients have none) and fault injection, each only when a rule
/// uses it.
pub fn http_filters_for(table: &RouteTable, with_cors: bool) -> Vec<HttpFilter> {
    let extras: Vec<&RouteExtras> = table.routes().map(|route| &route.extras).collect();
    let mut filters = Vec::new();
    if with_cors
        && extras
            .iter()
            .any(|e| e.cors.as_ref().is_some_and(|c| !c.disabled))
    {
        filters.push(filter(CORS, to_any(&Cors {})));
    }
    if extras.iter().any(|e| e.fault_injection.is_some()) {
        filters.push(filter(FAULT, to_any(&HttpFault::default())));
    }
    filters
}

fn filter(name: &str, config: envoy_types::pb::google::protobuf::Any) -> HttpFilter {
    HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

fn http_fault(fault: &FaultInjection) -> HttpFault {
    HttpFault {
        delay: fault.delay.as_ref().map(|delay| FaultDelay {
            fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(duration(delay.fixed_delay))),
            percentage: Some(percent(delay.percentage)),
        }),
        abort: fault.abort.as_ref().map(|abort| FaultAbort {
            error_type: Some(ErrorType::HttpStatus(abort.http_status)),
            percentage: Some(percent(abort.percentage)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn cors_policy(cors: &CorsPolicy) -> EnvoyCors {
    let exact = cors.allow_origins.iter().map(|origin| StringMatcher {
        match_pattern: Some(MatchPattern::Exact(origin.clone())),
        ..Default::default()
    });
    let regexes = cors
        .allow_origin_regexes
        .iter()
        .map(|pattern| StringMatcher {
            match_pattern: Some(MatchPattern::SafeRegex(RegexMatcher {
                regex: pattern.clone(),
                engine_type: None::<regex_matcher::EngineType>,
            })),
            ..Default::default()
        });
    EnvoyCors {
        allow_origin_string_match: exact.chain(regexes).collect(),
        allow_methods: cors.allow_methods.join(","),
        allow_headers: cors.allow_headers.join(","),
        expose_headers: cors.expose_headers.join(","),
        max_age: cors.max_age.map(|age| age.to_string()).unwrap_or_default(),
        allow_credentials: cors.allow_credentials.then_some(BoolValue { value: true }),
        ..Default::default()
    }
}

/// pathTemplateMatch as Envoy's uri_template matcher (the same syntax).
pub fn uri_template_match(template: &str) -> TypedExtensionConfig {
    TypedExtensionConfig {
        name: URI_TEMPLATE_MATCHER.to_string(),
        typed_config: Some(to_any(&UriTemplateMatchConfig {
            path_template: template.to_string(),
        })),
    }
}

/// pathTemplateRewrite as Envoy's uri_template rewriter.
pub fn uri_template_rewrite(template: &str) -> TypedExtensionConfig {
    TypedExtensionConfig {
        name: URI_TEMPLATE_REWRITER.to_string(),
        typed_config: Some(to_any(&UriTemplateRewriteConfig {
            path_template_rewrite: template.to_string(),
        })),
    }
}

/// A percentage (0–100, fractions allowed) in millionths, as Envoy counts it.
fn percent(percentage: f64) -> FractionalPercent {
    FractionalPercent {
        numerator: (percentage.clamp(0.0, 100.0) * 10_000.0).round() as u32,
        denominator: DenominatorType::Million as i32,
    }
}
