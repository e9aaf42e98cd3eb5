//! `sdsec_unikernel` planned as Terraform drives it (nothing boots here: apply needs a
//! hypervisor, which the acceptance tests have), and its errors on the attribute at fault.

// A failed expectation in a test is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tfplugin::Value;

use super::TYPE_NAME;
use crate::resources::testing::{Planned, Terraform, application, assert_no_errors, quickstart_plan};

fn unikernel(tf: &Terraform, extra: &[(&str, Value)]) -> Value {
    let mut attributes = vec![
        ("name", Value::from("api")),
        ("enforcement", Value::from(quickstart_plan())),
        ("application", application(&tf.app())),
    ];
    attributes.extend(extra.iter().cloned());
    tf.config(TYPE_NAME, &attributes)
}

/// The one error of a plan, as (summary, attribute).
fn error(planned: &Planned) -> (String, Option<String>) {
    let errors: Vec<_> = planned.diagnostics.iter().filter(|d| d.severity == tfplugin::Severity::Error).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    (errors[0].summary.clone(), errors[0].attribute.as_ref().map(ToString::to_string))
}

#[tokio::test]
async fn a_new_unikernel_plans_its_image_and_the_plans_sizes() {
    let tf = Terraform::new(&[]).await;
    let planned = tf.plan(TYPE_NAME, &Value::Null, &[], &unikernel(&tf, &[])).await;
    assert_no_errors(&planned.diagnostics, "plan");
    let state = &planned.state;
    assert!(state.get("image_digest").unwrap().as_str().is_some_and(|d| d.starts_with("sha256:")));
    assert!(state.get("enforcement_digest").unwrap().as_str().is_some_and(|d| d.starts_with("sha256:")));
    assert_eq!(state.get("memory_mb"), Some(&Value::from(128)));
    assert_eq!(state.get("vcpus"), Some(&Value::from(1)));
    assert_eq!(state.get("state"), Some(&Value::from("running")));
    for unknown in ["id", "instance_id", "endpoint", "boot_ms", "created_at"] {
        assert!(state.get(unknown).unwrap().is_unknown(), "{unknown}");
    }
    // Another size is another image.
    let bigger = tf.plan(TYPE_NAME, &Value::Null, &[], &unikernel(&tf, &[("memory_mb", Value::from(256))])).await;
    assert_no_errors(&bigger.diagnostics, "plan");
    assert_ne!(bigger.state.get("image_digest"), state.get("image_digest"));
}

#[tokio::test]
async fn inputs_known_after_apply_leave_only_what_depends_on_them_unknown() {
    let tf = Terraform::new(&[]).await;
    for unknown_input in ["name", "enforcement", "application", "memory_mb", "host_port"] {
        let mut config = unikernel(&tf, &[("vcpus", Value::from(2))]);
        config.set(unknown_input, Value::unknown());
        let planned = tf.plan(TYPE_NAME, &Value::Null, &[], &config).await;
        assert_no_errors(&planned.diagnostics, unknown_input);
        assert!(planned.state.get("image_digest").unwrap().is_unknown(), "{unknown_input}");
        assert_eq!(planned.state.get("vcpus"), Some(&Value::from(2)), "{unknown_input}");
    }
    // Partly unknown: the known parts are planned as given.
    let mut config = unikernel(&tf, &[]);
    let mut app = application(&tf.app());
    app.set("args", Value::unknown());
    config.set("application", app);
    let planned = tf.plan(TYPE_NAME, &Value::Null, &[], &config).await;
    assert_no_errors(&planned.diagnostics, "plan");
    assert_eq!(planned.state.get("application"), config.get("application"));
}

#[tokio::test]
async fn invalid_inputs_are_refused_on_their_attribute() {
    let tf = Terraform::new(&[]).await;
    let mut app = application(&tf.app());
    app.set("port", Value::from(0));
    let cases = [
        (("enforcement", Value::from("{}")), "Not an enforcement plan", "enforcement"),
        (("application", app), "Invalid application port", "application.port"),
        (("host_port", Value::from(80)), "Value out of range", "host_port"),
        (("vcpus", Value::from(1000)), "Value out of range", "vcpus"),
        // The quickstart's `api` connects to nothing: no peer can be one of its flows.
        (
            ("peers", Value::Map([("db".to_owned(), Value::from("http://10.9.0.2:80"))].into())),
            "Invalid peer",
            "peers[\"db\"]",
        ),
    ];
    for (setting, summary, attribute) in cases {
        let planned = tf.plan(TYPE_NAME, &Value::Null, &[], &unikernel(&tf, &[setting])).await;
        assert_eq!(error(&planned), (summary.to_owned(), Some(attribute.to_owned())));
    }
    let timeouts = Value::object([("create", Value::from("soon")), ("delete", Value::Null)]);
    let planned = tf.plan(TYPE_NAME, &Value::Null, &[], &unikernel(&tf, &[("timeouts", timeouts)])).await;
    assert_eq!(error(&planned), ("Invalid duration".to_owned(), Some("timeouts.create".to_owned())));
}

