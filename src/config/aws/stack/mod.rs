//! A CloudFormation template evaluated as CloudFormation evaluates it when it creates a stack,
//! before any resource is read: the `Parameters` with their constraints and the values given
//! from outside (`parameters`), the pseudo parameters (`pseudo`), `Rules` (`rules`),
//! `Conditions` (`conditions`: a resource whose Condition is false is left out), `Mappings`
//! and the intrinsic functions (`evaluator`, `functions`, `sub`, `resources`), and the
//! `AWS::LanguageExtensions` transform (other transforms are refused). The result is the
//! template with its values in place, what the load was read with (parameter values, secrets
//! masked; pseudo parameters used), and where each value came from (`origins`), so that the
//! readers' diagnostics can say it. Walked: the `Properties` and `Metadata.Switchyard` of the
//! load balancer resources, and the properties of an `AWS::EC2::Instance` that give a target's
//! address and zone. Must not: know the model or xDS, or ask AWS anything.

mod conditions;
mod evaluator;
mod functions;
mod origins;
mod parameters;
mod pseudo;
mod refusals;
mod resources;
mod rules;
mod sub;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::inputs::TemplateInputs;
use crate::config::yaml::{Node, Value};
use crate::model::diagnostics::suggest;
use crate::model::{Diagnostics, InputValue, Loc};

use super::listeners::LOAD_BALANCER_PROPERTIES_IGNORED;
use super::target_groups::{INSTANCE_PROPERTIES_READ, TARGET_GROUP_PROPERTIES_IGNORED};
use super::template::Kind;
use evaluator::{child, Declared, Evaluator, Want};
use pseudo::{Pseudo, PseudoValue};

pub use evaluator::{bare_name, function_of};
pub use functions::{base64, json};

/// A template with its values evaluated.
pub struct Evaluated {
    pub document: Node,
    /// Resources left out by a false Condition: logical id → the condition.
    pub left_out: BTreeMap<String, String>,
    /// The parameter values (secrets masked) and pseudo parameters the template was read with.
    pub inputs: Vec<InputValue>,
    /// The parameters the template declares.
    pub declared: Vec<String>,
    places: origins::Places,
}

impl Evaluated {
    /// What the readers said, with what is said about refused places left out and what is
    /// said about evaluated ones told where the value came from.
    pub fn explain(&self, diagnostics: Diagnostics) -> Diagnostics {
        self.places.explain(diagnostics)
    }
}

/// Evaluates `document`, the template read from `file`, with the values given from outside;
/// what is wrong goes to `problems`.
pub fn evaluate(
    document: &Node,
    file: &Arc<str>,
    inputs: &TemplateInputs,
    problems: &mut Diagnostics,
) -> Evaluated {
    let resources = section(document, "Resources");
    let zones = target_zones(resources);
    let pseudo = Pseudo::new(
        inputs.region.as_deref(),
        inputs.stack_name.as_deref(),
        file,
        zones.first().map(String::as_str),
    );
    let mut evaluator = Evaluator::new(file, pseudo);
    evaluator.language_extensions = transform(section(document, "Transform"), &mut evaluator);
    let parameters = parameters::read(
        section(document, "Parameters"),
        file,
        inputs,
        &mut evaluator.problems,
    );
    evaluator.parameters = parameters::by_name(&parameters);
    evaluator.mappings = mappings(section(document, "Mappings"), &mut evaluator);
    evaluator.resources = declared(resources);
    evaluator.zones = zones;
    evaluator.zones.sort();
    evaluator.zones.dedup();
    evaluator.check_rules(section(document, "Rules"));
    evaluator.evaluate_conditions(section(document, "Conditions"));
    evaluator.take_used();
    let mut document = document.clone();
    if let (Some(resources), Value::Map(entries)) = (resources, &mut document.value) {
        let evaluated = evaluator.resources_of(resources);
        for (key, value) in entries.iter_mut() {
            if key.as_scalar() == Some("Resources") {
                *value = evaluated.clone();
            }
        }
    }
    problems.extend(std::mem::take(&mut evaluator.problems));
    Evaluated {
        document,
        inputs: inputs_of(file, &parameters, &evaluator.pseudo),
        declared: parameters.iter().map(|p| p.name.clone()).collect(),
        left_out: evaluator.left_out,
        places: evaluator.places,
    }
}

/// A top-level section of the template.
fn section<'d>(document: &'d Node, name: &str) -> Option<&'d Node> {
    entry(document, name)
}

fn entry<'d>(node: &'d Node, name: &str) -> Option<&'d Node> {
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(key, _)| key.as_scalar() == Some(name))
            .map(|(_, value)| value),
        _ => None,
    }
}

