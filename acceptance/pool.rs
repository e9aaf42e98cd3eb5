//! `sdsec_pool` with `sdsec_unikernel`s drawn from it, on the embedded QEMU backend: a pool
//! of 3 paused members; two unikernels taken from it (the time to serving is printed, not
//! asserted); the gap shown and refilled; a new principal applied in place to both (same
//! instances, not rebooted); a forged reconfiguration refused, audited and reported at the
//! next plan; a hardening
//! change replacing both through the pool, blue/green; a killed member dropped and
//! refilled; destroy leaving nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use abi::control;
use abi::event::{Event, Refusal};
use hypervisor::{AccelChoice, Hypervisor, InstanceId, InstanceState};

use crate::harness::{Workspace, clis, policy_tf, provider_tf};
use crate::unikernel::{DestroyOnPanic, NEW_PRINCIPAL, POLICY, TOKEN, audit_log, processes_of, static_app, status};

/// The provider, the quickstart policy and `local.app`, the example API at `app`.
fn with_app(app: &Path) -> String {
    let locals = format!(
        r#"
locals {{
  app = {{ path = "{}", args = ["--listen", "0.0.0.0:8080"], port = 8080 }}
}}
"#,
        app.display()
    );
    provider_tf("") + &policy_tf("") + &locals
}

fn main_tf(app: &Path, unikernels: usize) -> String {
    with_app(app)
        + &format!(
            r#"
resource "sdsec_pool" "api" {{
  name        = "api"
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = local.app
  size        = 3
  warm        = "paused"
}}

resource "sdsec_unikernel" "api" {{
  count       = {unikernels}
  name        = "api-${{count.index}}"
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = local.app
  pool        = sdsec_pool.api.id
  lifecycle {{
    create_before_destroy = true
  }}
}}
"#
        )
}

/// Attribute `name` of `sdsec_unikernel.api[index]`.
fn unikernel_attr(ws: &Workspace, index: usize, name: &str) -> serde_json::Value {
    let state = ws.state();
    let resources = state["resources"].as_array().cloned().unwrap_or_default();
    let found = resources.iter().find(|r| r["type"] == "sdsec_unikernel").expect("the unikernels in the state");
    found["instances"][index]["attributes"][name].clone()
}

fn unikernel(ws: &Workspace, index: usize, name: &str) -> String {
    unikernel_attr(ws, index, name).as_str().unwrap_or_default().to_owned()
}

fn pool_members(ws: &Workspace) -> Vec<String> {
    let members = ws.attributes("sdsec_pool.api")["members"].clone();
    members.as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_owned()).collect()
}

