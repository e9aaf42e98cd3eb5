//! A short human summary of enforcement plans, meant for review in a pull request.

use std::fmt::Write as _;

use crate::lower::plan::{EgressRulePlan, EnforcementPlan, RateLimitPlan};
use crate::model::Effect;

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn rate(l: &RateLimitPlan) -> String {
    format!("{}/s burst {} per {}", l.requests_per_second, l.burst, l.per)
}

/// `10.0.0.0/8 tcp 443, 8000-8099` or `192.0.2.53/32 udp any port`.
fn egress(r: &EgressRulePlan) -> String {
    let ports: Vec<String> = r
        .ports
        .iter()
        .map(|p| if p.first == p.last { p.first.to_string() } else { format!("{}-{}", p.first, p.last) })
        .collect();
    let ports = if ports.is_empty() { "any port".to_owned() } else { ports.join(", ") };
    format!("{} {} {ports}", r.to.0, r.protocol)
}

/// One line per plan (no final newline), for places that show it beside much else (a Terraform plan of many
/// policies): its size and each mechanism in a few words, without rule-by-rule detail.
/// `api: port 8080, 128 MiB, 1 vCPU; authentication: bearer, 1 principal; authorization:
/// 2 allow, 0 deny rules; http: 3 methods, 1 denied path; rate limits: 100/s burst 200 per
/// source; audit: 3 events; hardening: strict; placement: any host`.
pub fn brief<'a>(plans: impl IntoIterator<Item = &'a EnforcementPlan>) -> String {
    let mut out = String::new();
    for plan in plans {
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = brief_one(plan, &mut out);
    }
    out
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn brief_one(plan: &EnforcementPlan, out: &mut String) -> std::fmt::Result {
    let (r, b) = (&plan.runtime, &plan.build);
    write!(out, "{}: port {}, {} MiB, {} vCPU", plan.node, b.port, b.memory_mb, b.vcpus)?;
    if r.quarantine {
        write!(out, ", QUARANTINED")?;
    }
    match &r.authentication {
        Some(a) => {
            write!(out, "; authentication: {}, {}", a.scheme, count(a.principals.len(), "principal", "principals"))?
        }
        None => write!(out, "; authentication: none")?,
    }
    if !r.authorization.is_empty() {
        let rules = r.authorization.iter().flat_map(|set| &set.rules);
        let (allows, denies) =
            rules.fold((0, 0), |(a, d), x| if x.effect == Effect::Allow { (a + 1, d) } else { (a, d + 1) });
        write!(out, "; authorization: {allows} allow, {denies} deny rules")?;
    }
    let f = &r.firewall;
    let ingress: usize = f.ingress.iter().map(|set| set.rules.len()).sum();
    if !f.ingress.is_empty() {
        write!(out, "; ingress: {}", count(ingress, "rule", "rules"))?;
    }
    if !f.egress.is_empty() {
        write!(out, "; egress (host): {}", count(f.egress.len(), "rule", "rules"))?;
    }
    let methods =
        f.http.allowed_methods.as_ref().map_or("any method".to_owned(), |m| count(m.len(), "method", "methods"));
    write!(out, "; http: {methods}, {}", count(f.http.deny_paths.len(), "denied path", "denied paths"))?;
    if !f.rate_limits.is_empty() {
        write!(out, "; rate limits: {}", f.rate_limits.iter().map(rate).collect::<Vec<_>>().join(", "))?;
    }
    write!(out, "; audit: {}", count(r.audit.events.len(), "event", "events"))?;
    write!(out, "; hardening: {}", b.hardening.level)?;
    let p = &plan.placement;
    let constrained = p.host.is_some() || p.min_trust.is_some() || p.tenants.is_some() || p.dedicated_host;
    write!(out, "; placement: {}", if constrained { "constrained" } else { "any host" })?;
    if !r.flows.connects_to.is_empty() || !r.flows.accepts_from.is_empty() {
        write!(out, "; flows: to {}, from {}", r.flows.connects_to.len(), r.flows.accepts_from.len())?;
    }
    if !plan.provenance.adaptations.is_empty() {
        write!(out, "; active adaptations: {}", plan.provenance.adaptations.join(", "))?;
    }
    Ok(())
}

/// Several lines per plan: one heading, then one line per mechanism.
pub fn summarize<'a>(plans: impl IntoIterator<Item = &'a EnforcementPlan>) -> String {
    let mut out = String::new();
    for plan in plans {
        let _ = summarize_one(plan, &mut out);
    }
    out
}

