//! Stage 2, resolve: read the service template's structure, settle inputs, name the types
//! of templates and policies, substitute `get_input`, and apply the adaptations whose
//! conditions hold. Properties stay as spanned nodes; the check stage types them.

mod adapt;
pub mod inputs;
mod outputs;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use crate::decode::{Decode, Fields, Spanned, closest, wrong_type};
use crate::diagnostic::{Code, Sink};
use crate::imports::template::Template;
use crate::model::{NodeKind, PolicyKind};
use crate::parse::{Key, Node, Value};
use crate::path::{LazyPath, YamlPath};
use crate::source::Span;

use adapt::apply_adaptations;
pub(crate) use adapt::merge_nodes;
pub use inputs::{InputValue, Inputs};
pub use outputs::Output;

/// What resolving a document gave. Properties borrow from the parsed document unless
/// `get_input` or an adaptation changed them: copying them all cost more than the checks.
#[derive(Debug, Clone)]
pub struct Resolved<'doc> {
    pub inputs: BTreeMap<String, InputValue>,
    pub nodes: BTreeMap<String, NodeTemplate<'doc>>,
    /// True for a policy-only fragment: the nodes were made from the policies' targets.
    pub implicit_nodes: bool,
    pub policies: Vec<PolicyTemplate<'doc>>,
    /// The topology's outputs, by name.
    pub outputs: BTreeMap<String, Output>,
    /// Where a `{ get_input: ... }` stands that gave no value because of a problem already
    /// reported (an undeclared input, a missing or invalid value). Problems found later at
    /// these places are consequences and are not reported again.
    pub unresolved: Vec<Span>,
}

#[derive(Debug, Clone)]
pub struct NodeTemplate<'doc> {
    pub name: String,
    pub kind: NodeKind,
    pub span: Span,
    pub path: YamlPath,
    pub properties: Option<Cow<'doc, Node>>,
    pub requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequirementKind {
    Host,
    ConnectsTo,
}

#[derive(Debug, Clone)]
pub struct Requirement {
    pub kind: RequirementKind,
    pub target: Spanned<String>,
}

#[derive(Debug, Clone)]
pub struct PolicyTemplate<'doc> {
    pub name: String,
    pub kind: PolicyKind,
    pub span: Span,
    pub path: YamlPath,
    /// `None`: no `targets` key, the policy applies to every unikernel.
    pub targets: Option<Vec<Spanned<String>>>,
    pub properties: Option<Cow<'doc, Node>>,
    /// For an adaptation: whether its condition holds.
    pub active: bool,
    /// For an adaptation: whether it sets `quarantine: true`.
    pub quarantine: bool,
    /// Overrides from adaptations whose condition does not hold now, by adaptation name:
    /// not applied, but checked, so that a mistake does not wait for the day they apply.
    pub dormant_overrides: Vec<(String, Node)>,
    /// Where overrides of adaptations that hold were written, by adaptation name, so that
    /// problems found in them name the adaptation.
    pub applied_overrides: Vec<(String, Span)>,
}

/// Names of templates, policies and inputs: letters, digits, `_` and `-`, starting with a
/// letter or `_`, at most 63 characters (they become host names and Terraform map keys).
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 63
}

fn check_name(name: &Key, path: &YamlPath, what: &str, sink: &mut Sink<'_>) -> bool {
    let ok = is_valid_name(&name.text);
    if !ok {
        sink.report(Code::InvalidName, name.span, path, format!("`{}` is not a valid {what} name", name.text)).hint =
            Some("use letters, digits, `_` and `-`, starting with a letter or `_`, at most 63 characters".into());
    }
    ok
}

