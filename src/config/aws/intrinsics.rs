//! CloudFormation's intrinsic functions in the properties Switchyard reads, dealt with before
//! any resource is read: a `Sub` without variables (`!Sub 'text'`, `${!Literal}` escapes) and a
//! `Join` of plain values are evaluated into the text they stand for; `Ref` and `GetAtt` are
//! left for the readers (they name other resources); every other function, in its short (`!If`)
//! or long (`Fn::If`) form, is refused by name at its path, once, and nothing is said about the
//! value its place would have held. Walked: the `Properties` and `Metadata.Switchyard` of the
//! load balancer resources, and the properties of an `AWS::EC2::Instance` that give a target's
//! address and zone (the rest of an instance belongs to EC2). Must not: know the model or xDS,
//! or evaluate anything that needs a stack (parameters, pseudo parameters, other stacks).

use std::sync::Arc;

use crate::config::yaml::{Node, Value};
use crate::model::{Diagnostics, Loc};

use super::target_groups::INSTANCE_PROPERTIES_READ;
use super::template::Kind;

/// The functions CloudFormation knows, by their long names without `Fn::`.
const KNOWN: &[&str] = &[
    "And",
    "Base64",
    "Cidr",
    "Condition",
    "Contains",
    "EachMemberEquals",
    "Equals",
    "FindInMap",
    "ForEach",
    "GetAZs",
    "GetAtt",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "RefAll",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
    "ValueOf",
    "ValueOfAll",
];

/// A template with its evaluable functions evaluated, and the paths of the refused ones.
pub struct Evaluated {
    pub document: Node,
    refused: Vec<String>,
}

impl Evaluated {
    /// Drops what `diagnostics` say about a refused function's place (a missing value, a
    /// mapping where a string was expected): the refusal already said it.
    pub fn without_consequences(&self, diagnostics: Diagnostics) -> Diagnostics {
        let keep = |path: &str| !self.refused.iter().any(|refused| within(path, refused));
        Diagnostics {
            items: diagnostics
                .items
                .into_iter()
                .filter(|d| keep(&d.path))
                .collect(),
            notes: diagnostics
                .notes
                .into_iter()
                .filter(|d| keep(&d.path))
                .collect(),
        }
    }
}

/// Whether `path` is `place` or lies inside it.
fn within(path: &str, place: &str) -> bool {
    path.strip_prefix(place)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// Evaluates or refuses the functions of `document`'s resources; refusals go to
/// `refusals`, which the caller adds after [`Evaluated::without_consequences`].
pub fn evaluate(document: &Node, file: &Arc<str>, refusals: &mut Diagnostics) -> Evaluated {
    let mut walker = Walker {
        file,
        refusals,
        refused: Vec::new(),
    };
    let mut document = document.clone();
    if let Some(resources) = entry_mut(&mut document, "Resources") {
        if let Value::Map(entries) = &mut resources.value {
            for (key, resource) in entries {
                let id = key.as_scalar().unwrap_or("").to_string();
                walker.resource(&id, resource);
            }
        }
    }
    Evaluated {
        document,
        refused: walker.refused,
    }
}

/// The value of `key` in a mapping.
fn entry_mut<'n>(node: &'n mut Node, key: &str) -> Option<&'n mut Node> {
    let Value::Map(entries) = &mut node.value else {
        return None;
    };
    entries
        .iter_mut()
        .find(|(name, _)| name.as_scalar() == Some(key))
        .map(|(_, value)| value)
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
fn bare_name(function: &str) -> &str {
    function
        .strip_prefix("Fn::")
        .or_else(|| function.strip_prefix('!'))
        .unwrap_or(function)
}

struct Walker<'w> {
    file: &'w Arc<str>,
    refusals: &'w mut Diagnostics,
    refused: Vec<String>,
}

