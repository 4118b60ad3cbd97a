//! A YAML document tree in which every node remembers its line, so that diagnostics can point
//! at the exact place a value was written. Built from yaml-rust2's event stream, pulled one
//! event at a time (no recursion, so nesting cannot overflow the stack).
//!
//! Hostile input is bounded here, before anything else sees it: the number of nodes, the
//! nodes that aliases copy in (a "billion laughs" file is nothing but aliases) and the nesting
//! depth are capped by [`YamlLimits`], and hitting a cap is a syntax error with its line.
//!
//! A node with a local tag (`!Ref web`, `!GetAtt [a, b]`) becomes a one-entry mapping from the
//! tag to the node (`{"!Ref": web}`), so a dialect that gives tags a meaning (CloudFormation's
//! short-form functions) reads them as it reads any mapping, and one that does not reports an
//! unknown field. Core-schema tags (`!!str`) are ignored, as before. Must not: know any
//! dialect's field names.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    /// A scalar's text; `quoted` tells a string `'80'` from a number `80`.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order (duplicate keys are reported by the reader).
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    /// 1-based line.
    pub line: usize,
}

impl Node {
    /// The scalar's text, if this is a scalar.
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// A short description of the node's kind, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// How much one file may make the parser build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct YamlLimits {
    /// Nodes in the whole tree, counting the ones aliases copy in.
    pub max_nodes: usize,
    /// Nodes that aliases may copy in, in total.
    pub max_alias_nodes: usize,
    /// How deeply sequences and mappings may nest.
    pub max_depth: usize,
}

impl Default for YamlLimits {
    /// Far above what a real config needs (a 50 MB config of 120,000 services is about six
    /// million nodes and ten levels deep), far below what would exhaust memory.
    fn default() -> Self {
        YamlLimits {
            max_nodes: 20_000_000,
            max_alias_nodes: 1_000_000,
            max_depth: 64,
        }
    }
}

/// A syntax error, or a limit hit, with its 1-based line.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
    /// True when the text is valid YAML but beyond [`YamlLimits`].
    pub over_limit: bool,
}

impl SyntaxError {
    fn over_limit(line: usize, message: String) -> Self {
        SyntaxError {
            line,
            message,
            over_limit: true,
        }
    }
}

/// Parses every document in `text` with the default limits. Empty documents are dropped.
pub fn parse(text: &str) -> Result<Vec<Node>, SyntaxError> {
    parse_with_limits(text, &YamlLimits::default())
}

/// Parses every document in `text`, refusing input beyond `limits`. Empty documents are
/// dropped.
pub fn parse_with_limits(text: &str, limits: &YamlLimits) -> Result<Vec<Node>, SyntaxError> {
    let mut builder = TreeBuilder::new(*limits);
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, mark) = parser.next_token().map_err(|error| SyntaxError {
            line: error.marker().line(),
            message: error.info().to_string(),
            over_limit: false,
        })?;
        if event == Event::StreamEnd {
            break;
        }
        builder.on_event(event, mark)?;
    }
    Ok(builder
        .documents
        .into_iter()
        .filter(|doc| doc.value != Value::Null)
        .collect())
}

/// A sequence or mapping still being read.
struct Open {
    kind: OpenKind,
    anchor: usize,
    /// A local tag the node is written with.
    tag: Option<String>,
    line: usize,
    /// Nodes in this subtree so far, itself included.
    size: usize,
}

enum OpenKind {
    Seq(Vec<Node>),
    /// Entries so far, and a key waiting for its value.
    Map(Vec<(Node, Node)>, Option<Node>),
}

struct TreeBuilder {
    limits: YamlLimits,
    stack: Vec<Open>,
    documents: Vec<Node>,
    /// Anchored nodes with their subtree sizes, for aliases to copy.
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    alias_nodes: usize,
}

impl TreeBuilder {
    fn new(limits: YamlLimits) -> Self {
        TreeBuilder {
            limits,
            stack: Vec::new(),
            documents: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            alias_nodes: 0,
        }
    }