/// `Transform`: AWS::LanguageExtensions is evaluated (whether it is there); any other
/// transform is refused.
fn transform(node: Option<&Node>, evaluator: &mut Evaluator<'_>) -> bool {
    let Some(node) = node else {
        return false;
    };
    let names: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    let mut extensions = false;
    for name in names {
        match name.as_scalar() {
            Some("AWS::LanguageExtensions") => extensions = true,
            Some(other) => {
                evaluator.error(
                    name.line,
                    "Transform",
                    format!("the transform {other} is not run: SAM and macros run inside CloudFormation; give the template they produce (the stack's processed template). Only AWS::LanguageExtensions is evaluated"),
                );
            }
            None => {
                evaluator.error(
                    name.line,
                    "Transform",
                    "a transform is the name of a macro (only AWS::LanguageExtensions is evaluated)",
                );
            }
        }
    }
    extensions
}

/// The `Mappings` section, if it is a mapping.
fn mappings<'d>(node: Option<&'d Node>, evaluator: &mut Evaluator<'_>) -> Option<&'d Node> {
    let node = node?;
    if !matches!(node.value, Value::Map(_)) {
        evaluator.error(
            node.line,
            "Mappings",
            format!(
                "expected a mapping of mapping names to mappings, found {}",
                node.kind()
            ),
        );
        return None;
    }
    Some(node)
}

/// Every resource by logical id, with its type and properties.
fn declared(resources: Option<&Node>) -> BTreeMap<String, Declared<'_>> {
    let Some(Value::Map(entries)) = resources.map(|r| &r.value) else {
        return BTreeMap::new();
    };
    entries
        .iter()
        .filter_map(|(key, node)| {
            let type_name = entry(node, "Type").and_then(Node::as_scalar).unwrap_or("");
            Some((
                key.as_scalar()?.to_string(),
                Declared {
                    type_name,
                    properties: entry(node, "Properties"),
                },
            ))
        })
        .collect()
}

/// The zones the template's targets name as written, target groups' targets first, in the
/// order written.
fn target_zones(resources: Option<&Node>) -> Vec<String> {
    let Some(Value::Map(entries)) = resources.map(|r| &r.value) else {
        return Vec::new();
    };
    let of_type = |kind: Kind| {
        entries.iter().filter(move |(_, node)| {
            entry(node, "Type").and_then(Node::as_scalar) == Some(kind.type_name())
        })
    };
    let mut zones = Vec::new();
    for (_, group) in of_type(Kind::TargetGroup) {
        let targets = entry(group, "Properties").and_then(|p| entry(p, "Targets"));
        if let Some(Value::Seq(targets)) = targets.map(|t| &t.value) {
            zones.extend(
                targets.iter().filter_map(|target| {
                    entry(target, "AvailabilityZone").and_then(Node::as_scalar)
                }),
            );
        }
    }
    for (_, instance) in of_type(Kind::Instance) {
        let properties = entry(instance, "Properties");
        zones.extend(
            properties
                .and_then(|p| entry(p, "AvailabilityZone"))
                .and_then(Node::as_scalar),
        );
    }
    zones
        .into_iter()
        .filter(|zone| *zone != "all")
        .map(str::to_string)
        .collect()
}

