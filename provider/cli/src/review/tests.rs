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
    assert_eq!(api.reasons, ["the policy changed what the image holds: hardening, kernel"]);
    assert!(api.changes.iter().any(|c| c.area == Area::Hardening && c.what == "level: baseline → strict"));
    let text = markdown(&review);
    assert!(text.contains("**replace**") && text.contains("Why: the policy changed what the image holds"), "{text}");
    assert!(text.contains("- **Hardening** (new image): level: baseline → strict"), "{text}");
    assert!(review.has_any(&[Action::Replace]));
    let json = serde_json::to_value(&review).unwrap();
    assert_eq!(json["resources"][0]["action"], "replace");
    assert_eq!(json["resources"][0]["changes"][0]["area"], "hardening");
}

#[test]
fn something_else_is_refused_and_a_plan_without_changes_is_empty() {
    assert!(review(&json!({ "resources": [] })).is_err());
    let empty = review(&json!({ "format_version": "1.2" })).unwrap();
    assert!(empty.resources.is_empty());
    assert!(markdown(&empty).contains("No protected unikernel or pool changes."));
}
