//! What to probe for a model: every endpoint of every backend service that names a health
//! check, on the families its ipAddressSelectionPolicy uses (IPV4_ONLY: IPv4, IPV6_ONLY: IPv6,
//! PREFER_IPV6: each family the endpoint has), at the port the check's portSpecification says.
//! Targets are keyed by (address, port, check definition): however many services and checks
//! of the same definition share an endpoint, it is probed once. Pure; no I/O.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::model::endpoint_facts::{addresses_for, port_of};
use crate::model::{
    AddressSelection, EndpointGroup, HealthCheck, HealthCheckProtocol, Model, PortSelection,
    Service,
};

use super::probe::Probe;
use super::state::Thresholds;

/// Everything of a health check that makes a probe what it is (not its name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckDefinition {
    pub probe: Probe,
    pub proxy_header_v1: bool,
    pub interval_sec: u32,
    pub timeout_sec: u32,
    pub thresholds: Thresholds,
}

impl CheckDefinition {
    pub fn of(check: &HealthCheck) -> CheckDefinition {
        let http_like = |tls| Probe::Http {
            tls,
            path: check.request_path.clone(),
            host: check.host.clone(),
            response: check.response.clone(),
            codes: check.success_codes.clone(),
        };
        let probe = match check.protocol {
            HealthCheckProtocol::Http => http_like(false),
            HealthCheckProtocol::Https => http_like(true),
            HealthCheckProtocol::Http2 => Probe::Http2 {
                path: check.request_path.clone(),
                host: check.host.clone(),
                response: check.response.clone(),
            },
            HealthCheckProtocol::Grpc => match &check.grpc_call {
                Some(call) => Probe::GrpcCall {
                    tls: call.tls,
                    path: call.path.clone(),
                    codes: call.codes.clone(),
                },
                None => Probe::Grpc {
                    service: check.grpc_service_name.clone().unwrap_or_default(),
                },
            },
            HealthCheckProtocol::Tcp | HealthCheckProtocol::Ssl => Probe::Tcp {
                tls: check.protocol == HealthCheckProtocol::Ssl,
                request: check.request.clone(),
                response: check.response.clone(),
            },
        };
        CheckDefinition {
            probe,
            proxy_header_v1: check.proxy_header_v1,
            interval_sec: check.check_interval_sec,
            timeout_sec: check.timeout_sec,
            thresholds: Thresholds {
                healthy: check.healthy_threshold,
                unhealthy: check.unhealthy_threshold,
            },
        }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.interval_sec.max(1)))
    }

    /// The probe's time limit: the check's timeout, never longer than its interval.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(
            self.timeout_sec.clamp(1, self.interval_sec.max(1)),
        ))
    }
}

/// One thing probed: an address and port, and how.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetKey {
    pub address: SocketAddr,
    pub check: Arc<CheckDefinition>,
}

/// A service's endpoint, named as EDS names it: the address clients connect to first.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceEndpoint {
    pub service: Arc<str>,
    pub address: SocketAddr,
}

/// The probing a model asks for.
#[derive(Debug, Default)]
pub struct Plan {
    /// Every distinct target, with the names of the checks it stands for.
    pub targets: HashMap<Arc<TargetKey>, Vec<Arc<str>>>,
    /// Each checked endpoint of each service, and its targets (one per family checked).
    pub endpoints: BTreeMap<ServiceEndpoint, Vec<Arc<TargetKey>>>,
}

