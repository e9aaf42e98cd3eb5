//! Stage 1, parse: YAML text to a tree of nodes that remember where they came from.
//!
//! Built on the event parser of `saphyr-parser` so that resource use is bounded here:
//! the size of the text, the nesting depth, and the number of nodes after aliases are
//! expanded (which is what stops "billion laughs" documents). Documents written the common
//! way are read by [`direct`] instead, to the same tree, much faster.

mod direct;

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::diagnostic::{Code, Sink};
use crate::path::YamlPath;
use crate::source::{Source, Span};

/// Resource bounds: the first three for each document (the compiled one and each imported
/// one), the last two for imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_nodes: usize,
    /// Documents imported in all, however deep.
    pub max_documents: usize,
    /// Imports of imports: 1 allows the compiled document's imports only.
    pub max_import_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_bytes: 8 * 1024 * 1024, max_depth: 64, max_nodes: 1_000_000, max_documents: 64, max_import_depth: 8 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar with its text; `plain` is false for quoted and block scalars, which are
    /// always strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub text: String,
    pub span: Span,
}

impl Node {
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if is_null_text(text))
    }

    /// The node's kind in words, for "expected X, found Y" messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { text, plain: true } if text == "true" || text == "false" => "a boolean",
            Value::Scalar { text, plain: true } if text.parse::<f64>().is_ok() => "a number",
            Value::Scalar { .. } => "a string",
        }
    }

    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.iter().find(|(k, _)| k.text == key).map(|(_, v)| v)
    }

    fn count(&self) -> usize {
        match &self.value {
            Value::Scalar { .. } => 1,
            Value::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Value::Map(entries) => 1 + entries.iter().map(|(_, v)| 1 + v.count()).sum::<usize>(),
        }
    }
}

pub fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

enum Frame {
    Seq { start: usize, anchor: usize, items: Vec<Node> },
    Map { start: usize, anchor: usize, entries: Vec<(Key, Node)>, pending_key: Option<Key> },
}

/// Parses one YAML document into a node tree. Problems go to `sink`; `None` means the
/// document could not be read at all.
pub fn parse(sink: &mut Sink<'_>, limits: &Limits) -> Option<Node> {
    let source = sink.source;
    let root = YamlPath::root();
    if source.text.len() > limits.max_bytes {
        sink.report(
            Code::TooLarge,
            Span::new(0, 0),
            &root,
            format!("the document is {} bytes; the limit is {} bytes", source.text.len(), limits.max_bytes),
        )
        .hint = Some("split the policies over several documents".into());
        return None;
    }
    if let Some(root) = direct::read(&source.text, limits) {
        return Some(root);
    }
    parse_events(sink, limits)
}

/// Whether the direct reader, when it reads `text` at all, gives the very tree the event
/// parser gives, with no diagnostic: `Ok(true)` when both read it the same, `Ok(false)` when
/// the direct reader leaves it to the event parser, `Err` saying how they differ.
///
/// For the differential tests and the `direct_reader` fuzz target, which must check this
/// through the crate's public surface.
#[doc(hidden)]
pub fn direct_reader_agrees(text: &str, limits: &Limits) -> Result<bool, String> {
    let Some(direct) = direct::read(text, limits) else { return Ok(false) };
    let source = Source::new("direct.yaml", text);
    let mut sink = Sink::new(&source);
    let events = parse_events(&mut sink, limits);
    if !sink.diagnostics.is_empty() {
        return Err(format!("read directly, but the event parser reports {:?}", sink.diagnostics));
    }
    match events {
        Some(events) if events == direct => Ok(true),
        events => Err(format!("the trees differ:\ndirect: {direct:?}\nevents: {events:?}")),
    }
}

/// Parses with the event parser, which reads all of YAML and says what is wrong.
fn parse_events(sink: &mut Sink<'_>, limits: &Limits) -> Option<Node> {
    let source = sink.source;
    let root = YamlPath::root();
    let mut builder =
        Builder { source, limits, stack: Vec::new(), anchors: HashMap::new(), nodes: 0, docs: Vec::new() };
    for event in Parser::new_from_str(&source.text) {
        let (event, span) = match event {
            Ok(ev) => ev,
            Err(err) => {
                let m = err.marker();
                let at = source.offset(m.line(), m.col());
                sink.report(Code::YamlSyntax, Span::new(at, at), &root, format!("YAML syntax error: {}", err.info()));
                return None;
            }
        };
        let start = source.offset(span.start.line(), span.start.col());
        let end = source.offset(span.end.line(), span.end.col()).max(start);
        if let Err((code, message, at)) = builder.event(event, Span::new(start, end)) {
            sink.report(code, at, &builder.path(), message);
            return None;
        }
    }

    match builder.docs.len() {
        1 => builder.docs.pop(),
        0 => {
            sink.report(Code::NotOneDocument, Span::new(0, 0), &root, "the document is empty").hint =
                Some("start with `tosca_definitions_version: tosca_simple_yaml_1_3`".into());
            None
        }
        n => {
            let second = builder.docs[1].span;
            sink.report(
                Code::NotOneDocument,
                second,
                &root,
                format!("the stream holds {n} YAML documents; one is expected"),
            )
            .hint = Some("put each document in its own file or resource".into());
            None
        }
    }
}

type Stop = (Code, String, Span);

struct Builder<'a> {
    source: &'a Source,
    limits: &'a Limits,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    docs: Vec<Node>,
}

