use serde_json::json;

use super::*;

fn policy(principals: &str, hardening: &str) -> String {
    format!(
        "tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    api: {{ type: sdsec.nodes.Unikernel }}
  policies:
    - auth:
        type: sdsec.policies.Authentication
        targets: [api]
        properties:
          scheme: bearer
          principals: [{principals}]
    - harden:
        type: sdsec.policies.Hardening
        targets: [api]
        properties: {{ level: {hardening} }}
"
    )
}

const ALICE: &str = "{ name: alice, token_sha256: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", roles: [reader] }";
const BOB: &str = "{ name: bob, token_sha256: \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\", roles: [writer] }";

fn enforcement(document: &str) -> String {
    let compiled = sectosca::compile_str("policy.yaml", document);
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
    compiled.plan_json("api").unwrap()
}

fn plan_json(actions: &[&str], before: &str, after: &str, replace: Value) -> Value {
    json!({
        "format_version": "1.2",
        "planned_values": {},
        "resource_changes": [
            { "address": "sdsec_security_policy.api", "mode": "managed", "type": "sdsec_security_policy",
              "change": { "actions": ["update"], "before": {}, "after": {} } },
            { "address": "sdsec_unikernel.api", "mode": "managed", "type": "sdsec_unikernel",
              "change": {
                  "actions": actions,
                  "before": { "enforcement": enforcement(before), "image_digest": "sha256:1" },
                  "after": { "enforcement": enforcement(after), "image_digest": "sha256:1" },
                  "after_unknown": {},
                  "replace_paths": replace,
              } },
        ],
    })
}

#[test]
fn a_runtime_only_change_is_applied_in_place_and_names_the_principal() {
    let plan =
        plan_json(&["update"], &policy(ALICE, "baseline"), &policy(&format!("{ALICE}, {BOB}"), "baseline"), json!([]));
    let review = review(&plan).unwrap();
    assert_eq!(review.resources.len(), 1, "only unikernels and pools");
    let api = &review.resources[0];
    assert_eq!(api.action, Action::Update);
    assert!(api.applied.contains("control channel"), "{}", api.applied);
    assert_eq!(api.changes.len(), 1, "{:?}", api.changes);
    assert_eq!(api.changes[0].area, Area::Principals);
    assert_eq!(api.changes[0].what, "+ `bob` (roles: writer)");
    let text = markdown(&review);
    assert!(text.contains("### `sdsec_unikernel.api`: update in place"), "{text}");
    assert!(text.contains("- **Principals**: + `bob` (roles: writer)"), "{text}");
    assert!(!review.has_any(&[Action::Replace]));
}

#[test]
fn a_hardening_change_replaces_and_says_why() {
    let plan = plan_json(
        &["delete", "create"],
        &policy(ALICE, "baseline"),
        &policy(ALICE, "strict"),
        json!([["image_digest"]]),
    );
    let review = review(&plan).unwrap();
    let api = &review.resources[0];
    assert_eq!(api.action, Action::Replace);
    // `strict` also sets kernel parameters (memory cleared on free…).
    assert_eq!(api.reasons, ["the policy changed build or placement settings: hardening, kernel"]);
    assert!(api.changes.iter().any(|c| c.area == Area::Hardening && c.what == "level: baseline → strict"));
    let text = markdown(&review);
    assert!(
        text.contains("**replace**") && text.contains("Why: the policy changed build or placement settings"),
        "{text}"
    );
    assert!(text.contains("- **Hardening** (new image): level: baseline → strict"), "{text}");
    assert!(review.has_any(&[Action::Replace]));
    let json = serde_json::to_value(&review).unwrap();
    assert_eq!(json["resources"][0]["action"], "replace");
    assert_eq!(json["resources"][0]["changes"][0]["area"], "hardening");
}

#[test]
fn something_else_is_refused_and_a_plan_without_changes_is_empty() {
    assert!(review(&json!({ "resources": [] })).is_err());
    let state = json!({ "format_version": "1.0", "values": {} });
    assert!(review(&state).unwrap_err().to_string().contains("a state, not a plan"));
    let errored = json!({ "format_version": "1.2", "planned_values": {}, "errored": true });
    assert!(review(&errored).is_err());
    let empty = review(&json!({ "format_version": "1.2", "planned_values": {} })).unwrap();
    assert!(empty.resources.is_empty());
    assert!(markdown(&empty).contains("No protected unikernel or pool changes."));
}

#[test]
fn peers_known_after_apply_are_not_reported_removed_and_sensitive_plans_are_not_shown() {
    let mut plan = plan_json(&["update"], &policy(ALICE, "baseline"), &policy(ALICE, "baseline"), json!([]));
    let change = &mut plan["resource_changes"][1]["change"];
    change["before"]["peers"] = json!({ "db": "http://10.1.0.2:80", "old": "http://10.1.0.3:80" });
    change["after"]["peers"] = json!({});
    change["after_unknown"]["peers"] = json!({ "db": true });
    let api = review(&plan).unwrap().resources.remove(0);
    let whats: Vec<&str> = api.changes.iter().map(|c| c.what.as_str()).collect();
    assert_eq!(whats, ["peer `db`: http://10.1.0.2:80 → (known after apply)", "- peer `old`"]);

    let mut plan =
        plan_json(&["update"], &policy(ALICE, "baseline"), &policy(&format!("{ALICE}, {BOB}"), "baseline"), json!([]));
    plan["resource_changes"][1]["change"]["after_sensitive"] = json!({ "enforcement": true });
    let api = review(&plan).unwrap().resources.remove(0);
    assert_eq!(api.changes.len(), 1);
    assert!(api.changes[0].what.contains("sensitive") && !api.changes[0].what.contains("bob"), "{:?}", api.changes);
}

#[test]
fn replacements_say_why_in_a_stable_order_and_pools_are_told_apart() {
    let mut plan = plan_json(
        &["delete", "create"],
        &policy(ALICE, "baseline"),
        &policy(ALICE, "baseline"),
        json!([["state"], ["image_status"]]),
    );
    plan["resource_changes"][1]["action_reason"] = json!("replace_by_triggers");
    let api = review(&plan).unwrap().resources.remove(0);
    assert_eq!(api.reasons.len(), 3, "{:?}", api.reasons);
    assert!(api.reasons[0].contains("replace_triggered_by") && api.reasons[1].contains("failed verification"));
    assert!(api.applied.contains("same image"), "{}", api.applied);
    plan["resource_changes"][1]["type"] = json!("sdsec_pool");
    let pool = review(&plan).unwrap().resources.remove(0);
    assert!(pool.applied.contains("warm members are stopped"), "{}", pool.applied);
    let text = markdown(&Review { resources: vec![ResourceReview { address: "a`b\nc".into(), ..pool }] });
    assert!(text.contains("### `a`b c`"), "{text}");
}
