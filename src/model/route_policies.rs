//! The parts of a URL-map routeAction that act on a request beyond choosing its backend:
//! fault injection (delays and aborts for a share of requests), request mirroring (a copy
//! sent to another service, its answer dropped), CORS, and a whole-stream deadline
//! (maxStreamDuration). Plain data with the cloud's defaults filled in.

use std::time::Duration;

use serde::Serialize;

use super::Ref;

/// faultInjectionPolicy: what fails on purpose, and how often.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultInjection {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
}

/// faultInjectionPolicy.delay: `fixed_delay` before `percentage` (0–100) of requests are
/// forwarded.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultDelay {
    pub fixed_delay: Duration,
    pub percentage: f64,
}

/// faultInjectionPolicy.abort: `percentage` (0–100) of requests answered `http_status`
/// without reaching a backend.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultAbort {
    pub http_status: u32,
    pub percentage: f64,
}

/// A copy of each request (of `percentage`, 0–100, of them) goes to `service`; its answer is
/// dropped.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirror {
    pub service: Ref,
    pub percentage: f64,
}

/// corsPolicy: how the proxy answers browsers' cross-origin preflights and what it adds to
/// answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CorsPolicy {
    pub allow_origins: Vec<String>,
    pub allow_origin_regexes: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    /// Seconds a preflight answer may be cached.
    pub max_age: Option<u32>,
    pub allow_credentials: bool,
    /// Written but switched off.
    pub disabled: bool,
}
