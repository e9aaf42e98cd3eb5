//! The computed part of the state: what plan can know, what apply and refresh record.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hypervisor::Instance;
use sdsec_image::ImageDigest;
use sectosca::{ChangeKind, EnforcementPlan};
use tfplugin::{AttributePath, PlanResult, Value};

use super::desired::{Desired, Metadata};
use crate::values::string;

/// Known only once an instance exists.
const INSTANCE_ATTRIBUTES: [&str; 5] = ["id", "instance_id", "endpoint", "boot_ms", "created_at"];

pub fn mark_unknown(planned: &mut Value, creating: bool) {
    for attribute in ["image_digest", "state", "image_status", "enforcement_change", "memory_mb", "vcpus"] {
        if planned.get(attribute).is_none_or(Value::is_null) || attribute == "image_digest" {
            planned.set(attribute, Value::unknown());
        }
    }
    if creating {
        for attribute in INSTANCE_ATTRIBUTES {
            planned.set(attribute, Value::unknown());
        }
    }
}

fn rfc3339(ms: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    time::OffsetDateTime::from(at).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok().map(SystemTime::from)
}

/// Whether the instance has outlived the plan's `max_lifetime`.
fn expired(prior: &Value, plan: &EnforcementPlan) -> bool {
    let Some(max) = plan.build.hardening.max_lifetime_seconds else { return false };
    let Some(created) = string(prior, "created_at").and_then(|t| parse_rfc3339(&t)) else { return false };
    SystemTime::now().duration_since(created).is_ok_and(|age| age > Duration::from_secs(max))
}

/// Fills the plan's computed values and says what forces a new instance.
pub fn plan(result: &mut PlanResult, prior: &Value, desired: &Desired, digest: &ImageDigest) {
    let planned = &mut result.planned_state;
    let build = &desired.plan.build;
    planned.set("memory_mb", Value::from(desired.memory_mb.unwrap_or(build.memory_mb) as i64));
    planned.set("vcpus", Value::from(desired.vcpus.unwrap_or(build.vcpus) as i64));
    planned.set("image_digest", Value::from(digest.as_str()));
    planned.set("state", Value::from("running"));
    planned.set("image_status", Value::from("verified"));
    if prior.is_null() {
        planned.set("enforcement_change", Value::from("initial"));
        for attribute in INSTANCE_ATTRIBUTES {
            planned.set(attribute, Value::unknown());
        }
        return;
    }
    let prior_plan: Option<EnforcementPlan> =
        string(prior, "enforcement").and_then(|json| serde_json::from_str(&json).ok());
    let change = match prior_plan.map(|p| desired.plan.change_from(&p)) {
        Some(ChangeKind::None) => string(prior, "enforcement_change").unwrap_or_else(|| "initial".into()),
        Some(ChangeKind::InPlace) => "runtime".into(),
        Some(ChangeKind::Replace) | None => "rebuild".into(),
    };
    planned.set("enforcement_change", Value::from(change));

    let mut replace = Vec::new();
    if string(prior, "image_digest").as_deref() != Some(digest.as_str()) {
        replace.push("image_digest");
    }
    if string(prior, "state").as_deref() == Some("stopped") {
        replace.push("state");
    }
    if string(prior, "image_status").as_deref().is_some_and(|s| s != "verified") {
        replace.push("image_status");
    }
    if expired(prior, &desired.plan) {
        replace.push("created_at");
    }
    if replace.is_empty() {
        // Refresh may have found the instance paused: report it as it is.
        if let Some(state) = prior.get("state") {
            planned.set("state", state.clone());
        }
        return;
    }
    for attribute in INSTANCE_ATTRIBUTES {
        planned.set(attribute, Value::unknown());
    }
    result.requires_replace.extend(replace.into_iter().map(AttributePath::attr));
}

/// What apply learnt by booting.
pub fn record_instance(state: &mut Value, instance: &Instance) {
    state.set("id", Value::from(instance.id.as_str()));
    state.set("instance_id", Value::from(instance.id.as_str()));
    state.set("endpoint", Value::from(format!("http://{}", instance.endpoint)));
    state.set("boot_ms", Value::from(instance.boot_ms as i64));
    state.set("created_at", Value::from(rfc3339(instance.started_at_ms)));
    state.set("state", Value::from("running"));
    state.set("image_status", Value::from("verified"));
}

/// The state of an imported instance, from what it recorded when it was booted.
pub fn from_instance(instance: &Instance, metadata: &Metadata) -> Value {
    let app = &metadata.application;
    let application = Value::object([
        ("path", Value::from(app.path.as_str())),
        ("args", Value::List(app.args.iter().map(|a| Value::from(a.as_str())).collect())),
        ("port", Value::from(i64::from(app.port))),
    ]);
    let mut state = Value::object([
        ("name", Value::from(metadata.name.as_str())),
        ("enforcement", Value::from(metadata.enforcement.as_str())),
        ("application", application),
        ("memory_mb", Value::from(instance.memory_mb as i64)),
        ("vcpus", Value::from(instance.vcpus as i64)),
        ("host_port", metadata.host_port.map_or(Value::Null, |p| Value::from(i64::from(p)))),
        ("image_digest", Value::from(instance.image_digest.as_str())),
        ("enforcement_change", Value::from("initial")),
        ("timeouts", Value::Null),
    ]);
    record_instance(&mut state, instance);
    state
}
