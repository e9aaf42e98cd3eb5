//! `sdsec_security_policy` planned, applied, refreshed and imported as Terraform drives it.

// A failed expectation in a test is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tfplugin::Value;

use super::TYPE_NAME;
use crate::resources::testing::{Terraform, assert_no_errors};

const QUICKSTART: &str = include_str!("../../../../../examples/quickstart/policy.yaml");

#[tokio::test]
async fn a_policy_is_compiled_at_plan_recorded_at_apply_and_imported_back() {
    let tf = Terraform::new(&[]).await;
    let config = tf.config(TYPE_NAME, &[("document", Value::from(QUICKSTART))]);
    let planned = tf.plan(TYPE_NAME, &Value::Null, &[], &config).await;
    assert_no_errors(&planned.diagnostics, "plan");
    assert!(planned.state.get("digest").unwrap().as_str().is_some_and(|d| d.starts_with("sha256:")));
    assert!(matches!(planned.state.get("enforcement"), Some(Value::Map(plans)) if plans.contains_key("api")));
    let applied = tf.apply(TYPE_NAME, &Value::Null, &planned, &config).await;
    assert_no_errors(&applied.diagnostics, "apply");
    // Comments are no change.
    let commented = tf.config(TYPE_NAME, &[("document", Value::from(format!("# reviewed\n{QUICKSTART}")))]);
    let again = tf.plan(TYPE_NAME, &applied.state, &applied.private, &commented).await;
    assert_eq!(again.state, applied.state);
    let refreshed = tf.read(TYPE_NAME, &applied.state, &applied.private).await;
    assert_no_errors(&refreshed.diagnostics, "refresh");
    assert_eq!(refreshed.state, applied.state);
    let id = applied.state.get("id").unwrap().as_str().unwrap();
    let imported = tf.import(TYPE_NAME, id).await;
    assert_no_errors(&imported.diagnostics, "import");
    assert_eq!(imported.state, applied.state);
}

#[tokio::test]
async fn inputs_known_after_apply_leave_what_they_compile_to_unknown() {
    let tf = Terraform::new(&[]).await;
    let config = tf.config(TYPE_NAME, &[("document", Value::from(QUICKSTART)), ("inputs", Value::unknown())]);
    let planned = tf.plan(TYPE_NAME, &Value::Null, &[], &config).await;
    assert_no_errors(&planned.diagnostics, "plan");
    for unknown in ["id", "digest", "summary", "enforcement"] {
        assert!(planned.state.get(unknown).unwrap().is_unknown(), "{unknown}");
    }
}
