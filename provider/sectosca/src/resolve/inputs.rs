//! Inputs: declarations, the values given from outside, defaults and constraints.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::decode::{Decode, Fields};
use crate::diagnostic::{Code, Sink};
use crate::model::document::InputType;
use crate::model::policies::Literal;
use crate::parse::{Node, Value};
use crate::path::{LazyPath, YamlPath};
use crate::source::Span;

/// An input's effective value, kept as canonical text with its type.
#[derive(Debug, Clone, PartialEq)]
pub struct InputValue {
    pub input_type: InputType,
    pub text: String,
}

impl InputValue {
    /// A scalar node standing for this value at `span` (where it is used).
    pub fn to_node(&self, span: Span) -> Node {
        Node { value: Value::Scalar { text: self.text.clone(), plain: self.input_type != InputType::String }, span }
    }

    fn number(&self) -> Option<f64> {
        self.text.parse().ok()
    }

    /// Compares with a literal of the same type; `None` when they cannot be compared.
    fn compare(&self, other: &InputValue) -> Option<Ordering> {
        match self.input_type {
            InputType::Integer | InputType::Float => self.number()?.partial_cmp(&other.number()?),
            InputType::String | InputType::Boolean => Some(self.text.cmp(&other.text)),
        }
    }

    /// Whether the value equals a literal written in the document (`elevated`, `3`, `true`).
    pub fn equals_literal(&self, literal: &Literal) -> bool {
        coerce(self.input_type, &literal.0).is_some_and(|v| self.compare(&v) == Some(Ordering::Equal))
    }
}

/// Parses text as a value of a type, normalising numbers and booleans.
pub fn coerce(input_type: InputType, text: &str) -> Option<InputValue> {
    let text = match input_type {
        InputType::String => text.to_owned(),
        InputType::Integer => text.trim().parse::<i64>().ok()?.to_string(),
        InputType::Float => {
            let f: f64 = text.trim().parse().ok()?;
            if !f.is_finite() {
                return None;
            }
            // Keep a decimal point, so that a float input never passes for an integer.
            let text = f.to_string();
            if text.contains(['.', 'e']) { text } else { format!("{text}.0") }
        }
        InputType::Boolean => match text.trim() {
            "true" | "True" | "TRUE" => "true".into(),
            "false" | "False" | "FALSE" => "false".into(),
            _ => return None,
        },
    };
    Some(InputValue { input_type, text })
}

/// The type's name with its article: "an integer", "a string".
fn a_type(input_type: InputType) -> String {
    match input_type {
        InputType::Integer => "an integer".into(),
        other => format!("a {other}"),
    }
}

/// The declared inputs and the values they settled to.
#[derive(Debug, Default)]
pub struct Inputs {
    pub values: BTreeMap<String, InputValue>,
    declarations: BTreeMap<String, Declaration>,
}

impl Inputs {
    pub fn is_declared(&self, name: &str) -> bool {
        self.declarations.contains_key(name)
    }

    pub fn declared_names(&self) -> impl Iterator<Item = &str> {
        self.declarations.keys().map(String::as_str)
    }

    /// Why input `name` can never equal `literal` (wrong type, or outside its constraints),
    /// if it cannot. `source` gives a scratch sink for evaluating constraints silently.
    pub fn never_equals(&self, name: &str, literal: &Literal, source: &crate::source::Source) -> Option<String> {
        let decl = self.declarations.get(name)?;
        let Some(value) = coerce(decl.input_type, &literal.0) else {
            return Some(format!("`{}` is not {}, the type of input `{name}`", literal.0, a_type(decl.input_type)));
        };
        let mut scratch = Sink::new(source);
        for (c, cpath) in &decl.constraints {
            check_constraint(name, &value, c, cpath, decl.span, &decl.path, false, &mut scratch);
        }
        // Only a violated constraint rules the value out; a malformed one is reported at the
        // declaration already.
        let violated = scratch.diagnostics.iter().any(|d| d.code == Code::InputConstraint);
        violated.then(|| format!("input `{name}` can never be `{}`: its constraints rule it out", value.text))
    }
}

/// A value of the type that any constraint can be evaluated against, to find malformed
/// constraints on inputs that have no value.
fn placeholder(input_type: InputType) -> InputValue {
    let text = match input_type {
        InputType::String => "",
        InputType::Integer => "0",
        InputType::Float => "0.0",
        InputType::Boolean => "false",
    };
    InputValue { input_type, text: text.into() }
}

#[derive(Debug)]
struct Declaration {
    input_type: InputType,
    default: Option<(Node, YamlPath)>,
    required: bool,
    constraints: Vec<(Node, YamlPath)>,
    span: Span,
    path: YamlPath,
}

