//! Typed reading of one YAML mapping, field by field, with a diagnostic for every problem:
//! wrong type, value out of range, enum value not allowed, unknown field (with "did you mean").
//! A reader learns the known field names from the fields the decoder asks for, so the list
//! of allowed fields is never written twice.

use std::fmt::Display;
use std::str::FromStr;
use std::sync::Arc;

use crate::model::diagnostics::suggest;
use crate::model::{CloudEnum, Diagnostics, Loc};

use super::yaml::{Node, Value};

/// A mapping being read; call [`Fields::finish`] once every known field was asked for.
pub struct Fields<'n> {
    entries: Vec<(&'n str, &'n Node)>,
    node: &'n Node,
    file: Arc<str>,
    /// Resource path of the mapping itself, e.g. `backendServices[web]`.
    pub path: String,
    known: Vec<&'static str>,
}

impl<'n> Fields<'n> {
    /// Starts reading `node`, which must be a mapping (else an error, and no fields).
    pub fn new(
        node: &'n Node,
        file: &Arc<str>,
        path: impl Into<String>,
        diagnostics: &mut Diagnostics,
    ) -> Self {
        let path = path.into();
        let mut entries = Vec::new();
        match &node.value {
            Value::Map(pairs) => {
                for (key, value) in pairs {
                    let name = key.as_scalar().unwrap_or("");
                    if entries.iter().any(|(seen, _)| *seen == name) {
                        let field = if path.is_empty() {
                            name.to_string()
                        } else {
                            format!("{path}.{name}")
                        };
                        diagnostics.error(
                            &Loc::new(file.clone(), key.line),
                            field,
                            "the field is given twice",
                        );
                    }
                    entries.push((name, value));
                }
            }
            Value::Null => {}
            _ => diagnostics.error(
                &Loc::new(file.clone(), node.line),
                &path,
                format!("expected a mapping of fields, found {}", node.kind()),
            ),
        }
        Fields {
            entries,
            node,
            file: file.clone(),
            path,
            known: Vec::new(),
        }
    }

    /// Where the mapping starts.
    pub fn loc(&self) -> Loc {
        Loc::new(self.file.clone(), self.node.line)
    }

    pub fn file(&self) -> &Arc<str> {
        &self.file
    }

