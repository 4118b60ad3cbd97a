//! A template's `Parameters` section read as CloudFormation reads it: each declaration's
//! `Type`, `Default` and constraints (`AllowedValues`, `AllowedPattern` matched against the whole
//! value, `MinLength`/`MaxLength`, `MinValue`/`MaxValue`, with `ConstraintDescription` in the
//! message), and the value in use: the override given from outside, else the Default, else an
//! error naming the flag. List types (`CommaDelimitedList`, `List<Number>`, `List<AWS::…>`)
//! become lists. Must not: show a `NoEcho` value in any message, or look anything up in AWS
//! (the AWS-specific types are taken as written; SSM parameter types are refused).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::inputs::TemplateInputs;
use crate::config::reader::Fields;
use crate::config::yaml::{Node, Value};
use crate::model::{Diagnostics, Loc};

/// One declared parameter and the value it has in this load.
#[derive(Clone, Debug)]
pub struct Parameter {
    pub name: String,
    /// The value (a list for list types); None when it has none (already reported).
    pub value: Option<Node>,
    /// The value as given, for what the load was read with.
    pub text: String,
    /// `NoEcho: true`: the value never appears in a message or a dump.
    pub secret: bool,
    /// Where it is declared.
    pub line: usize,
    /// `its Default`, or the override's `given_by` (`--parameter Env`).
    pub source: String,
    /// Whether the value came from outside the template.
    pub overridden: bool,
}

impl Parameter {
    /// What a message says the value is: `` `dev` `` or, for a secret, `the value`.
    pub fn shown(&self, text: &str) -> String {
        if self.secret {
            "the value".to_string()
        } else {
            format!("`{text}`")
        }
    }

    /// Where the value came from, for messages: `its Default` or `given by --parameter Env`.
    pub fn given(&self) -> String {
        if self.overridden {
            format!("given by {}", self.source)
        } else {
            "its Default".to_string()
        }
    }
}

/// The parameter types CloudFormation takes that are strings checked against the account
/// (which Switchyard cannot do: they are taken as written).
const AWS_TYPES: &[&str] = &[
    "AWS::EC2::AvailabilityZone::Name",
    "AWS::EC2::Image::Id",
    "AWS::EC2::Instance::Id",
    "AWS::EC2::KeyPair::KeyName",
    "AWS::EC2::SecurityGroup::GroupName",
    "AWS::EC2::SecurityGroup::Id",
    "AWS::EC2::Subnet::Id",
    "AWS::EC2::Volume::Id",
    "AWS::EC2::VPC::Id",
    "AWS::Route53::HostedZone::Id",
    "AWS::SSM::Parameter::Name",
];

/// What a parameter's Type makes of its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Text,
    Number,
    TextList,
    NumberList,
}

/// The shape of a declared Type, or why it is refused.
fn shape_of(type_name: &str) -> Result<Shape, String> {
    if type_name.starts_with("AWS::SSM::Parameter::Value<") {
        return Err(format!("type {type_name} takes its value from Systems Manager Parameter Store, which only AWS reads; declare the parameter as String and give the value with --parameter"));
    }
    match type_name {
        "String" => return Ok(Shape::Text),
        "Number" => return Ok(Shape::Number),
        "CommaDelimitedList" => return Ok(Shape::TextList),
        "List<Number>" => return Ok(Shape::NumberList),
        _ => {}
    }
    if AWS_TYPES.contains(&type_name) {
        return Ok(Shape::Text);
    }
    if let Some(inner) = type_name
        .strip_prefix("List<")
        .and_then(|rest| rest.strip_suffix('>'))
    {
        if AWS_TYPES.contains(&inner) {
            return Ok(Shape::TextList);
        }
    }
    Err(format!("`{type_name}` is not a parameter type; allowed: String, Number, List<Number>, CommaDelimitedList, the AWS-specific types (such as AWS::EC2::VPC::Id) and List<> of them"))
}

/// The constraints of one declaration.
#[derive(Default)]
struct Constraints {
    allowed_values: Option<Vec<String>>,
    allowed_pattern: Option<(String, Option<regex::Regex>)>,
    min_length: Option<i64>,
    max_length: Option<i64>,
    min_value: Option<f64>,
    max_value: Option<f64>,
    description: Option<String>,
}

