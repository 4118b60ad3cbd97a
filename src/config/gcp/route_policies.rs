//! The request policies of a URL-map routeAction in the GCP dialect: faultInjectionPolicy,
//! requestMirrorPolicy, corsPolicy, with the cloud's ranges and defaults. Regexes of
//! corsPolicy.allowOriginRegexes are compiled here, so a bad one is refused with its error.

use std::sync::Arc;

use crate::config::reader::Fields;
use crate::config::yaml::Node;
use crate::model::{
    CorsPolicy, Diagnostics, FaultAbort, FaultDelay, FaultInjection, RequestMirror,
};

use super::durations::positive_duration;
use super::reference;

/// `faultInjectionPolicy`: a delay and/or an abort, each for a percentage of requests.
pub(super) fn fault_injection(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> Option<FaultInjection> {
    let mut fields = Fields::new(node, file, path, diagnostics);
    let delay = fields.mapping("delay", diagnostics, |delay, diagnostics| {
        let fixed = delay.get("fixedDelay").and_then(|node| {
            let path = delay.field_path("fixedDelay");
            let why_not_zero = "Envoy refuses a fault delay of 0, which would delay nothing \
                                (remove the delay instead)";
            positive_duration(node, file, path, why_not_zero, diagnostics)
        });
        delay.require("fixedDelay", diagnostics);
        let percentage = delay.number("percentage", 0.0, 100.0, diagnostics);
        delay.require("percentage", diagnostics);
        Some(FaultDelay {
            fixed_delay: fixed?,
            percentage: percentage?,
        })
    });
    let abort = fields.mapping("abort", diagnostics, |abort, diagnostics| {
        let status = abort.integer("httpStatus", 200, 599, diagnostics);
        abort.require("httpStatus", diagnostics);
        let percentage = abort.number("percentage", 0.0, 100.0, diagnostics);
        abort.require("percentage", diagnostics);
        Some(FaultAbort {
            http_status: status? as u32,
            percentage: percentage?,
        })
    });
    if delay.is_none()
        && abort.is_none()
        && fields.get("delay").is_none()
        && fields.get("abort").is_none()
    {
        diagnostics.error(
            &fields.loc(),
            fields.path.clone(),
            "a fault injection policy needs a delay, an abort or both",
        );
    }
    fields.finish(diagnostics);
    Some(FaultInjection { delay, abort })
}

/// `requestMirrorPolicy`: the service that gets a copy of each request (mirrorPercent of
/// them, 100 unless written).
pub(super) fn request_mirror(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> Option<RequestMirror> {
    let mut fields = Fields::new(node, file, path, diagnostics);
    let service = reference(
        &mut fields,
        "backendService",
        &["backendServices"],
        diagnostics,
    );
    fields.require("backendService", diagnostics);
    let percentage = fields
        .number("mirrorPercent", 0.0, 100.0, diagnostics)
        .unwrap_or(100.0);
    fields.finish(diagnostics);
    Some(RequestMirror {
        service: service?,
        percentage,
    })
}

/// `corsPolicy`.
pub(super) fn cors_policy(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> CorsPolicy {
    let mut fields = Fields::new(node, file, path, diagnostics);
    let allow_origin_regexes = fields.strings("allowOriginRegexes", diagnostics);
    for (index, pattern) in allow_origin_regexes.iter().enumerate() {
        if let Err(error) = regex::Regex::new(pattern) {
            diagnostics.error(
                &fields.loc_of("allowOriginRegexes"),
                format!("{}[{index}]", fields.field_path("allowOriginRegexes")),
                format!("`{pattern}` is not a valid regular expression: {error}"),
            );
        }
    }
    let policy = CorsPolicy {
        allow_origins: fields.strings("allowOrigins", diagnostics),
        allow_origin_regexes,
        allow_methods: fields.strings("allowMethods", diagnostics),
        allow_headers: fields.strings("allowHeaders", diagnostics),
        expose_headers: fields.strings("exposeHeaders", diagnostics),
        max_age: fields
            .integer("maxAge", 0, i64::from(u32::MAX), diagnostics)
            .map(|seconds| seconds as u32),
        allow_credentials: fields.bool("allowCredentials", false, diagnostics),
        disabled: fields.bool("disabled", false, diagnostics),
    };
    fields.finish(diagnostics);
    policy
}
