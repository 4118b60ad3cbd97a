//! The one internal model that every config dialect lowers into, plus the diagnostics that
//! validation produces. It speaks of what a proxy does — frontends, route tables, services,
//! endpoint groups, health checks — never of a cloud's resources: each dialect resolves its
//! cloud's words (a cookie's name, a capacity's unit, the order rules are tried in) when it
//! lowers. It knows neither YAML nor xDS: `config` fills it, `translate` reads it.

pub mod access;
pub mod capacity;
pub mod diagnostics;
pub mod endpoint_facts;
pub mod endpoint_groups;
pub mod frontend;
pub mod frontends;
pub mod inputs;
pub mod references;
pub mod regions;
pub mod resources;
pub mod route_policies;
pub mod route_tables;
pub mod service_policies;
pub mod services;
pub mod tls;

use std::collections::BTreeMap;

use serde::Serialize;

pub use access::XdsClientRule;
pub use diagnostics::{Diagnostic, Diagnostics, Loc, Severity};
pub use endpoint_groups::{EndpointGroup, Members};
pub use frontend::{ForwardedFor, ForwardedHost, FrontendHttp, TlsHeaders};
pub use frontends::{Frontend, Handler, ProxylessRouting};
pub use inputs::InputValue;
pub use resources::*;
pub use route_policies::{CorsPolicy, FaultAbort, FaultDelay, FaultInjection, RequestMirror};
pub use route_tables::{Route, RouteTable, VirtualHost};
pub use service_policies::{
    CircuitBreakers, ConnectionFact, CustomHeader, CustomHeaders, HeaderValuePart,
};
pub use services::{
    Affinity, Capacity, CapacityTarget, CapacityUnit, CapacityWritten, Service, ServiceBackend,
};
pub use tls::{Certificate, FrontendTls, Pem, TlsVersion};

/// Everything served, every map sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    pub health_checks: BTreeMap<String, HealthCheck>,
    pub endpoint_groups: BTreeMap<String, EndpointGroup>,
    pub services: BTreeMap<String, Service>,
    pub route_tables: BTreeMap<String, RouteTable>,
    pub frontends: BTreeMap<String, Frontend>,
    /// Route tables proxyless gRPC clients reach, by the proxy they reach them through.
    pub proxyless: BTreeMap<String, ProxylessRouting>,
    pub certificates: BTreeMap<String, Certificate>,
    /// Failover preferences: client region → regions to try next, in order.
    pub region_order: BTreeMap<String, Vec<String>>,
    /// Who may use the xDS port and receive what; empty means everyone, everything.
    pub xds_clients: BTreeMap<String, XdsClientRule>,
    /// Values the config was read with from outside its text (template parameters), secret
    /// ones masked; shown by `explain` and `/config_status`, served nowhere.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputValue>,
}
