//! `topology_template.outputs`: named values the compilation gives back. A value is a
//! literal scalar or `{ get_input: name }`; TOSCA's other functions (`get_property`,
//! `get_attribute`, `concat`, ...) name things that exist only once instances run, or are
//! not supported, and are refused.

use std::collections::BTreeMap;

use super::{At, Substitution, check_name};
use crate::decode::{Fields, wrong_type};
use crate::diagnostic::{Code, Sink};
use crate::parse::{Node, Value};
use crate::path::{LazyPath, YamlPath};

/// An output's value, as text (numbers and booleans as written); `None` when it is an
/// optional input left without a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub description: Option<String>,
    pub value: Option<String>,
}

/// TOSCA 1.3's intrinsic and property functions, to say why they are refused.
const FUNCTIONS: &[&str] = &[
    "get_property",
    "get_attribute",
    "get_operation_output",
    "get_nodes_of_type",
    "get_artifact",
    "concat",
    "join",
    "token",
];

pub(super) fn read_outputs(
    node: Option<&Node>,
    path: &YamlPath,
    subst: &mut Substitution<'_>,
    sink: &mut Sink<'_>,
) -> BTreeMap<String, Output> {
    let mut outputs = BTreeMap::new();
    let Some(node) = node.filter(|n| !n.is_null()) else { return outputs };
    let Some(entries) = node.as_map() else {
        wrong_type(sink, node, path, "a mapping of output names to `{ description, value }`");
        return outputs;
    };
    for (key, definition) in entries {
        let opath = path.key(&key.text);
        let name_ok = check_name(key, &opath, "output", sink);
        let at = LazyPath::new(&opath);
        let Some(mut fields) = Fields::open(definition, &at, sink, "output definitions", Code::UnknownKey) else {
            continue;
        };
        let description = fields.field::<Option<String>>("description", sink).flatten();
        let value = fields.raw("value");
        fields.finish(sink);
        let Some(value) = value else {
            sink.report(Code::MissingKey, definition.span, &opath, "output definitions need `value`");
            continue;
        };
        let vpath = opath.key("value");
        let Some(value) = evaluate(value, &vpath, subst, sink) else { continue };
        if name_ok {
            outputs.insert(key.text.clone(), Output { description, value });
        }
    }
    outputs
}

/// The value's text, `Some(None)` for null; `None` when it cannot be evaluated (reported).
fn evaluate(
    value: &Node,
    path: &YamlPath,
    subst: &mut Substitution<'_>,
    sink: &mut Sink<'_>,
) -> Option<Option<String>> {
    let node = match &value.value {
        Value::Map(entries) => match entries.as_slice() {
            [(key, _)] if key.text == "get_input" => subst.apply(value, &At::Path(path), sink),
            [(key, _)] if FUNCTIONS.contains(&key.text.as_str()) => {
                sink.report(
                    Code::OutputValue,
                    key.span,
                    path,
                    format!("`{}` cannot be evaluated when the policy is compiled", key.text),
                )
                .hint = Some("an output's value is a literal or `{ get_input: name }`".into());
                return None;
            }
            _ => return refuse(value, path, sink),
        },
        Value::Seq(_) => return refuse(value, path, sink),
        Value::Scalar { .. } => value.clone(),
    };
    match node.value {
        _ if node.is_null() => Some(None),
        Value::Scalar { text, .. } => Some(Some(text)),
        _ => refuse(&node, path, sink),
    }
}

fn refuse<T>(value: &Node, path: &YamlPath, sink: &mut Sink<'_>) -> Option<T> {
    sink.report(
        Code::OutputValue,
        value.span,
        path,
        format!("an output's value is a literal or `{{ get_input: name }}`, not {}", value.kind_name()),
    )
    .hint = Some("write a string, number or boolean, or `{ get_input: name }`".into());
    None
}
