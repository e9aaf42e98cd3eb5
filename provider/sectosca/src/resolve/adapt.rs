//! Adaptations: evaluate each one's condition on the inputs, check its overrides whether or
//! not it holds, and merge those of the adaptations that hold into the policies they name.

use std::borrow::Cow;

use crate::decode::{Decode, closest, wrong_type};
use crate::diagnostic::{Code, Sink};
use crate::model::PolicyKind;
use crate::model::policies::{AdaptationProperties, Literal};
use crate::parse::{Node, Value};
use crate::path::{LazyPath, YamlPath};
use crate::source::Span;

use super::{Inputs, PolicyTemplate, Substitution};

/// An override an active adaptation applies, kept until all are known so that two
/// adaptations setting the same property differently are found whatever their order.
struct Applied {
    adaptation: usize,
    target: usize,
    key_span: Span,
    path: YamlPath,
    node: Node,
}

pub(super) fn apply_adaptations(
    policies: &mut [PolicyTemplate<'_>],
    inputs: &Inputs,
    subst: &mut Substitution<'_>,
    sink: &mut Sink<'_>,
) {
    let mut applied: Vec<Applied> = Vec::new();
    for i in 0..policies.len() {
        if policies[i].kind != PolicyKind::Adaptation {
            continue;
        }
        let ppath = policies[i].path.key("properties");
        let null = Node { value: Value::Scalar { text: String::new(), plain: true }, span: policies[i].span };
        let props_node = policies[i].properties.as_deref().cloned().unwrap_or(null);
        let Some(props) = AdaptationProperties::decode(&props_node, &LazyPath::new(&ppath), sink) else { continue };

        let holds = condition_holds(&props, &props_node, &ppath, policies[i].span, inputs, subst, sink);
        policies[i].active = holds;

        // Overrides are checked whether or not the condition holds, so that a mistake does
        // not wait for the day the threat level changes.
        let tpath = ppath.key("then");
        for (key, value) in props.then.0.as_map().unwrap_or(&[]) {
            let opath = tpath.key(&key.text);
            if key.text == "quarantine" {
                policies[i].quarantine = bool::decode(value, &LazyPath::new(&opath), sink).unwrap_or(false);
                continue;
            }
            let Some(j) = policies.iter().position(|p| p.name == key.text) else {
                let names: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
                let d = sink.report(
                    Code::UnknownPolicyReference,
                    key.span,
                    &opath,
                    format!("`{}` is not a policy of this document", key.text),
                );
                d.hint = Some(match closest(&key.text, &names) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => "name a policy defined under topology_template.policies, or `quarantine`".into(),
                });
                continue;
            };
            if policies[j].kind == PolicyKind::Adaptation {
                sink.report(
                    Code::InvalidAdaptation,
                    key.span,
                    &opath,
                    "an adaptation cannot override another adaptation",
                )
                .hint = Some("make one adaptation's condition cover both cases".into());
                continue;
            }
            if value.as_map().is_none() {
                wrong_type(sink, value, &opath, "a mapping of property overrides");
                continue;
            }
            if holds {
                applied.push(Applied {
                    adaptation: i,
                    target: j,
                    key_span: key.span,
                    path: opath,
                    node: value.clone(),
                });
            } else {
                let adaptation = policies[i].name.clone();
                policies[j].dormant_overrides.push((adaptation, value.clone()));
            }
        }
    }
    report_clashes(&applied, policies, sink);
    for a in applied {
        let adaptation = policies[a.adaptation].name.clone();
        policies[a.target].applied_overrides.push((adaptation, a.node.span));
        let base = policies[a.target].properties.take();
        policies[a.target].properties = Some(Cow::Owned(match base {
            Some(base) if !base.is_null() => merge_nodes(&base, &a.node),
            _ => a.node,
        }));
    }
}

