//! Stage 3, check: type every property, resolve every reference, and check what can only
//! be seen across templates (isolation against hosts, roles against principals).

use std::collections::{BTreeMap, BTreeSet};

use crate::decode::{Decode, closest};
use crate::diagnostic::{Code, Sink};
use crate::model::nodes::{HypervisorProperties, UnikernelProperties};
use crate::model::policies::{
    AuditProperties, AuthenticationProperties, AuthorizationProperties, FirewallProperties, HardeningProperties,
    IsolationProperties, Scheme,
};
use crate::model::{NodeKind, PolicyKind, Trust};
use crate::parse::{Node, Value};
use crate::path::YamlPath;
use crate::resolve::{self, PolicyTemplate, RequirementKind, Resolved};
use crate::values::{JwtAlgorithm, KeyKind};

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
    pub template: PolicyTemplate,
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

fn empty_at(span: crate::source::Span) -> Node {
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
        let ppath = node.path.key("properties");
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

    let mut policies = Vec::new();
    for template in &resolved.policies {
        let before = sink.diagnostics.len();
        let targets = check_targets(resolved, template, sink);
        let target_problems = sink.diagnostics.len() > before;
        let ppath = template.path.key("properties");
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
            policies.push(Policy { name: template.name.clone(), targets, properties, template: template.clone() });
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
    ppath: &YamlPath,
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
fn check_empty_lists(kind: PolicyKind, props: &Node, ppath: &YamlPath, sink: &mut Sink<'_>) {
    // Lists that allow only what they name: empty, they allow nothing at all.
    let nothing_allowed: &[(&str, &str, &str)] = match kind {
        PolicyKind::Firewall => &[("http", "methods", "every request would be refused")],
        PolicyKind::Isolation => &[("", "tenants", "no host could run the targets")],
        _ => &[],
    };
    for (parent, key, effect) in nothing_allowed {
        let (holder, path) =
            if parent.is_empty() { (Some(props), ppath.clone()) } else { (props.get(parent), ppath.key(parent)) };
        let Some(node) =
            holder.and_then(|h| h.get(key)).filter(|n| matches!(&n.value, Value::Seq(items) if items.is_empty()))
        else {
            continue;
        };
        sink.report(Code::InvalidValue, node.span, &path.key(key), format!("`{key}: []` allows nothing: {effect}"))
            .hint = Some(format!("name at least one, or leave `{key}` out to allow any"));
    }
    let (list, keys, meaning): (&str, &[&str], &str) = match kind {
        PolicyKind::Authorization => ("rules", &["roles", "methods", "paths"], "every request"),
        PolicyKind::Firewall => ("ingress", &["from", "ports"], "every connection"),
        _ => return,
    };
    let Some(Value::Seq(rules)) = props.get(list).map(|n| &n.value) else { return };
    for (i, rule) in rules.iter().enumerate() {
        for key in keys {
            let Some(node) = rule.get(key).filter(|n| matches!(&n.value, Value::Seq(items) if items.is_empty())) else {
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
fn check_dormant_overrides(template: &PolicyTemplate, props: &Node, ppath: &YamlPath, sink: &mut Sink<'_>) {
    for (adaptation, over) in &template.dormant_overrides {
        let merged = if props.is_null() { over.clone() } else { resolve::merge_nodes(props, over) };
        let mut scratch = Sink::new(sink.source);
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

fn check_requirements(
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

fn check_targets(resolved: &Resolved, template: &PolicyTemplate, sink: &mut Sink<'_>) -> Vec<String> {
    let Some(targets) = &template.targets else {
        return resolved.nodes.values().filter(|n| n.kind == NodeKind::Unikernel).map(|n| n.name.clone()).collect();
    };
    let mut out = BTreeSet::new();
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
            Some(n) if n.kind == NodeKind::Unikernel => {
                out.insert(target.value.clone());
            }
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
    out.into_iter().collect()
}

/// A key type in words. Every one of them takes the article "an".
fn key_kind_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::EcP256 => "EC P-256",
        KeyKind::EcP384 => "EC P-384",
        KeyKind::Rsa => "RSA",
        KeyKind::Ed25519 => "Ed25519",
    }
}

/// Each principal must carry the credential its scheme uses, and only that one.
fn check_authentication(a: &AuthenticationProperties, path: &YamlPath, template: &PolicyTemplate, sink: &mut Sink<'_>) {
    let scheme = a.scheme.value;
    let mut names = BTreeMap::new();
    for (i, p) in a.principals.iter().flatten().enumerate() {
        let ppath = path.key("principals").index(i);
        if let Some(first) = names.insert(p.name.value.clone(), i) {
            sink.report(
                Code::DuplicateName,
                p.name.span,
                &p.name.path,
                format!("principal `{}` is already defined at principals[{first}]", p.name.value),
            );
        }
        let (needed, present): (&str, bool) = match scheme {
            Scheme::Basic => ("password_hash", p.password_hash.is_some()),
            Scheme::Bearer => ("token_sha256", p.token_sha256.is_some()),
            Scheme::Jwt => ("public_key", p.public_key.is_some()),
        };
        if !present {
            sink.report(
                Code::InconsistentPolicy,
                p.name.span,
                &ppath,
                format!("principal `{}` has no `{needed}`, which scheme {scheme} needs", p.name.value),
            );
        }
        let stray: Vec<(&str, crate::source::Span)> = [
            ("password_hash", p.password_hash.as_ref().map(|v| v.span).filter(|_| scheme != Scheme::Basic)),
            ("token_sha256", p.token_sha256.as_ref().map(|v| v.span).filter(|_| scheme != Scheme::Bearer)),
            ("public_key", p.public_key.as_ref().map(|v| v.span).filter(|_| scheme != Scheme::Jwt)),
            ("algorithm", p.algorithm.as_ref().map(|v| v.span).filter(|_| scheme != Scheme::Jwt)),
        ]
        .into_iter()
        .filter_map(|(k, span)| span.map(|s| (k, s)))
        .collect();
        for (key, span) in stray {
            sink.report(
                Code::InconsistentPolicy,
                span,
                &ppath.key(key),
                format!("scheme {scheme} does not use `{key}`"),
            )
            .hint = Some(format!("remove `{key}` from principal `{}`", p.name.value));
        }
        if scheme == Scheme::Jwt {
            let fitting = |kind: KeyKind| -> String {
                let algs: Vec<&str> =
                    JwtAlgorithm::ALL.iter().filter(|a| a.key_kind() == kind).map(|a| a.as_str()).collect();
                algs.join(", ")
            };
            match (&p.public_key, &p.algorithm) {
                (Some(key), None) => {
                    sink.report(
                        Code::InconsistentPolicy,
                        p.name.span,
                        &ppath,
                        format!("principal `{}` needs `algorithm` for its key", p.name.value),
                    )
                    .hint = Some(format!(
                        "for this {} key: algorithm {}",
                        key_kind_name(key.value.kind),
                        fitting(key.value.kind)
                    ));
                }
                (Some(key), Some(alg)) if key.value.kind != alg.value.key_kind() => {
                    let (kind, needed) = (key.value.kind, alg.value.key_kind());
                    let message = format!(
                        "algorithm {} needs an {} key, but the public key is an {} key",
                        alg.value,
                        key_kind_name(needed),
                        key_kind_name(kind)
                    );
                    sink.report(Code::InvalidPublicKey, alg.span, &alg.path, message).hint = Some(format!(
                        "for this key use algorithm {}, or give the issuer's {} key",
                        fitting(kind),
                        key_kind_name(needed)
                    ));
                }
                _ => {}
            }
        }
    }
    if let Some(jwt) = a.jwt.as_ref().filter(|_| scheme != Scheme::Jwt) {
        sink.report(
            Code::InconsistentPolicy,
            jwt.span,
            &jwt.path,
            format!("`jwt` settings need scheme jwt, not {scheme}"),
        );
    }
    if a.principals.as_ref().is_none_or(Vec::is_empty) {
        sink.report(
            Code::InconsistentPolicy,
            a.scheme.span,
            path,
            format!("policy `{}` lets nobody authenticate: it has no principals", template.name),
        )
        .hint = Some("add at least one principal".into());
    }
}

fn check_isolation(checked: &Checked, sink: &mut Sink<'_>) {
    for policy in &checked.policies {
        let PolicyProperties::Isolation(iso) = &policy.properties else { continue };
        for target in &policy.targets {
            let Some(host_name) = checked.unikernels.get(target).and_then(|u| u.host.as_ref()) else { continue };
            let Some(host) = checked.hypervisors.get(host_name) else { continue };
            let host_trust = host.trust.unwrap_or(Trust::Shared);
            if let Some(min) = &iso.min_trust
                && host_trust < min.value
            {
                sink.report(
                    Code::TrustTooLow,
                    min.span,
                    &min.path,
                    format!(
                        "`{target}` runs on `{host_name}`, whose trust is `{host_trust}`, below min_trust `{}`",
                        min.value
                    ),
                )
                .hint =
                    Some(format!("place `{target}` on a host declared at least `{}`, or lower min_trust", min.value));
            }
            if let Some(tenants) = &iso.tenants {
                let allowed = host.tenant.as_ref().is_some_and(|t| tenants.value.contains(t));
                if !allowed {
                    let host_tenant = host
                        .tenant
                        .as_deref()
                        .map_or("no tenant (shared by any)".to_owned(), |t| format!("tenant `{t}`"));
                    sink.report(
                        Code::TenantNotAllowed,
                        tenants.span,
                        &tenants.path,
                        format!(
                            "`{target}` runs on `{host_name}`, which declares {host_tenant}, not one of: {}",
                            tenants.value.join(", ")
                        ),
                    )
                    .hint =
                        Some(format!("place `{target}` on a host of one of these tenants, or allow the host's tenant"));
                }
            }
            if iso.dedicated_host.as_ref().is_some_and(|d| d.value) {
                let neighbours: Vec<&str> = checked
                    .unikernels
                    .iter()
                    .filter(|(n, u)| *n != target && u.host.as_ref() == Some(host_name))
                    .map(|(n, _)| n.as_str())
                    .collect();
                if let (false, Some(flag)) = (neighbours.is_empty(), &iso.dedicated_host) {
                    sink.report(
                        Code::HostNotDedicated,
                        flag.span,
                        &flag.path,
                        format!(
                            "`{target}` needs a dedicated host, but `{host_name}` also runs {}",
                            neighbours.join(", ")
                        ),
                    )
                    .hint = Some(format!("give `{target}` a host of its own"));
                }
            }
        }
    }
}

/// Warns about authorization rules naming roles that no principal of the same targets has.
fn check_roles(checked: &Checked, sink: &mut Sink<'_>) {
    // Authentication policies by target, so that each authorization policy looks only at
    // those sharing one of its targets.
    let mut authentication_on: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, policy) in checked.policies.iter().enumerate() {
        if matches!(policy.properties, PolicyProperties::Authentication(_)) {
            for target in &policy.targets {
                authentication_on.entry(target.as_str()).or_default().push(i);
            }
        }
    }
    for policy in &checked.policies {
        let PolicyProperties::Authorization(authz) = &policy.properties else { continue };
        let mut known: BTreeSet<&str> = BTreeSet::new();
        let mut open_ended = false;
        let sharing: BTreeSet<usize> = policy
            .targets
            .iter()
            .flat_map(|t| authentication_on.get(t.as_str()).into_iter().flatten().copied())
            .collect();
        for other in sharing.into_iter().map(|i| &checked.policies[i]) {
            let PolicyProperties::Authentication(a) = &other.properties else { continue };
            for p in a.principals.iter().flatten() {
                known.extend(p.roles.iter().flatten().map(|r| r.value.as_str()));
            }
            if a.scheme.value == Scheme::Jwt {
                match a.jwt.as_ref().and_then(|j| j.value.role_map.as_ref()) {
                    Some(map) => known.extend(map.values().map(String::as_str)),
                    None => open_ended = true,
                }
            }
        }
        if open_ended {
            continue;
        }
        for rule in authz.rules.iter().flatten() {
            for role in rule.roles.iter().flatten().filter(|r| !known.contains(r.value.as_str())) {
                let d = sink.report(
                    Code::UnknownRole,
                    role.span,
                    &role.path,
                    format!("no principal of the targets has role `{}`: this rule never matches", role.value),
                );
                let names: Vec<&str> = known.iter().copied().collect();
                d.hint = Some(match closest(&role.value, &names) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None if names.is_empty() => {
                        "no Authentication policy with principals applies to these targets".into()
                    }
                    None => format!("roles principals have: {}", names.join(", ")),
                });
            }
        }
    }
}