impl Evaluator<'_> {
    /// The `Resources` section evaluated: resources whose Condition is false left out (and
    /// recorded), the others with their values in place.
    fn resources_of(&mut self, resources: &Node) -> Node {
        let Value::Map(entries) = &resources.value else {
            return resources.clone();
        };
        for (key, resource) in entries {
            let id = key.as_scalar().unwrap_or("");
            if let Some(condition) = entry(resource, "Condition") {
                self.resource_condition(id, condition);
            }
        }
        let mut kept = Vec::with_capacity(entries.len());
        for (key, resource) in entries {
            let id = key.as_scalar().unwrap_or("");
            if !self.left_out.contains_key(id) {
                kept.push((key.clone(), self.resource(id, resource)));
            }
        }
        Node {
            value: Value::Map(kept),
            line: resources.line,
        }
    }

    /// A resource's `Condition`: false leaves the resource out.
    fn resource_condition(&mut self, id: &str, condition: &Node) {
        let path = format!("Resources.{id}.Condition");
        let Some(name) = condition.as_scalar() else {
            self.error(
                condition.line,
                &path,
                "Condition takes the name of a condition of the Conditions section",
            );
            return;
        };
        if self.condition(name, condition.line, &path) == Ok(false) {
            self.left_out.insert(id.to_string(), name.to_string());
        }
    }

    /// One resource with its values in place (and its Condition, now evaluated, gone).
    fn resource(&mut self, id: &str, resource: &Node) -> Node {
        let Value::Map(entries) = &resource.value else {
            return resource.clone();
        };
        let kind = entry(resource, "Type")
            .and_then(Node::as_scalar)
            .and_then(Kind::of);
        let mut evaluated = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let value = match (key.as_scalar(), kind) {
                (Some("Condition"), _) => continue,
                (Some("Properties"), Some(kind)) => self.properties(id, kind, value),
                (Some("Metadata"), Some(_)) => self.metadata(id, value),
                _ => value.clone(),
            };
            evaluated.push((key.clone(), value));
        }
        Node {
            value: Value::Map(evaluated),
            line: resource.line,
        }
    }

    /// A resource's properties: those an instance has for its address and zone, every one of
    /// a load balancer resource (those Switchyard ignores only noted when they cannot be
    /// evaluated).
    fn properties(&mut self, id: &str, kind: Kind, properties: &Node) -> Node {
        let path = format!("Resources.{id}.Properties");
        let Value::Map(entries) = &properties.value else {
            return self.place(properties, &path);
        };
        let ignored: &[&str] = match kind {
            Kind::LoadBalancer => LOAD_BALANCER_PROPERTIES_IGNORED,
            Kind::TargetGroup => TARGET_GROUP_PROPERTIES_IGNORED,
            _ => &[],
        };
        let mut evaluated = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let name = key.as_scalar().unwrap_or("");
            if kind == Kind::Instance && !INSTANCE_PROPERTIES_READ.contains(&name) {
                evaluated.push((key.clone(), value.clone()));
                continue;
            }
            self.ignored = ignored.contains(&name);
            let value = self.eval(value, &child(&path, name), Want::Place);
            self.ignored = false;
            if let Ok(Some(value)) = value {
                evaluated.push((key.clone(), value));
            }
        }
        Node {
            value: Value::Map(evaluated),
            line: properties.line,
        }
    }

    /// A resource's `Metadata`: only `Switchyard` (Switchyard's own settings) is evaluated.
    fn metadata(&mut self, id: &str, metadata: &Node) -> Node {
        let Value::Map(entries) = &metadata.value else {
            return metadata.clone();
        };
        let path = format!("Resources.{id}.Metadata.Switchyard");
        let evaluated = entries
            .iter()
            .map(|(key, value)| match key.as_scalar() {
                Some("Switchyard") => (key.clone(), self.place(value, &path)),
                _ => (key.clone(), value.clone()),
            })
            .collect();
        Node {
            value: Value::Map(evaluated),
            line: metadata.line,
        }
    }

    /// A place evaluated as a whole (nothing where AWS::NoValue removes it).
    fn place(&mut self, node: &Node, path: &str) -> Node {
        match self.eval(node, path, Want::Place) {
            Ok(Some(value)) => value,
            _ => Node {
                value: Value::Null,
                line: node.line,
            },
        }
    }
}

/// What the template was read with: each declared parameter with a value, then each pseudo
/// parameter it used.
fn inputs_of(
    file: &Arc<str>,
    parameters: &[parameters::Parameter],
    pseudo: &Pseudo,
) -> Vec<InputValue> {
    let parameters = parameters
        .iter()
        .filter(|p| p.value.is_some())
        .map(|p| InputValue {
            file: file.to_string(),
            name: p.name.clone(),
            value: if p.secret {
                "****".to_string()
            } else {
                p.text.clone()
            },
            source: p.source.clone(),
        });
    let pseudo = pseudo.used.iter().map(|(name, value, source)| InputValue {
        file: file.to_string(),
        name: name.to_string(),
        value: match value {
            PseudoValue::Text(text) => text.clone(),
            PseudoValue::List(items) => items.join(","),
        },
        source: source.clone(),
    });
    parameters.chain(pseudo).collect()
}

/// An override naming a parameter that no template it applies to declares is an error, as
/// CloudFormation refuses it; `declared` is every (file, parameter) of the load.
pub fn check_overrides(
    inputs: &TemplateInputs,
    declared: &[(Arc<str>, String)],
    diagnostics: &mut Diagnostics,
) {
    for given in &inputs.overrides {
        let applicable: Vec<&str> = declared
            .iter()
            .filter(|(file, _)| given.applies_to(file))
            .map(|(_, name)| name.as_str())
            .collect();
        if applicable.contains(&given.key.as_str()) {
            continue;
        }
        let mut names = applicable.clone();
        names.sort_unstable();
        names.dedup();
        let whose = match &given.scope {
            Some(scope) => format!("the templates matching `{scope}`"),
            None => "the templates of this load".to_string(),
        };
        let hint = suggest(&given.key, &names)
            .map(|s| format!("; did you mean {s}?"))
            .unwrap_or_default();
        let declare = if names.is_empty() {
            "they declare no parameters".to_string()
        } else {
            format!("they declare {}", names.join(", "))
        };
        diagnostics.error(
            &given_at(&given.given_by),
            "Parameters",
            format!(
                "{}: `{}` is no parameter of {whose} ({declare}{hint}); CloudFormation refuses a value for a parameter no template declares",
                given.given_by, given.key
            ),
        );
    }
}

/// Where an override was given: `params.json:3` is that file and line; a flag is the
/// command line (line 0, which messages leave out).
fn given_at(given_by: &str) -> Loc {
    match given_by.rsplit_once(':') {
        Some((file, line)) if !line.is_empty() && line.chars().all(|c| c.is_ascii_digit()) => {
            Loc::new(file, line.parse().unwrap_or(0))
        }
        _ => Loc::new("command line", 0),
    }
}

#[cfg(test)]
mod function_tests;
#[cfg(test)]
mod parameter_tests;
