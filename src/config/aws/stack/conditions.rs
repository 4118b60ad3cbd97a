//! The `Conditions` section and the condition functions: `Fn::Equals`, `Fn::And`, `Fn::Or`,
//! `Fn::Not` and `Condition` references (a condition that depends on itself is refused with
//! the loop), each condition evaluated once; in the assertions of `Rules` also `Fn::Contains`,
//! `Fn::EachMemberEquals` and `Fn::EachMemberIn`. Must not: look anything up in the account
//! (`Fn::RefAll`, `Fn::ValueOf` are refused).

use std::collections::BTreeMap;

use crate::config::yaml::{Node, Value};
use crate::model::diagnostics::suggest;

use super::evaluator::{bare_name, function_of, Evaluator, Refused};

/// The declared conditions and their values.
#[derive(Debug, Default)]
pub struct Conditions<'d> {
    declared: Vec<(String, &'d Node)>,
    /// Evaluated so far: None when the condition could not be evaluated (reported).
    values: BTreeMap<String, Option<bool>>,
    /// Conditions being evaluated, outermost first: a loop shows here.
    evaluating: Vec<String>,
}

/// Where a condition function is written: conditions take condition references, rule
/// assertions take the rule functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum In {
    Condition,
    Rule,
}

impl<'d> Evaluator<'d> {
    /// Reads the `Conditions` section and evaluates every condition once.
    pub fn evaluate_conditions(&mut self, section: Option<&'d Node>) {
        let Some(section) = section else {
            return;
        };
        let Value::Map(entries) = &section.value else {
            self.error(
                section.line,
                "Conditions",
                format!(
                    "expected a mapping of condition names to conditions, found {}",
                    section.kind()
                ),
            );
            return;
        };
        self.conditions.declared = entries
            .iter()
            .map(|(key, node)| (key.as_scalar().unwrap_or("").to_string(), node))
            .collect();
        let names: Vec<String> = self
            .conditions
            .declared
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let _ = self.condition(&name, section.line, "Conditions");
        }
    }

    /// The value of the condition named `name` (used at `line`, `path`).
    pub fn condition(&mut self, name: &str, line: usize, path: &str) -> Result<bool, Refused> {
        if let Some(value) = self.conditions.values.get(name) {
            return value.ok_or(Refused);
        }
        let declared = self
            .conditions
            .declared
            .iter()
            .find(|(declared, _)| declared == name)
            .map(|(_, node)| *node);
        let Some(node) = declared else {
            let names: Vec<&str> = self
                .conditions
                .declared
                .iter()
                .map(|(n, _)| n.as_str())
                .collect();
            let hint = suggest(name, &names)
                .map(|s| format!("; did you mean {s}?"))
                .unwrap_or_default();
            let known = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            return Err(self.error(
                line,
                path,
                format!("`{name}` is no condition of the template (its conditions: {known}){hint}"),
            ));
        };
        if let Some(start) = self.conditions.evaluating.iter().position(|c| c == name) {
            let mut chain = self.conditions.evaluating[start..].to_vec();
            chain.push(name.to_string());
            self.conditions.values.insert(name.to_string(), None);
            return Err(self.error(
                node.line,
                &format!("Conditions.{name}"),
                format!("condition {name} depends on itself: {}", chain.join(" → ")),
            ));
        }
        self.conditions.evaluating.push(name.to_string());
        let value = self.truth(node, &format!("Conditions.{name}"), In::Condition);
        self.conditions.evaluating.pop();
        self.conditions
            .values
            .entry(name.to_string())
            .or_insert(value.ok());
        value
    }

    /// Whether a condition function holds.
    pub fn truth(&mut self, node: &Node, path: &str, within: In) -> Result<bool, Refused> {
        if let Value::Map(entries) = &node.value {
            if let [(key, name)] = entries.as_slice() {
                if key.as_scalar() == Some("Condition") {
                    return self.reference_to_condition(name, path, within);
                }
            }
        }
        let Some((function, argument)) = function_of(node) else {
            return Err(self.error(
                node.line,
                path,
                format!("expected a condition function (Fn::Equals, Fn::And, Fn::Or, Fn::Not or a Condition), found {}", node.kind()),
            ));
        };
        let line = node.line;
        match (bare_name(function), within) {
            ("Equals", _) => {
                let [a, b] = self.arguments::<2>(function, argument, line, path)?;
                Ok(same(&self.value_of(a, path)?, &self.value_of(b, path)?))
            }
            ("Not", _) => {
                let [inner] = self.arguments::<1>(function, argument, line, path)?;
                Ok(!self.truth(inner, path, within)?)
            }
            (name @ ("And" | "Or"), _) => {
                let Value::Seq(items) = &argument.value else {
                    return Err(self.takes(function, "a list of 2 to 10 conditions", line, path));
                };
                if !(2..=10).contains(&items.len()) {
                    return Err(self.takes(function, "a list of 2 to 10 conditions", line, path));
                }
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    values.push(self.truth(item, path, within)?);
                }
                Ok(if name == "And" {
                    values.iter().all(|v| *v)
                } else {
                    values.iter().any(|v| *v)
                })
            }
            ("Condition", _) => self.reference_to_condition(argument, path, within),
            ("Contains", In::Rule) => {
                let [list, value] = self.arguments::<2>(function, argument, line, path)?;
                let items = self.items_of(list, function, path)?;
                let value = self.value_of(value, path)?;
                Ok(items.iter().any(|item| same(item, &value)))
            }
            ("EachMemberEquals", In::Rule) => {
                let [list, value] = self.arguments::<2>(function, argument, line, path)?;
                let items = self.items_of(list, function, path)?;
                let value = self.value_of(value, path)?;
                Ok(items.iter().all(|item| same(item, &value)))
            }
            ("EachMemberIn", In::Rule) => {
                let [list, allowed] = self.arguments::<2>(function, argument, line, path)?;
                let items = self.items_of(list, function, path)?;
                let allowed = self.items_of(allowed, function, path)?;
                Ok(items.iter().all(|item| allowed.iter().any(|a| same(item, a))))
            }
            ("RefAll" | "ValueOf" | "ValueOfAll", In::Rule) => Err(self.refuse(
                line,
                path,
                format!("`{function}` is not evaluated: it looks up resources of the AWS account, which only AWS can"),
            )),
            _ => Err(self.error(
                line,
                path,
                format!("`{function}` is not a condition function; {}", match within {
                    In::Condition => "conditions use Fn::Equals, Fn::And, Fn::Or, Fn::Not and Condition",
                    In::Rule => "rule assertions use Fn::Equals, Fn::And, Fn::Or, Fn::Not, Fn::Contains, Fn::EachMemberEquals and Fn::EachMemberIn",
                }),
            )),
        }
    }

    fn reference_to_condition(
        &mut self,
        name: &Node,
        path: &str,
        within: In,
    ) -> Result<bool, Refused> {
        if within == In::Rule {
            return Err(self.error(
                name.line,
                path,
                "rules cannot name conditions (CloudFormation evaluates rules before conditions)",
            ));
        }
        match name.as_scalar() {
            Some(text) => {
                let text = text.to_string();
                self.condition(&text, name.line, path)
            }
            None => Err(self.error(name.line, path, "Condition takes the name of a condition")),
        }
    }

    /// Exactly `N` arguments of a function.
    fn arguments<'n, const N: usize>(
        &mut self,
        function: &str,
        argument: &'n Node,
        line: usize,
        path: &str,
    ) -> Result<&'n [Node; N], Refused> {
        match &argument.value {
            Value::Seq(items) => items
                .as_slice()
                .try_into()
                .map_err(|_| self.takes(function, &format!("a list of {N}"), line, path)),
            _ => Err(self.takes(function, &format!("a list of {N}"), line, path)),
        }
    }

    /// A rule function's list argument, evaluated.
    fn items_of(&mut self, node: &Node, function: &str, path: &str) -> Result<Vec<Node>, Refused> {
        let value = self.value_of(node, path)?;
        match value.value {
            Value::Seq(items) => Ok(items),
            _ => Err(self.takes(function, "a list first", node.line, path)),
        }
    }
}

/// Whether two values are the same, as CloudFormation compares them: as text, item by item.
pub fn same(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Value::Scalar { text: x, .. }, Value::Scalar { text: y, .. }) => x == y,
        (Value::Seq(x), Value::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx.as_scalar() == ky.as_scalar() && same(vx, vy))
        }
        (Value::Null, Value::Null) => true,
        _ => false,
    }
}
