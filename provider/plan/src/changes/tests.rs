use super::*;
use crate::{Credential, Effect, HardeningLevel, Method};

fn plan() -> EnforcementPlan {
    let plans: BTreeMap<String, EnforcementPlan> =
        serde_json::from_str(include_str!("../../../sectosca/tests/golden/valid/authentication_basic.plans.json"))
            .unwrap();
    plans["admin_ui"].clone()
}

fn whats(changes: &[Change], area: Area) -> Vec<String> {
    changes.iter().filter(|c| c.area == area).map(|c| c.what.clone()).collect()
}

#[test]
fn the_same_plan_changes_nothing() {
    assert!(changes(&plan(), &plan()).is_empty());
}

#[test]
fn principals_are_named_and_their_credentials_never_shown() {
    let old = plan();
    let mut new = old.clone();
    let auth = new.runtime.authentication.as_mut().unwrap();
    auth.principals.retain(|p| p.name != "bob");
    auth.principals[0].roles = vec!["admin".into()];
    let mut carol = auth.principals[0].clone();
    carol.name = "carol".into();
    carol.credential = Credential::TokenSha256(crate::TokenSha256("ab".repeat(32)));
    auth.principals.push(carol);
    let found = changes(&old, &new);
    let principals = whats(&found, Area::Principals);
    assert_eq!(principals, ["`alice` roles: admin, operator → admin", "+ `carol` (roles: admin)", "- `bob`"]);
    assert!(found.iter().all(|c| !c.what.contains("argon2") && !c.what.contains("abab")), "{found:?}");
    assert!(found.iter().all(|c| c.area.applied() == ChangeKind::InPlace));
}

#[test]
fn rules_are_listed_by_their_policy_and_build_changes_need_a_new_image() {
    let old = plan();
    let mut new = old.clone();
    new.runtime.authorization[0].rules[1].methods.push(Method::Post);
    new.runtime.authorization[0].default = Effect::Allow;
    new.build.hardening.read_only_root = false;
    new.build.hardening.level = HardeningLevel::Strict;
    new.build.memory_mb += 64;
    let found = changes(&old, &new);
    let rules = whats(&found, Area::Authorization);
    assert_eq!(rules.len(), 3, "{rules:?}");
    assert_eq!(rules[0], "`ui_rules` default: deny → allow");
    assert!(rules[1].starts_with("+ `ui_rules` {effect=allow, methods=[GET, POST]"), "{rules:?}");
    assert!(rules[2].starts_with("- `ui_rules` {effect=allow, methods=GET"), "{rules:?}");
    let hardening = whats(&found, Area::Hardening);
    assert_eq!(hardening, ["level: baseline → strict", "read_only_root: true → false"]);
    assert!(found.iter().any(|c| c.area == Area::Sizing && c.area.applied() == ChangeKind::Replace));
    // In the order of the areas: runtime first, then what the image holds.
    assert!(found.windows(2).all(|w| w[0].area <= w[1].area));
}
