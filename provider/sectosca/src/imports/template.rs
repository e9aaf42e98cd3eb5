//! The top of a service template, and the merge of imported documents into the importer.
//!
//! Every document (the compiled one and each imported one) has its top-level keys checked
//! the same way. The sections of their `topology_template` then merge into one: inputs,
//! node templates and outputs by name, policies in order — the imported documents' first,
//! in the order they were read (each after those it imports), then the importer's own. A
//! name defined in two documents is an error that names both places.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::{Imported, place};
use crate::decode::{Fields, Spanned};
use crate::diagnostic::{Code, Sink};
use crate::model::document::ToscaVersion;
use crate::parse::{Key, Node, Value};
use crate::path::{LazyPath, YamlPath};
use crate::source::Span;

/// The topology template of the compiled document with what it imports merged in.
#[derive(Debug, Default)]
pub struct Template<'doc> {
    /// Where problems with the topology as a whole are reported.
    pub span: Span,
    pub inputs: Option<Cow<'doc, Node>>,
    pub node_templates: Option<Cow<'doc, Node>>,
    pub policies: Option<Cow<'doc, Node>>,
    /// For each item of `policies`, its index in its own document's list (for paths);
    /// empty when nothing was merged.
    pub policy_indices: Vec<usize>,
    pub outputs: Option<Cow<'doc, Node>>,
}

/// A document's sections.
struct Sections<'doc> {
    span: Span,
    inputs: Option<&'doc Node>,
    node_templates: Option<&'doc Node>,
    policies: Option<&'doc Node>,
    outputs: Option<&'doc Node>,
}

/// Checks the top-level keys of a document and returns its topology's sections. An
/// imported document may leave out `topology_template` (one that only imports others).
fn sections<'doc>(root: &'doc Node, imported: bool, sink: &mut Sink<'_>) -> Option<Sections<'doc>> {
    let top = YamlPath::root();
    let at = LazyPath::new(&top);
    let mut fields = Fields::open(root, &at, sink, "service templates", Code::UnknownKey)?;
    let before_version = sink.diagnostics.len();
    let version = fields.field::<Spanned<ToscaVersion>>("tosca_definitions_version", sink);
    let version_problems = before_version..sink.diagnostics.len();
    let _description = fields.field::<Option<String>>("description", sink);
    let _metadata = fields.field::<Option<BTreeMap<String, String>>>("metadata", sink);
    let _imports = fields.raw("imports"); // read by `load`
    let topology = fields.raw("topology_template");
    fields.finish(sink);
    if version.is_none() {
        // The version's own problem, not whatever the other top-level keys reported after it.
        for d in &mut sink.diagnostics[version_problems] {
            if d.code == Code::InvalidValue {
                d.code = Code::UnsupportedVersion;
            }
            d.hint = Some("write `tosca_definitions_version: tosca_simple_yaml_1_3`".into());
        }
    }
    let topology = match topology {
        Some(topology) => topology,
        None if imported => {
            return Some(Sections {
                span: root.span,
                inputs: None,
                node_templates: None,
                policies: None,
                outputs: None,
            });
        }
        None => {
            sink.report(Code::MissingKey, root.span, &top, "service templates need `topology_template`");
            return None;
        }
    };
    let tpath = top.key("topology_template");
    let at = LazyPath::new(&tpath);
    let mut fields = Fields::open(topology, &at, sink, "topology templates", Code::UnknownKey)?;
    let _description = fields.field::<Option<String>>("description", sink);
    let inputs = fields.raw("inputs");
    let node_templates = fields.raw("node_templates");
    let policies = fields.raw("policies");
    let outputs = fields.raw("outputs");
    fields.finish(sink);
    Some(Sections { span: topology.span, inputs, node_templates, policies, outputs })
}