#[tokio::test]
async fn an_image_input_at_fault_is_named_by_the_engine_not_by_the_message() {
    let tf = Terraform::new(&[]).await;
    // The application is not a static executable: on `application.path`.
    let script = tf.dir.path().join("app.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let config = unikernel(&tf, &[("application", application(&script.display().to_string()))]);
    let planned = tf.plan(TYPE_NAME, &Value::Null, &[], &config).await;
    assert_eq!(error(&planned), ("Cannot build this image".to_owned(), Some("application.path".to_owned())));
    // The kernel is the provider's setting: no attribute of the unikernel.
    let tf = Terraform::new(&[]).await;
    std::fs::write(tf.dir.path().join("kernel"), "not a kernel").unwrap();
    let planned = tf.plan(TYPE_NAME, &Value::Null, &[], &unikernel(&tf, &[])).await;
    assert_eq!(error(&planned), ("Cannot build this image".to_owned(), None));
}

#[tokio::test]
async fn host_port_with_pool_needs_the_bridge() {
    let tf = Terraform::new(&[]).await;
    let config = unikernel(&tf, &[("host_port", Value::from(18080)), ("pool", Value::from("pool-0123456789ab"))]);
    let planned = tf.plan(TYPE_NAME, &Value::Null, &[], &config).await;
    assert_eq!(
        error(&planned),
        ("host_port with pool needs network = \"bridge\"".to_owned(), Some("host_port".to_owned()))
    );
}

/// A pool id becomes a path under the state directory: anything else is refused at plan.
#[tokio::test]
async fn a_pool_that_is_no_pool_id_is_refused_at_plan_on_pool() {
    let tf = Terraform::new(&[]).await;
    for bad in ["../../etc", "pool-../x", "pool-0123456789AB", ""] {
        let planned = tf.plan(TYPE_NAME, &Value::Null, &[], &unikernel(&tf, &[("pool", Value::from(bad))])).await;
        assert_eq!(error(&planned), ("Invalid pool id".to_owned(), Some("pool".to_owned())), "{bad:?}");
    }
}

#[tokio::test]
async fn a_host_port_in_use_is_refused_at_plan_on_host_port() {
    let tf = Terraform::new(&[]).await;
    let taken = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = unikernel(&tf, &[("host_port", Value::from(i64::from(port)))]);
    let planned = tf.plan(TYPE_NAME, &Value::Null, &[], &config).await;
    assert_eq!(error(&planned), ("host_port in use".to_owned(), Some("host_port".to_owned())));
}

/// An image input known only after apply may change the image: Terraform lets no update
/// planned now become a replacement at apply, so a running instance is planned replaced,
/// with why. `peers` unknown changes nothing of the image: in place.
#[tokio::test]
async fn an_image_input_unknown_at_plan_replaces_a_running_instance_and_says_why() {
    let tf = Terraform::new(&[]).await;
    let config = unikernel(&tf, &[]);
    let mut prior = tf.plan(TYPE_NAME, &Value::Null, &[], &config).await.state;
    for (name, value) in [
        ("id", "i-0123456789abcdef"),
        ("instance_id", "i-0123456789abcdef"),
        ("endpoint", "http://127.0.0.1:18080"),
        ("network", "user"),
    ] {
        prior.set(name, Value::from(value));
    }
    // Booted just now: never past the policy's max_lifetime, whenever the test runs.
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    prior.set("created_at", Value::from(now.as_str()));
    prior.set("boot_ms", Value::from(900));
    prior.set("ip", Value::Null);

    let mut peers_unknown = config.clone();
    peers_unknown.set("peers", Value::unknown());
    let planned = tf.plan(TYPE_NAME, &prior, &[], &peers_unknown).await;
    assert_no_errors(&planned.diagnostics, "plan");
    assert!(planned.requires_replace.is_empty(), "{:?}", planned.requires_replace);
    assert_eq!(planned.state.get("instance_id"), prior.get("instance_id"));

    let mut args_unknown = config.clone();
    let mut app = application(&tf.app());
    app.set("args", Value::unknown());
    args_unknown.set("application", app);
    let planned = tf.plan(TYPE_NAME, &prior, &[], &args_unknown).await;
    assert_no_errors(&planned.diagnostics, "plan");
    assert_eq!(planned.requires_replace, ["application"]);
    for unknown in ["instance_id", "endpoint", "boot_ms"] {
        assert!(planned.state.get(unknown).unwrap().is_unknown(), "{unknown}");
    }
    let warned = planned.diagnostics.iter().any(|d| {
        d.summary == "Unikernel will be replaced" && d.detail.contains("`application` is known only after apply")
    });
    assert!(warned, "{:#?}", planned.diagnostics);
}