/// Reads `topology_template.inputs`, then settles each input's value from `given`
/// (values from Terraform or the command line) or its default.
/// `fallback` is where problems with values given from outside point when the document
/// declares no inputs at all.
pub fn resolve_inputs(
    node: Option<&Node>,
    path: &YamlPath,
    fallback: Span,
    given: &BTreeMap<String, String>,
    sink: &mut Sink<'_>,
) -> Inputs {
    let mut declared = BTreeMap::new();
    if let Some(node) = node.filter(|n| !n.is_null()) {
        match node.as_map() {
            Some(entries) => {
                for (key, def) in entries {
                    if !super::is_valid_name(&key.text) {
                        sink.report(
                            Code::InvalidName,
                            key.span,
                            &path.key(&key.text),
                            format!("`{}` is not a valid input name", key.text),
                        )
                        .hint = Some(
                            "use letters, digits, `_` and `-`, starting with a letter or `_`, at most 63 characters"
                                .into(),
                        );
                        continue;
                    }
                    if let Some(d) = read_declaration(def, &path.key(&key.text), key.span, sink) {
                        declared.insert(key.text.clone(), d);
                    }
                }
            }
            None => crate::decode::wrong_type(sink, node, path, "a mapping of input names to definitions"),
        }
    }

    for name in given.keys().filter(|n| !declared.contains_key(*n)) {
        let span = node.map_or(fallback, |n| n.span);
        let d = sink.report(
            Code::UndeclaredInput,
            span,
            path,
            format!("a value was given for input `{name}`, which the document does not declare"),
        );
        d.input = Some(name.clone());
        let names: Vec<&str> = declared.keys().map(String::as_str).collect();
        d.hint = Some(match crate::decode::closest(name, &names) {
            Some(best) => format!("did you mean `{best}`?"),
            None => "declare it under topology_template.inputs, or stop passing it".into(),
        });
    }

    let mut values = BTreeMap::new();
    for (name, decl) in &declared {
        let value = match (given.get(name), &decl.default) {
            (Some(text), _) => match coerce(decl.input_type, text) {
                Some(v) => Some((v, decl.span, decl.path.clone(), true)),
                None => {
                    let d = sink.report(
                        Code::InputType,
                        decl.span,
                        &decl.path,
                        // Never the value itself: inputs can carry secrets (the provider
                        // marks them sensitive), and diagnostics are shown and logged.
                        format!("the value given for input `{name}` is not {}", a_type(decl.input_type)),
                    );
                    d.hint = Some(format!("pass {} value", a_type(decl.input_type)));
                    d.input = Some(name.clone());
                    None
                }
            },
            (None, Some((default, default_path))) => {
                let literal = Literal::decode(default, &LazyPath::new(default_path), sink);
                match literal.as_ref().and_then(|l| coerce(decl.input_type, &l.0)) {
                    Some(v) => Some((v, default.span, default_path.clone(), false)),
                    None => {
                        if literal.is_some() {
                            sink.report(
                                Code::InputType,
                                default.span,
                                default_path,
                                format!("the default of input `{name}` is not {}", a_type(decl.input_type)),
                            );
                        }
                        None
                    }
                }
            }
            (None, None) if decl.required => {
                sink.report(
                    Code::MissingInput,
                    decl.span,
                    &decl.path,
                    format!("input `{name}` is required and has no value"),
                )
                .hint = Some(format!(
                    "give it a value (Terraform: inputs = {{ {name} = \"...\" }}; CLI: --input {name}=...) or a default"
                ));
                None
            }
            (None, None) => None,
        };
        if let Some((value, span, vpath, given)) = value {
            // Every constraint is checked, so that all problems are reported at once.
            let ok = decl
                .constraints
                .iter()
                .fold(true, |ok, (c, cpath)| check_constraint(name, &value, c, cpath, span, &vpath, given, sink) && ok);
            if ok {
                values.insert(name.clone(), value);
            }
        } else {
            // No value to check, but malformed constraints are still worth reporting now.
            let mut scratch = sink.scratch();
            let probe = placeholder(decl.input_type);
            for (c, cpath) in &decl.constraints {
                check_constraint(name, &probe, c, cpath, decl.span, &decl.path, false, &mut scratch);
            }
            sink.diagnostics.extend(scratch.diagnostics.into_iter().filter(|d| d.code != Code::InputConstraint));
        }
    }
    Inputs { values, declarations: declared }
}

fn read_declaration(node: &Node, path: &YamlPath, span: Span, sink: &mut Sink<'_>) -> Option<Declaration> {
    let at = LazyPath::new(path);
    let mut fields = Fields::open(node, &at, sink, "input definitions", Code::UnknownKey)?;
    let input_type = fields.field::<InputType>("type", sink);
    let _description = fields.field::<Option<String>>("description", sink);
    let default = fields.raw("default").map(|n| (n.clone(), path.key("default")));
    let required = fields.field::<Option<bool>>("required", sink);
    let constraints_node = fields.raw("constraints");
    fields.finish(sink);

    let mut constraints = Vec::new();
    if let Some(list) = constraints_node {
        let cpath = path.key("constraints");
        match &list.value {
            Value::Seq(items) => constraints.extend(items.iter().enumerate().map(|(i, c)| (c.clone(), cpath.index(i)))),
            _ => crate::decode::wrong_type(sink, list, &cpath, "a list of constraints"),
        }
    }
    Some(Declaration {
        input_type: input_type?,
        default,
        required: required?.unwrap_or(true),
        constraints,
        span,
        path: path.clone(),
    })
}