pub fn resolve<'doc>(
    template: &'doc Template<'_>,
    given_inputs: &BTreeMap<String, String>,
    sink: &mut Sink<'_>,
) -> Option<Resolved<'doc>> {
    let tpath = YamlPath::root().key("topology_template");
    let inputs_node = template.inputs.as_deref();
    let nodes_node = template.node_templates.as_deref();
    let policies_node = template.policies.as_deref();
    let inputs = inputs::resolve_inputs(inputs_node, &tpath.key("inputs"), template.span, given_inputs, sink);
    let mut substitution = Substitution { inputs: &inputs, used: BTreeSet::new(), unresolved: Vec::new() };

    let mut nodes = read_nodes(nodes_node, &tpath.key("node_templates"), &mut substitution, sink);
    let mut policies =
        read_policies(policies_node, &template.policy_indices, &tpath.key("policies"), &mut substitution, sink);
    let outputs = outputs::read_outputs(template.outputs.as_deref(), &tpath.key("outputs"), &mut substitution, sink);
    apply_adaptations(&mut policies, &inputs, &mut substitution, sink);

    for name in inputs.declared_names().filter(|n| !substitution.used.contains(*n)) {
        if let Some((key, _)) = inputs_node.and_then(Node::as_map).and_then(|e| e.iter().find(|(k, _)| k.text == name))
        {
            sink.report(
                Code::UnusedInput,
                key.span,
                &tpath.key("inputs").key(name),
                format!("input `{name}` is declared but never used"),
            )
            .hint = Some("use it with `{ get_input: name }` or in an adaptation's `when`, or remove it".into());
        }
    }

    let implicit_nodes = nodes_node.is_none_or(Node::is_null);
    if implicit_nodes {
        nodes = implicit_unikernels(&policies);
    }
    let unresolved = substitution.unresolved;
    Some(Resolved { inputs: inputs.values, nodes, implicit_nodes, policies, outputs, unresolved })
}

/// In a policy-only fragment every name a policy targets is a unikernel.
fn implicit_unikernels<'doc>(policies: &[PolicyTemplate<'doc>]) -> BTreeMap<String, NodeTemplate<'doc>> {
    let mut nodes = BTreeMap::new();
    for target in policies.iter().flat_map(|p| p.targets.iter().flatten()) {
        nodes.entry(target.value.clone()).or_insert_with(|| NodeTemplate {
            name: target.value.clone(),
            kind: NodeKind::Unikernel,
            span: target.span,
            path: target.path.clone(),
            properties: None,
            requirements: Vec::new(),
        });
    }
    nodes
}

fn read_type(fields: &mut Fields<'_, '_>, sink: &mut Sink<'_>) -> Option<Spanned<String>> {
    fields.field::<Spanned<String>>("type", sink)
}

fn read_nodes<'doc>(
    node: Option<&'doc Node>,
    path: &YamlPath,
    subst: &mut Substitution<'_>,
    sink: &mut Sink<'_>,
) -> BTreeMap<String, NodeTemplate<'doc>> {
    let mut nodes = BTreeMap::new();
    let Some(node) = node.filter(|n| !n.is_null()) else { return nodes };
    let Some(entries) = node.as_map() else {
        wrong_type(sink, node, path, "a mapping of node template names to templates");
        return nodes;
    };
    for (key, template) in entries {
        let npath = path.key(&key.text);
        let name_ok = check_name(key, &npath, "node template", sink);
        let at = LazyPath::new(&npath);
        let Some(mut fields) = Fields::open(template, &at, sink, "node templates", Code::UnknownKey) else {
            continue;
        };
        let type_name = read_type(&mut fields, sink);
        let _description = fields.field::<Option<String>>("description", sink);
        let _metadata = fields.field::<Option<BTreeMap<String, String>>>("metadata", sink);
        let properties = fields.raw("properties").map(|p| subst.substitute(p, &npath, sink));
        let requirements_node = fields.raw("requirements");
        fields.finish(sink);

        let Some(type_name) = type_name else { continue };
        let Some(kind) = NodeKind::from_type_name(&type_name.value) else {
            let names: Vec<&str> = NodeKind::ALL.iter().map(|k| k.type_name()).collect();
            let d = sink.report(
                Code::UnknownNodeType,
                type_name.span,
                &type_name.path,
                format!("unknown node type `{}`", type_name.value),
            );
            d.hint = Some(match closest(&type_name.value, &names) {
                Some(best) => format!("did you mean `{best}`?"),
                None if type_name.value.starts_with("tosca.nodes.") => {
                    "SecTOSCA runs sdsec.nodes.Unikernel (derived from tosca.nodes.Compute) and sdsec.nodes.Hypervisor"
                        .into()
                }
                None => format!("node types: {}", names.join(", ")),
            });
            continue;
        };
        let requirements = match requirements_node {
            Some(r) if kind == NodeKind::Unikernel => read_requirements(r, &npath.key("requirements"), sink),
            Some(r) => {
                sink.report(
                    Code::UnknownKey,
                    r.span,
                    &npath.key("requirements"),
                    format!("{} templates take no requirements", kind.type_name()),
                );
                Vec::new()
            }
            None => Vec::new(),
        };
        if name_ok {
            nodes.insert(
                key.text.clone(),
                NodeTemplate { name: key.text.clone(), kind, span: key.span, path: npath, properties, requirements },
            );
        }
    }
    nodes
}