impl Builder<'_> {
    /// The path of the value being built, for diagnostics that stop the parse.
    fn path(&self) -> YamlPath {
        let mut path = YamlPath::root();
        for frame in &self.stack {
            path = match frame {
                Frame::Seq { items, .. } => path.index(items.len()),
                Frame::Map { pending_key: Some(k), .. } => path.key(&k.text),
                Frame::Map { .. } => path,
            };
        }
        path
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Stop> {
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = matches!(style, ScalarStyle::Plain);
                let node = Node { value: Value::Scalar { text: text.into_owned(), plain }, span };
                self.push_value(node, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                self.open(span)?;
                self.stack.push(Frame::Seq { start: span.start, anchor, items: Vec::new() });
                Ok(())
            }
            Event::MappingStart(anchor, _) => {
                self.open(span)?;
                self.stack.push(Frame::Map { start: span.start, anchor, entries: Vec::new(), pending_key: None });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = self.stack.pop().ok_or((Code::YamlSyntax, "unbalanced collection".into(), span))?;
                let (node, anchor) = match frame {
                    Frame::Seq { start, anchor, items } => {
                        (Node { value: Value::Seq(items), span: Span::new(start, span.end) }, anchor)
                    }
                    Frame::Map { start, anchor, entries, .. } => {
                        (Node { value: Value::Map(entries), span: Span::new(start, span.end) }, anchor)
                    }
                };
                self.nodes -= 1; // counted once at open already
                self.push_value(node, anchor)
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or((
                    Code::YamlSyntax,
                    "an alias refers to an unknown anchor".into(),
                    span,
                ))?;
                let added = node.count();
                self.nodes += added;
                if self.nodes > self.limits.max_nodes {
                    return Err(self.too_many(span));
                }
                // The alias takes the place of its anchor's value, but keeps its own span so
                // diagnostics point at the use.
                self.push_value(Node { span, ..node }, 0)
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) | Event::DocumentEnd | Event::Nothing => {
                Ok(())
            }
        }
    }

    fn too_many(&self, span: Span) -> Stop {
        (Code::TooManyNodes, format!("the document expands to more than {} nodes", self.limits.max_nodes), span)
    }

    fn open(&mut self, span: Span) -> Result<(), Stop> {
        if self.stack.len() >= self.limits.max_depth {
            return Err((
                Code::TooDeep,
                format!("the document nests deeper than {} levels", self.limits.max_depth),
                span,
            ));
        }
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(self.too_many(span));
        }
        Ok(())
    }

    fn push_value(&mut self, node: Node, anchor: usize) -> Result<(), Stop> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(self.too_many(node.span));
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let source = self.source;
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, pending_key, .. }) => match pending_key.take() {
                Some(key) => entries.push((key, node)),
                None => {
                    let Value::Scalar { text, .. } = node.value else {
                        return Err((
                            Code::ComplexKey,
                            "a mapping key must be a plain scalar, not a list or mapping".into(),
                            node.span,
                        ));
                    };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.text == text) {
                        let (line, col) = source.line_col(first.span.start);
                        return Err((
                            Code::DuplicateKey,
                            format!(
                                "the key `{text}` appears twice in this mapping (first at line {line}, column {col})"
                            ),
                            node.span,
                        ));
                    }
                    *pending_key = Some(Key { text, span: node.span });
                }
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str, limits: Limits) -> (Option<Node>, Vec<crate::Diagnostic>) {
        let source = Source::new("t.yaml", text);
        let mut sink = Sink::new(&source);
        let node = parse(&mut sink, &limits);
        (node, sink.diagnostics)
    }

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let (node, diags) = parse_str("a:\n  b: [1, x]\n", Limits::default());
        assert!(diags.is_empty(), "{diags:?}");
        let node = node.unwrap();
        let b = node.get("a").unwrap().get("b").unwrap();
        let Value::Seq(items) = &b.value else { panic!("not a seq") };
        assert_eq!(items[1].span.start, 12);
    }

    #[test]
    fn rejects_billion_laughs() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            doc.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
        }
        let (node, diags) = parse_str(&doc, Limits::default());
        assert!(node.is_none());
        assert_eq!(diags[0].code, Code::TooManyNodes);
    }

    #[test]
    fn rejects_deep_nesting_and_large_documents() {
        let deep = "[".repeat(100) + &"]".repeat(100);
        let (_, diags) = parse_str(&deep, Limits::default());
        assert_eq!(diags[0].code, Code::TooDeep);
        let (_, diags) = parse_str("a: b\n", Limits { max_bytes: 3, ..Limits::default() });
        assert_eq!(diags[0].code, Code::TooLarge);
    }

    #[test]
    fn reports_duplicate_keys_and_syntax_errors_with_positions() {
        let (_, diags) = parse_str("a: 1\nb: 2\na: 3\n", Limits::default());
        assert_eq!(diags[0].code, Code::DuplicateKey);
        assert_eq!(diags[0].location.as_ref().unwrap().line, 3);
        let (_, diags) = parse_str("a: [1, 2\n", Limits::default());
        assert_eq!(diags[0].code, Code::YamlSyntax);
    }

    #[test]
    fn rejects_empty_and_multi_document_streams() {
        let (_, diags) = parse_str("", Limits::default());
        assert_eq!(diags[0].code, Code::NotOneDocument);
        let (_, diags) = parse_str("a: 1\n---\nb: 2\n", Limits::default());
        assert_eq!(diags[0].code, Code::NotOneDocument);
    }
}
