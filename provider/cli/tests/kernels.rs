//! The kernels images boot, on real QEMU through `sdsec`: sdsec's own (the default) and
//! Debian's cloud kernel both boot the quickstart at hardening level `strict` (every
//! hardening parameter the image's command line carries), recognise every parameter, and
//! enforce; the smallest guest sdsec's kernel is made for serves, and less memory than a
//! kernel boots with is refused before anything is built, with the number. Needs what
//! `scripts/build.sh` prepares: both kernels in the cache, the static runtime and example.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;

mod support;

use abi::event::Event;
use support::{QUICKSTART, QUICKSTART_TOKEN, field, items_status as status, ok, sdsec, static_binary};

const POLICY: &str = QUICKSTART;
const TOKEN: &str = QUICKSTART_TOKEN;

/// The quickstart with `memory_mb` instead of its own.
fn policy_with_memory(dir: &Path, memory_mb: u64) -> String {
    let text = std::fs::read_to_string(POLICY).unwrap().replace("memory_mb: 128", &format!("memory_mb: {memory_mb}"));
    let path = dir.join(format!("quickstart-{memory_mb}.yaml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn command(verb: &str, policy: &str, kernel: &str) -> Vec<String> {
    let app = static_binary("sdsec-example-api").display().to_string();
    [verb, policy, "--node", "api", "--app", &app, "--arg", "--listen", "--arg", "0.0.0.0:8080", "--kernel", kernel]
        .map(String::from)
        .to_vec()
}

/// Boots, checks enforcement and the kernel's view of the command line, stops.
fn boots_and_enforces(state: &Path, policy: &str, kernel: &str) {
    let out = ok(sdsec(state, &command("run", policy, kernel)));
    let id = field(&out, "instance").to_owned();
    let endpoint: SocketAddr = field(&out, "endpoint").trim_start_matches("http://").parse().unwrap();
    let audit = state.join("instances").join(&id).join("audit.log");
    let checks = std::panic::catch_unwind(|| {
        assert_eq!(status(endpoint, None), 401, "{kernel}: no token");
        assert_eq!(status(endpoint, Some(TOKEN)), 200, "{kernel}: with the token");
        let log = std::fs::read_to_string(&audit).unwrap();
        let events: Vec<Event> = Event::scan(&log).collect();
        assert!(events.iter().any(|e| matches!(e, Event::Ready { .. })), "{kernel}: {log}");
        let warnings: Vec<&Event> = events.iter().filter(|e| matches!(e, Event::InitWarning { .. })).collect();
        assert!(warnings.is_empty(), "{kernel}: init warned (an unrecognised kernel parameter?): {warnings:?}");
    });
    ok(sdsec(state, &["stop", &id]));
    if let Err(e) = checks {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn both_kernels_boot_the_strict_quickstart_and_recognise_every_parameter() {
    let state = tempfile::tempdir().unwrap();
    for kernel in ["sdsec", "debian-cloud"] {
        boots_and_enforces(state.path(), POLICY, kernel);
    }
    // Two kernels, each stored once however many images boot it.
    let kernels = std::fs::read_dir(state.path().join("images/kernels"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(kernels, 2);
}

#[test]
fn the_smallest_guest_serves_and_less_memory_than_a_kernel_needs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    boots_and_enforces(&state, &policy_with_memory(dir.path(), 48), "sdsec");

    for (memory, kernel, floor) in [(40, "sdsec", 48), (64, "debian-cloud", 96)] {
        let out = sdsec(&state, &command("build", &policy_with_memory(dir.path(), memory), kernel));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{kernel} at {memory} MiB was built");
        assert!(
            stderr.contains(&format!("memory_mb = {memory}")) && stderr.contains(&format!("at least {floor} MiB")),
            "{stderr}"
        );
    }
}
