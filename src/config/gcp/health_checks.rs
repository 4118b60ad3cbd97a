//! `healthChecks` of the GCP dialect, field by field with the cloud's defaults and ranges:
//! the type and its details object (`httpHealthCheck`, …, `sslHealthCheck`), the port a check
//! probes (portSpecification with port / portName), what it sends and expects, and its timing.
//! Reads and validates only; running the checks is not the reader's job.

use std::sync::Arc;

use crate::config::reader::Fields;
use crate::config::yaml::Node;
use crate::model::{
    cloud_enum, CloudEnum, Diagnostics, HealthCheck, HealthCheckProtocol, PortSelection,
};
use serde::Serialize;

use super::open;

cloud_enum!(
    /// Which port a check probes: its own `port`, the instance group's named port
    /// `portName`, or the port each endpoint serves on.
    PortSpecification {
        Fixed => "USE_FIXED_PORT",
        Named => "USE_NAMED_PORT",
        Serving => "USE_SERVING_PORT",
    }
);

/// The field holding a check type's details (`httpHealthCheck`, …).
pub(super) fn details_field(protocol: HealthCheckProtocol) -> &'static str {
    match protocol {
        HealthCheckProtocol::Http => "httpHealthCheck",
        HealthCheckProtocol::Https => "httpsHealthCheck",
        HealthCheckProtocol::Http2 => "http2HealthCheck",
        HealthCheckProtocol::Grpc => "grpcHealthCheck",
        HealthCheckProtocol::Tcp => "tcpHealthCheck",
        HealthCheckProtocol::Ssl => "sslHealthCheck",
    }
}

const DETAILS: [HealthCheckProtocol; 6] = [
    HealthCheckProtocol::Http,
    HealthCheckProtocol::Https,
    HealthCheckProtocol::Http2,
    HealthCheckProtocol::Grpc,
    HealthCheckProtocol::Tcp,
    HealthCheckProtocol::Ssl,
];

/// What a check's details object says.
#[derive(Default)]
struct Details {
    port: Option<u16>,
    port_name: Option<String>,
    port_specification: Option<PortSpecification>,
    request_path: Option<String>,
    host: Option<String>,
    request: Option<String>,
    response: Option<String>,
    proxy_header_v1: bool,
    grpc_service_name: Option<String>,
}

pub(super) fn health_check(
    node: &Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<HealthCheck> {
    let (mut fields, name) = open(node, file, "healthChecks", diagnostics)?;
    let protocol = fields
        .cloud_enum("type", diagnostics)
        .unwrap_or(HealthCheckProtocol::Http);
    let check_interval_sec = fields
        .whole_seconds("checkIntervalSec", 1, 300, diagnostics)
        .unwrap_or(5) as u32;
    let timeout_sec = fields
        .whole_seconds("timeoutSec", 1, 300, diagnostics)
        .unwrap_or(5) as u32;
    let healthy_threshold = fields
        .integer("healthyThreshold", 1, 10, diagnostics)
        .unwrap_or(2) as u32;
    let unhealthy_threshold = fields
        .integer("unhealthyThreshold", 1, 10, diagnostics)
        .unwrap_or(2) as u32;
    if timeout_sec > check_interval_sec {
        diagnostics.error(
            &fields.loc_of("timeoutSec"),
            fields.field_path("timeoutSec"),
            format!("{timeout_sec} is longer than checkIntervalSec ({check_interval_sec}); timeoutSec must not exceed it"),
        );
    }
    let mut details = Details::default();
    for kind in DETAILS {
        let key = details_field(kind);
        let Some(inner) = fields.get(key) else {
            continue;
        };
        if kind != protocol {
            diagnostics.error(
                &fields.loc_of(key),
                fields.field_path(key),
                format!(
                    "a check of type {} takes {}, not {key}",
                    protocol.as_str(),
                    details_field(protocol)
                ),
            );
            continue;
        }
        let mut inner = Fields::new(inner, file, fields.field_path(key), diagnostics);
        details = read_details(&mut inner, protocol, diagnostics);
        inner.finish(diagnostics);
    }
    let port_specification =
        details
            .port_specification
            .unwrap_or(match (details.port, &details.port_name) {
                (Some(_), _) => PortSpecification::Fixed,
                (None, Some(_)) => PortSpecification::Named,
                (None, None) => PortSpecification::Serving,
            });
    let problem = match port_specification {
        PortSpecification::Fixed if details.port.is_none() => Some("USE_FIXED_PORT needs `port`"),
        PortSpecification::Named if details.port_name.is_none() => {
            Some("USE_NAMED_PORT needs `portName`")
        }
        PortSpecification::Serving if details.port.is_some() || details.port_name.is_some() => {
            Some("USE_SERVING_PORT probes each endpoint's own port; remove `port` and `portName`")
        }
        _ => None,
    };
    if let Some(problem) = problem {
        let key = details_field(protocol);
        diagnostics.error(
            &fields.loc_of(key),
            format!("{}.portSpecification", fields.field_path(key)),
            problem,
        );
    }
    let loc = fields.loc();
    fields.finish(diagnostics);
    Some(HealthCheck {
        name,
        loc,
        protocol,
        port_selection: match port_specification {
            PortSpecification::Fixed => PortSelection::Fixed,
            PortSpecification::Named => PortSelection::Named,
            PortSpecification::Serving => PortSelection::Serving,
        },
        port: details.port,
        port_name: details.port_name,
        request_path: details.request_path.unwrap_or_else(|| "/".to_string()),
        host: details.host,
        request: details.request,
        response: details.response,
        proxy_header_v1: details.proxy_header_v1,
        grpc_service_name: details.grpc_service_name,
        check_interval_sec,
        timeout_sec,
        healthy_threshold,
        unhealthy_threshold,
        success_codes: Vec::new(),
        grpc_call: None,
    })
}

/// The fields of a details object that its type takes; the others are unknown to it.
fn read_details(
    inner: &mut Fields<'_>,
    protocol: HealthCheckProtocol,
    diagnostics: &mut Diagnostics,
) -> Details {
    let mut details = Details {
        port: inner
            .integer("port", 1, 65535, diagnostics)
            .map(|p| p as u16),
        port_name: inner.string("portName", diagnostics),
        port_specification: inner.cloud_enum("portSpecification", diagnostics),
        ..Details::default()
    };
    if protocol.is_http() {
        details.request_path = inner.string("requestPath", diagnostics);
        if details
            .request_path
            .as_deref()
            .is_some_and(|path| !path.starts_with('/'))
        {
            diagnostics.error(
                &inner.loc_of("requestPath"),
                inner.field_path("requestPath"),
                "requestPath starts with `/`",
            );
        }
        details.host = inner.string("host", diagnostics);
    }
    if matches!(
        protocol,
        HealthCheckProtocol::Tcp | HealthCheckProtocol::Ssl
    ) {
        details.request = inner.string("request", diagnostics);
    }
    if protocol == HealthCheckProtocol::Grpc {
        details.grpc_service_name = inner.string("grpcServiceName", diagnostics);
    } else {
        details.response = inner.string("response", diagnostics);
        details.proxy_header_v1 = inner
            .choice(
                "proxyHeader",
                &[("NONE", false), ("PROXY_V1", true)],
                diagnostics,
            )
            .unwrap_or(false);
    }
    details
}