fn read_requirements(node: &Node, path: &YamlPath, sink: &mut Sink<'_>) -> Vec<Requirement> {
    let Value::Seq(items) = &node.value else {
        wrong_type(sink, node, path, "a list such as `- host: paris`");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ipath = path.index(i);
        let Some([(key, value)]) = item.as_map() else {
            wrong_type(sink, item, &ipath, "a single-entry mapping such as `host: paris`");
            continue;
        };
        let kind = match key.text.as_str() {
            "host" => RequirementKind::Host,
            "connects_to" => RequirementKind::ConnectsTo,
            other => {
                let d = sink.report(
                    Code::UnknownKey,
                    key.span,
                    &ipath.key(other),
                    format!("`{other}` is not a requirement of sdsec.nodes.Unikernel"),
                );
                d.hint = Some(match closest(other, &["host", "connects_to"]) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => "requirements: host, connects_to".into(),
                });
                continue;
            }
        };
        let vpath = ipath.key(&key.text);
        let target = match &value.value {
            Value::Map(_) => {
                let at = LazyPath::new(&vpath);
                let Some(mut fields) = Fields::open(value, &at, sink, "requirement assignments", Code::UnknownKey)
                else {
                    continue;
                };
                let target = fields.field::<Spanned<String>>("node", sink);
                fields.finish(sink);
                target
            }
            _ => Spanned::<String>::decode(value, &LazyPath::new(&vpath), sink),
        };
        if let Some(target) = target {
            out.push(Requirement { kind, target });
        }
    }
    out
}

fn read_policies<'doc>(
    node: Option<&'doc Node>,
    indices: &[usize],
    path: &YamlPath,
    subst: &mut Substitution<'_>,
    sink: &mut Sink<'_>,
) -> Vec<PolicyTemplate<'doc>> {
    let mut policies: Vec<PolicyTemplate<'doc>> = Vec::new();
    // Where each policy kept so far is defined, by name.
    let mut defined: BTreeMap<String, YamlPath> = BTreeMap::new();
    let Some(node) = node.filter(|n| !n.is_null()) else { return policies };
    let Value::Seq(items) = &node.value else {
        let d = sink.report(
            Code::WrongType,
            node.span,
            path,
            format!("expected a list of policies, found {}", node.kind_name()),
        );
        d.hint = Some("write each policy as a list item: `- name: { type: ..., targets: [...] }`".into());
        return policies;
    };
    policies.reserve_exact(items.len());
    for (i, item) in items.iter().enumerate() {
        // Merged from several documents: the index in the item's own document.
        let ipath = path.index(indices.get(i).copied().unwrap_or(i));
        let Some([(key, policy)]) = item.as_map() else {
            wrong_type(
                sink,
                item,
                &ipath,
                "a single-entry mapping `name: { type: ..., targets: [...], properties: {...} }`",
            );
            continue;
        };
        let ppath = ipath.key(&key.text);
        let name_ok = check_name(key, &ppath, "policy", sink);
        if let Some(first) = defined.get(&key.text) {
            sink.report(
                Code::DuplicateName,
                key.span,
                &ppath,
                format!("a policy named `{}` is already defined at {first}", key.text),
            )
            .hint = Some("give every policy its own name".into());
            continue;
        }
        let at = LazyPath::new(&ppath);
        let Some(mut fields) = Fields::open(policy, &at, sink, "policies", Code::UnknownKey) else { continue };
        let type_name = read_type(&mut fields, sink);
        let _description = fields.field::<Option<String>>("description", sink);
        let _metadata = fields.field::<Option<BTreeMap<String, String>>>("metadata", sink);
        let targets = fields.field::<Option<Vec<Spanned<String>>>>("targets", sink);
        let properties = fields.raw("properties").map(|p| subst.substitute(p, &ppath, sink));
        fields.finish(sink);

        let Some(type_name) = type_name else { continue };
        let Some(kind) = PolicyKind::from_type_name(&type_name.value) else {
            let names: Vec<&str> = PolicyKind::ALL.iter().map(|k| k.type_name()).collect();
            let d = sink.report(
                Code::UnknownPolicyType,
                type_name.span,
                &type_name.path,
                format!("unknown policy type `{}`", type_name.value),
            );
            d.hint = Some(match closest(&type_name.value, &names) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("policy types: {}", names.join(", ")),
            });
            continue;
        };
        let Some(targets) = targets else { continue };
        if name_ok {
            defined.insert(key.text.clone(), ppath.clone());
            policies.push(PolicyTemplate {
                name: key.text.clone(),
                kind,
                span: key.span,
                path: ppath,
                targets,
                properties,
                active: false,
                quarantine: false,
                dormant_overrides: Vec::new(),
                applied_overrides: Vec::new(),
            });
        }
    }
    policies
}