impl Walker<'_> {
    fn resource(&mut self, id: &str, resource: &mut Node) {
        let kind = match entry_mut(resource, "Type").and_then(|t| t.as_scalar().map(Kind::of)) {
            Some(Some(kind)) => kind,
            _ => return,
        };
        let base = format!("Resources.{id}");
        if let Some(properties) = entry_mut(resource, "Properties") {
            let path = format!("{base}.Properties");
            if kind == Kind::Instance {
                self.some_of(properties, &path, INSTANCE_PROPERTIES_READ);
            } else {
                self.walk(properties, &path);
            }
        }
        if let Some(own) =
            entry_mut(resource, "Metadata").and_then(|metadata| entry_mut(metadata, "Switchyard"))
        {
            self.walk(own, &format!("{base}.Metadata.Switchyard"));
        }
    }

    /// Walks only the fields `keys` of a mapping.
    fn some_of(&mut self, node: &mut Node, path: &str, keys: &[&str]) {
        if let Value::Map(entries) = &mut node.value {
            for (key, value) in entries {
                let name = key.as_scalar().unwrap_or("");
                if keys.contains(&name) {
                    self.walk(value, &format!("{path}.{name}"));
                }
            }
        }
    }

    fn walk(&mut self, node: &mut Node, path: &str) {
        if let Some((function, _)) = function_of(node) {
            let function = function.to_string();
            self.function(node, &function, path);
            return;
        }
        match &mut node.value {
            Value::Map(entries) => {
                for (key, value) in entries {
                    let name = key.as_scalar().unwrap_or("").to_string();
                    self.walk(value, &format!("{path}.{name}"));
                }
            }
            Value::Seq(items) => {
                for (index, item) in items.iter_mut().enumerate() {
                    self.walk(item, &format!("{path}[{index}]"));
                }
            }
            _ => {}
        }
    }

    /// Evaluates, keeps (Ref, GetAtt) or refuses the function `node` is.
    fn function(&mut self, node: &mut Node, function: &str, path: &str) {
        match bare_name(function) {
            // A function inside a reference is reported at the reference's path.
            "Ref" | "GetAtt" => {
                if let Value::Map(entries) = &mut node.value {
                    match &mut entries[0].1.value {
                        Value::Seq(items) => items.iter_mut().for_each(|i| self.walk(i, path)),
                        _ => self.walk(&mut entries[0].1, path),
                    }
                }
            }
            _ => match evaluated(node) {
                Ok(text) => {
                    node.value = Value::Scalar { text, quoted: true };
                }
                Err(why) => self.refuse(node, function, path, &why),
            },
        }
    }

    fn refuse(&mut self, node: &mut Node, function: &str, path: &str, why: &str) {
        let known = KNOWN.contains(&bare_name(function));
        let message = if known {
            format!("`{function}` is not evaluated: write the value itself{why}")
        } else {
            format!("`{function}` is no intrinsic function CloudFormation knows; write the value itself")
        };
        self.refusals
            .error(&Loc::new(self.file.clone(), node.line), path, message);
        self.refused.push(path.to_string());
        node.value = Value::Null;
    }
}

/// The text a `Sub` without variables or a `Join` of plain values stands for; otherwise why
/// not (empty when the function is simply not one Switchyard evaluates).
fn evaluated(node: &Node) -> Result<String, String> {
    let Some((function, argument)) = function_of(node) else {
        return node.as_scalar().map(str::to_string).ok_or_else(String::new);
    };
    match bare_name(function) {
        "Sub" => substituted(argument),
        "Join" => joined(argument),
        _ => Err(String::new()),
    }
}

/// `!Sub 'text'` (or `[text, {}]`): `${!X}` is the literal `${X}`; any other `${X}` is a
/// variable, which Switchyard has no value for.
fn substituted(argument: &Node) -> Result<String, String> {
    let template = match &argument.value {
        Value::Scalar { text, .. } => text.as_str(),
        Value::Seq(items) if items.len() == 2 => {
            let empty = matches!(&items[1].value, Value::Map(map) if map.is_empty())
                || items[1].value == Value::Null;
            match (items[0].as_scalar(), empty) {
                (Some(text), true) => text,
                _ => return Err(" (only a Sub without variables is evaluated)".to_string()),
            }
        }
        _ => return Err(String::new()),
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        if let Some(literal) = after.strip_prefix('!') {
            out.push_str("${");
            rest = literal;
            continue;
        }
        let name = after.split('}').next().unwrap_or(after);
        return Err(format!(
            " (`${{{name}}}` has no value outside a CloudFormation stack; only a Sub without variables is evaluated)"
        ));
    }
    out.push_str(rest);
    Ok(out)
}

