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
    if plan.get("planned_values").is_none() {
        return Err(ReviewError::NotAPlan("no `planned_values`: a state, not a plan".into()));
    }
    if plan["errored"] == Value::Bool(true) {
        return Err(ReviewError::NotAPlan("the plan errored: Terraform could not finish it".into()));
    }
    let Some(list) = plan.get("resource_changes").map(|v| v.as_array()) else {
        return Ok(Review { resources: Vec::new() });
    };
    let list = list.ok_or_else(|| ReviewError::NotAPlan("`resource_changes` is not a list".into()))?;
    let resources = list
        .iter()
        .filter(|rc| rc["mode"] == "managed" && TYPES.contains(&rc["type"].as_str().unwrap_or_default()))
        // A deposed object (left by a failed create-before-destroy) is not the resource.
        .filter(|rc| rc.get("deposed").is_none())
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
        ["delete"] | ["forget"] => Action::Delete,
        ["delete", "create"] | ["create", "delete"] => Action::Replace,
        _ => return None,
    };
    let kind = rc["type"].as_str()?.to_owned();
    let pool = kind == "sdsec_pool";
    let (before, after, unknown) = (&change["before"], &change["after"], &change["after_unknown"]);
    let flagged = |side: &str, name: &str| !matches!(change[side][name], Value::Null | Value::Bool(false));
    let sensitive = |name: &str| flagged("before_sensitive", name) || flagged("after_sensitive", name);
    let plan_unknown =
        matches!(action, Action::Create | Action::Update | Action::Replace) && any_true(&unknown["enforcement"]);
    let mut list = Vec::new();
    if sensitive("enforcement") {
        list.push(Change {
            area: Area::Format,
            what: "the plan is marked sensitive: its changes are not shown".into(),
        });
    } else if before.get("enforcement").is_some() && after.get("enforcement").is_some() {
        match (enforcement(before), enforcement(after)) {
            (Some(old), Some(new)) => list.extend(changes(&old, &new)),
            _ if before["enforcement"] != after["enforcement"] => list.push(Change {
                area: Area::Format,
                what: "the plan changed but could not be read (written by another sdsec release?)".into(),
            }),
            _ => {}
        }
    }
    if sensitive("peers") {
        list.push(Change { area: Area::Flows, what: "`peers` changed (sensitive: not shown)".into() });
    } else {
        list.extend(peer_changes(&before["peers"], &after["peers"], &unknown["peers"]));
    }
    let image_unknown = any_true(&unknown["image_digest"]);
    let image_changes = before["image_digest"] != after["image_digest"] || image_unknown;
    let new_image = image_changes && !image_unknown;
    let reasons = if action == Action::Replace { reasons(rc, &list) } else { Vec::new() };
    let applied = match action {
        Action::Create if pool => "New pool: its warm members are built and booted.".to_owned(),
        Action::Create => "New instance: its image is built (or reused) and booted.".to_owned(),
        Action::Delete if pool => "The pool and its warm members are removed.".to_owned(),
        Action::Delete => "The instance is stopped and removed, with its network lease.".to_owned(),
        Action::Replace if pool => {
            "The pool is replaced: its warm members are stopped, and a new pool is filled.".to_owned()
        }
        Action::Replace if new_image => "A new instance with a new image replaces the running one.".to_owned(),
        Action::Replace if image_unknown => {
            "A new instance replaces the running one (its image is known only after apply).".to_owned()
        }
        Action::Replace => "A new instance (of the same image) replaces the running one.".to_owned(),
        Action::Update if pool && image_unknown => "If the image changes (known only after apply), warm members of \
            the old image are drained and the pool is refilled; otherwise members keep their image and get the new \
            plan when taken."
            .to_owned(),
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

/// Whether an `after_unknown` value marks anything unknown (a whole value, or a part).
fn any_true(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Array(list) => list.iter().any(any_true),
        Value::Object(map) => map.values().any(any_true),
        _ => false,
    }
}