/// The targets of `model`.
pub fn plan(model: &Model) -> Plan {
    let mut plan = Plan::default();
    // One definition per distinct check, shared by every target of it.
    let mut definitions: BTreeMap<CheckDefinition, Arc<CheckDefinition>> = BTreeMap::new();
    for service in model.services.values() {
        // A backend service takes one health check (validation says so).
        let Some(check) = service
            .health_checks
            .first()
            .and_then(|reference| model.health_checks.get(&reference.name))
        else {
            continue;
        };
        let definition = CheckDefinition::of(check);
        let definition = definitions
            .entry(definition.clone())
            .or_insert_with(|| Arc::new(definition))
            .clone();
        let check_name: Arc<str> = check.name.as_str().into();
        let service_name: Arc<str> = service.name.as_str().into();
        for backend in &service.backends {
            let Some(group) = model.endpoint_groups.get(&backend.group.name) else {
                continue;
            };
            if group.members.is_internet() {
                continue;
            }
            add_group(
                &mut plan,
                service,
                &service_name,
                group,
                check,
                &definition,
                &check_name,
            );
        }
    }
    plan
}

fn add_group(
    plan: &mut Plan,
    service: &Service,
    service_name: &Arc<str>,
    group: &EndpointGroup,
    check: &HealthCheck,
    definition: &Arc<CheckDefinition>,
    check_name: &Arc<str>,
) {
    for endpoint in &group.endpoints {
        let Some(serving_port) = port_of(service, group, endpoint) else {
            continue;
        };
        let (first, _) = addresses_for(service.ip_address_selection_policy, endpoint);
        let Some(first) = first else { continue };
        let Some(port) = check_port(check, group, serving_port) else {
            continue;
        };
        let families: Vec<IpAddr> = match service.ip_address_selection_policy {
            AddressSelection::Ipv4Only => endpoint.ipv4.map(IpAddr::V4).into_iter().collect(),
            AddressSelection::Ipv6Only => endpoint.ipv6.map(IpAddr::V6).into_iter().collect(),
            AddressSelection::PreferIpv6 => endpoint
                .ipv6
                .map(IpAddr::V6)
                .into_iter()
                .chain(endpoint.ipv4.map(IpAddr::V4))
                .collect(),
        };
        let targets: Vec<Arc<TargetKey>> = families
            .into_iter()
            .map(|ip| {
                let key = TargetKey {
                    address: SocketAddr::new(ip, port),
                    check: definition.clone(),
                };
                let shared = match plan.targets.get_key_value(&key) {
                    Some((shared, _)) => shared.clone(),
                    None => Arc::new(key),
                };
                let names = plan.targets.entry(shared.clone()).or_default();
                if !names.contains(check_name) {
                    names.push(check_name.clone());
                }
                shared
            })
            .collect();
        plan.endpoints.insert(
            ServiceEndpoint {
                service: service_name.clone(),
                address: SocketAddr::new(first, serving_port),
            },
            targets,
        );
    }
}

