//! A target group's health check properties as an ALB reads them: protocol, port
//! (`traffic-port` or a number), path, interval, timeout, thresholds and `Matcher` (HTTP codes
//! 200–499 or gRPC codes 0–99, as lists and ranges), with ALB's defaults (gRPC: path
//! `/AWS.ALB/healthcheck`, code 12) and its rule that the timeout is shorter than the
//! interval. Pure. Must not: know the model or xDS.

use crate::config::reader::Fields;
use crate::config::yaml::Node;
use crate::model::Diagnostics;

use super::target_groups::{protocol, Protocol, ProtocolVersion};

/// What a health check accepts as a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matcher {
    /// HTTP status codes, as ranges (`200`, `200-299`, `200,202`).
    Http(Vec<(u16, u16)>),
    /// gRPC status codes, as ranges.
    Grpc(Vec<(u16, u16)>),
}

/// Where the check probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckPort {
    /// The port each target receives traffic on.
    TrafficPort,
    Port(u16),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub enabled: bool,
    pub protocol: Protocol,
    pub port: CheckPort,
    pub path: String,
    pub interval_seconds: u32,
    pub timeout_seconds: u32,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub matcher: Matcher,
}

/// The health check properties, with ALB's defaults (gRPC: path `/AWS.ALB/healthcheck`,
/// code 12).
pub(super) fn health_check(
    fields: &mut Fields<'_>,
    protocol: Protocol,
    version: ProtocolVersion,
    diagnostics: &mut Diagnostics,
) -> HealthCheck {
    let grpc = version == ProtocolVersion::Grpc;
    let enabled = fields.bool("HealthCheckEnabled", true, diagnostics);
    let check_protocol =
        self::protocol(fields, "HealthCheckProtocol", diagnostics).unwrap_or(protocol);
    let port = match fields.get("HealthCheckPort").and_then(Node::as_scalar) {
        None | Some("traffic-port") => CheckPort::TrafficPort,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port >= 1 => CheckPort::Port(port),
            _ => {
                diagnostics.error(
                    &fields.loc_of("HealthCheckPort"),
                    fields.field_path("HealthCheckPort"),
                    format!("`{text}` is not allowed; HealthCheckPort is traffic-port or a port from 1 to 65535"),
                );
                CheckPort::TrafficPort
            }
        },
    };
    let path = fields
        .string("HealthCheckPath", diagnostics)
        .unwrap_or_else(|| if grpc { "/AWS.ALB/healthcheck" } else { "/" }.to_string());
    let mut seconds = |key: &'static str, min: i64, max: i64, default: u32| {
        fields
            .whole_seconds(key, min, max, diagnostics)
            .map_or(default, |v| v as u32)
    };
    let interval_seconds = seconds("HealthCheckIntervalSeconds", 5, 300, 30);
    let timeout_seconds = seconds("HealthCheckTimeoutSeconds", 2, 120, 5);
    let mut integer = |key: &'static str, min: i64, max: i64, default: u32| {
        fields
            .integer(key, min, max, diagnostics)
            .map_or(default, |v| v as u32)
    };
    let healthy_threshold = integer("HealthyThresholdCount", 2, 10, 5);
    let unhealthy_threshold = integer("UnhealthyThresholdCount", 2, 10, 2);
    if timeout_seconds >= interval_seconds {
        diagnostics.error(
            &fields.loc_of("HealthCheckTimeoutSeconds"),
            fields.field_path("HealthCheckTimeoutSeconds"),
            format!("the timeout ({timeout_seconds}s) must be shorter than HealthCheckIntervalSeconds ({interval_seconds}s)"),
        );
    }
    let matcher = matcher(fields, grpc, diagnostics);
    HealthCheck {
        enabled,
        protocol: check_protocol,
        port,
        path,
        interval_seconds,
        timeout_seconds,
        healthy_threshold,
        unhealthy_threshold,
        matcher,
    }
}

/// `Matcher: {HttpCode: "200,202"}` or `{GrpcCode: "0-99"}`; HTTP codes 200–499, gRPC 0–99.
fn matcher(fields: &mut Fields<'_>, grpc: bool, diagnostics: &mut Diagnostics) -> Matcher {
    let default = if grpc {
        Matcher::Grpc(vec![(12, 12)])
    } else {
        Matcher::Http(vec![(200, 200)])
    };
    let Some(node) = fields.get("Matcher") else {
        return default;
    };
    let path = fields.field_path("Matcher");
    let mut matcher = Fields::new(node, fields.file(), &path, diagnostics);
    let http = matcher.string("HttpCode", diagnostics);
    let grpc_codes = matcher.string("GrpcCode", diagnostics);
    let (http_loc, grpc_loc) = (matcher.loc_of("HttpCode"), matcher.loc_of("GrpcCode"));
    matcher.finish(diagnostics);
    let (key, text, loc, low, high) = match (http, grpc_codes, grpc) {
        (Some(text), None, false) => ("HttpCode", text, http_loc, 200, 499),
        (None, Some(text), true) => ("GrpcCode", text, grpc_loc, 0, 99),
        (None, None, _) => return default,
        (Some(_), _, true) | (None, Some(_), false) | (Some(_), Some(_), _) => {
            let wanted = if grpc { "GrpcCode" } else { "HttpCode" };
            diagnostics.error(
                &fields.loc_of("Matcher"),
                &path,
                format!("this target group's version takes {wanted}, only"),
            );
            return default;
        }
    };
    let Some(ranges) = code_ranges(&text, low, high) else {
        diagnostics.error(
            &loc,
            format!("{path}.{key}"),
            format!("`{text}` is not allowed; {key} is codes from {low} to {high}, as `200`, `200,202` or `200-299`"),
        );
        return default;
    };
    if grpc {
        Matcher::Grpc(ranges)
    } else {
        Matcher::Http(ranges)
    }
}

/// `200,202` / `200-299` as ranges within `low..=high`.
fn code_ranges(text: &str, low: u16, high: u16) -> Option<Vec<(u16, u16)>> {
    text.split(',')
        .map(|part| {
            let (from, to) = part.trim().split_once('-').unwrap_or((part, part));
            let (from, to) = (
                from.trim().parse::<u16>().ok()?,
                to.trim().parse::<u16>().ok()?,
            );
            (low <= from && from <= to && to <= high).then_some((from, to))
        })
        .collect()
}
