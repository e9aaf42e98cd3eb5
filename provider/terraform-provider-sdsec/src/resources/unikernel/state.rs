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
    for attribute in ["image_digest", "enforcement_digest", "state", "image_status", "memory_mb", "vcpus"] {
        if planned.get(attribute).is_none_or(Value::is_null) || attribute.ends_with("digest") {
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

/// Fills the plan's computed values, marks what forces a new instance, and returns why in
/// sentences for the reviewer (Terraform plans the replacement's new object without the
/// prior state, so an attribute could not carry this).
pub fn plan(result: &mut PlanResult, prior: &Value, desired: &Desired, digest: &ImageDigest) -> Vec<String> {
    let planned = &mut result.planned_state;
    let build = &desired.plan.build;
    planned.set("memory_mb", Value::from(desired.memory_mb.unwrap_or(build.memory_mb) as i64));
    planned.set("vcpus", Value::from(desired.vcpus.unwrap_or(build.vcpus) as i64));
    planned.set("image_digest", Value::from(digest.as_str()));
    planned.set("enforcement_digest", Value::from(desired.plan.digest()));
    planned.set("state", Value::from("running"));
    planned.set("image_status", Value::from("verified"));
    if prior.is_null() {
        for attribute in INSTANCE_ATTRIBUTES {
            planned.set(attribute, Value::unknown());
        }
        return Vec::new();
    }
    let mut replace = Vec::new();
    let mut why = Vec::new();
    if string(prior, "image_digest").as_deref() != Some(digest.as_str()) {
        replace.push("image_digest");
        let prior_plan: Option<EnforcementPlan> =
            string(prior, "enforcement").and_then(|json| serde_json::from_str(&json).ok());
        why.push(match prior_plan.map(|p| desired.plan.change_from(&p)) {
            Some(ChangeKind::Replace) => {
                "the policy changed build or placement settings (hardening, size, kernel settings, isolation), \
                 which need a new image"
                    .to_owned()
            }
            Some(ChangeKind::InPlace) => "the policy changed only mechanisms the runtime can reconfigure, but the \
                running instance cannot take them in place: it has no control channel (booted by an older sdsec) or \
                its image's other inputs changed"
                .to_owned(),
            Some(ChangeKind::None) | None => {
                "the image's inputs changed (application, arguments, size, kernel or runtime)".to_owned()
            }
        });
    }
    if string(prior, "state").as_deref() == Some("stopped") {
        replace.push("state");
        why.push("refresh found the instance stopped".to_owned());
    }
    if let Some(status) = string(prior, "image_status").filter(|s| s != "verified") {
        replace.push("image_status");
        why.push(format!("the stored image failed verification ({status}); it is rebuilt, never booted"));
    }
    if expired(prior, &desired.plan) {
        replace.push("created_at");
        why.push("the instance is older than the policy's max_lifetime".to_owned());
    }
    if replace.is_empty() {
        // Refresh may have found the instance paused: report it as it is.
        if let Some(state) = prior.get("state") {
            planned.set("state", state.clone());
        }
        return why;
    }
    for attribute in INSTANCE_ATTRIBUTES {
        planned.set(attribute, Value::unknown());
    }
    result.requires_replace.extend(replace.into_iter().map(AttributePath::attr));
    why
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
        ("pool", metadata.pool.as_deref().map_or(Value::Null, Value::from)),
        ("enforcement_digest", sectosca_digest(&metadata.enforcement)),
        ("timeouts", Value::Null),
    ]);
    record_instance(&mut state, instance);
    state
}

fn sectosca_digest(enforcement: &str) -> Value {
    serde_json::from_str::<EnforcementPlan>(enforcement).map_or(Value::Null, |plan| Value::from(plan.digest()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_with_lifetime(seconds: Option<u64>) -> EnforcementPlan {
        let source = sectosca::Source::new("t.yaml", include_str!("../../../../../examples/quickstart/policy.yaml"));
        let compiled = sectosca::compile(&source, &Default::default(), &sectosca::Options::default());
        let mut plan = compiled.plans["api"].clone();
        plan.build.hardening.max_lifetime_seconds = seconds;
        plan
    }

    #[test]
    fn instances_older_than_max_lifetime_expire() {
        let hour_ago = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 - 3_600_000;
        let prior = Value::object([("created_at", Value::from(rfc3339(hour_ago)))]);
        assert!(expired(&prior, &plan_with_lifetime(Some(1800))));
        assert!(!expired(&prior, &plan_with_lifetime(Some(7200))));
        assert!(!expired(&prior, &plan_with_lifetime(None)));
        assert!(!expired(&Value::object([("created_at", Value::Null)]), &plan_with_lifetime(Some(1))));
    }
}
