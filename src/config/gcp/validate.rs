//! The GCP dialect's rules that span resources, in the cloud's words: references that must
//! resolve, balancing modes and capacities allowed for the backend type and protocol (the
//! tables of the backend-services document), session affinity and its preconditions, names a
//! URL map may use once, what proxyless clients accept, schemes and ports. Field-level checks
//! (types, enums, ranges) happen while a file is read, where the value's line is at hand.
//! Runs on the whole model; the resources another dialect lowers are built to pass it.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::references::expect;

use super::validate_frontends::{
    check_forwarding_rules, check_proxy_tls, check_proxyless, check_url_map,
};
use crate::config::gcp::resources::{
    Backend, BackendService, BalancingMode, GroupKind, LoadBalancingScheme, ProxyTarget, Resources,
    SessionAffinity,
};
use crate::model::{AddressSelection, BackendProtocol, Diagnostics, Ref};

/// Checks a lowered model; appends to `diagnostics`.
pub fn check(model: &Resources, diagnostics: &mut Diagnostics) {
    for service in model.backend_services.values() {
        check_backend_service(model, service, diagnostics);
        check_session_affinity(service, diagnostics);
    }
    check_shared_instance_groups(model, diagnostics);
    for url_map in model.url_maps.values() {
        check_url_map(model, url_map, diagnostics);
    }
    for proxy in model.target_proxies.values() {
        match &proxy.target {
            ProxyTarget::UrlMap(url_map) => {
                expect(&model.url_maps, url_map, "urlMaps", diagnostics);
                if let Some(tls) = &proxy.tls {
                    check_proxy_tls(model, tls, diagnostics);
                }
            }
            ProxyTarget::Grpc {
                url_map,
                validate_for_proxyless,
            } => {
                if expect(&model.url_maps, url_map, "urlMaps", diagnostics) {
                    let url_map = &model.url_maps[&url_map.name];
                    check_proxyless(model, proxy, url_map, *validate_for_proxyless, diagnostics);
                }
            }
            ProxyTarget::Service(service) => {
                expect_service(model, service, false, diagnostics);
                if let Some(tls) = &proxy.tls {
                    check_proxy_tls(model, tls, diagnostics);
                }
            }
        }
    }
    check_proxy_headers(model, diagnostics);
    check_forwarding_rules(model, diagnostics);
}

/// The PROXY protocol line is a property of the connections to a service's backends, so every
/// proxy in front of one service must agree on `proxyHeader`.
fn check_proxy_headers(model: &Resources, diagnostics: &mut Diagnostics) {
    let mut first_by_service: BTreeMap<&str, &crate::config::gcp::resources::TargetProxy> =
        BTreeMap::new();
    for proxy in model.target_proxies.values() {
        let ProxyTarget::Service(service) = &proxy.target else {
            continue;
        };
        let first = *first_by_service.entry(&service.name).or_insert(proxy);
        if first.proxy_header_v1 != proxy.proxy_header_v1 {
            let header = |p: &crate::config::gcp::resources::TargetProxy| {
                if p.proxy_header_v1 {
                    "PROXY_V1"
                } else {
                    "NONE"
                }
            };
            diagnostics.error(
                &proxy.loc,
                format!("{}.proxyHeader", proxy_path(proxy)),
                format!(
                    "proxyHeader {} differs from {} of `{}`, which fronts the same backend service `{}`; the backends of one service get the PROXY line on every connection or on none",
                    header(proxy),
                    header(first),
                    first.name,
                    service.name
                ),
            );
        }
    }
}

/// `targetTcpProxies[name]` or `targetSslProxies[name]`.
fn proxy_path(proxy: &crate::config::gcp::resources::TargetProxy) -> String {
    let collection = if proxy.tls.is_some() {
        "targetSslProxies"
    } else {
        "targetTcpProxies"
    };
    format!("{collection}[{}]", proxy.name)
}

/// A reference to a backend service that must exist and speak HTTP (`http`) or TCP.
pub(super) fn expect_service(
    model: &Resources,
    reference: &Ref,
    http: bool,
    diagnostics: &mut Diagnostics,
) {
    if expect(
        &model.backend_services,
        reference,
        "backendServices",
        diagnostics,
    ) {
        expect_protocol(model, reference, http, diagnostics);
    }
}

