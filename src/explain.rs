//! `switchyard explain`: why traffic for a backend service goes where it goes, for a client
//! in a given locality. Shows each backend's priority (from the client's region), target
//! capacity with the formula behind it, capacity scaler, effective capacity, locality weight
//! and resulting share, the health check that decides which endpoints take traffic, and for
//! each endpoint the address (and family) the client connects to — with its health when a
//! running server's `/health` was read — and, when its `/capacity` was read, each region's
//! and backend's capacity, measured load, the share of the client's traffic it is sent and
//! why (full, spare, unhealthy). Pure: model (and what the server reported) in, text out,
//! using the same functions translation uses.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

use crate::capacity::report::{ServiceReport, Standing};
use crate::model::endpoint_facts::{addresses_for, port_of};
use crate::model::{
    capacity, regions, AddressSelection, Affinity, Endpoint, EndpointGroup, Model, PortSelection,
    Service,
};
use crate::translate::endpoints::{plan_localities, region_priorities};

/// Endpoint health as a running server reports it: per endpoint address (as EDS names it),
/// its state and a word on each family.
pub type LiveHealth = BTreeMap<SocketAddr, String>;

/// The service's endpoint policies besides balancing, one line each: slow start, sticky
/// cookie, minimum healthy endpoints, draining.
fn describe_policies(service: &Service) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(window) = service.slow_start {
        lines.push(format!(
            "slow start: an endpoint that joins (or comes back healthy) gets max(1%, t ÷ {}s) of its weight, t the time since it joined; linear, full weight after {}s (Envoy ramps itself; proxyless clients get the ramp as stepped locality weights)",
            window.as_secs(),
            window.as_secs()
        ));
    }
    if let Some(sticky) = &service.sticky_cookie {
        let cookie = &sticky.cookie;
        let ttl = cookie
            .ttl
            .map(|ttl| format!(" (for {ttl:?})"))
            .unwrap_or_default();
        lines.push(match &sticky.application_cookie {
            None => format!(
                "sticky: the proxy issues cookie {} naming the endpoint that served{ttl}; requests carrying it go back there under any policy",
                cookie.name
            ),
            Some(application) => format!(
                "sticky: when the application sets its cookie {application}, the proxy issues cookie {} naming the endpoint that served{ttl}; requests carrying both go back there under any policy",
                cookie.name
            ),
        });
    }
    if let Some(minimum) = &service.minimum_healthy {
        let share = minimum
            .percentage
            .map(|p| format!(" or fewer than {p}% of them"))
            .unwrap_or_default();
        lines.push(format!(
            "fail open: with fewer than {} healthy endpoint(s){share}, every endpoint takes traffic, unhealthy ones included",
            minimum.count
        ));
    }
    lines.push(format!(
        "draining: a removed endpoint finishes its requests and gets no new ones for {}s",
        service.draining_timeout.as_secs()
    ));
    lines
}

/// The report for `service` as a client in `client_region` sees it.
pub fn explain(model: &Model, service: &Service, client_region: Option<&str>) -> String {
    explain_with_health(model, service, client_region, None)
}

/// Whether the service's capacity follows load reports, or keeps its static proportions.
fn describe_capacity_source(service: &Service) -> Option<String> {
    use crate::model::CapacityUnit;
    if let Some(unit) = crate::capacity::decisions::measured_unit(service) {
        return Some(format!(
            "capacity from load reports ({}): each client region fills its nearest region up to its capacity, the rest spills to the next",
            crate::capacity::report::unit_word(unit)
        ));
    }
    service
        .backends
        .iter()
        .any(|backend| backend.capacity.unit == CapacityUnit::Utilization)
        .then(|| {
            "capacity: UTILIZATION keeps its static proportions (utilization carried in load reports is measured, at /load_measured, but does not move traffic between regions)".to_string()
        })
}

/// The template parameters the service's file was read with, and where each came from.
fn describe_inputs(model: &Model, service: &Service) -> Option<String> {
    let values: Vec<String> = model
        .inputs
        .iter()
        .filter(|input| *input.file == *service.loc.file)
        .map(|input| format!("{} = {} ({})", input.name, input.value, input.source))
        .collect();
    (!values.is_empty()).then(|| format!("parameters: {}", values.join(", ")))
}

