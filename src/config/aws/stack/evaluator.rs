//! The evaluator of a template's values: walks a node, evaluates each function in it (short
//! `!X` and long `Fn::X` forms) into the value CloudFormation would give, removes what
//! `AWS::NoValue` removes, and refuses by name, with its path and why, what only AWS can
//! answer. `Ref` and `GetAtt` of resources stay as they are where a reader reads a reference
//! (a listener's `LoadBalancerArn`, a rule's `ListenerArn`, an action's `TargetGroupArn`, an
//! instance target's `Id`); elsewhere they are the resource's value, when Switchyard knows it.
//! Each evaluated place records where its value came from (`origins`). The functions are in
//! `functions` (lists, text, mappings), `sub` and `resources`; conditions in `conditions`;
//! what is refused, and why, in `refusals`.
//! Must not: know the model or xDS.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::config::yaml::{Node, Value};
use crate::model::Diagnostics;

use super::conditions::Conditions;
use super::origins::{Origin, Places};
use super::parameters::Parameter;
use super::pseudo::{Pseudo, PseudoValue, ACCOUNT_ID};

/// A problem already reported: the value has no evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused;

/// A value, or None where `AWS::NoValue` removes its place.
pub type Eval = Result<Option<Node>, Refused>;

/// What the place being evaluated takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// A property as written: where a reader reads a reference, a resource's `Ref` stays.
    Place,
    /// A value (a function's argument): a resource's `Ref` must have one.
    Value,
}

/// A resource as declared, for its references and the values Switchyard knows of it.
#[derive(Clone, Copy, Debug)]
pub struct Declared<'d> {
    pub type_name: &'d str,
    pub properties: Option<&'d Node>,
}

/// Properties whose value a reader takes as a reference to another resource.
const REFERENCE_PROPERTIES: [&str; 3] = ["LoadBalancerArn", "ListenerArn", "TargetGroupArn"];

/// Evaluates the values of one template.
pub struct Evaluator<'d> {
    pub file: Arc<str>,
    pub parameters: BTreeMap<String, Parameter>,
    pub pseudo: Pseudo,
    pub mappings: Option<&'d Node>,
    pub conditions: Conditions<'d>,
    pub resources: BTreeMap<String, Declared<'d>>,
    /// Resources left out by a false Condition: logical id → the condition.
    pub left_out: BTreeMap<String, String>,
    /// `Transform: AWS::LanguageExtensions`: Length, ToJsonString and FindInMap's default.
    pub language_extensions: bool,
    /// The zones the template's targets name, sorted (what `Fn::GetAZs` answers).
    pub zones: Vec<String>,
    pub problems: Diagnostics,
    pub places: Places,
    /// Whether the place being evaluated is a property Switchyard ignores: what cannot be
    /// evaluated there is noted, not refused.
    pub ignored: bool,
    /// Origins of the values used by the evaluation under way.
    used: Vec<Origin>,
    /// How deep inside a function the evaluation is (0: at a place of the template).
    depth: usize,
    /// Resource attributes being evaluated, against loops.
    pub(super) resolving: Vec<String>,
    /// Notes already given (once per template).
    pub(super) noted: BTreeSet<String>,
}