/// `!Join [delimiter, [values]]` of plain values (or of functions that evaluate to one).
fn joined(argument: &Node) -> Result<String, String> {
    let Value::Seq(parts) = &argument.value else {
        return Err(String::new());
    };
    let [delimiter, values] = parts.as_slice() else {
        return Err(String::new());
    };
    let delimiter = delimiter.as_scalar().unwrap_or("");
    let Value::Seq(values) = &values.value else {
        let inner = function_of(values).map_or("a value that is not a list", |(name, _)| name);
        return Err(format!(
            " (only a Join of a list of plain values is evaluated; this one joins `{inner}`)"
        ));
    };
    let mut texts = Vec::new();
    for value in values {
        match evaluated(value) {
            Ok(text) => texts.push(text),
            Err(_) => {
                let inner = function_of(value).map_or(value.kind(), |(name, _)| name);
                return Err(format!(
                    " (only a Join of plain values is evaluated; this one joins `{inner}`)"
                ));
            }
        }
    }
    Ok(texts.join(delimiter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse;

    fn evaluate_text(text: &str) -> (Node, Vec<String>) {
        let document = parse(text).unwrap().remove(0);
        let mut refusals = Diagnostics::default();
        let evaluated = evaluate(&document, &Arc::from("alb.yaml"), &mut refusals);
        let lines = refusals.items.iter().map(ToString::to_string).collect();
        (evaluated.document, lines)
    }

    fn property(document: &Node, id: &str, key: &str) -> Node {
        let mut document = document.clone();
        entry_mut(&mut document, "Resources")
            .and_then(|r| entry_mut(r, id))
            .and_then(|r| entry_mut(r, "Properties"))
            .and_then(|p| entry_mut(p, key))
            .cloned()
            .unwrap()
    }

    const GROUP: &str =
        "Resources:\n  Web:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n    Properties:\n";

    #[test]
    fn subs_without_variables_and_joins_of_literals_become_text() {
        let (document, lines) = evaluate_text(&format!(
            "{GROUP}      A: !Sub 'plain'\n      B: !Sub 'cost ${{!Price}} and ${{!Tax}}'\n      C: {{'Fn::Join': ['-', [a, !Sub b, !Join ['', [c, d]]]]}}\n      D: !Sub ['x', {{}}]\n      E: !Ref Other\n"
        ));
        assert!(lines.is_empty(), "{lines:?}");
        let text = |key| {
            property(&document, "Web", key)
                .as_scalar()
                .map(str::to_string)
        };
        assert_eq!(text("A").as_deref(), Some("plain"));
        assert_eq!(text("B").as_deref(), Some("cost ${Price} and ${Tax}"));
        assert_eq!(text("C").as_deref(), Some("a-b-cd"));
        assert_eq!(text("D").as_deref(), Some("x"));
        assert!(
            function_of(&property(&document, "Web", "E")).is_some(),
            "Ref is kept"
        );
    }

    #[test]
    fn every_other_function_is_refused_once_with_its_path() {
        let (_, lines) = evaluate_text(&format!(
            "{GROUP}      A: !Sub '${{AWS::Region}}-x'\n      B: !Join [',', [!Ref Web, b]]\n      C: [1, {{'Fn::Base64': x}}]\n      D: {{E: !Cidr [10.0.0.0/16, 2, 8]}}\n      F: !Frobnicate x\n      G: !GetAtt [!Split [',', 'a,b'], Attr]\n"
        ));
        assert_eq!(
            lines,
            [
                "error: alb.yaml:5: Resources.Web.Properties.A: `!Sub` is not evaluated: write the value itself (`${AWS::Region}` has no value outside a CloudFormation stack; only a Sub without variables is evaluated)",
                "error: alb.yaml:6: Resources.Web.Properties.B: `!Join` is not evaluated: write the value itself (only a Join of plain values is evaluated; this one joins `!Ref`)",
                "error: alb.yaml:7: Resources.Web.Properties.C[1]: `Fn::Base64` is not evaluated: write the value itself",
                "error: alb.yaml:8: Resources.Web.Properties.D.E: `!Cidr` is not evaluated: write the value itself",
                "error: alb.yaml:9: Resources.Web.Properties.F: `!Frobnicate` is no intrinsic function CloudFormation knows; write the value itself",
                "error: alb.yaml:10: Resources.Web.Properties.G: `!Split` is not evaluated: write the value itself",
            ]
        );
    }

    #[test]
    fn only_an_instances_address_and_zone_are_looked_at() {
        let (_, lines) = evaluate_text(
            "Resources:\n  Box:\n    Type: AWS::EC2::Instance\n    Properties:\n      ImageId: !FindInMap [Images, Region, Ami]\n      UserData: !Base64 '#!/bin/sh'\n      AvailabilityZone: !Select [0, !GetAZs '']\n  Guard:\n    Type: AWS::EC2::SecurityGroup\n    Properties: {GroupName: !Sub '${AWS::StackName}'}\n",
        );
        assert_eq!(
            lines,
            ["error: alb.yaml:7: Resources.Box.Properties.AvailabilityZone: `!Select` is not evaluated: write the value itself"]
        );
    }

    #[test]
    fn a_refusal_hides_what_is_said_about_its_place_only() {
        let evaluated = Evaluated {
            document: Node {
                value: Value::Null,
                line: 1,
            },
            refused: vec!["R.P.Port".to_string()],
        };
        let mut diagnostics = Diagnostics::default();
        for path in [
            "R.P.Port",
            "R.P.Port.X",
            "R.P.Port[0]",
            "R.P.PortName",
            "R.P",
        ] {
            diagnostics.error(&Loc::new("a.yaml", 1), path, "m");
        }
        let kept: Vec<String> = evaluated
            .without_consequences(diagnostics)
            .items
            .into_iter()
            .map(|d| d.path)
            .collect();
        assert_eq!(kept, ["R.P.PortName", "R.P"]);
    }
}