/// As [`explain`], with each endpoint's health from a running server.
pub fn explain_with_health(
    model: &Model,
    service: &Service,
    client_region: Option<&str>,
    health: Option<&LiveHealth>,
) -> String {
    let mut out = String::new();
    let client = client_region.unwrap_or("no region");
    let _ = writeln!(
        out,
        "{} as seen by a client in {client}\n\
         localityLbPolicy {}, sessionAffinity {}, protocol {}",
        service.path,
        service.lb_policy.as_str(),
        describe_affinity(&service.affinity),
        service.protocol.as_str()
    );
    out.push_str(
        "effective = target capacity × capacityScaler; weight = effective ÷ largest effective × 10000;\n\
         share = weight ÷ sum of weights in the same priority. Priority 0 takes all traffic while it\n\
         has a healthy endpoint; the next priority takes over when it has none.\n",
    );
    if let Some(line) = describe_inputs(model, service) {
        let _ = writeln!(out, "{line}");
    }
    if let Some(line) = describe_capacity_source(service) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "{}", describe_health_check(model, service));
    for line in describe_policies(service) {
        let _ = writeln!(out, "{line}");
    }
    let planned = plan_localities(model, service);
    let priorities = region_priorities(model, &planned, client_region);
    let backends: Vec<_> = service
        .backends
        .iter()
        .filter(|b| model.endpoint_groups.contains_key(&b.group.name))
        .collect();
    let max_priority = priorities.values().max().copied();
    for priority in 0..=max_priority.unwrap_or(0) {
        let in_priority: Vec<usize> = (0..planned.len())
            .filter(|&i| {
                planned[i].weight.is_some()
                    && priorities.get(&planned[i].group.region) == Some(&priority)
            })
            .collect();
        if in_priority.is_empty() {
            continue;
        }
        let region = &planned[in_priority[0]].group.region;
        let regions_here: Vec<&str> = {
            let mut r: Vec<&str> = in_priority
                .iter()
                .map(|&i| planned[i].group.region.as_str())
                .collect();
            r.dedup();
            r
        };
        let _ = writeln!(
            out,
            "\npriority {priority}: {} ({})",
            regions_here.join(", "),
            why(model, client_region, region)
        );
        let total: u64 = in_priority
            .iter()
            .map(|&i| u64::from(planned[i].weight.unwrap()))
            .sum();
        for &i in &in_priority {
            let plan = &planned[i];
            let backend = backends[i];
            let weight = plan.weight.unwrap();
            let _ = writeln!(
                out,
                "  {} ({}, {}): target {} = {}; scaler {}; effective {}; weight {}; share {:.1}%",
                plan.group.name,
                plan.group.zone,
                backend.capacity.written.mode,
                capacity::number(capacity::target_capacity(&backend.capacity, plan.group)),
                backend.capacity.written.formula,
                capacity::number(backend.capacity.scaler),
                capacity::number(plan.effective_capacity),
                weight,
                100.0 * f64::from(weight) / total as f64
            );
            for endpoint in &plan.group.endpoints {
                let live = health.and_then(|health| {
                    let port = port_of(service, plan.group, endpoint)?;
                    let (first, _) = addresses_for(service.ip_address_selection_policy, endpoint);
                    health.get(&SocketAddr::new(first?, port))
                });
                let _ = writeln!(
                    out,
                    "    {}{}",
                    describe_endpoint(service, plan.group, endpoint),
                    live.map(|state| format!("; health {state}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    let idle: Vec<usize> = (0..planned.len())
        .filter(|&i| planned[i].weight.is_none())
        .collect();
    if !idle.is_empty() {
        out.push_str("\nout of rotation (effective capacity 0):\n");
        for i in idle {
            let _ = writeln!(
                out,
                "  {} ({}): capacityScaler {}; target {} = {}",
                planned[i].group.name,
                planned[i].group.zone,
                capacity::number(backends[i].capacity.scaler),
                capacity::number(capacity::target_capacity(
                    &backends[i].capacity,
                    planned[i].group
                )),
                backends[i].capacity.written.formula
            );
        }
    }
    out
}

/// The capacity decisions a running server reported for the service: per backend region and
/// backend, capacity, measured load, the share of the client region's traffic it is sent and
/// why; then what each client region sends. `client_region`: the client explained (None:
/// every client region is listed).
pub fn describe_capacity(report: &ServiceReport, client_region: Option<&str>) -> String {
    let mut out = String::new();
    let unit = &report.unit;
    let _ = writeln!(
        out,
        "\ncapacity from load reports ({unit}; the nearest region is filled up to its capacity, \
         the excess goes to the next region with spare capacity):"
    );
    let client =
        client_region.and_then(|region| report.clients.iter().find(|c| c.region == region));
    let mut regions: Vec<&str> = report
        .backends
        .iter()
        .map(|b| b.capacity.region.as_str())
        .collect();
    regions.dedup();
    for region in regions {
        let here: Vec<_> = report
            .backends
            .iter()
            .filter(|b| b.capacity.region == region)
            .collect();
        let capacity: f64 = here.iter().map(|b| b.capacity.capacity).sum();
        let load: f64 = here.iter().map(|b| b.load).sum();
        let _ = writeln!(
            out,
            "  region {region}: capacity {}, measured load {}",
            capacity::number(capacity),
            capacity::number(load)
        );
        for backend in here {
            let share = match client {
                Some(client) => {
                    let shares = client.published.as_ref().unwrap_or(&client.target);
                    let share = shares.get(&backend.capacity.group).copied().unwrap_or(0.0);
                    format!(
                        "; share of {}'s traffic {:.1}%",
                        client.region,
                        100.0 * share
                    )
                }
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "    {}: {} of {} endpoint(s) routable; capacity {}; measured load {}{share} — {}",
                backend.capacity.group,
                backend.capacity.routable,
                backend.capacity.endpoints,
                capacity::number(backend.capacity.capacity),
                capacity::number(backend.load),
                standing_reason(backend.standing)
            );
        }
    }
    for client in &report.clients {
        let sent = match &client.published {
            Some(shares) => format!("sent {}", describe_shares(shares)),
            None => "the static answer (its nearest region takes it all)".to_string(),
        };
        let _ = writeln!(
            out,
            "  clients in {} send {} (smoothed {}): {sent}; target {}",
            client.region,
            capacity::number(client.measured),
            capacity::number(client.smoothed),
            describe_shares(&client.target)
        );
    }
    if client_region.is_some() && client.is_none() {
        out.push_str("  the client's region sent no load: it keeps the static answer above\n");
    }
    out
}

/// `near 50.0%, far 50.0%`.
fn describe_shares(shares: &BTreeMap<String, f64>) -> String {
    shares
        .iter()
        .map(|(group, share)| format!("{group} {:.1}%", 100.0 * share))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a backend takes what it takes, for people.
fn standing_reason(standing: Standing) -> &'static str {
    match standing {
        Standing::Full => "full: its region takes all it can, the excess goes on",
        Standing::Spare => "spare: its region can take more",
        Standing::Unhealthy => "unhealthy: no endpoint passes its checks, it carries no capacity",
        Standing::NoCapacity => "no capacity (a scaler of 0, or no endpoint)",
    }
}

/// What keeps a client on one endpoint, in a word or two.
fn describe_affinity(affinity: &Affinity) -> String {
    match affinity {
        Affinity::None => "NONE".to_string(),
        Affinity::ClientAddress => "CLIENT_IP".to_string(),
        Affinity::Cookie(cookie) => format!("cookie {}", cookie.name),
        Affinity::Header(name) => format!("header {name}"),
    }
}

/// The health check of `service`, or what happens without one.
fn describe_health_check(model: &Model, service: &Service) -> String {
    let Some(check) = service
        .health_checks
        .first()
        .and_then(|reference| model.health_checks.get(&reference.name))
    else {
        return "no health check: every endpoint takes traffic (EDS health UNKNOWN)".to_string();
    };
    let port = match check.port_selection {
        PortSelection::Fixed => format!("port {}", check.port.unwrap_or_default()),
        PortSelection::Named => format!(
            "named port {}",
            check.port_name.as_deref().unwrap_or_default()
        ),
        PortSelection::Serving => "the serving port".to_string(),
    };
    format!(
        "health check {} ({} on {port}, every {}s, timeout {}s): healthy after {} pass(es), \
         unhealthy after {} failure(s); an endpoint checked on two families is healthy when \
         either is",
        check.name,
        check.protocol.as_str(),
        check.check_interval_sec,
        check.timeout_sec,
        check.healthy_threshold,
        check.unhealthy_threshold
    )
}

/// Which address a client connects to for `endpoint`, and why.
fn describe_endpoint(service: &Service, group: &EndpointGroup, endpoint: &Endpoint) -> String {
    let name = endpoint.instance.as_deref().unwrap_or("endpoint");
    let policy = service.ip_address_selection_policy;
    let Some(port) = port_of(service, group, endpoint) else {
        return format!(
            "{name}: no port (neither the endpoint, defaultPort nor a named port gives one)"
        );
    };
    let at = |ip: IpAddr| SocketAddr::new(ip, port);
    let family = |ip: &IpAddr| if ip.is_ipv6() { "IPv6" } else { "IPv4" };
    match addresses_for(policy, endpoint) {
        (None, _) => format!(
            "{name}: no traffic — {} and the endpoint has no address of that family",
            policy.as_str()
        ),
        (Some(first), Some(fallback)) => format!(
            "{name}: {} over {} ({}: IPv6 first; happy eyeballs falls back to {} over IPv4)",
            at(first),
            family(&first),
            policy.as_str(),
            at(fallback)
        ),
        (Some(first), None) => {
            let why = match policy {
                AddressSelection::PreferIpv6 => "PREFER_IPV6, and it is the endpoint's only family",
                other => other.as_str(),
            };
            format!("{name}: {} over {} ({why})", at(first), family(&first))
        }
    }
}

/// Why a region has its place in the client's failover order.
fn why(model: &Model, client_region: Option<&str>, region: &str) -> &'static str {
    match client_region {
        None => "the client reports no region: every region is equal",
        Some(client) if client == region => "the client's own region",
        Some(client)
            if model
                .region_order
                .get(client)
                .is_some_and(|o| o.iter().any(|r| r == region)) =>
        {
            "listed in regionOrder for the client's region"
        }
        Some(client) if regions::continent(client) == regions::continent(region) => {
            "same continent as the client"
        }
        Some(_) => "another continent",
    }
}
