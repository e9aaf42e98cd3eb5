//! What changes inside a guest between two plans, item by item, for a reviewer: principals
//! by name, rules by the policy they come from, limits field by field, and for each change
//! whether the running runtime takes it in place or the image must be rebuilt.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::{ChangeKind, EnforcementPlan, PrincipalPlan};

/// The part of a plan a change is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    Quarantine,
    Principals,
    Authentication,
    Authorization,
    Firewall,
    Limits,
    RateLimits,
    Egress,
    Flows,
    Audit,
    Hardening,
    Sizing,
    Kernel,
    Placement,
    Format,
}

impl Area {
    pub fn title(self) -> &'static str {
        match self {
            Area::Quarantine => "Quarantine",
            Area::Principals => "Principals",
            Area::Authentication => "Authentication",
            Area::Authorization => "Authorization",
            Area::Firewall => "Firewall (ingress)",
            Area::Limits => "HTTP limits",
            Area::RateLimits => "Rate limits",
            Area::Egress => "Egress",
            Area::Flows => "Flows",
            Area::Audit => "Audit",
            Area::Hardening => "Hardening",
            Area::Sizing => "Size",
            Area::Kernel => "Kernel",
            Area::Placement => "Placement",
            Area::Format => "Plan format",
        }
    }

    /// How a change here reaches a running instance: the runtime's own configuration is
    /// swapped in place; the rest is built into the image.
    pub fn applied(self) -> ChangeKind {
        match self {
            Area::Hardening | Area::Sizing | Area::Kernel | Area::Placement | Area::Format => ChangeKind::Replace,
            _ => ChangeKind::InPlace,
        }
    }
}

/// One change, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub area: Area,
    /// `+ …`, `- …` or `… : old → new`.
    pub what: String,
}

/// Every change from `old` to `new`, in the order of [`Area`].
pub fn changes(old: &EnforcementPlan, new: &EnforcementPlan) -> Vec<Change> {
    let mut out = Vec::new();
    let (o, n) = (&old.runtime, &new.runtime);
    let mut push = |area, what: String| out.push(Change { area, what });
    if o.quarantine != n.quarantine {
        push(Area::Quarantine, format!("quarantine: {} → {}", o.quarantine, n.quarantine));
    }
    let no_principals = Vec::new();
    let principals = |plan: &EnforcementPlan| {
        plan.runtime.authentication.as_ref().map_or(&no_principals, |auth| &auth.principals).clone()
    };
    for what in principal_changes(&principals(old), &principals(new)) {
        push(Area::Principals, what);
    }
    let without_principals = |plan: &EnforcementPlan| {
        plan.runtime.authentication.as_ref().map(|auth| {
            let mut value = json(auth);
            value.as_object_mut().map(|o| o.remove("principals"));
            value
        })
    };
    match (without_principals(old), without_principals(new)) {
        (None, Some(added)) => push(Area::Authentication, format!("+ authentication: {}", describe(&added))),
        (Some(_), None) => push(Area::Authentication, "- authentication: every request is anonymous".into()),
        (Some(before), Some(after)) => {
            fields(&before, &after, "").into_iter().for_each(|w| push(Area::Authentication, w))
        }
        (None, None) => {}
    }
    for what in sets(&json(&o.authorization), &json(&n.authorization), "policy", "rules") {
        push(Area::Authorization, what);
    }
    for what in sets(&json(&o.firewall.ingress), &json(&n.firewall.ingress), "policy", "rules") {
        push(Area::Firewall, what);
    }
    for what in fields(&json(&o.firewall.http), &json(&n.firewall.http), "") {
        push(Area::Limits, what);
    }
    for what in items(&json(&o.firewall.rate_limits), &json(&n.firewall.rate_limits), "") {
        push(Area::RateLimits, what);
    }
    for what in items(&json(&o.firewall.egress), &json(&n.firewall.egress), "") {
        push(Area::Egress, what);
    }
    for what in fields(&json(&o.flows), &json(&n.flows), "") {
        push(Area::Flows, what);
    }
    for what in fields(&json(&o.audit), &json(&n.audit), "") {
        push(Area::Audit, what);
    }
    let (ob, nb) = (&old.build, &new.build);
    for what in fields(&json(&ob.hardening), &json(&nb.hardening), "") {
        push(Area::Hardening, what);
    }
    for (name, before, after) in [("memory_mb", ob.memory_mb, nb.memory_mb), ("vcpus", ob.vcpus, nb.vcpus)] {
        if before != after {
            push(Area::Sizing, format!("{name}: {before} → {after}"));
        }
    }
    if ob.port != nb.port {
        push(Area::Sizing, format!("port: {} → {}", ob.port, nb.port));
    }
    for what in items(&json(&ob.kernel_cmdline), &json(&nb.kernel_cmdline), "command line ") {
        push(Area::Kernel, what);
    }
    for what in fields(&json(&old.placement), &json(&new.placement), "") {
        push(Area::Placement, what);
    }
    if old.format != new.format {
        push(Area::Format, format!("format: {} → {}", old.format, new.format));
    }
    out.sort_by_key(|change| change.area);
    out
}