/// The compiled document's topology with the imported documents merged in; `None` when
/// the compiled document has no topology to compile.
pub fn template<'doc>(root: &'doc Node, imported: &'doc [Imported], sink: &mut Sink<'_>) -> Option<Template<'doc>> {
    let others: Vec<Sections<'doc>> = imported.iter().filter_map(|d| sections(&d.root, true, sink)).collect();
    let main = sections(root, false, sink)?;
    if imported.is_empty() {
        return Some(Template {
            span: main.span,
            inputs: main.inputs.map(Cow::Borrowed),
            node_templates: main.node_templates.map(Cow::Borrowed),
            policies: main.policies.map(Cow::Borrowed),
            policy_indices: Vec::new(),
            outputs: main.outputs.map(Cow::Borrowed),
        });
    }
    let all: Vec<&Sections<'doc>> = others.iter().chain(std::iter::once(&main)).collect();
    let merge = |pick: fn(&Sections<'doc>) -> Option<&'doc Node>, key: &str, what: &str, sink: &mut Sink<'_>| {
        merge_maps(all.iter().filter_map(|s| pick(s)), &YamlPath::root().key("topology_template").key(key), what, sink)
    };
    let inputs = merge(|s| s.inputs, "inputs", "input", sink);
    let node_templates = merge(|s| s.node_templates, "node_templates", "node template", sink);
    let outputs = merge(|s| s.outputs, "outputs", "output", sink);
    let (policies, policy_indices) = merge_policies(all.iter().filter_map(|s| s.policies), sink);
    Some(Template { span: main.span, inputs, node_templates, policies, policy_indices, outputs })
}

fn duplicate(sink: &mut Sink<'_>, what: &str, key: &Key, first: Span, path: &YamlPath) {
    let there = place(sink, first);
    sink.report(
        Code::DuplicateImported,
        key.span,
        path,
        format!("{what} `{}` is defined here and in another document, at {there}", key.text),
    )
    .hint = Some(format!("imported documents merge into the importer: keep one `{}`, or rename one of them", key.text));
}

/// The entries of several mappings in one; `None` when no document has the section.
fn merge_maps<'doc>(
    maps: impl Iterator<Item = &'doc Node>,
    path: &YamlPath,
    what: &str,
    sink: &mut Sink<'_>,
) -> Option<Cow<'doc, Node>> {
    let mut entries: Vec<(Key, Node)> = Vec::new();
    let mut span = None;
    let mut defined: BTreeMap<&str, Span> = BTreeMap::new();
    for node in maps.filter(|n| !n.is_null()) {
        span.get_or_insert(node.span);
        let Some(map) = node.as_map() else {
            crate::decode::wrong_type(sink, node, path, &format!("a mapping of {what} names to definitions"));
            continue;
        };
        for (key, value) in map {
            if let Some(first) = defined.get(key.text.as_str()) {
                duplicate(sink, what, key, *first, &path.key(&key.text));
                continue;
            }
            defined.insert(&key.text, key.span);
            entries.push((key.clone(), value.clone()));
        }
    }
    span.map(|span| Cow::Owned(Node { value: Value::Map(entries), span }))
}

/// The policies of several documents in one list, with each one's index in its own list.
fn merge_policies<'doc>(
    lists: impl Iterator<Item = &'doc Node>,
    sink: &mut Sink<'_>,
) -> (Option<Cow<'doc, Node>>, Vec<usize>) {
    let path = YamlPath::root().key("topology_template").key("policies");
    let mut items = Vec::new();
    let mut indices = Vec::new();
    let mut span = None;
    // Name → where it is first defined, and in which document (by base).
    let mut defined: BTreeMap<&str, (Span, usize)> = BTreeMap::new();
    for node in lists.filter(|n| !n.is_null()) {
        span.get_or_insert(node.span);
        let Value::Seq(list) = &node.value else {
            crate::decode::wrong_type(sink, node, &path, "a list of policies");
            continue;
        };
        let document = sink.source_of(node.span).base();
        for (i, item) in list.iter().enumerate() {
            if let Some([(key, _)]) = item.as_map() {
                match defined.get(key.text.as_str()) {
                    // Within one document, resolving reports it.
                    Some((first, doc)) if *doc != document => {
                        duplicate(sink, "policy", key, *first, &path.index(i).key(&key.text));
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        defined.insert(&key.text, (key.span, document));
                    }
                }
            }
            items.push(item.clone());
            indices.push(i);
        }
    }
    (span.map(|span| Cow::Owned(Node { value: Value::Seq(items), span })), indices)
}
