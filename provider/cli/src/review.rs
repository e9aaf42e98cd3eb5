//! `sdsec review`: what a saved Terraform plan (`terraform show -json PLAN`) changes inside
//! each protected unikernel and pool, and how each change will be applied: in place through
//! the instance's control channel, or by a new instance with a new image, and why.

use std::collections::BTreeMap;

use plan::EnforcementPlan;
use plan::changes::{Area, Change, changes};
use serde::Serialize;
use serde_json::Value;

/// The resource types reviewed.
const TYPES: [&str; 2] = ["sdsec_unikernel", "sdsec_pool"];

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("not a Terraform plan in JSON ({0}); give the output of `terraform show -json PLANFILE`")]
    NotAPlan(String),
}

/// What Terraform will do to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    /// In place.
    Update,
    Replace,
    Delete,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceReview {
    pub address: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub action: Action,
    /// How the action reaches what runs, in a sentence.
    pub applied: String,
    /// Why a replacement, in sentences; empty otherwise.
    pub reasons: Vec<String>,
    pub changes: Vec<Change>,
    /// The new plan is known only after apply: the changes cannot be listed yet.
    pub plan_unknown: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Review {
    pub resources: Vec<ResourceReview>,
}

impl Review {
    /// Whether any resource's action is one of `actions`.
    pub fn has_any(&self, actions: &[Action]) -> bool {
        self.resources.iter().any(|r| actions.contains(&r.action))
    }
}

/// Reviews `plan` (Terraform's JSON plan representation).
pub fn review(plan: &Value) -> Result<Review, ReviewError> {
    if plan.get("format_version").is_none() {
        return Err(ReviewError::NotAPlan("no `format_version`".into()));
    }
    let Some(list) = plan.get("resource_changes").map(|v| v.as_array()) else {
        return Ok(Review { resources: Vec::new() });
    };
    let list = list.ok_or_else(|| ReviewError::NotAPlan("`resource_changes` is not a list".into()))?;
    let resources = list
        .iter()
        .filter(|rc| rc["mode"] == "managed" && TYPES.contains(&rc["type"].as_str().unwrap_or_default()))
        .filter_map(resource)
        .collect();
    Ok(Review { resources })
}

fn resource(rc: &Value) -> Option<ResourceReview> {
    let change = &rc["change"];
    let actions: Vec<&str> = change["actions"].as_array()?.iter().filter_map(Value::as_str).collect();
    let action = match actions.as_slice() {
        ["create"] => Action::Create,
        ["update"] => Action::Update,
        ["delete"] => Action::Delete,
        ["delete", "create"] | ["create", "delete"] => Action::Replace,
        _ => return None,
    };
    let kind = rc["type"].as_str()?.to_owned();
    let pool = kind == "sdsec_pool";
    let (before, after) = (&change["before"], &change["after"]);
    let old = enforcement(before);
    let new = enforcement(after);
    let plan_unknown = matches!(action, Action::Create | Action::Update | Action::Replace)
        && change["after_unknown"]["enforcement"] == Value::Bool(true);
    let mut list = match (&old, &new) {
        (Some(old), Some(new)) => changes(old, new),
        _ => Vec::new(),
    };
    list.extend(peer_changes(&before["peers"], &after["peers"]));
    let image_changes = before["image_digest"] != after["image_digest"] || after.get("image_digest").is_none();
    let reasons = if action == Action::Replace { reasons(rc, &list) } else { Vec::new() };
    let applied = match action {
        Action::Create if pool => "New pool: its warm members are built and booted.".to_owned(),
        Action::Create => "New instance: its image is built (or reused) and booted.".to_owned(),
        Action::Delete if pool => "The pool and its warm members are removed.".to_owned(),
        Action::Delete => "The instance is stopped and removed, with its network lease.".to_owned(),
        Action::Replace => "A new instance with a new image replaces the running one.".to_owned(),
        Action::Update if pool && image_changes => {
            "Warm members of the old image are drained and the pool is refilled with the new image.".to_owned()
        }
        Action::Update if pool => {
            "Members keep their image; each gets the new plan over its control channel when it is taken.".to_owned()
        }
        Action::Update if list.is_empty() => "Nothing changes inside the guest.".to_owned(),
        Action::Update => "In place: the running runtime gets the new plan over its authenticated control channel \
            and swaps it atomically; the host's network rules are rewritten. No new image, no restart."
            .to_owned(),
    };
    let address = rc["address"].as_str()?.to_owned();
    Some(ResourceReview { address, kind, action, applied, reasons, changes: list, plan_unknown })
}

fn enforcement(state: &Value) -> Option<EnforcementPlan> {
    serde_json::from_str(state.get("enforcement")?.as_str()?).ok()
}

/// `peers` entries added, removed or moved (host rules, in place).
fn peer_changes(before: &Value, after: &Value) -> Vec<Change> {
    let map = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .map(|o| {
                o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("(known after apply)").to_owned())).collect()
            })
            .unwrap_or_default()
    };
    let (old, new) = (map(before), map(after));
    let mut out = Vec::new();
    for (node, endpoint) in &new {
        match old.get(node) {
            None => out.push(format!("+ peer `{node}` at {endpoint}")),
            Some(was) if was != endpoint => out.push(format!("peer `{node}`: {was} → {endpoint}")),
            Some(_) => {}
        }
    }
    out.extend(old.keys().filter(|n| !new.contains_key(*n)).map(|n| format!("- peer `{n}`")));
    out.into_iter().map(|what| Change { area: Area::Flows, what }).collect()
}