/// A URL map needs HTTP-family services; a TCP proxy needs a TCP one.
fn expect_protocol(model: &Resources, reference: &Ref, http: bool, diagnostics: &mut Diagnostics) {
    let Some(service) = model.backend_services.get(&reference.name) else {
        return;
    };
    if service.protocol.is_http() != http {
        let (wanted, user) = if http {
            ("HTTP, HTTPS, HTTP2, H2C or GRPC", "a URL map")
        } else {
            ("TCP or SSL", "a target TCP or SSL proxy")
        };
        diagnostics.error(
            &reference.loc,
            &reference.path,
            format!(
                "backend service `{}` has protocol {}, but {user} needs protocol {wanted}",
                service.name,
                service.protocol.as_str()
            ),
        );
    }
}

/// The cloud's rules on which backend services take a health check: one at most; none with
/// internet NEGs; USE_NAMED_PORT only with instance groups, which have named ports.
fn check_health_check_use(
    model: &Resources,
    service: &BackendService,
    base: &str,
    diagnostics: &mut Diagnostics,
) {
    let path = format!("{base}.healthChecks");
    let loc = service
        .health_checks
        .first()
        .map_or(service.loc_of("healthChecks"), |reference| &reference.loc);
    if service.health_checks.len() > 1 {
        diagnostics.error(
            loc,
            &path,
            format!(
                "{} health checks are listed; a backend service takes at most one",
                service.health_checks.len()
            ),
        );
    }
    let kinds: BTreeSet<GroupKind> = service
        .backends
        .iter()
        .filter_map(|backend| model.endpoint_groups.get(&backend.group.name))
        .map(|group| group.kind)
        .collect();
    let check = service
        .health_checks
        .first()
        .and_then(|reference| model.health_checks.get(&reference.name));
    let Some(check) = check else {
        // The cloud requires a check for instance groups and GCE_VM_IP_PORT NEGs; Switchyard
        // serves such endpoints unchecked (UNKNOWN, always in rotation), as Envoy does without
        // active health checking, and says so.
        if let Some(kind) = kinds
            .iter()
            .find(|kind| matches!(kind, GroupKind::InstanceGroup | GroupKind::GceVmIpPortNeg))
        {
            diagnostics.note(
                service.loc_of("name"),
                &path,
                format!(
                    "no health check: the cloud requires one for a backend service with {} backends; Switchyard serves these endpoints unchecked, every one taking traffic",
                    kind.as_str()
                ),
            );
        }
        return;
    };
    if let Some(kind) = kinds.iter().find(|kind| kind.is_internet()) {
        diagnostics.error(
            loc,
            &path,
            format!(
                "a backend service with an {} backend must not reference a health check (the \
                 cloud does not check internet endpoints)",
                kind.as_str()
            ),
        );
    }
    if check.port_selection == crate::model::PortSelection::Named {
        if let Some(kind) = kinds.iter().find(|kind| !kind.is_instance_group()) {
            diagnostics.error(
                loc,
                &path,
                format!(
                    "health check `{}` uses USE_NAMED_PORT, which needs instance group backends \
                     (they have named ports); this service has a {} backend: use \
                     USE_SERVING_PORT or a fixed port",
                    check.name,
                    kind.as_str()
                ),
            );
        }
    }
}

