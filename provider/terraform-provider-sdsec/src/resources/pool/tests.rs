//! `sdsec_pool` planned and applied as Terraform drives it, with `warm = "image"` (images
//! are built, nothing boots). The first three reproduce the bug of a pool without `name`:
//! it planned unknown values and failed at apply ("Pool not known"), and with `memory_mb`
//! or `vcpus` set Terraform rejected its plan as a provider bug.

// A failed expectation in a test is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tfplugin::Value;

use super::TYPE_NAME;
use super::model::{DEFAULT_NAME, Model};
use crate::resources::image::{ImageModel, Unresolved};
use crate::resources::testing::{Terraform, application, assert_no_errors, quickstart_plan};

#[test]
fn a_name_left_out_is_the_default_and_one_known_only_after_apply_waits() {
    let model = |name: Value| {
        let value = Value::object([
            ("name", name),
            ("enforcement", Value::from(quickstart_plan())),
            ("application", application("/build/api")),
            ("size", Value::from(1)),
            ("warm", Value::from("image")),
        ]);
        Model::decode(&value).unwrap()
    };
    assert_eq!(model(Value::Null).desired().unwrap().name, DEFAULT_NAME);
    assert_eq!(model(Value::from("api")).desired().unwrap().name, "api");
    assert!(matches!(model(Value::unknown()).desired(), Err(Unresolved::Pending)));
}

#[test]
fn a_bad_size_or_warm_known_only_at_plan_is_refused_not_left_pending() {
    // Validators see only known values; one that was unknown at validate reaches plan.
    let model = |size: i64, warm: &str| {
        let value = Value::object([
            ("enforcement", Value::from(quickstart_plan())),
            ("application", application("/build/api")),
            ("size", Value::from(size)),
            ("warm", Value::from(warm)),
        ]);
        Model::decode(&value).unwrap().desired()
    };
    let Err(Unresolved::Invalid(invalid)) = model(-1, "hot") else { panic!("a bad size and warm must be refused") };
    let attributes: Vec<String> = invalid.iter().map(|i| i.attribute().to_string()).collect();
    assert_eq!(attributes, ["size", "warm"]);
    assert_eq!(invalid[1].to_string(), "`warm` must be one of image, paused, snapshot, not `hot`.");
}

fn pool(tf: &Terraform, extra: &[(&str, Value)]) -> Value {
    let mut attributes = vec![
        ("enforcement", Value::from(quickstart_plan())),
        ("application", application(&tf.app())),
        ("size", Value::from(2)),
        ("warm", Value::from("image")),
    ];
    attributes.extend(extra.iter().cloned());
    tf.config(TYPE_NAME, &attributes)
}

/// Plans and applies `config` from nothing, then plans again: no change.
async fn create(tf: &Terraform, config: &Value) -> Value {
    let planned = tf.plan(TYPE_NAME, &Value::Null, &[], config).await;
    assert_no_errors(&planned.diagnostics, "plan");
    assert!(planned.state.get("image_digest").unwrap().as_str().is_some_and(|d| d.starts_with("sha256:")));
    let applied = tf.apply(TYPE_NAME, &Value::Null, &planned, config).await;
    assert_no_errors(&applied.diagnostics, "apply");
    assert_eq!(applied.state.get("ready"), Some(&Value::from(2)));
    let again = tf.plan(TYPE_NAME, &applied.state, &applied.private, config).await;
    assert_no_errors(&again.diagnostics, "second plan");
    assert_eq!(again.state, applied.state, "a second plan changes nothing");
    applied.state
}

#[tokio::test]
async fn a_pool_without_name_plans_and_applies() {
    let tf = Terraform::new(&[]).await;
    let config = pool(&tf, &[]);
    let state = create(&tf, &config).await;
    assert_eq!(state.get("name"), Some(&Value::Null), "an optional attribute left out stays null");
    assert_eq!(state.get("memory_mb"), Some(&Value::from(128)), "the plan's memory");
}

#[tokio::test]
async fn a_pool_without_name_with_memory_and_vcpus_plans_and_applies() {
    let tf = Terraform::new(&[]).await;
    let config = pool(&tf, &[("memory_mb", Value::from(256)), ("vcpus", Value::from(2))]);
    let state = create(&tf, &config).await;
    assert_eq!(state.get("memory_mb"), Some(&Value::from(256)));
    assert_eq!(state.get("vcpus"), Some(&Value::from(2)));
    // The members' image is the size asked for.
    let digest = sdsec_image::ImageDigest::parse(state.get("image_digest").unwrap().as_str().unwrap()).unwrap();
    let image = sdsec_image::Store::open(&tf.dir.path().join("state")).unwrap().verify(&digest).unwrap();
    assert_eq!((image.manifest.memory_mb, image.manifest.vcpus), (256, 2));
}

#[tokio::test]
async fn inputs_known_after_apply_leave_only_what_depends_on_them_unknown() {
    let tf = Terraform::new(&[]).await;
    for name in [Value::Null, Value::from("api")] {
        let extra = [("name", name), ("memory_mb", Value::from(256)), ("vcpus", Value::from(2))];
        let mut config = pool(&tf, &extra);
        config.set("enforcement", Value::unknown());
        let planned = tf.plan(TYPE_NAME, &Value::Null, &[], &config).await;
        assert_no_errors(&planned.diagnostics, "plan");
        for unknown in ["id", "image_digest", "ready", "members"] {
            assert!(planned.state.get(unknown).unwrap().is_unknown(), "{unknown}");
        }
        assert_eq!(planned.state.get("memory_mb"), Some(&Value::from(256)));
        assert_eq!(planned.state.get("vcpus"), Some(&Value::from(2)));
    }
}

#[tokio::test]
async fn a_new_size_refills_and_a_new_name_keeps_the_members() {
    let tf = Terraform::new(&[]).await;
    let config = pool(&tf, &[]);
    let state = create(&tf, &config).await;
    let bigger = pool(&tf, &[("size", Value::from(3)), ("name", Value::from("api"))]);
    let planned = tf.plan(TYPE_NAME, &state, &[], &bigger).await;
    assert_no_errors(&planned.diagnostics, "plan");
    assert!(planned.requires_replace.is_empty(), "{:?}", planned.requires_replace);
    assert!(planned.state.get("members").unwrap().is_unknown());
    let applied = tf.apply(TYPE_NAME, &state, &planned, &bigger).await;
    assert_no_errors(&applied.diagnostics, "apply");
    assert_eq!(applied.state.get("id"), state.get("id"));
    assert_eq!(applied.state.get("ready"), Some(&Value::from(3)));
    let refreshed = tf.read(TYPE_NAME, &applied.state, &applied.private).await;
    assert_no_errors(&refreshed.diagnostics, "refresh");
    assert_eq!(refreshed.state, applied.state);
}

#[tokio::test]
async fn invalid_inputs_are_refused_on_their_attribute() {
    let tf = Terraform::new(&[]).await;
    let config = pool(&tf, &[("memory_mb", Value::from(16)), ("name", Value::from("api"))]);
    let planned = tf.plan(TYPE_NAME, &Value::Null, &[], &config).await;
    let d = planned.diagnostics.iter().next().expect("an error");
    assert_eq!(
        (d.summary.as_str(), d.detail.as_str()),
        ("Value out of range", "`memory_mb` must be between 32 and 65536, not 16.")
    );
    assert_eq!(d.attribute.as_ref().map(ToString::to_string).as_deref(), Some("memory_mb"));
}