/// Replaces `{ get_input: name }` with the input's value, at the place it is used.
struct Substitution<'a> {
    inputs: &'a Inputs,
    used: BTreeSet<String>,
    unresolved: Vec<Span>,
}

/// Whether `get_input` is used anywhere in the node, as `apply` would find it.
fn has_get_input(node: &Node) -> bool {
    match &node.value {
        Value::Map(entries) => {
            matches!(entries.as_slice(), [(key, _)] if key.text == "get_input")
                || entries.iter().any(|(_, v)| has_get_input(v))
        }
        Value::Seq(items) => items.iter().any(has_get_input),
        Value::Scalar { .. } => false,
    }
}

/// Where a value being substituted sits, made into a [`YamlPath`] only for a diagnostic:
/// most values hold no `get_input`, and a path for each would cost two allocations.
enum At<'p> {
    Path(&'p YamlPath),
    Key(&'p At<'p>, &'p str),
    Index(&'p At<'p>, usize),
}

impl At<'_> {
    fn path(&self) -> YamlPath {
        match self {
            At::Path(path) => (*path).clone(),
            At::Key(parent, key) => parent.path().key(key),
            At::Index(parent, index) => parent.path().index(*index),
        }
    }
}

impl Substitution<'_> {
    /// A template's properties with every `get_input` replaced; borrowed when there is none.
    fn substitute<'doc>(&mut self, node: &'doc Node, template: &YamlPath, sink: &mut Sink<'_>) -> Cow<'doc, Node> {
        if has_get_input(node) {
            Cow::Owned(self.apply(node, &At::Path(&template.key("properties")), sink))
        } else {
            Cow::Borrowed(node)
        }
    }

    fn apply(&mut self, node: &Node, at: &At<'_>, sink: &mut Sink<'_>) -> Node {
        match &node.value {
            Value::Map(entries) => {
                if let [(key, arg)] = entries.as_slice()
                    && key.text == "get_input"
                {
                    return self.lookup(node, arg, &at.path().key("get_input"), sink);
                }
                let entries =
                    entries.iter().map(|(k, v)| (k.clone(), self.apply(v, &At::Key(at, &k.text), sink))).collect();
                Node { value: Value::Map(entries), span: node.span }
            }
            Value::Seq(items) => {
                let items = items.iter().enumerate().map(|(i, v)| self.apply(v, &At::Index(at, i), sink)).collect();
                Node { value: Value::Seq(items), span: node.span }
            }
            Value::Scalar { .. } => node.clone(),
        }
    }

    /// The input's value, or a null node when it cannot be had (the problem is reported).
    fn lookup(&mut self, node: &Node, arg: &Node, path: &YamlPath, sink: &mut Sink<'_>) -> Node {
        let null = Node { value: Value::Scalar { text: "null".into(), plain: true }, span: node.span };
        let Some(name) = String::decode(arg, &LazyPath::new(path), sink) else {
            self.unresolved.push(node.span);
            return null;
        };
        self.used.insert(name.clone());
        if !self.inputs.is_declared(&name) {
            let names: Vec<&str> = self.inputs.declared_names().collect();
            let d = sink.report(
                Code::UnknownInput,
                arg.span,
                path,
                format!("`get_input` names `{name}`, which is not a declared input"),
            );
            d.hint = Some(match closest(&name, &names) {
                Some(best) => format!("did you mean `{best}`?"),
                None => "declare it under topology_template.inputs".into(),
            });
            self.unresolved.push(node.span);
            return null;
        }
        if let Some(value) = self.inputs.values.get(&name) {
            return value.to_node(node.span);
        }
        // No value: either an optional input left unset (null is its value), or an input
        // whose problem has been reported at its declaration already.
        let declaration = YamlPath::root().key("topology_template").key("inputs").key(&name);
        let failed = sink.diagnostics.iter().any(|d| d.is_error() && d.path.starts_with(&declaration));
        if failed {
            self.unresolved.push(node.span);
        }
        null
    }
}