    /// Path of one field of this mapping.
    pub fn field_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The node of a field, if present and not null; records the field as known.
    pub fn get(&mut self, key: &'static str) -> Option<&'n Node> {
        self.known.push(key);
        self.entries
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, node)| *node)
            .filter(|node| node.value != Value::Null)
    }

    /// Where a field is written (or the mapping, when the field is absent).
    pub fn loc_of(&self, key: &str) -> Loc {
        let line = self
            .entries
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, node)| node.line)
            .unwrap_or(self.node.line);
        Loc::new(self.file.clone(), line)
    }

    /// Fields the cloud has and Switchyard does not serve: each one present is an error that
    /// says so (never "unknown field", never a "did you mean" to another real field).
    pub fn not_served(&mut self, keys: &[&'static str], diagnostics: &mut Diagnostics) {
        for key in keys {
            if self.get(key).is_some() {
                diagnostics.error(
                    &self.loc_of(key),
                    self.field_path(key),
                    format!(
                        "`{key}` is a cloud field Switchyard does not serve yet; remove it \
                         (its traffic would otherwise behave differently than written)"
                    ),
                );
            }
        }
    }

    /// Records fields that are accepted and have no effect (cloud metadata such as `id`).
    pub fn ignore(&mut self, keys: &[&'static str]) {
        self.known.extend_from_slice(keys);
    }

    pub fn string(&mut self, key: &'static str, diagnostics: &mut Diagnostics) -> Option<String> {
        let node = self.get(key)?;
        match node.as_scalar() {
            Some(text) => Some(text.to_string()),
            None => {
                self.type_error(key, node, "a string", diagnostics);
                None
            }
        }
    }

    pub fn required_string(
        &mut self,
        key: &'static str,
        diagnostics: &mut Diagnostics,
    ) -> Option<String> {
        let value = self.string(key, diagnostics);
        if value.is_none() && !self.has(key) {
            diagnostics.error(&self.loc(), self.field_path(key), "this field is required");
        }
        value
    }

    /// Reports a missing (or null) required field; true when it is there.
    pub fn require(&mut self, key: &'static str, diagnostics: &mut Diagnostics) -> bool {
        let present = self.get(key).is_some();
        if !present {
            diagnostics.error(&self.loc(), self.field_path(key), "this field is required");
        }
        present
    }

    fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(name, _)| *name == key)
    }

    pub fn bool(
        &mut self,
        key: &'static str,
        default: bool,
        diagnostics: &mut Diagnostics,
    ) -> bool {
        let Some(node) = self.get(key) else {
            return default;
        };
        match node.as_scalar() {
            Some("true" | "True" | "TRUE") => true,
            Some("false" | "False" | "FALSE") => false,
            _ => {
                self.type_error(key, node, "true or false", diagnostics);
                default
            }
        }
    }

    /// A number (plain or quoted, as gcloud quotes int64 fields) within `min..=max`.
    pub fn number(
        &mut self,
        key: &'static str,
        min: f64,
        max: f64,
        diagnostics: &mut Diagnostics,
    ) -> Option<f64> {
        self.ranged(
            key,
            |value: &f64| value.is_finite() && *value >= min && *value <= max,
            || format!("{} to {}", show(min), show(max)),
            "a number",
            diagnostics,
        )
    }

    /// A whole number within `min..=max`.
    pub fn integer(
        &mut self,
        key: &'static str,
        min: i64,
        max: i64,
        diagnostics: &mut Diagnostics,
    ) -> Option<i64> {
        self.ranged(
            key,
            |value: &i64| (min..=max).contains(value),
            || format!("{min} to {max}"),
            "a whole number",
            diagnostics,
        )
    }

    /// A value of `key` parsed as `T` (plain or quoted), kept when `in_range`; otherwise
    /// reported as out of range (`allowed` says what the range is) or as not `expected`.
    fn ranged<T: FromStr + Display>(
        &mut self,
        key: &'static str,
        in_range: impl Fn(&T) -> bool,
        allowed: impl FnOnce() -> String,
        expected: &str,
        diagnostics: &mut Diagnostics,
    ) -> Option<T> {
        let node = self.get(key)?;
        let parsed = node
            .as_scalar()
            .and_then(|text| text.trim().parse::<T>().ok());
        match parsed {
            Some(value) if in_range(&value) => Some(value),
            Some(value) => {
                diagnostics.error(
                    &self.loc_of(key),
                    self.field_path(key),
                    format!("{value} is out of range; allowed: {}", allowed()),
                );
                None
            }
            None => {
                self.type_error(key, node, expected, diagnostics);
                None
            }
        }
    }

    /// A field the cloud keeps in whole seconds, within `min..=max`: a number with a
    /// fraction is refused as such (naming the field and its range), never rounded.
    pub fn whole_seconds(
        &mut self,
        key: &'static str,
        min: i64,
        max: i64,
        diagnostics: &mut Diagnostics,
    ) -> Option<i64> {
        let text = self.get(key)?.as_scalar().map(str::trim);
        if let Some(text) = text.filter(|text| has_fraction(text)) {
            diagnostics.error(
                &self.loc_of(key),
                self.field_path(key),
                format!("`{text}` has a fraction; {key} takes whole seconds from {min} to {max}"),
            );
            return None;
        }
        self.integer(key, min, max, diagnostics)
    }

    /// One of `allowed` (UPPER_CASE enum names), mapped to its value.
    pub fn choice<T: Copy>(
        &mut self,
        key: &'static str,
        allowed: &[(&str, T)],
        diagnostics: &mut Diagnostics,
    ) -> Option<T> {
        let node = self.get(key)?;
        let text = node.as_scalar().unwrap_or("");
        if let Some((_, value)) = allowed.iter().find(|(name, _)| *name == text) {
            return Some(*value);
        }
        let names: Vec<&str> = allowed.iter().map(|(name, _)| *name).collect();
        let hint = suggest(text, &names)
            .map(|close| format!(" (did you mean {close}?)"))
            .unwrap_or_default();
        diagnostics.error(
            &self.loc_of(key),
            self.field_path(key),
            format!(
                "`{text}` is not allowed{hint}; allowed: {}",
                names.join(", ")
            ),
        );
        None
    }

    /// One of a cloud enum's values, by its UPPER_CASE name.
    pub fn cloud_enum<T: CloudEnum>(
        &mut self,
        key: &'static str,
        diagnostics: &mut Diagnostics,
    ) -> Option<T> {
        let allowed: Vec<(&str, T)> = T::ALL.iter().map(|v| (v.as_str(), *v)).collect();
        self.choice(key, &allowed, diagnostics)
    }

    /// The items of a list field, with their index.
    pub fn list(&mut self, key: &'static str, diagnostics: &mut Diagnostics) -> Vec<&'n Node> {
        let Some(node) = self.get(key) else {
            return Vec::new();
        };
        match &node.value {
            Value::Seq(items) => items.iter().collect(),
            _ => {
                self.type_error(key, node, "a list", diagnostics);
                Vec::new()
            }
        }
    }

    /// Each item of a list field, read by `read` with its resource path (`key[index]`);
    /// items it makes nothing of are left out.
    pub fn items<T>(
        &mut self,
        key: &'static str,
        diagnostics: &mut Diagnostics,
        mut read: impl FnMut(&'n Node, String, &mut Diagnostics) -> Option<T>,
    ) -> Vec<T> {
        let base = self.field_path(key);
        self.list(key, diagnostics)
            .into_iter()
            .enumerate()
            .filter_map(|(index, item)| read(item, format!("{base}[{index}]"), diagnostics))
            .collect()
    }

    /// Each item of a list field opened as a mapping at `key[index]`, read by `read` and
    /// then finished (its unknown fields reported); items it makes nothing of are left out.
    pub fn mappings<T>(
        &mut self,
        key: &'static str,
        diagnostics: &mut Diagnostics,
        mut read: impl FnMut(&mut Fields<'n>, &mut Diagnostics) -> Option<T>,
    ) -> Vec<T> {
        let file = self.file.clone();
        self.items(key, diagnostics, |item, path, diagnostics| {
            read_mapping(item, &file, path, diagnostics, &mut read)
        })
    }

    /// The mapping field `key`, if written: opened at its path, read by `read` and then
    /// finished.
    pub fn mapping<T>(
        &mut self,
        key: &'static str,
        diagnostics: &mut Diagnostics,
        read: impl FnOnce(&mut Fields<'n>, &mut Diagnostics) -> Option<T>,
    ) -> Option<T> {
        let node = self.get(key)?;
        let mut fields = Fields::new(node, &self.file, self.field_path(key), diagnostics);
        let read = read(&mut fields, diagnostics);
        fields.finish(diagnostics);
        read
    }

    /// A list of strings.
    pub fn strings(&mut self, key: &'static str, diagnostics: &mut Diagnostics) -> Vec<String> {
        let items = self.list(key, diagnostics);
        let mut out = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            match item.as_scalar() {
                Some(text) => out.push(text.to_string()),
                None => diagnostics.error(
                    &Loc::new(self.file.clone(), item.line),
                    format!("{}[{index}]", self.field_path(key)),
                    format!("expected a string, found {}", item.kind()),
                ),
            }
        }
        out
    }

    fn type_error(&self, key: &str, node: &Node, expected: &str, diagnostics: &mut Diagnostics) {
        let found = match node.as_scalar() {
            Some(text) => format!("`{text}`"),
            None => node.kind().to_string(),
        };
        diagnostics.error(
            &Loc::new(self.file.clone(), node.line),
            self.field_path(key),
            format!("expected {expected}, found {found}"),
        );
    }

    /// Reports every field that no one asked for, suggesting the closest known name.
    pub fn finish(self, diagnostics: &mut Diagnostics) {
        for (name, node) in &self.entries {
            if self.known.contains(name) {
                continue;
            }
            let hint = match suggest(name, &self.known) {
                Some(close) => format!("did you mean `{close}`?"),
                None => {
                    let mut known = self.known.clone();
                    known.sort_unstable();
                    known.dedup();
                    format!("known fields: {}", known.join(", "))
                }
            };
            diagnostics.error(
                &Loc::new(self.file.clone(), node.line),
                self.field_path(name),
                format!("unknown field `{name}`; {hint}"),
            );
        }
    }
}

/// Each item of the list `node` (written at `path`) opened as a mapping at `path[index]`, read
/// by `read` and then finished; items it makes nothing of are left out. A node that is not a
/// list is reported as not being a list of `what`, and has no items.
pub fn list_mappings<'n, T>(
    node: &'n Node,
    file: &Arc<str>,
    path: &str,
    what: &str,
    diagnostics: &mut Diagnostics,
    mut read: impl FnMut(&mut Fields<'n>, &mut Diagnostics) -> Option<T>,
) -> Vec<T> {
    let Value::Seq(items) = &node.value else {
        diagnostics.error(
            &Loc::new(file.clone(), node.line),
            path,
            format!("expected a list of {what}, found {}", node.kind()),
        );
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| {
            read_mapping(
                item,
                file,
                format!("{path}[{index}]"),
                diagnostics,
                &mut read,
            )
        })
        .collect()
}

/// Opens `node` as a mapping at `path`, reads it with `read`, and finishes it.
pub fn read_mapping<'n, T>(
    node: &'n Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
    read: &mut impl FnMut(&mut Fields<'n>, &mut Diagnostics) -> Option<T>,
) -> Option<T> {
    let mut fields = Fields::new(node, file, path, diagnostics);
    let read = read(&mut fields, diagnostics);
    fields.finish(diagnostics);
    read
}

/// Whether `text` is a finite number with a fractional part (`1.5`, not `2` or `2.0`).
pub fn has_fraction(text: &str) -> bool {
    text.parse::<f64>()
        .is_ok_and(|value| value.is_finite() && value.fract() != 0.0)
}

fn show(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    fn document(text: &str) -> Node {
        yaml::parse(text).unwrap().remove(0)
    }

    fn lines(diagnostics: &Diagnostics) -> Vec<String> {
        diagnostics.items.iter().map(ToString::to_string).collect()
    }

    /// Reads `rules` of `doc` as `{host: ...}` mappings, keeping the hosts that are written.
    fn hosts_of(doc: &Node, diagnostics: &mut Diagnostics) -> Vec<String> {
        let file: Arc<str> = Arc::from("t.yaml");
        let mut top = Fields::new(doc, &file, "maps[web]", diagnostics);
        let hosts = top.mappings("rules", diagnostics, |rule, diagnostics| {
            rule.string("host", diagnostics)
        });
        top.finish(diagnostics);
        hosts
    }

    #[test]
    fn each_list_item_is_read_as_a_mapping_at_its_index() {
        let doc = document("rules:\n- host: a\n- {}\n- host: c\n");
        let mut diagnostics = Diagnostics::default();
        assert_eq!(hosts_of(&doc, &mut diagnostics), ["a", "c"]);
        assert!(diagnostics.is_empty(), "{diagnostics}");
    }

    #[test]
    fn list_items_are_finished_and_their_problems_name_the_item() {
        let doc = document("rules:\n- host: a\n  hots: b\n- 7\n");
        let mut diagnostics = Diagnostics::default();
        assert_eq!(hosts_of(&doc, &mut diagnostics), ["a"]);
        assert_eq!(
            lines(&diagnostics),
            [
                "error: t.yaml:3: maps[web].rules[0].hots: unknown field `hots`; did you mean `host`?",
                "error: t.yaml:4: maps[web].rules[1]: expected a mapping of fields, found a scalar",
            ]
        );
    }

    #[test]
    fn a_list_field_that_is_not_a_list_has_no_items() {
        let doc = document("rules: {host: a}\n");
        let mut diagnostics = Diagnostics::default();
        assert!(hosts_of(&doc, &mut diagnostics).is_empty());
        assert_eq!(
            lines(&diagnostics),
            ["error: t.yaml:1: maps[web].rules: expected a list, found a mapping"]
        );
    }

    #[test]
    fn a_list_node_is_read_item_by_item_and_anything_else_is_named() {
        let file: Arc<str> = Arc::from("t.yaml");
        let read = |doc: &Node, diagnostics: &mut Diagnostics| {
            list_mappings(
                doc,
                &file,
                "Targets",
                "targets",
                diagnostics,
                |target, d| target.integer("Port", 1, 65535, d),
            )
        };
        let mut diagnostics = Diagnostics::default();
        let ports = read(
            &document("- Port: 80\n- Port: 0\n- Prot: 81\n"),
            &mut diagnostics,
        );
        assert_eq!(ports, [80]);
        assert_eq!(
            lines(&diagnostics),
            [
                "error: t.yaml:2: Targets[1].Port: 0 is out of range; allowed: 1 to 65535",
                "error: t.yaml:3: Targets[2].Prot: unknown field `Prot`; did you mean `Port`?",
            ]
        );
        let mut diagnostics = Diagnostics::default();
        assert!(read(&document("Port: 80\n"), &mut diagnostics).is_empty());
        assert_eq!(
            lines(&diagnostics),
            ["error: t.yaml:1: Targets: expected a list of targets, found a mapping"]
        );
    }

    #[test]
    fn only_a_finite_number_with_a_fraction_has_one() {
        for text in ["1.5", "0.25", "-2.5", "1.5e0", "30.000001"] {
            assert!(has_fraction(text), "{text}");
        }
        for text in ["30", "30.0", "1e3", "thirty", "1e309", "NaN", ""] {
            assert!(!has_fraction(text), "{text}");
        }
    }
}
