//! The functions that compute a value from others: `Fn::Join`, `Fn::Select`, `Fn::Split`,
//! `Fn::GetAZs` (the zones the template's targets use), `Fn::Base64`, `Fn::FindInMap` (with the
//! `DefaultValue` of AWS::LanguageExtensions), `Fn::ToJsonString` and `Fn::Length` (both of
//! AWS::LanguageExtensions, refused without it as CloudFormation refuses them). Each takes its
//! arguments evaluated, and names itself, its path and what it takes when they do not fit.
//! Must not: know resources or the model.

use crate::config::yaml::{Node, Value};
use crate::model::diagnostics::suggest;

use super::evaluator::{scalar, Eval, Evaluator, Refused};
use super::origins::Origin;

impl Evaluator<'_> {
    /// `!Join [delimiter, [values]]`: the values' text joined.
    pub(super) fn join(
        &mut self,
        function: &str,
        argument: &Node,
        line: usize,
        path: &str,
    ) -> Eval {
        let Some([delimiter, values]) = pair(argument) else {
            return Err(self.takes(function, "[delimiter, [values]]", line, path));
        };
        let Some(delimiter) = delimiter.as_scalar().map(str::to_string) else {
            return Err(self.takes(function, "a delimiter written as text", line, path));
        };
        let items = self.list_of(values, path, function)?;
        let mut texts = Vec::with_capacity(items.len());
        for item in &items {
            match item.as_scalar() {
                Some(text) => texts.push(text.to_string()),
                None => {
                    return Err(self.takes(
                        function,
                        &format!("a list of text values, and one is {}", item.kind()),
                        line,
                        path,
                    ))
                }
            }
        }
        Ok(Some(scalar(&texts.join(&delimiter), line)))
    }

    /// `!Select [index, list]`: the item at the index (from 0).
    pub(super) fn select(
        &mut self,
        function: &str,
        argument: &Node,
        line: usize,
        path: &str,
    ) -> Eval {
        let Some([index, list]) = pair(argument) else {
            return Err(self.takes(function, "[index, list]", line, path));
        };
        let index_text = self.text_of(index, path, function)?;
        let items = self.list_of(list, path, function)?;
        let Ok(at) = index_text.trim().parse::<usize>() else {
            return Err(self.error(
                line,
                path,
                format!("`{function}`: `{index_text}` is not an index; an index is a whole number from 0"),
            ));
        };
        match items.get(at) {
            Some(item) => Ok(Some(item.clone())),
            None => Err(self.error(
                line,
                path,
                format!(
                    "`{function}`: index {at} is past the end of a list of {} (indexes start at 0)",
                    items.len()
                ),
            )),
        }
    }

    /// `!Split [delimiter, text]`: the pieces between delimiters, empty ones kept.
    pub(super) fn split(
        &mut self,
        function: &str,
        argument: &Node,
        line: usize,
        path: &str,
    ) -> Eval {
        let Some([delimiter, source]) = pair(argument) else {
            return Err(self.takes(function, "[delimiter, text]", line, path));
        };
        let Some(delimiter) = delimiter.as_scalar().filter(|d| !d.is_empty()) else {
            return Err(self.takes(function, "a delimiter written as text", line, path));
        };
        let delimiter = delimiter.to_string();
        let text = self.text_of(source, path, function)?;
        Ok(Some(list(
            text.split(&delimiter)
                .map(|piece| scalar(piece, line))
                .collect(),
            line,
        )))
    }

    /// `!GetAZs ''` (or the stack's region): the zones the template's targets use, sorted.
    pub(super) fn zones_of(
        &mut self,
        function: &str,
        argument: &Node,
        line: usize,
        path: &str,
    ) -> Eval {
        let region = match &argument.value {
            Value::Null => String::new(),
            _ => self.text_of(argument, path, function)?,
        };
        if !region.is_empty() {
            let own = self
                .pseudo
                .value("AWS::Region")
                .ok()
                .map(|(value, _)| value);
            if own != Some(super::pseudo::PseudoValue::Text(region.clone())) {
                return Err(self.refuse(
                    line,
                    path,
                    format!("`{function} {region}` is not evaluated: Switchyard answers GetAZs with the zones this template's targets use, which are in the stack's own region; another region's zones only AWS knows"),
                ));
            }
        }
        if self.zones.is_empty() {
            return Err(self.error(
                line,
                path,
                format!("`{function}`: no target of the template names an AvailabilityZone, and Switchyard answers GetAZs with the zones the targets use; write the zones themselves"),
            ));
        }
        self.note_once(
            line,
            path,
            format!(
                "`{function}` answers {}: the zones this template's targets use (AWS would answer every zone of the region)",
                self.zones.join(", ")
            ),
        );
        let zones = self.zones.iter().map(|zone| scalar(zone, line)).collect();
        Ok(Some(list(zones, line)))
    }

    /// `!Base64 text`: the text in base64.
    pub(super) fn base64(&mut self, function: &str, argument: &Node, path: &str) -> Eval {
        let text = self.text_of(argument, path, function)?;
        Ok(Some(scalar(&base64(text.as_bytes()), argument.line)))
    }

    /// `!FindInMap [Map, TopKey, SecondKey]` (and `{DefaultValue: v}` fourth, with
    /// AWS::LanguageExtensions): the value of the Mappings section at the keys.
    pub(super) fn find_in_map(
        &mut self,
        function: &str,
        argument: &Node,
        line: usize,
        path: &str,
    ) -> Eval {
        let items = match &argument.value {
            Value::Seq(items) if items.len() == 3 || items.len() == 4 => items,
            _ => {
                return Err(self.takes(
                    function,
                    "[MapName, TopLevelKey, SecondLevelKey] (and a {DefaultValue: …} fourth)",
                    line,
                    path,
                ))
            }
        };
        let default = match items.get(3) {
            None => None,
            Some(option) => Some(self.default_value(function, option, line, path)?),
        };
        let mut keys = Vec::with_capacity(3);
        for key in &items[..3] {
            keys.push(self.text_of(key, path, function)?);
        }
        match self.mapping_value(&keys) {
            Ok((value, at)) => {
                self.used(Origin {
                    text: format!(
                        "from mapping {}.{}.{}, {}:{at}",
                        keys[0], keys[1], keys[2], self.file
                    ),
                    secret: None,
                });
                Ok(Some(super::evaluator::at_line(value, line)))
            }
            Err(_) if default.is_some() => Ok(default),
            Err(why) => Err(self.error(line, path, format!("`{function}`: {why}"))),
        }
    }

    /// The `{DefaultValue: v}` of a FindInMap, evaluated.
    fn default_value(
        &mut self,
        function: &str,
        option: &Node,
        line: usize,
        path: &str,
    ) -> Result<Node, Refused> {
        let value = match &option.value {
            Value::Map(entries)
                if entries.len() == 1 && entries[0].0.as_scalar() == Some("DefaultValue") =>
            {
                &entries[0].1
            }
            _ => {
                return Err(self.takes(
                    function,
                    "{DefaultValue: …} as its fourth item",
                    line,
                    path,
                ))
            }
        };
        self.needs_language_extensions(function, "a DefaultValue", line, path)?;
        self.value_of(value, path)
    }

    /// The value at `keys` in the Mappings section, with its line; or why there is none.
    fn mapping_value(&self, keys: &[String]) -> Result<(Node, usize), String> {
        let Some(mappings) = self.mappings else {
            return Err(format!(
                "the template has no Mappings section, so no mapping {}",
                keys[0]
            ));
        };
        let mut node = mappings;
        let mut trail = String::new();
        for key in keys {
            let Value::Map(entries) = &node.value else {
                return Err(format!("{trail} is not a mapping"));
            };
            let found = entries
                .iter()
                .find(|(k, _)| k.as_scalar() == Some(key.as_str()));
            let Some((_, value)) = found else {
                let names: Vec<&str> = entries.iter().filter_map(|(k, _)| k.as_scalar()).collect();
                let what = if trail.is_empty() {
                    "no mapping".to_string()
                } else {
                    format!("no key in {trail} named")
                };
                let hint = suggest(key, &names)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "{what} `{key}`{hint}; there are: {}",
                    names.join(", ")
                ));
            };
            trail = if trail.is_empty() {
                key.clone()
            } else {
                format!("{trail}.{key}")
            };
            node = value;
        }
        Ok((node.clone(), node.line))
    }

    /// `!ToJsonString` of a mapping or a list: its JSON text (AWS::LanguageExtensions).
    pub(super) fn json_string(
        &mut self,
        function: &str,
        argument: &Node,
        line: usize,
        path: &str,
    ) -> Eval {
        self.needs_language_extensions(function, "the function", line, path)?;
        let value = self.value_of(argument, path)?;
        if !matches!(value.value, Value::Map(_) | Value::Seq(_)) {
            return Err(self.takes(function, "a mapping or a list", line, path));
        }
        Ok(Some(scalar(&json(&value), line)))
    }

    /// `!Length list`: how many items (AWS::LanguageExtensions).
    pub(super) fn length(
        &mut self,
        function: &str,
        argument: &Node,
        line: usize,
        path: &str,
    ) -> Eval {
        self.needs_language_extensions(function, "the function", line, path)?;
        let items = self.list_of(argument, path, function)?;
        Ok(Some(scalar(&items.len().to_string(), line)))
    }

    /// A function's argument that must be a list (written, or given by a function).
    fn list_of(&mut self, node: &Node, path: &str, function: &str) -> Result<Vec<Node>, Refused> {
        let value = self.value_of(node, path)?;
        match value.value {
            Value::Seq(items) => Ok(items),
            _ => Err(self.error(
                node.line,
                path,
                format!("`{function}` takes a list here, found {}", value.kind()),
            )),
        }
    }

    /// CloudFormation takes some functions only in templates with AWS::LanguageExtensions.
    fn needs_language_extensions(
        &mut self,
        function: &str,
        what: &str,
        line: usize,
        path: &str,
    ) -> Result<(), Refused> {
        if self.language_extensions {
            return Ok(());
        }
        Err(self.error(
            line,
            path,
            format!("`{function}`: {what} needs `Transform: AWS::LanguageExtensions` in the template (CloudFormation refuses it otherwise)"),
        ))
    }
}

/// The two items of a two-item list argument.
fn pair(argument: &Node) -> Option<&[Node; 2]> {
    match &argument.value {
        Value::Seq(items) => items.as_slice().try_into().ok(),
        _ => None,
    }
}

fn list(items: Vec<Node>, line: usize) -> Node {
    Node {
        value: Value::Seq(items),
        line,
    }
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A value as compact JSON: mappings in written order; unquoted numbers and booleans as
/// such, every other scalar a string.
pub fn json(node: &Node) -> String {
    match &node.value {
        Value::Null => "null".to_string(),
        Value::Scalar { text, quoted } => {
            let bare = !quoted
                && (matches!(text.as_str(), "true" | "false")
                    || text.parse::<f64>().is_ok_and(f64::is_finite));
            if bare {
                text.clone()
            } else {
                serde_json::to_string(text).unwrap_or_default()
            }
        }
        Value::Seq(items) => format!("[{}]", items.iter().map(json).collect::<Vec<_>>().join(",")),
        Value::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(key, value)| format!(
                    "{}:{}",
                    serde_json::to_string(key.as_scalar().unwrap_or("")).unwrap_or_default(),
                    json(value)
                ))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}
