//! What the config alone does not say about endpoints, as the parts after the model share it:
//! the status sources report (the health checker today; load reports or replicas later), the
//! interface a source offers and reports through, and how a service reaches an endpoint (its
//! port and address family). Health checking and translation both read these; neither imports
//! the other. Must not: decide what is served, or know how a source decides.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::{AddressSelection, Endpoint, EndpointGroup, Model, Service};

/// What a source says of one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReportedStatus {
    Healthy,
    Unhealthy,
}

/// Reported status by service, then by the endpoint's address.
pub type ReportedHealth = BTreeMap<String, BTreeMap<SocketAddr, ReportedStatus>>;

/// No status reported.
pub static NO_REPORTED_HEALTH: ReportedHealth = BTreeMap::new();

/// A source of endpoint status.
pub trait EndpointSource: Send + Sync {
    /// Its name, in logs and as its layer's key.
    fn name(&self) -> &'static str;

    /// The status this source gives the endpoints of `model`, which is about to be served.
    /// Called under the publisher's lock: must be quick and must not call the publisher.
    fn adopt(&self, model: &Model) -> ReportedHealth;
}

/// A change of one endpoint's status, as a source reports it (None: the source no longer
/// speaks of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointReport {
    pub service: String,
    pub address: SocketAddr,
    pub status: Option<ReportedStatus>,
    /// When the status came to be, on the wall clock replicas share (for a health check:
    /// when the target's standing changed, as its prober recorded it); None when unknown.
    pub since: Option<std::time::SystemTime>,
}

/// Where a source sends its changes (the publisher).
pub trait EndpointReports: Send + Sync {
    /// Applies `reports` of `source`; returns whether anything served changed.
    fn report_endpoints(&self, source: &'static str, reports: &[EndpointReport]) -> bool;
}

/// The port a service reaches an endpoint on: the endpoint's own, the group's default port, or
/// the group's named port for the service's port name; an internet destination without either
/// is reached on 443 over TLS and 80 otherwise.
pub fn port_of(service: &Service, group: &EndpointGroup, endpoint: &Endpoint) -> Option<u16> {
    endpoint
        .port
        .or(group.default_port)
        .or_else(|| group.named_ports.get(&service.port_name).copied())
        .or_else(|| {
            group
                .members
                .is_internet()
                .then_some(if service.protocol.uses_tls() { 443 } else { 80 })
        })
}

/// The address a policy connects to first, and the one it falls back to.
pub fn addresses_for(
    policy: AddressSelection,
    endpoint: &Endpoint,
) -> (Option<IpAddr>, Option<IpAddr>) {
    let v4 = endpoint.ipv4.map(IpAddr::V4);
    let v6 = endpoint.ipv6.map(IpAddr::V6);
    match policy {
        AddressSelection::Ipv4Only => (v4, None),
        AddressSelection::Ipv6Only => (v6, None),
        AddressSelection::PreferIpv6 => match (v6, v4) {
            (Some(v6), v4) => (Some(v6), v4),
            (None, v4) => (v4, None),
        },
    }
}