/// Reads the `Parameters` section: every declaration with its value in this load, in the
/// order declared.
pub fn read(
    section: Option<&Node>,
    file: &Arc<str>,
    inputs: &TemplateInputs,
    diagnostics: &mut Diagnostics,
) -> Vec<Parameter> {
    let Some(section) = section else {
        return Vec::new();
    };
    let Value::Map(entries) = &section.value else {
        diagnostics.error(
            &Loc::new(file.clone(), section.line),
            "Parameters",
            format!(
                "expected a mapping of parameter names to declarations, found {}",
                section.kind()
            ),
        );
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|(key, node)| {
            let name = key.as_scalar().unwrap_or("");
            read_one((name, key.line), node, file, inputs, diagnostics)
        })
        .collect()
}

/// One declaration, `name` written at `line`.
fn read_one(
    (name, line): (&str, usize),
    node: &Node,
    file: &Arc<str>,
    inputs: &TemplateInputs,
    diagnostics: &mut Diagnostics,
) -> Option<Parameter> {
    let path = format!("Parameters.{name}");
    let loc = Loc::new(file.clone(), line);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        diagnostics.error(
            &loc,
            &path,
            format!(
                "`{name}` is not a parameter name; parameter names are letters and digits only"
            ),
        );
        return None;
    }
    let mut fields = Fields::new(node, file, &path, diagnostics);
    let type_name = fields.required_string("Type", diagnostics);
    let default = fields.get("Default");
    let secret = fields.bool("NoEcho", false, diagnostics);
    fields.ignore(&["Description"]);
    let constraints = constraints(&mut fields, diagnostics);
    fields.finish(diagnostics);
    let shape = match shape_of(type_name.as_deref()?) {
        Ok(shape) => shape,
        Err(why) => {
            diagnostics.error(&loc, format!("{path}.Type"), why);
            return None;
        }
    };
    let given = inputs.override_for(file, name);
    let mut parameter = Parameter {
        name: name.to_string(),
        value: None,
        text: String::new(),
        secret,
        line,
        source: given.map_or_else(|| "default".to_string(), |o| o.given_by.clone()),
        overridden: given.is_some(),
    };
    let text = match (given, default) {
        (Some(given), _) => given.value.clone(),
        (None, Some(default)) => match default_text(default) {
            Some(text) => text,
            None => {
                diagnostics.error(
                    &Loc::new(file.clone(), default.line),
                    format!("{path}.Default"),
                    format!("expected a value, found {}", default.kind()),
                );
                return Some(parameter);
            }
        },
        (None, None) => {
            diagnostics.error(
                &loc,
                &path,
                format!("parameter {name} has no Default and no value is given; give one with --parameter {name}=VALUE (or in a --parameters-file)"),
            );
            return Some(parameter);
        }
    };
    let failures = check(&parameter, shape, &text, &constraints);
    for failure in &failures {
        diagnostics.error(&loc, &path, failure);
    }
    if failures.is_empty() {
        parameter.value = Some(value_node(shape, &text, line));
    }
    parameter.text = text;
    Some(parameter)
}

/// A Default as text: a scalar, or a list of scalars (joined with commas, as a list
/// parameter's default may be written).
fn default_text(node: &Node) -> Option<String> {
    match &node.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        Value::Seq(items) => items
            .iter()
            .map(|item| item.as_scalar().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(|items| items.join(",")),
        _ => None,
    }
}