/// Evaluates an adaptation's condition. Problems with the condition itself are reported
/// even when the input has no value; a condition on an input without a value does not hold.
fn condition_holds(
    props: &AdaptationProperties,
    props_node: &Node,
    ppath: &YamlPath,
    fallback: Span,
    inputs: &Inputs,
    subst: &mut Substitution<'_>,
    sink: &mut Sink<'_>,
) -> bool {
    let when = &props.when;
    let input = &when.input;
    subst.used.insert(input.value.clone());
    let wpath = ppath.key("when");
    let literals: Vec<(&Literal, YamlPath)> = match (&when.equals, &when.any_of) {
        (Some(v), None) => vec![(v, wpath.key("equals"))],
        (None, Some(list)) => list.iter().enumerate().map(|(n, v)| (v, wpath.key("in").index(n))).collect(),
        _ => {
            let when_span = props_node.get("when").map_or(fallback, |n| n.span);
            sink.report(
                Code::InconsistentPolicy,
                when_span,
                &wpath,
                "a condition takes exactly one of `equals` and `in`",
            )
            .hint = Some("`equals: value` for one value, `in: [a, b]` for several".into());
            return false;
        }
    };
    if !inputs.is_declared(&input.value) {
        let names: Vec<&str> = inputs.declared_names().collect();
        let d = sink.report(
            Code::UnknownInput,
            input.span,
            &input.path,
            format!("the condition reads input `{}`, which is not declared", input.value),
        );
        d.hint = Some(match closest(&input.value, &names) {
            Some(best) => format!("did you mean `{best}`?"),
            None => "declare it under topology_template.inputs".into(),
        });
        return false;
    }
    // A value the input can never take makes a condition that silently never holds.
    let when_node = props_node.get("when");
    for (literal, lpath) in &literals {
        if let Some(why) = inputs.never_equals(&input.value, literal, sink.source) {
            let span = literal_span(when_node, lpath).unwrap_or(input.span);
            sink.report(Code::InputConstraint, span, lpath, format!("this value can never match: {why}")).hint =
                Some("compare with a value the input can take".into());
        }
    }
    let Some(value) = inputs.values.get(&input.value) else { return false };
    literals.iter().any(|(l, _)| value.equals_literal(l))
}

/// The span of `equals` or of `in[n]` inside a `when` node.
fn literal_span(when: Option<&Node>, path: &YamlPath) -> Option<Span> {
    let when = when?;
    match path.segments().last()? {
        crate::path::Segment::Index(n) => match &when.get("in")?.value {
            Value::Seq(items) => items.get(*n).map(|i| i.span),
            _ => None,
        },
        crate::path::Segment::Key(_) => when.get("equals").map(|n| n.span),
    }
}

/// Paths of the values an override sets (anything that is not a mapping is set whole).
fn leaf_paths(node: &Node, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, Node)>) {
    match &node.value {
        Value::Map(entries) if !entries.is_empty() => {
            for (k, v) in entries {
                prefix.push(k.text.clone());
                leaf_paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => out.push((prefix.clone(), node.clone())),
    }
}

/// Whether two nodes hold the same value, wherever they are written.
fn same_value(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Value::Scalar { text: x, plain: px }, Value::Scalar { text: y, plain: py }) => x == y && px == py,
        (Value::Seq(x), Value::Seq(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b)),
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.iter().any(|(k2, v2)| k.text == k2.text && same_value(v, v2)))
        }
        _ => false,
    }
}

/// Two active adaptations that set the same property of one policy to different values
/// would make the result depend on their order: an error instead.
fn report_clashes(applied: &[Applied], policies: &[PolicyTemplate<'_>], sink: &mut Sink<'_>) {
    for (n, later) in applied.iter().enumerate() {
        let mut later_leaves = Vec::new();
        leaf_paths(&later.node, &mut Vec::new(), &mut later_leaves);
        for earlier in applied[..n].iter().filter(|e| e.target == later.target && e.adaptation != later.adaptation) {
            let mut earlier_leaves = Vec::new();
            leaf_paths(&earlier.node, &mut Vec::new(), &mut earlier_leaves);
            let clash = later_leaves.iter().find_map(|(lp, lv)| {
                earlier_leaves
                    .iter()
                    .find(|(ep, ev)| (lp.starts_with(ep) || ep.starts_with(lp)) && !(lp == ep && same_value(lv, ev)))
                    .map(|_| lp.join("."))
            });
            if let Some(property) = clash {
                let target = &policies[later.target].name;
                sink.report(
                    Code::InvalidAdaptation,
                    later.key_span,
                    &later.path,
                    format!(
                        "adaptations `{}` and `{}` both hold and set `{target}.{property}` differently",
                        policies[earlier.adaptation].name, policies[later.adaptation].name
                    ),
                )
                .hint = Some("make their conditions exclusive, or let one adaptation set the property".into());
            }
        }
    }
}

/// Deep merge of an override into properties: mappings merge key by key, anything else is
/// replaced. Replaced values keep the override's spans, so problems point at the adaptation.
pub(crate) fn merge_nodes(base: &Node, over: &Node) -> Node {
    match (&base.value, &over.value) {
        (Value::Map(b), Value::Map(o)) => {
            let mut entries = b.clone();
            for (k, v) in o {
                match entries.iter_mut().find(|(bk, _)| bk.text == k.text) {
                    Some((_, bv)) => *bv = merge_nodes(bv, v),
                    None => entries.push((k.clone(), v.clone())),
                }
            }
            Node { value: Value::Map(entries), span: base.span }
        }
        _ => over.clone(),
    }
}
