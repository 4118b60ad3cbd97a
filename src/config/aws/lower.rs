//! A CloudFormation template lowered into the neutral model: the resources are read (the AWS
//! readers judge them in AWS's words), the rules between them that span resources are checked
//! (priorities per listener; HTTP2 and GRPC groups only behind HTTPS listeners), then target
//! groups (`lower_groups`) become services and endpoint groups, and listeners
//! (`lower_frontends`) frontends and route tables, named by their logical ids. Must not: know
//! xDS, or borrow another dialect's shapes.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::inputs::TemplateInputs;
use crate::config::yaml::Node;
use crate::model::{Diagnostics, Loc, Model};

use super::listeners::{self, Listener, Rule};
use super::lower_frontends::{addresses, lower_listener, proxyless, serve_proxyless, Front};
use super::lower_groups::lower_target_group;
use super::stack;
use super::target_groups::{self, ProtocolVersion, TargetGroup};
use super::template::{self, Kind};

/// Reads one template into `model`: evaluated first (`stack`: parameters, conditions,
/// mappings, functions), then its resources; what is said about the place of a refused
/// function is left out, and what is said about a value that came from a parameter or a
/// mapping says so. Returns the parameters the template declares.
pub fn read_document(
    document: &Node,
    file: &Arc<str>,
    inputs: &TemplateInputs,
    model: &mut Model,
    diagnostics: &mut Diagnostics,
) -> Vec<String> {
    let mut problems = Diagnostics::default();
    let evaluated = stack::evaluate(document, file, inputs, &mut problems);
    let mut found = Diagnostics::default();
    read_resources(&evaluated, file, model, &mut found);
    diagnostics.extend(evaluated.explain(found));
    diagnostics.extend(problems);
    model.inputs.extend(evaluated.inputs);
    evaluated.declared
}

fn read_resources(
    evaluated: &stack::Evaluated,
    file: &Arc<str>,
    model: &mut Model,
    diagnostics: &mut Diagnostics,
) {
    let mut template = template::read_template(&evaluated.document, file, diagnostics);
    template.left_out = evaluated.left_out.clone();
    let mut target_groups = Vec::new();
    let mut load_balancers = BTreeMap::new();
    let mut listeners = Vec::new();
    let mut proxyless_hosts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut rules = Vec::new();
    for resource in template.resources.values() {
        match resource.kind {
            Kind::TargetGroup => target_groups.extend(target_groups::read_target_group(
                &template,
                resource,
                file,
                diagnostics,
            )),
            Kind::LoadBalancer => {
                if let Some(load_balancer) =
                    listeners::read_load_balancer(resource, file, diagnostics)
                {
                    let front = Front {
                        addresses: addresses(resource, &load_balancer, file, diagnostics),
                        attributes: load_balancer.attributes.clone(),
                    };
                    load_balancers.insert(load_balancer.logical_id.clone(), front);
                }
            }
            Kind::Listener => {
                listeners.extend(listeners::read_listener(&template, resource, file, diagnostics));
                let hosts = proxyless(resource, file, diagnostics);
                proxyless_hosts.insert(resource.logical_id.clone(), hosts);
            }
            Kind::ListenerRule => {
                rules.extend(listeners::read_rule(&template, resource, file, diagnostics))
            }
            Kind::ListenerCertificate => diagnostics.error(
                &resource.loc,
                format!("Resources.{}.Type", resource.logical_id),
                "AWS::ElasticLoadBalancingV2::ListenerCertificate is not served yet; list the certificates in the listener's Certificates",
            ),
            Kind::Instance => {}
        }
    }
    listeners::check_priorities(&rules, diagnostics);
    let groups_by_id: BTreeMap<&str, &TargetGroup> = target_groups
        .iter()
        .map(|group| (group.logical_id.as_str(), group))
        .collect();
    check_protocol_versions(&listeners, &rules, &groups_by_id, diagnostics);
    for group in &target_groups {
        lower_target_group(group, model, diagnostics);
    }
    for listener in &listeners {
        let Some(front) = load_balancers.get(&listener.load_balancer) else {
            continue;
        };
        let listener_rules: Vec<&Rule> = rules
            .iter()
            .filter(|rule| rule.listener == listener.logical_id)
            .collect();
        lower_listener(listener, &listener_rules, front, file, model, diagnostics);
        if let Some(hosts) = proxyless_hosts.get(&listener.logical_id) {
            serve_proxyless(listener, hosts, model, diagnostics);
        }
    }
}

/// 002: target groups of protocol version HTTP2 or GRPC are reached only through HTTPS
/// listeners, and only by forward actions.
fn check_protocol_versions(
    listeners: &[Listener],
    rules: &[Rule],
    groups: &BTreeMap<&str, &TargetGroup>,
    diagnostics: &mut Diagnostics,
) {
    let https: BTreeMap<&str, bool> = listeners
        .iter()
        .map(|listener| (listener.logical_id.as_str(), listener.https))
        .collect();
    let actions = listeners
        .iter()
        .map(|l| {
            (
                &l.default_action,
                l.logical_id.as_str(),
                &l.loc,
                format!("Resources.{}.Properties.DefaultActions", l.logical_id),
            )
        })
        .chain(rules.iter().map(|r| {
            (
                &r.action,
                r.listener.as_str(),
                &r.priority_loc,
                format!("Resources.{}.Properties.Actions", r.logical_id),
            )
        }));
    for (action, listener, loc, path) in actions {
        let super::actions::Action::Forward {
            groups: forwarded, ..
        } = action
        else {
            continue;
        };
        for group in forwarded {
            let Some(target_group) = groups.get(group.target_group.as_str()) else {
                continue;
            };
            if target_group.protocol_version == ProtocolVersion::Http1 {
                continue;
            }
            if !https.get(listener).copied().unwrap_or(false) {
                diagnostics.error(
                    loc,
                    &path,
                    format!(
                        "target group {} has protocol version {}, which an ALB reaches only through HTTPS listeners; listener {listener} is HTTP",
                        target_group.logical_id,
                        match target_group.protocol_version {
                            ProtocolVersion::Http2 => "HTTP2",
                            _ => "GRPC",
                        }
                    ),
                );
            }
        }
    }
}

/// Adds a lowered resource; a name already used (by another file, of either dialect) is
/// reported and the first one kept.
pub(super) fn insert<T>(
    map: &mut BTreeMap<String, T>,
    name: String,
    value: T,
    loc: &Loc,
    diagnostics: &mut Diagnostics,
) {
    if map.contains_key(&name) {
        diagnostics.error(
            loc,
            format!("Resources.{name}"),
            format!("the name `{name}` is already used by another resource of the config (in this or another file); logical ids must not repeat names used elsewhere"),
        );
        return;
    }
    map.insert(name, value);
}