fn summarize_one(plan: &EnforcementPlan, out: &mut String) -> std::fmt::Result {
    let r = &plan.runtime;
    let b = &plan.build;
    writeln!(
        out,
        "{}: port {}, {} MiB, {} vCPU{}",
        plan.node,
        b.port,
        b.memory_mb,
        b.vcpus,
        if r.quarantine { ", QUARANTINED" } else { "" }
    )?;
    match &r.authentication {
        Some(a) => {
            let names: Vec<&str> = a.principals.iter().map(|p| p.name.as_str()).collect();
            writeln!(out, "  authentication: {} (realm {}), principals: {}", a.scheme, a.realm, names.join(", "))?;
        }
        None => writeln!(out, "  authentication: none (anonymous)")?,
    }
    if r.authorization.is_empty() {
        writeln!(out, "  authorization: none (everything authenticated is allowed)")?;
    }
    for set in &r.authorization {
        let allows = set.rules.iter().filter(|x| x.effect == Effect::Allow).count();
        let denies = set.rules.len() - allows;
        writeln!(
            out,
            "  authorization [{}]: {} allow, {} deny rules, default {}",
            set.policy, allows, denies, set.default
        )?;
    }
    let f = &r.firewall;
    for set in &f.ingress {
        writeln!(out, "  ingress [{}]: {} rules, default {}", set.policy, set.rules.len(), set.default)?;
    }
    if !f.egress.is_empty() {
        writeln!(out, "  egress (host): {}", f.egress.iter().map(egress).collect::<Vec<_>>().join("; "))?;
    }
    let methods = f.http.allowed_methods.as_ref().map_or("any".to_owned(), |m| list(m));
    let deny: Vec<&str> = f.http.deny_paths.iter().map(|p| p.0.as_str()).collect();
    writeln!(
        out,
        "  http: methods {methods}; deny {}; body <= {} B, head <= {} B, head timeout {}s",
        if deny.is_empty() { "nothing".into() } else { deny.join(", ") },
        f.http.max_body_bytes,
        f.http.max_header_bytes,
        f.http.header_timeout_seconds
    )?;
    if !f.rate_limits.is_empty() {
        writeln!(out, "  rate limits: {}", f.rate_limits.iter().map(rate).collect::<Vec<_>>().join("; "))?;
    }
    writeln!(out, "  audit: {}", if r.audit.events.is_empty() { "nothing".into() } else { list(&r.audit.events) })?;
    let h = &b.hardening;
    let lifetime = h.max_lifetime_seconds.map_or(String::new(), |s| format!(", max lifetime {s}s"));
    writeln!(out, "  hardening: {}, read-only root {}, seccomp {}{lifetime}", h.level, h.read_only_root, h.seccomp)?;
    let p = &plan.placement;
    let host =
        p.host.as_ref().map_or("any host".to_owned(), |h| format!("{} (site {}, trust {})", h.name, h.site, h.trust));
    let mut constraints = Vec::new();
    if let Some(t) = p.min_trust {
        constraints.push(format!("min trust {t}"));
    }
    if let Some(t) = &p.tenants {
        constraints.push(format!("tenants {}", t.join(", ")));
    }
    if p.dedicated_host {
        constraints.push("dedicated host".into());
    }
    writeln!(out, "  placement: {host}{}{}", if constraints.is_empty() { "" } else { "; " }, constraints.join(", "))?;
    if !r.flows.connects_to.is_empty() || !r.flows.accepts_from.is_empty() {
        writeln!(out, "  flows: to [{}], from [{}]", r.flows.connects_to.join(", "), r.flows.accepts_from.join(", "))?;
    }
    if !plan.provenance.adaptations.is_empty() {
        writeln!(out, "  active adaptations: {}", plan.provenance.adaptations.join(", "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn egress_is_shown_when_present() {
        let doc = "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    api: { type: sdsec.nodes.Unikernel }\n    web: { type: sdsec.nodes.Unikernel }\n  policies:\n    - fw:\n        type: sdsec.policies.Firewall\n        targets: [api]\n        properties:\n          egress:\n            - { to: 10.0.0.0/8, ports: [443, \"8000-8099\"] }\n            - { to: 192.0.2.53, protocol: udp }\n";
        let c = crate::compile_str("t", doc);
        assert!(!c.has_errors(), "{:?}", c.diagnostics);
        let api = super::summarize([&c.plans["api"]]);
        assert!(
            api.contains("\n  egress (host): 10.0.0.0/8 tcp 443, 8000-8099; 192.0.2.53/32 udp any port\n"),
            "{api}"
        );
        assert!(!super::summarize([&c.plans["web"]]).contains("egress"));
        let brief = super::brief([&c.plans["api"], &c.plans["web"]]);
        assert_eq!(brief.lines().count(), 2, "{brief}");
        assert!(brief.starts_with("api: port ") && !brief.ends_with('\n'), "{brief}");
        assert!(brief.contains("; egress (host): 2 rules;"), "{brief}");
        assert!(brief.contains("authentication: none"), "{brief}");
    }
}
