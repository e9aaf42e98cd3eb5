//! What templates name: a unikernel's requirements (its host, its peers) and a policy's
//! targets, each of which must exist and be of the right type.

use std::collections::BTreeSet;

use crate::decode::closest;
use crate::diagnostic::{Code, Sink};
use crate::model::NodeKind;
use crate::resolve::{self, PolicyTemplate, RequirementKind, Resolved};

pub(super) fn check_requirements(
    resolved: &Resolved,
    node: &resolve::NodeTemplate,
    sink: &mut Sink<'_>,
) -> (Option<String>, Vec<String>) {
    let mut host: Option<String> = None;
    let mut connects_to = BTreeSet::new();
    for req in &node.requirements {
        let target = &req.target;
        let (wanted, word) = match req.kind {
            RequirementKind::Host => (NodeKind::Hypervisor, "host"),
            RequirementKind::ConnectsTo => (NodeKind::Unikernel, "connects_to"),
        };
        let Some(found) = resolved.nodes.get(&target.value) else {
            let names: Vec<&str> =
                resolved.nodes.values().filter(|n| n.kind == wanted).map(|n| n.name.as_str()).collect();
            let d = sink.report(
                Code::UnknownRequirementTarget,
                target.span,
                &target.path,
                format!("`{word}` names `{}`, which is not a node template", target.value),
            );
            d.hint = Some(match closest(&target.value, &names) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("define a {} node template named `{}`", wanted.type_name(), target.value),
            });
            continue;
        };
        if found.kind != wanted {
            sink.report(
                Code::WrongRequirementTarget,
                target.span,
                &target.path,
                format!(
                    "`{word}` must name a {}, but `{}` is a {}",
                    wanted.type_name(),
                    target.value,
                    found.kind.type_name()
                ),
            );
            continue;
        }
        match req.kind {
            RequirementKind::Host if host.is_some() => {
                sink.report(Code::InvalidValue, target.span, &target.path, "a unikernel has one host at most");
            }
            RequirementKind::Host => host = Some(target.value.clone()),
            RequirementKind::ConnectsTo if target.value == node.name => {
                sink.report(
                    Code::InvalidValue,
                    target.span,
                    &target.path,
                    "a unikernel does not need `connects_to` itself",
                );
            }
            RequirementKind::ConnectsTo => {
                connects_to.insert(target.value.clone());
            }
        }
    }
    (host, connects_to.into_iter().collect())
}

pub(super) fn check_targets(resolved: &Resolved, template: &PolicyTemplate, sink: &mut Sink<'_>) -> Vec<String> {
    let Some(targets) = &template.targets else {
        return resolved.nodes.values().filter(|n| n.kind == NodeKind::Unikernel).map(|n| n.name.clone()).collect();
    };
    let mut out = Vec::with_capacity(targets.len());
    for target in targets {
        if !resolve::is_valid_name(&target.value) {
            sink.report(
                Code::InvalidName,
                target.span,
                &target.path,
                format!("`{}` is not a valid unikernel name", target.value),
            );
            continue;
        }
        match resolved.nodes.get(&target.value) {
            Some(n) if n.kind == NodeKind::Unikernel => out.push(target.value.clone()),
            Some(n) => {
                sink.report(
                    Code::WrongTargetType,
                    target.span,
                    &target.path,
                    format!("policies apply to unikernels; `{}` is a {}", target.value, n.kind.type_name()),
                );
            }
            None => {
                let names: Vec<&str> = resolved
                    .nodes
                    .values()
                    .filter(|n| n.kind == NodeKind::Unikernel)
                    .map(|n| n.name.as_str())
                    .collect();
                let d = sink.report(
                    Code::UnknownTarget,
                    target.span,
                    &target.path,
                    format!("target `{}` names no node template", target.value),
                );
                d.hint = Some(match closest(&target.value, &names) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => format!(
                        "unikernels in this document: {}",
                        if names.is_empty() { "none".into() } else { names.join(", ") }
                    ),
                });
            }
        }
    }
    // Sorted and once each, as the checked policy promises, without a tree set's allocations.
    out.sort();
    out.dedup();
    out
}