const CONSTRAINTS: &[&str] = &[
    "equal",
    "greater_than",
    "greater_or_equal",
    "less_than",
    "less_or_equal",
    "in_range",
    "valid_values",
    "length",
    "min_length",
    "max_length",
];

/// Checks one constraint; reports a malformed constraint at the constraint, and a violation
/// at the value (the default, or the declaration when the value came from outside).
#[allow(clippy::too_many_arguments)]
fn check_constraint(
    name: &str,
    value: &InputValue,
    constraint: &Node,
    cpath: &YamlPath,
    value_span: Span,
    value_path: &YamlPath,
    given: bool,
    sink: &mut Sink<'_>,
) -> bool {
    let Some([(op, arg)]) = constraint.as_map() else {
        crate::decode::wrong_type(sink, constraint, cpath, "a single-entry mapping such as `valid_values: [a, b]`");
        return false;
    };
    let apath = cpath.key(&op.text);
    let literal = |n: &Node, p: &YamlPath, sink: &mut Sink<'_>| -> Option<InputValue> {
        let l = Literal::decode(n, &LazyPath::new(p), sink)?;
        let v = coerce(value.input_type, &l.0);
        if v.is_none() {
            sink.report(
                Code::InputType,
                n.span,
                p,
                format!("`{}` is not {} like the input it constrains", l.0, a_type(value.input_type)),
            );
        }
        v
    };
    let list = |n: &Node, p: &YamlPath, sink: &mut Sink<'_>| -> Option<Vec<InputValue>> {
        let Value::Seq(items) = &n.value else {
            crate::decode::wrong_type(sink, n, p, "a list");
            return None;
        };
        items.iter().enumerate().map(|(i, item)| literal(item, &p.index(i), sink)).collect()
    };
    let len = || value.text.chars().count() as u64;
    let (holds, expectation) = match op.text.as_str() {
        "equal" => {
            let Some(v) = literal(arg, &apath, sink) else { return false };
            (value.compare(&v) == Some(Ordering::Equal), format!("equal to {}", v.text))
        }
        "greater_than" | "greater_or_equal" | "less_than" | "less_or_equal" => {
            let Some(v) = literal(arg, &apath, sink) else { return false };
            let ord = value.compare(&v);
            let holds = match op.text.as_str() {
                "greater_than" => ord == Some(Ordering::Greater),
                "greater_or_equal" => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                "less_than" => ord == Some(Ordering::Less),
                _ => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
            };
            (holds, format!("{} {}", op.text.replace('_', " "), v.text))
        }
        "in_range" => {
            let Some(bounds) = list(arg, &apath, sink) else { return false };
            let [lo, hi] = bounds.as_slice() else {
                sink.report(Code::InvalidValue, arg.span, &apath, "in_range takes two values: [low, high]");
                return false;
            };
            let holds = matches!(value.compare(lo), Some(Ordering::Greater | Ordering::Equal))
                && matches!(value.compare(hi), Some(Ordering::Less | Ordering::Equal));
            (holds, format!("between {} and {}", lo.text, hi.text))
        }
        "valid_values" => {
            let Some(allowed) = list(arg, &apath, sink) else { return false };
            let holds = allowed.iter().any(|a| value.compare(a) == Some(Ordering::Equal));
            let names: Vec<&str> = allowed.iter().map(|a| a.text.as_str()).collect();
            (holds, format!("one of: {}", names.join(", ")))
        }
        "length" | "min_length" | "max_length" => {
            let Some(n) = u64::decode(arg, &LazyPath::new(&apath), sink) else { return false };
            let holds = match op.text.as_str() {
                "length" => len() == n,
                "min_length" => len() >= n,
                _ => len() <= n,
            };
            (holds, format!("{} {n}", op.text.replace('_', " ")))
        }
        other => {
            let d =
                sink.report(Code::InvalidValue, op.span, &apath, format!("`{other}` is not a supported constraint"));
            d.hint = Some(match crate::decode::closest(other, CONSTRAINTS) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("supported: {}", CONSTRAINTS.join(", ")),
            });
            return false;
        }
    };
    if !holds {
        // A given value is never repeated (inputs can carry secrets); a default is the document's.
        let message = if given {
            format!("the value given for input `{name}` is not {expectation}")
        } else {
            format!("the default of input `{name}` is `{}`, which is not {expectation}", value.text)
        };
        let d = sink.report(Code::InputConstraint, value_span, value_path, message);
        d.hint = Some(format!("the constraint is at {cpath}"));
        d.input = given.then(|| name.to_owned());
    }
    holds
}
