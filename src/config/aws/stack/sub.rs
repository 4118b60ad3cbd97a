//! `Fn::Sub`: a text with `${Name}` variables put in — the variables of its map, parameters,
//! pseudo parameters, `${Resource}` and `${Resource.Attribute}` where Switchyard knows the
//! value — and `${!Literal}` written as `${Literal}`. A Sub that is nothing but one resource
//! (`!Sub '${WebTargets}'`), where a reader reads a reference, is that reference. Must not:
//! make up a value AWS would assign.

use crate::config::yaml::{Node, Value};

use super::evaluator::{scalar, Eval, Evaluator, Refused, Want};

impl Evaluator<'_> {
    /// `!Sub 'text'` or `!Sub [text, {Var: value}]`.
    pub(super) fn substitute(
        &mut self,
        function: &str,
        argument: &Node,
        line: usize,
        path: &str,
        want: Want,
    ) -> Eval {
        let takes = "a text, or [text, {Name: value}]";
        let (template, variables) = match &argument.value {
            Value::Scalar { text, .. } => (text.as_str(), None),
            Value::Seq(items) if items.len() == 2 => {
                let Some(text) = items[0].as_scalar() else {
                    return Err(self.takes(function, takes, line, path));
                };
                match &items[1].value {
                    Value::Map(entries) => (text, Some(entries)),
                    Value::Null => (text, None),
                    _ => return Err(self.takes(function, takes, line, path)),
                }
            }
            _ => return Err(self.takes(function, takes, line, path)),
        };
        if want == Want::Place {
            if let Some(reference) = self.as_reference(template, variables.is_some(), line, path) {
                return Ok(Some(reference));
            }
        }
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
            let Some(end) = after.find('}') else {
                return Err(self.error(
                    line,
                    path,
                    format!("`{function}`: `${{{after}` has no closing `}}`"),
                ));
            };
            let name = &after[..end];
            let text = self.variable(function, name, variables, line, path)?;
            out.push_str(&text);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(Some(scalar(&out, line)))
    }

    /// The text of variable `name` of a Sub.
    fn variable(
        &mut self,
        function: &str,
        name: &str,
        variables: Option<&Vec<(Node, Node)>>,
        line: usize,
        path: &str,
    ) -> Result<String, Refused> {
        let given = variables.and_then(|entries| {
            entries
                .iter()
                .find(|(key, _)| key.as_scalar() == Some(name))
                .map(|(_, value)| value)
        });
        if let Some(value) = given {
            return self.text_of(value, path, function);
        }
        let written = format!("`${{{name}}}` in `{function}`");
        let value = match name.split_once('.') {
            Some((id, attribute)) if !name.starts_with("AWS::") => {
                self.resource_value(id, Some(attribute), line, path, &written)?
            }
            _ => self.named(name, line, path, &written)?,
        };
        match value.as_ref().map(|v| &v.value) {
            Some(Value::Scalar { text, .. }) => Ok(text.clone()),
            Some(_) => Err(self.error(
                line,
                path,
                format!("{written} is a list, and a Sub puts text in its place; pick an item with !Select or join them with !Join"),
            )),
            None => Err(self.error(
                line,
                path,
                format!("{written}: AWS::NoValue has no text to put in a Sub"),
            )),
        }
    }

    /// `${X}` or `${X.Attr}` alone, naming a resource where a reference is read: the `Ref`
    /// or `GetAtt` it stands for.
    fn as_reference(
        &self,
        template: &str,
        has_variables: bool,
        line: usize,
        path: &str,
    ) -> Option<Node> {
        let name = template.strip_prefix("${")?.strip_suffix('}')?;
        if has_variables || name.contains(['$', '{', '}', '!']) || name.starts_with("AWS::") {
            return None;
        }
        let (function, argument) = match name.split_once('.') {
            Some(_) => ("Fn::GetAtt", name),
            None => ("Ref", name),
        };
        let argument = scalar(argument, line);
        if !self.keeps_reference(function, &argument, path) {
            return None;
        }
        Some(Node {
            value: Value::Map(vec![(scalar(function, line), argument)]),
            line,
        })
    }
}