/// The port a check probes an endpoint on: its fixed port, the group's named port, or the
/// port the service reaches the endpoint on.
fn check_port(check: &HealthCheck, group: &EndpointGroup, serving_port: u16) -> Option<u16> {
    match check.port_selection {
        PortSelection::Fixed => check.port,
        PortSelection::Named => check
            .port_name
            .as_ref()
            .and_then(|name| group.named_ports.get(name).copied()),
        PortSelection::Serving => Some(serving_port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(text: &str) -> Plan {
        let loaded = crate::config::load_str(text, "hc.yaml");
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        plan(&loaded.model)
    }

    fn probed(plan: &Plan, service: &str) -> Vec<(String, Vec<String>)> {
        plan.endpoints
            .iter()
            .filter(|(endpoint, _)| &*endpoint.service == service)
            .map(|(endpoint, targets)| {
                (
                    endpoint.address.to_string(),
                    targets.iter().map(|t| t.address.to_string()).collect(),
                )
            })
            .collect()
    }

    const GROUPS: &str = "networkEndpointGroups:\n- {name: neg, zone: us-central1-a, endpoints: ['ip=10.0.0.1,ipv6=fd00::1,port=8080', {ipAddress: 10.0.0.2, port: 8081}]}\n\
        instanceGroups:\n- {name: ig, zone: us-central1-a, namedPorts: [{name: http, port: 80}, {name: health, port: 9000}], instances: [{ipAddress: 10.0.1.1}]}\n";

    #[test]
    fn families_follow_the_selection_policy() {
        let text = format!(
            "{GROUPS}healthChecks:\n- {{name: hc, type: TCP}}\nbackendServices:\n\
             - {{name: v4, healthChecks: [hc], backends: [{{group: neg, balancingMode: RATE, maxRate: 1}}]}}\n\
             - {{name: v6, ipAddressSelectionPolicy: IPV6_ONLY, healthChecks: [hc], backends: [{{group: neg, balancingMode: RATE, maxRate: 1}}]}}\n\
             - {{name: both, ipAddressSelectionPolicy: PREFER_IPV6, healthChecks: [hc], backends: [{{group: neg, balancingMode: RATE, maxRate: 1}}]}}\n"
        );
        let plan = plan_of(&text);
        let own = |address: &str| (address.to_string(), vec![address.to_string()]);
        assert_eq!(
            probed(&plan, "v4"),
            [own("10.0.0.1:8080"), own("10.0.0.2:8081")]
        );
        assert_eq!(probed(&plan, "v6"), [own("[fd00::1]:8080")]);
        assert_eq!(
            probed(&plan, "both"),
            [
                own("10.0.0.2:8081"),
                (
                    "[fd00::1]:8080".to_string(),
                    vec!["[fd00::1]:8080".to_string(), "10.0.0.1:8080".to_string()]
                )
            ]
        );
        // Three addresses, shared by three services: three targets.
        assert_eq!(plan.targets.len(), 3);
    }

    #[test]
    fn one_definition_under_two_names_is_one_target() {
        let check = "type: HTTP, httpHealthCheck: {requestPath: /healthz}";
        let text = format!(
            "{GROUPS}healthChecks:\n- {{name: a, {check}}}\n- {{name: b, {check}}}\n- {{name: c, type: HTTP, httpHealthCheck: {{requestPath: /other}}}}\nbackendServices:\n\
             - {{name: one, healthChecks: [a], backends: [{{group: neg, balancingMode: RATE, maxRate: 1}}]}}\n\
             - {{name: two, healthChecks: [b], backends: [{{group: neg, balancingMode: RATE, maxRate: 1}}]}}\n\
             - {{name: three, healthChecks: [c], backends: [{{group: neg, balancingMode: RATE, maxRate: 1}}]}}\n"
        );
        let plan = plan_of(&text);
        // Two addresses, each probed by the shared definition and by `c`.
        assert_eq!(plan.targets.len(), 4);
        let shared: Vec<Vec<&str>> = plan
            .targets
            .values()
            .map(|names| names.iter().map(|n| &**n).collect())
            .filter(|names: &Vec<&str>| names.len() == 2)
            .collect();
        assert_eq!(shared, [vec!["a", "b"], vec!["a", "b"]]);
    }

    #[test]
    fn ports_follow_the_port_specification() {
        let text = format!(
            "{GROUPS}healthChecks:\n- {{name: fixed, type: TCP, tcpHealthCheck: {{port: 7000}}}}\n- {{name: named, type: TCP, tcpHealthCheck: {{portName: health}}}}\n- {{name: serving, type: TCP}}\nbackendServices:\n\
             - {{name: fixed, healthChecks: [fixed], backends: [{{group: neg, balancingMode: RATE, maxRate: 1}}]}}\n\
             - {{name: named, healthChecks: [named], backends: [{{group: ig, balancingMode: RATE, maxRate: 1}}]}}\n\
             - {{name: serving, healthChecks: [serving], backends: [{{group: ig, balancingMode: RATE, maxRate: 1}}]}}\n"
        );
        let plan = plan_of(&text);
        let targets = |service: &str| -> Vec<String> {
            probed(&plan, service)
                .into_iter()
                .flat_map(|(_, targets)| targets)
                .collect()
        };
        assert_eq!(targets("fixed"), ["10.0.0.1:7000", "10.0.0.2:7000"]);
        assert_eq!(targets("named"), ["10.0.1.1:9000"]);
        assert_eq!(targets("serving"), ["10.0.1.1:80"]);
    }
}