    fn on_event(&mut self, event: Event, mark: Marker) -> Result<(), SyntaxError> {
        let line = mark.line().max(1);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let tag = local_tag(tag);
                self.count(1 + usize::from(tag.is_some()), line)?;
                let quoted = style != TScalarStyle::Plain;
                let value =
                    if !quoted && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
                        Value::Null
                    } else {
                        Value::Scalar { text, quoted }
                    };
                let size = 1 + usize::from(tag.is_some());
                self.complete(tagged(Node { value, line }, tag), anchor, size);
            }
            Event::SequenceStart(anchor, tag) => {
                self.open(OpenKind::Seq(Vec::new()), anchor, local_tag(tag), line)?
            }
            Event::MappingStart(anchor, tag) => self.open(
                OpenKind::Map(Vec::new(), None),
                anchor,
                local_tag(tag),
                line,
            )?,
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(open) = self.stack.pop() {
                    let value = match open.kind {
                        OpenKind::Seq(items) => Value::Seq(items),
                        OpenKind::Map(entries, _) => Value::Map(entries),
                    };
                    let node = Node {
                        value,
                        line: open.line,
                    };
                    let size = open.size + usize::from(open.tag.is_some());
                    self.complete(tagged(node, open.tag), open.anchor, size);
                }
            }
            Event::Alias(anchor) => self.alias(anchor, line)?,
            Event::DocumentStart => self.anchors.clear(),
            _ => {}
        }
        Ok(())
    }

    fn open(
        &mut self,
        kind: OpenKind,
        anchor: usize,
        tag: Option<String>,
        line: usize,
    ) -> Result<(), SyntaxError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(SyntaxError::over_limit(
                line,
                format!(
                    "the document nests lists and mappings deeper than {} levels; no config needs that many",
                    self.limits.max_depth
                ),
            ));
        }
        self.count(1 + usize::from(tag.is_some()), line)?;
        self.stack.push(Open {
            kind,
            anchor,
            tag,
            line,
            size: 1,
        });
        Ok(())
    }

    /// Copies an anchored node in, within the alias budget.
    fn alias(&mut self, anchor: usize, line: usize) -> Result<(), SyntaxError> {
        let Some(&(_, size)) = self.anchors.get(&anchor) else {
            return Err(SyntaxError {
                line,
                message: "alias to an unknown anchor".to_string(),
                over_limit: false,
            });
        };
        if self.alias_nodes + size > self.limits.max_alias_nodes {
            return Err(SyntaxError::over_limit(
                line,
                format!(
                    "aliases in this file expand to more than {} nodes; anchors and aliases are capped so that a small file cannot expand into gigabytes (a \"billion laughs\")",
                    self.limits.max_alias_nodes
                ),
            ));
        }
        self.count(size, line)?;
        self.alias_nodes += size;
        let node = self.anchors[&anchor].0.clone();
        self.complete(node, 0, size);
        Ok(())
    }

    fn count(&mut self, nodes: usize, line: usize) -> Result<(), SyntaxError> {
        self.nodes += nodes;
        if self.nodes > self.limits.max_nodes {
            return Err(SyntaxError::over_limit(
                line,
                format!(
                    "the file holds more than {} YAML nodes (values, lists and mappings), the most one file may hold",
                    self.limits.max_nodes
                ),
            ));
        }
        Ok(())
    }

    fn complete(&mut self, node: Node, anchor: usize, size: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        let Some(parent) = self.stack.last_mut() else {
            self.documents.push(node);
            return;
        };
        parent.size += size;
        match &mut parent.kind {
            OpenKind::Seq(items) => items.push(node),
            OpenKind::Map(entries, pending_key) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
}
/// The text of a local tag (`!Ref`), if the node has one.
fn local_tag(tag: Option<Tag>) -> Option<String> {
    tag.filter(|tag| tag.handle == "!")
        .map(|tag| format!("!{}", tag.suffix))
}

/// `node`, or `{tag: node}` when it is written with a local tag.
fn tagged(node: Node, tag: Option<String>) -> Node {
    let Some(tag) = tag else {
        return node;
    };
    let line = node.line;
    let key = Node {
        value: Value::Scalar {
            text: tag,
            quoted: false,
        },
        line,
    };
    Node {
        value: Value::Map(vec![(key, node)]),
        line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_tags_become_one_entry_mappings() {
        let docs = parse(
            "a: !Ref web
b: !GetAtt [lb, DNSName]
c: !!str 80
",
        )
        .unwrap();
        let Value::Map(entries) = &docs[0].value else {
            panic!("not a map")
        };
        let entry = |index: usize| match &entries[index].1.value {
            Value::Map(inner) => (
                inner[0].0.as_scalar().unwrap().to_string(),
                inner[0].1.clone(),
            ),
            other => panic!("not tagged: {other:?}"),
        };
        let (tag, value) = entry(0);
        assert_eq!((tag.as_str(), value.as_scalar()), ("!Ref", Some("web")));
        let (tag, value) = entry(1);
        assert_eq!(tag, "!GetAtt");
        assert!(matches!(value.value, Value::Seq(ref items) if items.len() == 2));
        assert_eq!(
            entries[2].1.as_scalar(),
            Some("80"),
            "core tags are ignored"
        );
    }

    #[test]
    fn nodes_know_their_lines() {
        let docs = parse("a: 1\nb:\n  - x: '2'\n  - y\n").unwrap();
        let Value::Map(entries) = &docs[0].value else {
            panic!("not a map")
        };
        assert_eq!(entries[0].0.as_scalar(), Some("a"));
        assert_eq!(entries[0].1.line, 1);
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("not a seq")
        };
        assert_eq!(items[0].line, 3);
        assert_eq!(items[1].line, 4);
        let Value::Map(inner) = &items[0].value else {
            panic!("not a map")
        };
        assert_eq!(
            inner[0].1.value,
            Value::Scalar {
                text: "2".into(),
                quoted: true
            }
        );
    }

    #[test]
    fn syntax_errors_carry_a_line() {
        let error = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(error.line >= 2, "{error:?}");
    }

    #[test]
    fn several_documents_and_empty_ones() {
        assert_eq!(parse("---\na: 1\n---\n---\nb: 2\n").unwrap().len(), 2);
        assert!(parse("").unwrap().is_empty());
    }

    /// The classic nine-level alias bomb: 307 bytes that would expand to 9^9 nodes.
    pub const ALIAS_BOMB: &str = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";

    #[test]
    fn an_alias_bomb_is_refused_with_its_line() {
        let error = parse(ALIAS_BOMB).unwrap_err();
        assert!(
            error
                .message
                .contains("aliases in this file expand to more than 1000000 nodes"),
            "{error:?}"
        );
        assert!((5..=9).contains(&error.line), "{error:?}");
    }

    #[test]
    fn modest_aliases_are_expanded() {
        let docs = parse("base: &b {port: 80}\nuse: [*b, *b]\n").unwrap();
        let Value::Map(entries) = &docs[0].value else {
            panic!("not a map")
        };
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("not a seq")
        };
        assert_eq!(items.len(), 2);
        assert_eq!(items[1], entries[0].1);
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let text = "[".repeat(100_000);
        let error = parse(&text).unwrap_err();
        assert_eq!(error.line, 1);
        let block: String = (0..200)
            .map(|depth| format!("{}k:\n", "  ".repeat(depth)))
            .collect();
        let error = parse(&block).unwrap_err();
        assert!(error.message.contains("deeper than 64 levels"), "{error:?}");
        assert_eq!(error.line, 65, "the first mapping past the limit");
    }

    #[test]
    fn node_count_is_capped() {
        let limits = YamlLimits {
            max_nodes: 100,
            ..YamlLimits::default()
        };
        let text = format!("[{}]", vec!["1"; 200].join(","));
        let error = parse_with_limits(&text, &limits).unwrap_err();
        assert!(
            error.message.contains("more than 100 YAML nodes"),
            "{error:?}"
        );
        assert!(parse_with_limits("[1, 2, 3]", &limits).is_ok());
    }
}