/// Why Terraform replaces the instance, from the attributes that force it and the plan's
/// own changes.
fn reasons(rc: &Value, list: &[Change]) -> Vec<String> {
    let mut out = Vec::new();
    match rc["action_reason"].as_str() {
        Some("replace_by_request") => out.push("a replacement was requested (`-replace`)".to_owned()),
        Some("replace_because_tainted") => out.push("the instance is tainted".to_owned()),
        _ => {}
    }
    let unknown = &rc["change"]["after_unknown"];
    let paths = rc["change"]["replace_paths"].as_array().cloned().unwrap_or_default();
    for path in paths {
        let Some(attribute) = path.get(0).and_then(Value::as_str) else { continue };
        let reason = match attribute {
            "image_digest" => {
                let built: Vec<&str> = list
                    .iter()
                    .filter(|c| c.area.applied() == plan::ChangeKind::Replace)
                    .map(|c| c.area.title())
                    .collect();
                if built.is_empty() {
                    "the image's inputs changed (application, arguments, size, kernel or runtime)".to_owned()
                } else {
                    let mut areas = built;
                    areas.dedup();
                    format!("the policy changed what the image holds: {}", areas.join(", ").to_lowercase())
                }
            }
            "state" => "refresh found the instance stopped".to_owned(),
            "image_status" => "its image failed verification; the replacement boots a verified copy".to_owned(),
            "created_at" => "the instance outlived the policy's max_lifetime".to_owned(),
            other if unknown[other] == Value::Bool(true) => {
                format!("`{other}` is known only after apply, so the image may change")
            }
            other => format!("`{other}` changed, which cannot change in place"),
        };
        if !out.contains(&reason) {
            out.push(reason);
        }
    }
    out
}

/// The review as Markdown, for a pull-request comment.
pub fn markdown(review: &Review) -> String {
    let mut out = String::from("## sdsec review\n\n");
    if review.resources.is_empty() {
        out.push_str("No protected unikernel or pool changes.\n");
        return out;
    }
    let count = |a: Action| review.resources.iter().filter(|r| r.action == a).count();
    out.push_str(&format!(
        "{} in place, {} replaced, {} created, {} destroyed.\n",
        count(Action::Update),
        count(Action::Replace),
        count(Action::Create),
        count(Action::Delete)
    ));
    for r in &review.resources {
        let verb = match r.action {
            Action::Create => "create",
            Action::Update => "update in place",
            Action::Replace => "**replace**",
            Action::Delete => "**destroy**",
        };
        out.push_str(&format!("\n### `{}`: {verb}\n\n{}\n", r.address, r.applied));
        if !r.reasons.is_empty() {
            out.push_str(&format!("\nWhy: {}.\n", r.reasons.join("; ")));
        }
        if r.plan_unknown {
            out.push_str("\nThe new plan is known only after apply: its changes cannot be listed yet.\n");
        }
        if !r.changes.is_empty() {
            out.push('\n');
        }
        for change in &r.changes {
            let how = if change.area.applied() == plan::ChangeKind::Replace { " (new image)" } else { "" };
            out.push_str(&format!("- **{}**{how}: {}\n", change.area.title(), change.what));
        }
    }
    out
}

#[cfg(test)]
mod tests;