impl<'d> Evaluator<'d> {
    pub fn new(file: &Arc<str>, pseudo: Pseudo) -> Evaluator<'d> {
        Evaluator {
            file: file.clone(),
            parameters: BTreeMap::new(),
            pseudo,
            mappings: None,
            conditions: Conditions::default(),
            resources: BTreeMap::new(),
            left_out: BTreeMap::new(),
            language_extensions: false,
            zones: Vec::new(),
            problems: Diagnostics::default(),
            places: Places::default(),
            ignored: false,
            used: Vec::new(),
            depth: 0,
            resolving: Vec::new(),
            noted: BTreeSet::new(),
        }
    }

    /// Evaluates `node` at `path`: its functions become values; at a place of the template
    /// a refused function becomes nothing (its place is recorded as refused).
    pub fn eval(&mut self, node: &Node, path: &str, want: Want) -> Eval {
        if let Some((function, argument)) = function_of(node) {
            if want == Want::Place && self.keeps_reference(function, argument, path) {
                return Ok(Some(node.clone()));
            }
            return self.at_place(path, node.line, |this| {
                this.function(function, argument, node, path, want)
            });
        }
        match &node.value {
            Value::Map(entries) => {
                let mut evaluated = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    let name = key.as_scalar().unwrap_or("");
                    let place = inner(path, want, || child(path, name));
                    if let Some(value) = self.eval(value, &place, want)? {
                        evaluated.push((key.clone(), value));
                    }
                }
                Ok(Some(Node {
                    value: Value::Map(evaluated),
                    line: node.line,
                }))
            }
            Value::Seq(items) => {
                let mut evaluated = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    let place = inner(path, want, || format!("{path}[{index}]"));
                    if let Some(item) = self.eval(item, &place, want)? {
                        evaluated.push(item);
                    }
                }
                Ok(Some(Node {
                    value: Value::Seq(evaluated),
                    line: node.line,
                }))
            }
            Value::Scalar { text, .. } if text.contains("{{resolve:") => {
                self.at_place(path, node.line, |this| {
                    Err(this.dynamic_reference(text, node.line, path))
                })
            }
            _ => Ok(Some(node.clone())),
        }
    }

    /// A function's argument as a value: never removed, never a reference left for a reader.
    pub fn value_of(&mut self, node: &Node, path: &str) -> Result<Node, Refused> {
        self.depth += 1;
        let value = self.eval(node, path, Want::Value);
        self.depth -= 1;
        value?.ok_or_else(|| {
            self.error(
                node.line,
                path,
                "AWS::NoValue has no value here; it only removes a property or a list item",
            )
        })
    }

    /// A function's argument as text.
    pub fn text_of(&mut self, node: &Node, path: &str, function: &str) -> Result<String, Refused> {
        let value = self.value_of(node, path)?;
        match &value.value {
            Value::Scalar { text, .. } => Ok(text.clone()),
            _ => Err(self.error(
                node.line,
                path,
                format!("`{function}` takes text here, found {}", value.kind()),
            )),
        }
    }

    /// Evaluates at a place: a refusal at the top of a place empties it (recorded, so that
    /// what readers say about the empty place is dropped); inside a function it goes up.
    fn at_place(
        &mut self,
        path: &str,
        line: usize,
        evaluate: impl FnOnce(&mut Self) -> Eval,
    ) -> Eval {
        if self.depth > 0 {
            self.depth += 1;
            let result = evaluate(self);
            self.depth -= 1;
            return result;
        }
        self.depth = 1;
        let result = evaluate(self);
        self.depth = 0;
        let used = std::mem::take(&mut self.used);
        match result {
            Ok(value) => {
                self.places.record(path, used);
                Ok(value)
            }
            Err(Refused) => {
                self.places.refuse(path);
                Ok(Some(Node {
                    value: Value::Null,
                    line,
                }))
            }
        }
    }

    /// Whether a `Ref`/`GetAtt` of a resource stays as written at `path`: where a reader reads
    /// a reference, and in properties Switchyard ignores.
    pub(super) fn keeps_reference(&self, function: &str, argument: &Node, path: &str) -> bool {
        let name = bare_name(function);
        let target = match name {
            "Ref" => argument.as_scalar(),
            "GetAtt" => attribute_target(argument).map(|(id, _)| id),
            _ => None,
        };
        let Some(target) = target else {
            return false;
        };
        if target.starts_with("AWS::") || self.parameters.contains_key(target) {
            return false;
        }
        if self.ignored {
            return true;
        }
        let field = last_field(path);
        REFERENCE_PROPERTIES.contains(&field)
            || (field == "Id" && name == "Ref" && path.contains(".Targets["))
    }

    fn function(
        &mut self,
        function: &str,
        argument: &Node,
        node: &Node,
        path: &str,
        want: Want,
    ) -> Eval {
        let line = node.line;
        match bare_name(function) {
            "Ref" => self.reference(function, argument, line, path),
            "If" => self.choose(function, argument, line, path, want),
            "GetAtt" => self.attribute(function, argument, line, path),
            "Sub" => self.substitute(function, argument, line, path, want),
            "Join" => self.join(function, argument, line, path),
            "Select" => self.select(function, argument, line, path),
            "Split" => self.split(function, argument, line, path),
            "GetAZs" => self.zones_of(function, argument, line, path),
            "Base64" => self.base64(function, argument, path),
            "FindInMap" => self.find_in_map(function, argument, line, path),
            "ToJsonString" => self.json_string(function, argument, line, path),
            "Length" => self.length(function, argument, line, path),
            name => Err(self.refuse_function(function, name, line, path)),
        }
    }

    /// `!Ref Name`: a parameter's or pseudo parameter's value, or a resource's.
    fn reference(&mut self, function: &str, argument: &Node, line: usize, path: &str) -> Eval {
        let name = match argument.as_scalar() {
            Some(name) => name.to_string(),
            None if function_of(argument).is_some() && self.language_extensions => {
                self.text_of(argument, path, function)?
            }
            None => {
                return Err(self.error(
                    line,
                    path,
                    format!(
                    "`{function}` takes the name of a parameter, a pseudo parameter or a resource"
                ),
                ))
            }
        };
        self.named(&name, line, path, &format!("`{function} {name}`"))
    }

    /// The value `name` stands for in a `Ref` or a `Sub` (`written` is how, for messages).
    pub fn named(&mut self, name: &str, line: usize, path: &str, written: &str) -> Eval {
        if name == "AWS::NoValue" {
            return Ok(None);
        }
        if name.starts_with("AWS::") {
            return self.pseudo_value(name, line, path).map(Some);
        }
        if self.parameters.contains_key(name) {
            return self.parameter_value(name, line).map(Some);
        }
        self.resource_value(name, None, line, path, written)
    }

    /// A parameter's value, at the line of its use.
    pub fn parameter_value(&mut self, name: &str, line: usize) -> Result<Node, Refused> {
        let parameter = &self.parameters[name];
        // A parameter without a value was reported where it is declared.
        let value = parameter.value.clone().ok_or(Refused)?;
        self.used.push(Origin {
            text: format!(
                "the value of parameter {name}, {}:{}, {}",
                self.file,
                parameter.line,
                parameter.given()
            ),
            secret: parameter.secret.then(|| parameter.text.clone()),
        });
        Ok(at_line(value, line))
    }

    fn pseudo_value(&mut self, name: &str, line: usize, path: &str) -> Result<Node, Refused> {
        let (value, source) = match self.pseudo.value(name) {
            Ok(answer) => answer,
            Err(why) => return Err(self.error(line, path, why)),
        };
        if name == "AWS::AccountId" || name == "AWS::StackId" {
            self.note_once(
                line,
                path,
                format!("{name} has no value outside AWS; Switchyard uses the account {ACCOUNT_ID} (AWS's example account) in its place"),
            );
        }
        self.used.push(Origin {
            text: format!("the value of {name}, {source}"),
            secret: None,
        });
        Ok(match value {
            PseudoValue::Text(text) => scalar(&text, line),
            PseudoValue::List(items) => Node {
                value: Value::Seq(items.iter().map(|item| scalar(item, line)).collect()),
                line,
            },
        })
    }

    /// Records where a value used by the evaluation under way came from.
    pub fn used(&mut self, origin: Origin) {
        self.used.push(origin);
    }

    /// The origins used since last asked, each once.
    pub fn take_used(&mut self) -> Vec<Origin> {
        let mut origins: Vec<Origin> = Vec::new();
        for origin in std::mem::take(&mut self.used) {
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        origins
    }

    /// `!If [Condition, WhenTrue, WhenFalse]`: the branch its condition picks.
    fn choose(
        &mut self,
        function: &str,
        argument: &Node,
        line: usize,
        path: &str,
        want: Want,
    ) -> Eval {
        let Value::Seq(items) = &argument.value else {
            return Err(self.takes(
                function,
                "[condition name, value if true, value if false]",
                line,
                path,
            ));
        };
        let [condition, when_true, when_false] = items.as_slice() else {
            return Err(self.takes(
                function,
                "[condition name, value if true, value if false]",
                line,
                path,
            ));
        };
        let Some(name) = condition.as_scalar() else {
            return Err(self.takes(function, "the name of a condition first", line, path));
        };
        let chosen = if self.condition(name, condition.line, path)? {
            when_true
        } else {
            when_false
        };
        self.eval(chosen, path, want)
    }

    /// `!GetAtt Resource.Attribute` where a value is needed.
    fn attribute(&mut self, function: &str, argument: &Node, line: usize, path: &str) -> Eval {
        let Some((id, attribute)) = attribute_target(argument) else {
            return Err(self.takes(
                function,
                "`LogicalId.Attribute` or [LogicalId, Attribute]",
                line,
                path,
            ));
        };
        let written = format!("`{function} {id}.{attribute}`");
        self.resource_value(id, Some(attribute), line, path, &written)
    }
}