/// Principals by name: who comes, who goes, whose roles or credential change (never the
/// credential itself).
fn principal_changes(old: &[PrincipalPlan], new: &[PrincipalPlan]) -> Vec<String> {
    let by_name = |list: &[PrincipalPlan]| -> BTreeMap<String, PrincipalPlan> {
        list.iter().map(|p| (p.name.clone(), p.clone())).collect()
    };
    let (old, new) = (by_name(old), by_name(new));
    let mut out = Vec::new();
    for (name, principal) in &new {
        match old.get(name) {
            None => out.push(format!("+ `{name}` (roles: {})", roles(&principal.roles))),
            Some(before) => {
                if before.roles != principal.roles {
                    out.push(format!("`{name}` roles: {} → {}", roles(&before.roles), roles(&principal.roles)));
                }
                if before.credential != principal.credential {
                    out.push(format!("`{name}` credential replaced"));
                }
            }
        }
    }
    out.extend(old.keys().filter(|name| !new.contains_key(*name)).map(|name| format!("- `{name}`")));
    out
}

fn roles(roles: &[String]) -> String {
    if roles.is_empty() { "none".into() } else { roles.join(", ") }
}

/// Named sets (rule sets keyed by the policy they come from): sets added or removed, and
/// within a set its other fields and its `list` items.
fn sets(old: &Value, new: &Value, key: &str, list: &str) -> Vec<String> {
    let keyed = |value: &Value| -> BTreeMap<String, Value> {
        value.as_array().into_iter().flatten().map(|set| (text(&set[key]), set.clone())).collect()
    };
    let (old, new) = (keyed(old), keyed(new));
    let mut out = Vec::new();
    for (name, set) in &new {
        let Some(before) = old.get(name) else {
            out.push(format!("+ `{name}`: {}", describe(set)));
            continue;
        };
        let strip = |value: &Value| {
            let mut value = value.clone();
            value.as_object_mut().map(|o| o.remove(list));
            value
        };
        out.extend(fields(&strip(before), &strip(set), &format!("`{name}` ")));
        out.extend(items(&before[list], &set[list], &format!("`{name}` ")));
    }
    out.extend(old.keys().filter(|name| !new.contains_key(*name)).map(|name| format!("- `{name}` (all its rules)")));
    out
}

/// Items of two lists, compared whole: those added, then those removed.
fn items(old: &Value, new: &Value, prefix: &str) -> Vec<String> {
    let list = |value: &Value| value.as_array().cloned().unwrap_or_default();
    let (old, new) = (list(old), list(new));
    let added = new.iter().filter(|item| !old.contains(item)).map(|item| format!("+ {prefix}{}", describe(item)));
    let removed = old.iter().filter(|item| !new.contains(item)).map(|item| format!("- {prefix}{}", describe(item)));
    let mut out: Vec<String> = added.collect();
    out.extend(removed);
    if out.is_empty() && old != new {
        out.push(format!("{prefix}order changed (the first rule that matches decides)"));
    }
    out
}

/// The fields of two objects that differ, as `name: old → new`.
fn fields(old: &Value, new: &Value, prefix: &str) -> Vec<String> {
    let (Some(before), Some(after)) = (old.as_object(), new.as_object()) else {
        return if old == new { Vec::new() } else { vec![format!("{prefix}{} → {}", describe(old), describe(new))] };
    };
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    let null = Value::Null;
    names
        .into_iter()
        .filter_map(|name| {
            let (b, a) = (before.get(name).unwrap_or(&null), after.get(name).unwrap_or(&null));
            (b != a).then(|| format!("{prefix}{name}: {} → {}", describe(b), describe(a)))
        })
        .collect()
}

/// A value in a few words: scalars as they are, lists joined by commas, objects as
/// `key=value` pairs.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "none".into(),
        Value::Array(list) if list.is_empty() => "[]".into(),
        Value::Array(list) => list.iter().map(describe).collect::<Vec<_>>().join(", "),
        Value::Object(map) => {
            let pairs: Vec<String> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| match v {
                    Value::Array(list) if list.len() > 1 => format!("{k}=[{}]", describe(v)),
                    _ => format!("{k}={}", describe(v)),
                })
                .collect();
            format!("{{{}}}", pairs.join(", "))
        }
        other => text(other),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests;