fn check_backend_service(
    model: &Resources,
    service: &BackendService,
    diagnostics: &mut Diagnostics,
) {
    let base = format!("backendServices[{}]", service.name);
    if service.protocol == BackendProtocol::Tcp
        && service.load_balancing_scheme == LoadBalancingScheme::ExternalManaged
    {
        diagnostics.error(
            service.loc_of("protocol"),
            format!("{base}.protocol"),
            "protocol TCP is not offered with loadBalancingScheme EXTERNAL_MANAGED (HTTP, HTTPS or \
             HTTP2 only); use EXTERNAL, INTERNAL_MANAGED or INTERNAL_SELF_MANAGED",
        );
    }
    for check in &service.health_checks {
        expect(&model.health_checks, check, "healthChecks", diagnostics);
    }
    check_health_check_use(model, service, &base, diagnostics);
    let mut kinds = BTreeSet::new();
    for (index, backend) in service.backends.iter().enumerate() {
        let path = format!("{base}.backends[{index}]");
        if !expect(
            &model.endpoint_groups,
            &backend.group,
            "instanceGroups or networkEndpointGroups",
            diagnostics,
        ) {
            continue;
        }
        let group = &model.endpoint_groups[&backend.group.name];
        kinds.insert(group.kind.is_instance_group());
        if group.kind.is_internet() {
            // The cloud sends an internet NEG what its service gets: no balancing mode, and
            // the only backend of its service.
            if service.backends.len() > 1 {
                diagnostics.error(
                    &backend.group.loc,
                    format!("{path}.group"),
                    format!(
                        "{} `{}` must be the only backend of its backend service, which has {}",
                        group.kind.as_str(),
                        group.name,
                        service.backends.len()
                    ),
                );
            }
            continue;
        }
        check_address_family(service, group, &path, backend, diagnostics);
        check_balancing_mode(service, backend, group.kind, &path, diagnostics);
        if group.kind.is_instance_group() && !group.named_ports.contains_key(&service.port_name) {
            let known: Vec<&str> = group.named_ports.keys().map(String::as_str).collect();
            diagnostics.error(
                &backend.group.loc,
                format!("{path}.group"),
                format!(
                    "backend service `{}` uses portName `{}`, but instance group `{}` has no \
                     named port of that name (its namedPorts: {})",
                    service.name,
                    service.port_name,
                    group.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
        if !group.kind.is_instance_group() && group.default_port.is_none() {
            for (endpoint_index, endpoint) in group.endpoints.iter().enumerate() {
                if endpoint.port.is_none() {
                    diagnostics.error(
                        &group.loc,
                        format!(
                            "networkEndpointGroups[{}].endpoints[{endpoint_index}].port",
                            group.name
                        ),
                        "the endpoint has no port and its NEG has no defaultPort; set one of them",
                    );
                }
            }
        }
    }
    if kinds.len() > 1 {
        diagnostics.error(
            &service.loc,
            format!("{base}.backends"),
            "a backend service may not mix instance groups and network endpoint groups",
        );
    }
}

/// A backend whose endpoints all lack the family the service's ipAddressSelectionPolicy
/// connects to is accepted (as the cloud accepts it) but will get no traffic: say so.
fn check_address_family(
    service: &BackendService,
    group: &crate::config::gcp::resources::EndpointGroup,
    path: &str,
    backend: &Backend,
    diagnostics: &mut Diagnostics,
) {
    let policy = service.ip_address_selection_policy;
    let (needed, has): (&str, fn(&crate::model::Endpoint) -> bool) = match policy {
        AddressSelection::Ipv6Only => ("IPv6", |e| e.ipv6.is_some()),
        AddressSelection::Ipv4Only => ("IPv4", |e| e.ipv4.is_some()),
        AddressSelection::PreferIpv6 => return,
    };
    let missing = group.endpoints.iter().filter(|e| !has(e)).count();
    if missing == 0 {
        return;
    }
    let (kind, name, policy) = (group.kind.as_str(), &group.name, policy.as_str());
    let message = if missing == group.endpoints.len() {
        format!(
            "no endpoint of {kind} `{name}` has an {needed} address; with ipAddressSelectionPolicy \
             {policy} this backend gets no traffic (clients see 503 failed_to_pick_backend)"
        )
    } else {
        format!(
            "{missing} of the {} endpoints of {kind} `{name}` have no {needed} address; with \
             ipAddressSelectionPolicy {policy} they get no traffic",
            group.endpoints.len()
        )
    };
    diagnostics.warning(&backend.loc, format!("{path}.group"), message);
}

/// One target-capacity field of a backend, with what it measures and what it counts per.
struct CapacityField {
    name: &'static str,
    set: bool,
    measures: BalancingMode,
    per: Per,
}

#[derive(PartialEq)]
enum Per {
    Group,
    Instance,
    Endpoint,
}

fn capacity_fields(backend: &Backend) -> [CapacityField; 7] {
    use BalancingMode::{Connection, Rate, Utilization};
    let field = |name, value: Option<f64>, measures, per| CapacityField {
        name,
        set: value.is_some(),
        measures,
        per,
    };
    [
        field("maxRate", backend.max_rate, Rate, Per::Group),
        field(
            "maxRatePerInstance",
            backend.max_rate_per_instance,
            Rate,
            Per::Instance,
        ),
        field(
            "maxRatePerEndpoint",
            backend.max_rate_per_endpoint,
            Rate,
            Per::Endpoint,
        ),
        field(
            "maxConnections",
            backend.max_connections,
            Connection,
            Per::Group,
        ),
        field(
            "maxConnectionsPerInstance",
            backend.max_connections_per_instance,
            Connection,
            Per::Instance,
        ),
        field(
            "maxConnectionsPerEndpoint",
            backend.max_connections_per_endpoint,
            Connection,
            Per::Endpoint,
        ),
        field(
            "maxUtilization",
            backend.max_utilization,
            Utilization,
            Per::Group,
        ),
    ]
}

/// The balancing-mode tables: which modes a backend type allows behind an HTTP(S) or a TCP
/// proxy, which target capacity each mode requires, and which fields fit which backend.
fn check_balancing_mode(
    service: &BackendService,
    backend: &Backend,
    kind: GroupKind,
    path: &str,
    diagnostics: &mut Diagnostics,
) {
    let mode = backend.balancing_mode;
    let http = service.protocol.is_http();
    let allowed: &[BalancingMode] = match (http, kind.is_instance_group()) {
        (true, true) => &[BalancingMode::Rate, BalancingMode::Utilization],
        (true, false) => &[BalancingMode::Rate],
        (false, true) => &[BalancingMode::Connection, BalancingMode::Utilization],
        (false, false) => &[BalancingMode::Connection],
    };
    let hybrid_outside_internal_tcp = !http
        && kind == GroupKind::NonGcpPrivateIpPortNeg
        && service.load_balancing_scheme != LoadBalancingScheme::InternalManaged;
    if hybrid_outside_internal_tcp {
        diagnostics.error(
            &backend.loc,
            format!("{path}.group"),
            "a NON_GCP_PRIVATE_IP_PORT NEG can back a TCP proxy only with loadBalancingScheme \
             INTERNAL_MANAGED (the regional internal TCP proxy)",
        );
        return;
    }
    if !allowed.contains(&mode) {
        diagnostics.error(
            &backend.loc,
            format!("{path}.balancingMode"),
            format!(
                "{} is not allowed for a backend of type {} behind {} proxy; allowed: {}",
                mode.as_str(),
                kind.as_str(),
                if http { "an HTTP(S)" } else { "a TCP" },
                allowed
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return;
    }
    let fields = capacity_fields(backend);
    let member = if kind.is_instance_group() {
        Per::Instance
    } else {
        Per::Endpoint
    };
    for field in fields.iter().filter(|f| f.set) {
        if field.per != Per::Group && field.per != member {
            let instead = fields
                .iter()
                .find(|f| f.measures == field.measures && f.per == member)
                .map(|f| f.name)
                .unwrap_or_default();
            diagnostics.error(
                &backend.loc,
                format!("{path}.{}", field.name),
                format!(
                    "{} does not apply to backends of type {}; use {} or {instead}",
                    field.name,
                    kind.as_str(),
                    fields
                        .iter()
                        .find(|f| f.measures == field.measures)
                        .unwrap()
                        .name
                ),
            );
        }
    }
    // The capacity a mode is measured in: RATE → rate, CONNECTION → connections;
    // UTILIZATION may add a rate (HTTP) or connection (TCP) cap.
    let measured = match mode {
        BalancingMode::Utilization if http => BalancingMode::Rate,
        BalancingMode::Utilization => BalancingMode::Connection,
        other => other,
    };
    for field in fields.iter().filter(|f| f.set) {
        let fits = field.measures == measured
            || (mode == BalancingMode::Utilization && field.measures == BalancingMode::Utilization);
        if !fits {
            let with: Vec<&str> = fields
                .iter()
                .filter(|f| f.measures == measured && (f.per == Per::Group || f.per == member))
                .map(|f| f.name)
                .chain((mode == BalancingMode::Utilization).then_some("maxUtilization"))
                .collect();
            diagnostics.error(
                &backend.loc,
                format!("{path}.{}", field.name),
                format!(
                    "{} does not apply to balancing mode {}; with {} set {}",
                    field.name,
                    mode.as_str(),
                    mode.as_str(),
                    with.join(" or ")
                ),
            );
        }
    }
    let capacities: Vec<&str> = fields
        .iter()
        .filter(|f| f.set && f.measures == measured)
        .map(|f| f.name)
        .collect();
    let options = fields
        .iter()
        .filter(|f| f.measures == measured && (f.per == Per::Group || f.per == member))
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(" or ");
    if capacities.is_empty() && mode != BalancingMode::Utilization {
        diagnostics.error(
            &backend.loc,
            format!("{path}.balancingMode"),
            format!(
                "balancing mode {} needs a target capacity: set {options}",
                mode.as_str()
            ),
        );
    }
    if capacities.len() > 1 {
        diagnostics.error(
            &backend.loc,
            format!("{path}.{}", capacities[1]),
            format!("set only one of {}", capacities.join(" and ")),
        );
    }
}

/// Session affinity is honoured only by hashing policies, excludes subsetting, and needs the
/// header or cookie it hashes.
fn check_session_affinity(service: &BackendService, diagnostics: &mut Diagnostics) {
    let base = format!("backendServices[{}]", service.name);
    let affinity = service.session_affinity;
    let affinity_name = affinity.as_str();
    if service.subsetting && affinity != SessionAffinity::None {
        diagnostics.error(
            service.loc_of("subsetting"),
            format!("{base}.subsetting"),
            format!(
                "backend subsetting needs sessionAffinity NONE, but it is {affinity_name}; use one or the other"
            ),
        );
    } else if service.subsetting {
        diagnostics.warning(
            service.loc_of("subsetting"),
            format!("{base}.subsetting"),
            "CONSISTENT_HASH_SUBSETTING is accepted but not applied: every proxy gets every endpoint",
        );
    }
    if affinity == SessionAffinity::None {
        return;
    }
    if !service.protocol.is_http() && affinity != SessionAffinity::ClientIp {
        diagnostics.error(
            service.loc_of("sessionAffinity"),
            format!("{base}.sessionAffinity"),
            format!("{affinity_name} needs an HTTP protocol; a TCP backend service allows NONE or CLIENT_IP"),
        );
    }
    // A proxy-issued cookie naming the endpoint keeps a client there under any policy.
    if !service.locality_lb_policy.is_consistent_hash() && service.sticky_cookie.is_none() {
        diagnostics.warning(
            service.loc_of("sessionAffinity"),
            format!("{base}.sessionAffinity"),
            format!(
                "{affinity_name} is honoured only with localityLbPolicy RING_HASH or MAGLEV; backend \
                 service `{}` uses {}, so its requests will not stick",
                service.name,
                service.locality_lb_policy.as_str()
            ),
        );
    }
    if affinity == SessionAffinity::HeaderField
        && service.consistent_hash.http_header_name.is_none()
    {
        diagnostics.error(
            service.loc_of("sessionAffinity"),
            format!("{base}.consistentHash.httpHeaderName"),
            "HEADER_FIELD affinity needs consistentHash.httpHeaderName: the header to hash",
        );
    }
    if affinity == SessionAffinity::HttpCookie && service.consistent_hash.http_cookie.is_none() {
        diagnostics.error(
            service.loc_of("sessionAffinity"),
            format!("{base}.consistentHash.httpCookie"),
            "HTTP_COOKIE affinity needs consistentHash.httpCookie with the cookie's name",
        );
    }
    for (index, backend) in service.backends.iter().enumerate() {
        if backend.balancing_mode == BalancingMode::Utilization {
            diagnostics.warning(
                &backend.loc,
                format!("{base}.backends[{index}].balancingMode"),
                format!(
                    "session affinity {affinity_name} with balancing mode UTILIZATION is not recommended: \
                     changes in load break affinity; prefer RATE or CONNECTION"
                ),
            );
        }
    }
}

/// An instance group used by several backend services needs compatible balancing modes:
/// the same mode, or CONNECTION with RATE — never UTILIZATION with another mode.
fn check_shared_instance_groups(model: &Resources, diagnostics: &mut Diagnostics) {
    let mut first_use: BTreeMap<&str, (&str, BalancingMode)> = BTreeMap::new();
    for service in model.backend_services.values() {
        for (index, backend) in service.backends.iter().enumerate() {
            let Some(group) = model.endpoint_groups.get(&backend.group.name) else {
                continue;
            };
            if !group.kind.is_instance_group() {
                continue;
            }
            let mode = backend.balancing_mode;
            let (other_service, other_mode) = *first_use
                .entry(&group.name)
                .or_insert((&service.name, mode));
            let utilization = [mode, other_mode].contains(&BalancingMode::Utilization);
            if other_service != service.name && mode != other_mode && utilization {
                diagnostics.error(
                    &backend.loc,
                    format!(
                        "backendServices[{}].backends[{index}].balancingMode",
                        service.name
                    ),
                    format!(
                        "instance group `{}` is also a backend of `{other_service}` with balancing \
                         mode {}; {} is not compatible with it (a shared instance group needs the \
                         same mode, or CONNECTION with RATE)",
                        group.name,
                        other_mode.as_str(),
                        mode.as_str()
                    ),
                );
            }
        }
    }
}
