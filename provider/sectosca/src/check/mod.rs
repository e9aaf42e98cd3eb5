//! Stage 3, check: type every property, resolve every reference, and check what can only
//! be seen across templates (isolation against hosts, roles against principals).

mod authentication;
mod isolation;
mod references;
mod roles;

use std::collections::BTreeMap;

use crate::decode::Decode;
use crate::diagnostic::{Code, Sink};
use crate::model::nodes::{HypervisorProperties, UnikernelProperties};
use crate::model::policies::{
    AuditProperties, AuthenticationProperties, AuthorizationProperties, FirewallProperties, HardeningProperties,
    IsolationProperties,
};
use crate::model::{NodeKind, PolicyKind};
use crate::parse::{Node, Value};
use crate::path::{LazyPath, YamlPath};
use crate::resolve::{self, PolicyTemplate, Resolved};
use crate::source::Span;
use authentication::check_authentication;
use isolation::check_isolation;
use references::{check_requirements, check_targets};
use roles::check_roles;

#[derive(Debug, Clone)]
pub struct Checked {
    pub unikernels: BTreeMap<String, Unikernel>,
    pub hypervisors: BTreeMap<String, HypervisorProperties>,
    pub policies: Vec<Policy>,
}

#[derive(Debug, Clone)]
pub struct Unikernel {
    pub properties: UnikernelProperties,
    pub host: Option<String>,
    pub connects_to: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    /// The unikernels it applies to, sorted.
    pub targets: Vec<String>,
    pub properties: PolicyProperties,
    /// Where its name is written, for conflicts found when merging.
    pub span: Span,
    pub path: YamlPath,
}

#[derive(Debug, Clone)]
pub enum PolicyProperties {
    Authentication(AuthenticationProperties),
    Authorization(AuthorizationProperties),
    Firewall(FirewallProperties),
    Hardening(HardeningProperties),
    Isolation(IsolationProperties),
    Audit(AuditProperties),
    /// Applied during resolve; what remains is whether it holds and quarantines.
    Adaptation {
        active: bool,
        quarantine: bool,
    },
}

fn empty_at(span: Span) -> Node {
    Node { value: Value::Scalar { text: String::new(), plain: true }, span }
}

pub fn check(resolved: &Resolved, sink: &mut Sink<'_>) -> Checked {
    let before = sink.diagnostics.len();
    let checked = check_all(resolved, sink);
    // A value that `get_input` could not give has been reported where it went wrong; what
    // decoding the stand-in null says about it is noise.
    if !resolved.unresolved.is_empty() {
        let mut i = 0;
        sink.diagnostics.retain(|d| {
            i += 1;
            i <= before || !d.location.as_ref().is_some_and(|l| resolved.unresolved.contains(&l.span))
        });
    }
    checked
}

fn check_all(resolved: &Resolved, sink: &mut Sink<'_>) -> Checked {
    let mut unikernels = BTreeMap::new();
    let mut hypervisors = BTreeMap::new();
    for node in resolved.nodes.values() {
        let npath = LazyPath::new(&node.path);
        let ppath = npath.field("properties");
        let empty;
        let props = match &node.properties {
            Some(p) => p,
            None => {
                empty = empty_at(node.span);
                &empty
            }
        };
        match node.kind {
            NodeKind::Hypervisor => {
                if let Some(p) = HypervisorProperties::decode(props, &ppath, sink) {
                    hypervisors.insert(node.name.clone(), p);
                }
            }
            NodeKind::Unikernel => {
                // Kept with default properties when they are wrong (that is reported, and no
                // plan is made), so that placement checks still see it on its host.
                let properties = UnikernelProperties::decode(props, &ppath, sink).unwrap_or(UnikernelProperties {
                    port: None,
                    memory_mb: None,
                    vcpus: None,
                    instances: None,
                });
                let (host, connects_to) = check_requirements(resolved, node, sink);
                unikernels.insert(node.name.clone(), Unikernel { properties, host, connects_to });
            }
        }
    }

    let mut policies = Vec::with_capacity(resolved.policies.len());
    for template in &resolved.policies {
        let before = sink.diagnostics.len();
        let targets = check_targets(resolved, template, sink);
        let target_problems = sink.diagnostics.len() > before;
        let tpath = LazyPath::new(&template.path);
        let ppath = tpath.field("properties");
        let empty;
        let props = match &template.properties {
            Some(p) => p,
            None => {
                empty = empty_at(template.span);
                &empty
            }
        };
        let first = sink.diagnostics.len();
        let properties = decode_properties(template, props, &ppath, sink);
        check_empty_lists(template.kind, props, &ppath, sink);
        name_adaptations(template, &mut sink.diagnostics[first..]);
        check_dormant_overrides(template, props, &ppath, sink);
        if targets.is_empty() && !target_problems {
            sink.report(
                Code::NoTargets,
                template.span,
                &template.path,
                format!("policy `{}` applies to no unikernel", template.name),
            )
            .hint = Some("name the unikernels it protects in `targets`".into());
        }
        if let Some(properties) = properties {
            policies.push(Policy {
                name: template.name.clone(),
                targets,
                properties,
                span: template.span,
                path: template.path.clone(),
            });
        }
    }

    let checked = Checked { unikernels, hypervisors, policies };
    check_isolation(&checked, sink);
    check_roles(&checked, sink);
    checked
}

