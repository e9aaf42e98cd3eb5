//! A provider killed while it boots unikernels leaves no VM behind (issue 13, seen: two
//! QEMU processes, untracked, still serving after the next apply and `terraform destroy`).
//! The next provider start stops what the killed one had started but not handed over, the
//! next apply creates the unikernels again, and destroy leaves nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{Workspace, clis, policy_tf, provider_tf};
use crate::unikernel::{DestroyOnPanic, POLICY, processes_of, static_app, unikernel_tf};

fn main_tf(app: &Path) -> String {
    provider_tf("") + &policy_tf("") + &unikernel_tf("a", app) + &unikernel_tf("b", app)
}

/// Instance ids with a QEMU process under the state directory.
fn booting(state_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(state_dir.join("instances")) else { return Vec::new() };
    let mut ids: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join("qemu.pid").exists())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|id| !processes_of(id).is_empty())
        .collect();
    ids.sort();
    ids
}

/// The provider processes Terraform (process `parent`) started.
fn providers_of(parent: u32) -> Vec<u32> {
    let procs = std::fs::read_dir("/proc").unwrap().flatten();
    procs
        .filter_map(|p| {
            let pid: u32 = p.file_name().to_str()?.parse().ok()?;
            let status = std::fs::read_to_string(p.path().join("status")).ok()?;
            let ppid: u32 = status.lines().find_map(|l| l.strip_prefix("PPid:"))?.trim().parse().ok()?;
            let exe = std::fs::read_link(p.path().join("exe")).ok()?;
            let ours = exe.file_name()?.to_str()?.starts_with("terraform-provider-sdsec");
            (ppid == parent && ours).then_some(pid)
        })
        .collect()
}

#[test]
fn a_provider_killed_mid_apply_leaves_no_vm_behind() {
    let cli = &clis()[0];
    let ws = Workspace::new(cli, "killed-provider");
    let state_dir = ws.dir.join("sdsec-state");
    ws.write("policy.yaml", POLICY);
    ws.write("main.tf", &main_tf(&static_app()));
    ws.run(&["init", "-no-color"]).success();
    let _cleanup = DestroyOnPanic { ws: &ws, vars: Vec::new() };

    // Killed once both QEMU processes run, before either unikernel is ready.
    let mut apply = ws.spawn(&["apply", "-auto-approve", "-no-color"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let orphans = loop {
        let found = booting(&state_dir);
        if found.len() == 2 {
            break found;
        }
        assert!(Instant::now() < deadline, "the two unikernels never started booting: {found:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let providers = providers_of(apply.id());
    assert!(!providers.is_empty(), "no provider process under terraform {}", apply.id());
    for pid in providers {
        let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
    let status = apply.wait().unwrap();
    assert!(!status.success(), "the apply whose provider was killed cannot succeed");
    for id in &orphans {
        assert!(!processes_of(id).is_empty(), "{id}: the VM outlives its provider (the case to clean up)");
    }

    // The next apply's provider stops the orphans and creates both unikernels again.
    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    for id in &orphans {
        assert!(processes_of(id).is_empty(), "orphan {id} still runs after the next apply");
        assert!(!state_dir.join("instances").join(id).exists(), "orphan {id} left its files");
    }
    let running = booting(&state_dir);
    assert_eq!(running.len(), 2, "exactly the two unikernels of the state run: {running:?}");

    ws.run(&["destroy", "-auto-approve", "-no-color"]).success();
    for id in orphans.iter().chain(&running) {
        assert!(processes_of(id).is_empty(), "{id} still runs after destroy");
    }
    assert!(booting(&state_dir).is_empty());
}