#[test]
fn pool_of_paused_members_serves_unikernels_and_propagates_policy() {
    let cli = clis().into_iter().next().expect("a Terraform CLI");
    let ws = Workspace::new(&cli, "pool-qemu");
    let state_dir = ws.dir.join("sdsec-state");
    let app = static_app();
    let qemu = hypervisor::qemu::Qemu::new(&state_dir, AccelChoice::Auto).unwrap();
    let _cleanup = DestroyOnPanic { ws: &ws, vars: Vec::new() };
    ws.write("policy.yaml", POLICY);

    // A pool of three paused members.
    ws.write("main.tf", &main_tf(&app, 0));
    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    let first_members = pool_members(&ws);
    assert_eq!(first_members.len(), 3);
    assert_eq!(ws.attributes("sdsec_pool.api")["ready"], 3);
    for member in &first_members {
        assert_eq!(qemu.state(&member.parse::<InstanceId>().unwrap()).unwrap(), InstanceState::Paused, "{member}");
    }

    // Two unikernels from it: taken members, resumed, serving.
    ws.write("main.tf", &main_tf(&app, 2));
    let started = Instant::now();
    ws.run(&["apply", "-auto-approve", "-no-color"]).success().lacks("did not come from its pool");
    let took = started.elapsed();
    let ids: Vec<String> = (0..2).map(|i| unikernel(&ws, i, "instance_id")).collect();
    let endpoints: Vec<String> = (0..2).map(|i| unikernel(&ws, i, "endpoint")).collect();
    assert_ne!(ids[0], ids[1], "a member serves one unikernel only");
    for (id, endpoint) in ids.iter().zip(&endpoints) {
        assert!(first_members.contains(id), "{id} did not come from the pool {first_members:?}");
        assert_eq!(status(endpoint, "/items", None), 401);
        assert_eq!(status(endpoint, "/items", Some(TOKEN)), 200);
    }
    let boot_ms: Vec<String> = (0..2).map(|i| unikernel_attr(&ws, i, "boot_ms").to_string()).collect();
    println!(
        "pool: `terraform apply` of 2 unikernels from 3 paused members took {:.2} s; take to serving: {} ms",
        took.as_secs_f64(),
        boot_ms.join(" ms, ")
    );

    // The pool shows the gap, and the next apply refills it.
    ws.run(&["plan", "-detailed-exitcode", "-no-color"])
        .exit_code(2)
        .contains("sdsec_pool.api will be updated in-place");
    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    let refilled = pool_members(&ws);
    assert_eq!(refilled.len(), 3);
    assert!(ids.iter().all(|id| !refilled.contains(id)), "taken members are not the pool's any more");

    // A new principal: applied in place to both, no reboot.
    let changed = POLICY.replace(
        "              roles: [deployer, reader]\n",
        &format!("              roles: [deployer, reader]\n{NEW_PRINCIPAL}"),
    );
    ws.write("policy.yaml", &changed);
    ws.run(&["plan", "-no-color"]).success().contains("updated in-place").lacks("must be replaced");
    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(&unikernel(&ws, i, "instance_id"), id, "in place: the same instance");
        assert_eq!(status(&endpoints[i], "/items", Some("acceptance-token")), 200);
        let ready = Event::scan(&audit_log(&state_dir, id)).filter(|e| matches!(e, Event::Ready { .. })).count();
        assert_eq!(ready, 1, "{id} was rebooted");
    }

    // A reconfiguration under another key is refused, audited, and changes nothing.
    let target: InstanceId = ids[0].parse().unwrap();
    let channel = qemu.control(&target).unwrap();
    let forged_plan = serde_json::from_str::<serde_json::Value>(&unikernel(&ws, 0, "enforcement")).unwrap();
    let command = control::Command::Reconfigure { plan: forged_plan.to_string() };
    let forged = control::Request::new(&control::Key::generate().unwrap(), control::next_seq(), command);
    let answer = channel.exchange(&forged, Duration::from_secs(20)).unwrap();
    assert!(!answer.ok && answer.verify(&channel.key), "{answer:?}");
    std::thread::sleep(Duration::from_millis(300));
    let refused = Event::ControlRefused { reason: Refusal::BadMac, seq: forged.seq };
    assert!(Event::scan(&audit_log(&state_dir, &ids[0])).any(|e| e == refused));
    assert_eq!(status(&endpoints[0], "/items", Some("acceptance-token")), 200);
    // Refresh reports it to whoever runs Terraform next.
    ws.run(&["plan", "-no-color"]).success().contains("Unikernel `api-0` refused 1 control message(s)");

    // A hardening change needs new images: both replaced through the pool, blue/green.
    ws.write("policy.yaml", &changed.replace("properties: { level: strict", "properties: { level: baseline"));
    ws.run(&["plan", "-no-color"]).success().contains("must be replaced").contains("hardening");
    ws.run(&["apply", "-auto-approve", "-no-color"]).success().lacks("did not come from its pool");
    let rebuilt = pool_members(&ws);
    for i in 0..2 {
        let id = unikernel(&ws, i, "instance_id");
        assert!(!ids.contains(&id), "{id} was not replaced");
        assert!(rebuilt.contains(&id), "{id} did not come from the rebuilt pool {rebuilt:?}");
        assert_eq!(status(&unikernel(&ws, i, "endpoint"), "/items", Some("acceptance-token")), 200);
    }
    for id in ids.iter().chain(&refilled) {
        assert!(processes_of(id).is_empty(), "{id} of the old image still runs");
    }

    // A killed member is dropped at refresh and replaced at the next apply.
    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    let members = pool_members(&ws);
    let victim = members[0].clone();
    for pid in processes_of(&victim) {
        let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    std::thread::sleep(Duration::from_millis(500));
    ws.run(&["plan", "-detailed-exitcode", "-no-color"])
        .exit_code(2)
        .contains("sdsec_pool.api will be updated in-place");
    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    let members = pool_members(&ws);
    assert_eq!(members.len(), 3);
    assert!(!members.contains(&victim));

    // Destroy stops every member and every unikernel.
    let unikernels: Vec<String> = (0..2).map(|i| unikernel(&ws, i, "instance_id")).collect();
    ws.run(&["destroy", "-auto-approve", "-no-color"]).success();
    for id in members.iter().chain(&unikernels) {
        assert!(processes_of(id).is_empty(), "{id} still runs after destroy");
    }
    let left: Vec<_> = std::fs::read_dir(state_dir.join("instances"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(std::fs::read_dir(state_dir.join("pools")).map(|d| d.count()).unwrap_or(0) == 0, "a pool ledger is left");
}

/// Two pools as a new user writes them: one without `name` (it defaults to `pool`), one
/// with `memory_mb` and `vcpus`. Each plans with its image known, applies, boots members of
/// the size asked for, and plans no change afterwards.
fn unnamed_and_sized_tf(app: &Path) -> String {
    with_app(app)
        + r#"
resource "sdsec_pool" "unnamed" {
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = local.app
  size        = 1
  warm        = "paused"
}

resource "sdsec_pool" "sized" {
  name        = "sized"
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = local.app
  memory_mb   = 256
  vcpus       = 2
  size        = 1
  warm        = "paused"
}
"#
}

#[test]
fn pools_without_name_and_with_memory_and_vcpus_plan_and_apply() {
    let cli = clis().into_iter().next().expect("a Terraform CLI");
    let ws = Workspace::new(&cli, "pool-defaults");
    let state_dir = ws.dir.join("sdsec-state");
    let qemu = hypervisor::qemu::Qemu::new(&state_dir, AccelChoice::Auto).unwrap();
    let _cleanup = DestroyOnPanic { ws: &ws, vars: Vec::new() };
    ws.write("policy.yaml", POLICY);
    ws.write("main.tf", &unnamed_and_sized_tf(&static_app()));

    // The plan knows both images, and keeps the sizes as configured.
    let plan = ws.run(&["plan", "-no-color"]).success().lacks("Provider produced invalid plan");
    let unknown = plan.unknown_attributes();
    for known in ["image_digest", "memory_mb", "vcpus", "ready"] {
        assert!(!unknown.iter().any(|a| a == known), "{known} is unknown in the plan: {unknown:?}");
    }
    ws.run(&["apply", "-auto-approve", "-no-color"]).success().lacks("Pool not known");

    let unnamed = ws.attributes("sdsec_pool.unnamed");
    assert_eq!(unnamed["name"], serde_json::Value::Null);
    assert_eq!(unnamed["ready"], 1);
    let sized = ws.attributes("sdsec_pool.sized");
    assert_eq!((sized["memory_mb"].clone(), sized["vcpus"].clone()), (256.into(), 2.into()));
    let member = |pool: &serde_json::Value| -> InstanceId { pool["members"][0].as_str().unwrap().parse().unwrap() };
    let (unnamed_member, sized_member) = (member(&unnamed), member(&sized));
    assert_eq!(qemu.instance(&unnamed_member).unwrap().name, "pool-pool", "the default name");
    let instance = qemu.instance(&sized_member).unwrap();
    assert_eq!((instance.memory_mb, instance.vcpus), (256, 2));
    for id in [&unnamed_member, &sized_member] {
        assert_eq!(qemu.state(id).unwrap(), InstanceState::Paused, "{id}");
    }

    // Nothing changes at the next plan.
    ws.run(&["plan", "-detailed-exitcode", "-no-color"]).exit_code(0);

    ws.run(&["destroy", "-auto-approve", "-no-color"]).success();
    for id in [&unnamed_member, &sized_member] {
        assert!(processes_of(id.as_str()).is_empty(), "{id} still runs after destroy");
    }
}