fn constraints(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> Constraints {
    let allowed_values = fields
        .get("AllowedValues")
        .and_then(|node| match &node.value {
            Value::Seq(items) => items
                .iter()
                .map(|item| item.as_scalar().map(str::to_string))
                .collect::<Option<Vec<_>>>(),
            _ => None,
        });
    if fields.get("AllowedValues").is_some() && allowed_values.is_none() {
        diagnostics.error(
            &fields.loc_of("AllowedValues"),
            fields.field_path("AllowedValues"),
            "expected a list of values",
        );
    }
    let allowed_pattern = fields.string("AllowedPattern", diagnostics).map(|pattern| {
        let compiled = regex::Regex::new(&format!("^(?:{pattern})$")).ok();
        if compiled.is_none() {
            diagnostics.error(
                &fields.loc_of("AllowedPattern"),
                fields.field_path("AllowedPattern"),
                format!("`{pattern}` is not a regular expression Switchyard can check (no look-around or back-references)"),
            );
        }
        (pattern, compiled)
    });
    Constraints {
        allowed_values,
        allowed_pattern,
        min_length: fields.integer("MinLength", 0, i64::MAX, diagnostics),
        max_length: fields.integer("MaxLength", 0, i64::MAX, diagnostics),
        min_value: fields.number("MinValue", f64::MIN, f64::MAX, diagnostics),
        max_value: fields.number("MaxValue", f64::MIN, f64::MAX, diagnostics),
        description: fields.string("ConstraintDescription", diagnostics),
    }
}

/// The value of a parameter of `shape` given as `text`.
fn value_node(shape: Shape, text: &str, line: usize) -> Node {
    let scalar = |text: &str| Node {
        value: Value::Scalar {
            text: text.to_string(),
            quoted: true,
        },
        line,
    };
    match shape {
        Shape::Text | Shape::Number => scalar(text),
        Shape::TextList | Shape::NumberList => Node {
            value: Value::Seq(items(text).into_iter().map(scalar).collect()),
            line,
        },
    }
}

/// The items of a list parameter's value: split at commas, each trimmed; none when empty.
fn items(text: &str) -> Vec<&str> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    text.split(',').map(str::trim).collect()
}

/// Every constraint `text` fails, as messages naming the parameter, the value (unless secret),
/// where it was given and the constraint.
fn check(
    parameter: &Parameter,
    shape: Shape,
    text: &str,
    constraints: &Constraints,
) -> Vec<String> {
    let list = matches!(shape, Shape::TextList | Shape::NumberList);
    let checked: Vec<&str> = if list { items(text) } else { vec![text] };
    let given = if list {
        format!("an item of the list {}", parameter.given())
    } else {
        parameter.given()
    };
    let mut failures = Vec::new();
    for value in checked {
        for failure in failures_of(shape, value, constraints) {
            let mut message = format!(
                "parameter {}: {} ({given}) {failure}",
                parameter.name,
                parameter.shown(value)
            );
            if let Some(description) = &constraints.description {
                message.push_str(&format!("; {description}"));
            }
            failures.push(message);
        }
    }
    failures
}

/// What one value (or list item) fails, in words.
fn failures_of(shape: Shape, value: &str, constraints: &Constraints) -> Vec<String> {
    let mut failures = Vec::new();
    let numeric = matches!(shape, Shape::Number | Shape::NumberList);
    if numeric {
        match value.trim().parse::<f64>().ok().filter(|n| n.is_finite()) {
            None => failures.push(format!(
                "is not a number (the parameter's Type is {})",
                if shape == Shape::Number {
                    "Number"
                } else {
                    "List<Number>"
                }
            )),
            Some(number) => {
                if let Some(min) = constraints.min_value.filter(|min| number < *min) {
                    failures.push(format!("is less than its MinValue {min}"));
                }
                if let Some(max) = constraints.max_value.filter(|max| number > *max) {
                    failures.push(format!("is greater than its MaxValue {max}"));
                }
            }
        }
    }
    if let Some(allowed) = &constraints.allowed_values {
        if !allowed.iter().any(|a| a == value) {
            failures.push(format!(
                "is not one of its AllowedValues: {}",
                allowed.join(", ")
            ));
        }
    }
    if !numeric {
        if let Some((pattern, Some(compiled))) = &constraints.allowed_pattern {
            if !compiled.is_match(value) {
                failures.push(format!(
                    "does not match its AllowedPattern `{pattern}` (the whole value must match)"
                ));
            }
        }
        let length = value.chars().count() as i64;
        if let Some(min) = constraints.min_length.filter(|min| length < *min) {
            failures.push(format!("is shorter than its MinLength {min}"));
        }
        if let Some(max) = constraints.max_length.filter(|max| length > *max) {
            failures.push(format!("is longer than its MaxLength {max}"));
        }
    }
    failures
}

/// The parameters by name.
pub fn by_name(parameters: &[Parameter]) -> BTreeMap<String, Parameter> {
    parameters
        .iter()
        .map(|p| (p.name.clone(), p.clone()))
        .collect()
}