/// `peers` entries added, removed or moved (host rules, in place); entries (or the whole
/// map) known only after apply are left out of `after` by Terraform and marked in `unknown`.
fn peer_changes(before: &Value, after: &Value, unknown: &Value) -> Vec<Change> {
    const LATER: &str = "(known after apply)";
    if *unknown == Value::Bool(true) {
        return vec![Change { area: Area::Flows, what: format!("peers: {LATER}") }];
    }
    let map = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or(LATER).to_owned())).collect())
            .unwrap_or_default()
    };
    let (old, mut new) = (map(before), map(after));
    for (node, _) in unknown.as_object().into_iter().flatten().filter(|(_, v)| any_true(v)) {
        new.insert(node.clone(), LATER.to_owned());
    }
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
    // (rank, reason): the same order whatever order Terraform lists the paths in.
    let mut out: Vec<(u8, String)> = Vec::new();
    match rc["action_reason"].as_str() {
        Some("replace_by_request") => out.push((0, "a replacement was requested (`-replace`)".to_owned())),
        Some("replace_because_tainted") => out.push((0, "the instance is tainted".to_owned())),
        Some("replace_by_triggers") => out.push((0, "a `replace_triggered_by` reference changed".to_owned())),
        _ => {}
    }
    let unknown = &rc["change"]["after_unknown"];
    let paths = rc["change"]["replace_paths"].as_array().cloned().unwrap_or_default();
    for path in paths {
        let Some(attribute) = path.get(0).and_then(Value::as_str) else { continue };
        let reason = match attribute {
            "image_status" => (1, "its image failed verification; the replacement boots a verified copy".to_owned()),
            "state" => (2, "refresh found the instance stopped".to_owned()),
            "created_at" => (3, "the instance outlived the policy's max_lifetime".to_owned()),
            "image_digest" => (4, image_reason(list)),
            other if any_true(&unknown[other]) => {
                (5, format!("`{other}` is known only after apply, so the image may change"))
            }
            other => (6, format!("`{other}` changed, which cannot change in place")),
        };
        if !out.contains(&reason) {
            out.push(reason);
        }
    }
    if out.is_empty() {
        out.push((7, "Terraform cannot update it in place".to_owned()));
    }
    out.sort();
    out.into_iter().map(|(_, reason)| reason).collect()
}

/// Why the image changes, from the plan's own changes.
fn image_reason(list: &[Change]) -> String {
    let mut built: Vec<&str> =
        list.iter().filter(|c| c.area.applied() == plan::ChangeKind::Replace).map(|c| c.area.title()).collect();
    built.dedup();
    if built.is_empty() {
        return "the image changes: its application, arguments, size, kernel or runtime changed, or the running \
                instance cannot take a new plan in place (booted by an older sdsec)"
            .to_owned();
    }
    format!("the policy changed build or placement settings: {}", built.join(", ").to_lowercase())
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
        out.push_str(&format!("\n### `{}`: {verb}\n\n{}\n", inline(&r.address), r.applied));
        if !r.reasons.is_empty() {
            out.push_str(&format!("\nWhy: {}.\n", inline(&r.reasons.join("; "))));
        }
        if r.plan_unknown {
            out.push_str("\nThe new plan is known only after apply: its changes cannot be listed yet.\n");
        }
        if !r.changes.is_empty() {
            out.push('\n');
        }
        for change in &r.changes {
            let how = if change.area.applied() == plan::ChangeKind::Replace { " (new image)" } else { "" };
            out.push_str(&format!("- **{}**{how}: {}\n", change.area.title(), inline(&change.what)));
        }
    }
    out
}

/// Text from the plan (addresses, names, endpoints) kept on one Markdown line: no line
/// break, and no run of backticks that would end a code span early.
fn inline(text: &str) -> String {
    text.replace(['\n', '\r'], " ").replace("``", "'")
}

#[cfg(test)]
mod tests;