/// The function a node is, and its argument: a one-entry mapping keyed `Ref`, `Fn::…` or a
/// short form (`!Sub`).
pub fn function_of(node: &Node) -> Option<(&str, &Node)> {
    let Value::Map(entries) = &node.value else {
        return None;
    };
    let [(key, argument)] = entries.as_slice() else {
        return None;
    };
    let name = key.as_scalar()?;
    (name == "Ref" || name.starts_with("Fn::") || name.starts_with('!')).then_some((name, argument))
}

/// `Sub` for `!Sub` and `Fn::Sub`.
pub fn bare_name(function: &str) -> &str {
    function
        .strip_prefix("Fn::")
        .or_else(|| function.strip_prefix('!'))
        .unwrap_or(function)
}

/// The resource and attribute of a `GetAtt`: `X.Attr` or `[X, Attr]`.
pub fn attribute_target(argument: &Node) -> Option<(&str, &str)> {
    match &argument.value {
        Value::Scalar { text, .. } => text.split_once('.'),
        Value::Seq(items) if items.len() == 2 => items[0].as_scalar().zip(items[1].as_scalar()),
        _ => None,
    }
}

/// The path of a part of a value: a place of the template is named by its own path; a
/// function's argument is no place, and what is said about it is said at the function's.
fn inner(path: &str, want: Want, place: impl FnOnce() -> String) -> String {
    match want {
        Want::Place => place(),
        Want::Value => path.to_string(),
    }
}

/// `path.key`, or `key` at the top.
pub fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The last field a path names, without list indexes: `TargetGroupArn` of
/// `Resources.L.Properties.DefaultActions[0].TargetGroupArn`.
fn last_field(path: &str) -> &str {
    let last = path.rsplit('.').next().unwrap_or(path);
    last.split('[').next().unwrap_or(last)
}

/// A text value written at `line`.
pub fn scalar(text: &str, line: usize) -> Node {
    Node {
        value: Value::Scalar {
            text: text.to_string(),
            quoted: true,
        },
        line,
    }
}

/// A value moved to the line of its use (with its items, for a list).
pub fn at_line(mut node: Node, line: usize) -> Node {
    node.line = line;
    match &mut node.value {
        Value::Seq(items) => {
            for item in items {
                *item = at_line(item.clone(), line);
            }
        }
        Value::Map(entries) => {
            for (key, value) in entries {
                key.line = line;
                *value = at_line(value.clone(), line);
            }
        }
        _ => {}
    }
    node
}