fn decode_properties(
    template: &PolicyTemplate,
    props: &Node,
    ppath: &LazyPath<'_>,
    sink: &mut Sink<'_>,
) -> Option<PolicyProperties> {
    let properties = match template.kind {
        PolicyKind::Authentication => {
            AuthenticationProperties::decode(props, ppath, sink).map(PolicyProperties::Authentication)
        }
        PolicyKind::Authorization => {
            AuthorizationProperties::decode(props, ppath, sink).map(PolicyProperties::Authorization)
        }
        PolicyKind::Firewall => FirewallProperties::decode(props, ppath, sink).map(PolicyProperties::Firewall),
        PolicyKind::Hardening => HardeningProperties::decode(props, ppath, sink).map(PolicyProperties::Hardening),
        PolicyKind::Isolation => IsolationProperties::decode(props, ppath, sink).map(PolicyProperties::Isolation),
        PolicyKind::Audit => AuditProperties::decode(props, ppath, sink).map(PolicyProperties::Audit),
        PolicyKind::Adaptation => {
            Some(PolicyProperties::Adaptation { active: template.active, quarantine: template.quarantine })
        }
    };
    if let Some(PolicyProperties::Authentication(a)) = &properties {
        check_authentication(a, ppath, template, sink);
    }
    properties
}

/// In a plan an empty list matches anything, so a rule written with an empty list (which
/// names nothing) would match everything: `roles: []` with `effect: allow` would let anyone in.
fn check_empty_lists(kind: PolicyKind, props: &Node, ppath: &LazyPath<'_>, sink: &mut Sink<'_>) {
    // Lists that allow only what they name: empty, they allow nothing at all.
    let nothing_allowed: &[(&str, &str, &str)] = match kind {
        PolicyKind::Firewall => &[("http", "methods", "every request would be refused")],
        PolicyKind::Isolation => &[("", "tenants", "no host could run the targets")],
        _ => &[],
    };
    for (parent, key, effect) in nothing_allowed {
        let holder = if parent.is_empty() { Some(props) } else { props.get(parent) };
        let Some(node) =
            holder.and_then(|h| h.get(key)).filter(|n| matches!(&n.value, Value::Seq(items) if items.is_empty()))
        else {
            continue;
        };
        let path = if parent.is_empty() { ppath.path().clone() } else { ppath.path().key(parent) };
        sink.report(Code::InvalidValue, node.span, &path.key(key), format!("`{key}: []` allows nothing: {effect}"))
            .hint = Some(format!("name at least one, or leave `{key}` out to allow any"));
    }
    // Rule lists whose keys, absent, match anything.
    let rule_lists: &[(&str, &[&str], &str)] = match kind {
        PolicyKind::Authorization => &[("rules", &["roles", "methods", "paths"], "every request")],
        PolicyKind::Firewall => {
            &[("ingress", &["from", "ports"], "every connection"), ("egress", &["ports"], "any port")]
        }
        _ => &[],
    };
    for (list, keys, meaning) in rule_lists {
        let Some(Value::Seq(rules)) = props.get(list).map(|n| &n.value) else { continue };
        for (i, rule) in rules.iter().enumerate() {
            for key in *keys {
                let Some(node) = rule.get(key).filter(|n| matches!(&n.value, Value::Seq(items) if items.is_empty()))
                else {
                    continue;
                };
                sink.report(
                    Code::InvalidValue,
                    node.span,
                    &ppath.key(list).index(i).key(key),
                    format!("`{key}: []` lists nothing, so this rule could never match"),
                )
                .hint = Some(format!("name at least one, or leave `{key}` out to match {meaning}"));
            }
        }
    }
}

/// Problems in values an adaptation set are the adaptation's: say so.
fn name_adaptations(template: &PolicyTemplate, diagnostics: &mut [crate::Diagnostic]) {
    for d in diagnostics {
        let Some(loc) = &d.location else { continue };
        let by = template
            .applied_overrides
            .iter()
            .find(|(_, span)| loc.span.start >= span.start && loc.span.end <= span.end);
        if let Some((adaptation, _)) = by {
            d.message = format!("{} (set by adaptation `{adaptation}`)", d.message);
        }
    }
}

/// Checks the policy as each adaptation that does not hold now would make it, reporting
/// only what is wrong in the adaptation's own text (the policy's problems are reported once).
fn check_dormant_overrides(template: &PolicyTemplate, props: &Node, ppath: &LazyPath<'_>, sink: &mut Sink<'_>) {
    for (adaptation, over) in &template.dormant_overrides {
        let merged = if props.is_null() { over.clone() } else { resolve::merge_nodes(props, over) };
        let mut scratch = sink.scratch();
        decode_properties(template, &merged, ppath, &mut scratch);
        check_empty_lists(template.kind, &merged, ppath, &mut scratch);
        for mut d in scratch.diagnostics {
            let inside =
                d.location.as_ref().is_some_and(|l| l.span.start >= over.span.start && l.span.end <= over.span.end);
            if inside {
                d.message = format!("{} (when adaptation `{adaptation}` applies)", d.message);
                sink.diagnostics.push(d);
            }
        }
    }
}
