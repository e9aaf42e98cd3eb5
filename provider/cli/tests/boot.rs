//! Protected images on real QEMU, through the `sdsec` command line: build an image from the
//! quickstart policy and the example application, boot it, and check from the host what
//! the runtime inside enforces. Needs what `scripts/build.sh` prepares: the static runtime
//! and example application, QEMU, and the kernel in the cache.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod support;

use abi::control;
use abi::event::{Event, Refusal};
use hypervisor::{AccelChoice, Hypervisor, InstanceId, InstanceState};
use support::{field, ok, sdsec, static_binary};

const POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/quickstart/policy.yaml");
/// The quickstart's demo token; the policy holds only its SHA-256.
const TOKEN: &str = "quickstart-token";

fn image_args(app: &Path) -> Vec<String> {
    let mut args: Vec<String> = ["--node", "api", "--app"].map(String::from).to_vec();
    args.push(app.display().to_string());
    args.extend(["--arg", "--listen", "--arg", "0.0.0.0:8080"].map(String::from));
    args
}

/// One HTTP/1.1 request on its own connection: (status, body).
fn http(endpoint: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&endpoint, Duration::from_secs(10)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let body = if method == "POST" { "{\"name\":\"x\"}" } else { "" };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: api\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad answer {response:?}"));
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn qemu_running(id: &str) -> bool {
    let procs = std::fs::read_dir("/proc").unwrap().flatten();
    procs.filter_map(|p| std::fs::read(p.path().join("cmdline")).ok()).any(|c| String::from_utf8_lossy(&c).contains(id))
}

/// A second principal, added to the quickstart policy: a runtime-only change.
const SECOND_TOKEN: &str = "second-token";
const SECOND_PRINCIPAL: &str = "
            - name: auditor
              token_sha256: \"7a35833597e6687c599a0988b7a53b9b6a7ec18b88ca2a8e60f3265c8be6d527\"
              roles: [reader]";

fn plan_of(document: &str) -> ::plan::EnforcementPlan {
    let compiled = sectosca::compile_str("policy.yaml", document);
    compiled.plans.get("api").cloned().unwrap_or_else(|| panic!("{:?}", compiled.diagnostics))
}

/// The key stays with the provider's user; a plan sent with it is enforced at once without a
/// reboot; a request under another key is refused and audited, and changes nothing.
fn control_channel_reconfigures_in_place(
    qemu: &hypervisor::qemu::Qemu,
    instance: &InstanceId,
    endpoint: SocketAddr,
    console: &Path,
) {
    use std::os::unix::fs::PermissionsExt as _;
    let channel = qemu.control(instance).unwrap();
    let key_file = console.with_file_name("control.key");
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    let dir = console.parent().unwrap();
    assert_eq!(std::fs::metadata(dir).unwrap().permissions().mode() & 0o777, 0o700, "sockets and key are private");
    let original = std::fs::read_to_string(POLICY).unwrap();
    let marker = "roles: [deployer, reader]";
    let changed = original.replacen(marker, &format!("{marker}{SECOND_PRINCIPAL}"), 1);
    let (old_plan, new_plan) = (plan_of(&original), plan_of(&changed));
    assert_eq!(new_plan.change_from(&old_plan), ::plan::ChangeKind::InPlace);
    let timeout = Duration::from_secs(20);

    let status = channel.call(control::Command::Status, timeout).unwrap();
    assert_eq!(status.digest, Some(old_plan.digest()));
    assert_eq!(http(endpoint, "GET", "/items", Some(SECOND_TOKEN)).0, 401);
    let command = control::Command::Reconfigure { plan: new_plan.canonical_json() };
    let reply = channel.call(command, timeout).unwrap();
    assert_eq!(reply.digest, Some(new_plan.digest()), "acknowledged with the new plan's digest");
    assert_eq!(http(endpoint, "GET", "/items", Some(SECOND_TOKEN)).0, 200, "the new principal is accepted");
    assert_eq!(http(endpoint, "GET", "/items", Some(TOKEN)).0, 200);

    let forger = control::Key::generate().unwrap();
    let command = control::Command::Reconfigure { plan: old_plan.canonical_json() };
    let forged = control::Request::new(&forger, control::next_seq(), command);
    let answer = channel.exchange(&forged, timeout).unwrap();
    assert!(!answer.ok && answer.verify(&channel.key) && !answer.verify(&forger), "{answer:?}");
    assert_eq!(http(endpoint, "GET", "/items", Some(SECOND_TOKEN)).0, 200, "a forged plan changes nothing");

    std::thread::sleep(Duration::from_millis(300));
    let log = std::fs::read_to_string(console.with_file_name("audit.log")).unwrap();
    let events: Vec<Event> = Event::scan(&log).collect();
    assert!(events.iter().any(|e| matches!(e, Event::ControlRefused { reason: Refusal::BadMac, .. })), "{log}");
    assert!(events.iter().any(|e| matches!(e, Event::Reconfigured { .. })), "{log}");
    let ready = events.iter().filter(|e| matches!(e, Event::Ready { .. })).count();
    assert_eq!(ready, 1, "reconfigured without a reboot");
    assert!(!log.contains(&channel.key.to_hex()), "the key never reaches the audit log");
    let console_text = std::fs::read_to_string(console).unwrap();
    assert!(!console_text.contains(&channel.key.to_hex()), "the key never reaches the console");
}

#[test]
fn a_protected_image_boots_on_qemu_and_enforces_its_policy() {
    let app = static_binary("sdsec-example-api");
    let state = tempfile::tempdir().unwrap();
    let state = state.path();
    let mut build: Vec<String> = vec!["build".into(), POLICY.into()];
    build.extend(image_args(&app));
    let build: Vec<&str> = build.iter().map(String::as_str).collect();

    // Reproducible: two stores, byte-identical images.
    let first = ok(sdsec(state, &build));
    let other_state = tempfile::tempdir().unwrap();
    let second = ok(sdsec(other_state.path(), &build));
    let digest = field(&first, "digest").to_owned();
    assert_eq!(digest, field(&second, "digest"));
    let initramfs = Path::new(field(&first, "path")).join("initramfs.cpio");
    let bytes = std::fs::read(&initramfs).unwrap();
    assert_eq!(bytes, std::fs::read(Path::new(field(&second, "path")).join("initramfs.cpio")).unwrap());

    // Nothing but the runtime, the application, the plan and modules: no shell.
    let names: Vec<String> = sdsec_image::cpio::read(&bytes).unwrap().into_iter().map(|m| m.path).collect();
    assert!(names.contains(&"init".to_owned()) && names.contains(&"app/sdsec-example-api".to_owned()), "{names:?}");
    for name in &names {
        let ok = name == "init"
            || name.starts_with("app")
            || name.starts_with("etc")
            || name.starts_with("lib")
            || ["dev", "proc", "run", "sys", "tmp"].contains(&name.as_str());
        assert!(ok, "unexpected {name} in the image");
        assert!(!name.ends_with("sh") && !name.contains("busybox"), "{name}");
    }

    // Boot it.
    let mut run: Vec<String> = vec!["run".into(), POLICY.into()];
    run.extend(image_args(&app));
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    let out = ok(sdsec(state, &run));
    let id = field(&out, "instance").to_owned();
    let endpoint: SocketAddr = field(&out, "endpoint").trim_start_matches("http://").parse().unwrap();
    let console = PathBuf::from(field(&out, "console"));
    assert!(qemu_running(&id));

    let checks = std::panic::catch_unwind(|| {
        assert_eq!(http(endpoint, "GET", "/items", None).0, 401, "no token");
        assert_eq!(http(endpoint, "GET", "/items", Some("wrong-token")).0, 401, "wrong token");
        let (status, body) = http(endpoint, "GET", "/items", Some(TOKEN));
        assert_eq!(status, 200, "{body}");
        assert!(body.trim_start().starts_with('['), "the application's JSON passes unchanged: {body}");
        assert_eq!(http(endpoint, "GET", "/admin/stats", Some(TOKEN)).0, 403, "denied path");
        assert_eq!(http(endpoint, "GET", "/%61dmin/stats", Some(TOKEN)).0, 403, "encoded bypass");
        assert_eq!(http(endpoint, "DELETE", "/items/1", Some(TOKEN)).0, 405, "method not allowed");
        assert_eq!(http(endpoint, "POST", "/items", Some(TOKEN)).0, 403, "POST only under /api/");

        let ps = ok(sdsec(state, &["ps"]));
        assert!(ps.contains(&id) && ps.contains("running"), "{ps}");

        // Audit events reach the audit log as JSON lines, opened by `audit_open`.
        let log = std::fs::read_to_string(console.with_file_name("audit.log")).unwrap();
        let events: Vec<Event> = Event::scan(&log).collect();
        assert!(matches!(events.first(), Some(Event::AuditOpen { .. })), "{log}");
        assert!(events.iter().any(|e| matches!(e, Event::Ready { .. })), "{log}");
        assert!(events.iter().any(|e| matches!(e, Event::AuthnFailure(_))), "{log}");
        assert!(!log.contains("wrong-token") && !log.contains(TOKEN), "credentials never reach the audit log");

        // Paused through QMP, the guest answers nothing; resumed, it serves again.
        let qemu = hypervisor::qemu::Qemu::new(state, AccelChoice::Tcg).unwrap();
        let instance: InstanceId = id.parse().unwrap();
        qemu.pause(&instance).unwrap();
        assert_eq!(qemu.state(&instance).unwrap(), InstanceState::Paused);
        assert!(hypervisor::probe::http_status(endpoint, "/items", Duration::from_secs(2)).is_err());
        qemu.resume(&instance).unwrap();
        assert_eq!(qemu.state(&instance).unwrap(), InstanceState::Running);
        assert_eq!(http(endpoint, "GET", "/items", Some(TOKEN)).0, 200);

        control_channel_reconfigures_in_place(&qemu, &instance, endpoint, &console);

        // Killed by hand, the instance is reported gone.
        let pid = std::fs::read_to_string(state.join("instances").join(&id).join("qemu.pid")).unwrap();
        assert!(Command::new("kill").args(["-9", pid.trim()]).status().unwrap().success());
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(qemu.state(&instance).unwrap(), InstanceState::Gone);
        assert!(ok(sdsec(state, &["ps"])).contains("gone"));
    });

    // Stopping cleans up whether the instance still runs or was killed.
    ok(sdsec(state, &["stop", &id]));
    assert!(!qemu_running(&id), "QEMU of {id} still runs after stop");
    assert!(!state.join("instances").join(&id).exists(), "the instance left files behind");
    if let Err(e) = checks {
        std::panic::resume_unwind(e);
    }

    // A flipped byte in the store is found, and the next build replaces the image.
    let mut tampered = bytes.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    std::fs::write(&initramfs, tampered).unwrap();
    let verify = sdsec(state, &["images", "verify"]);
    assert_eq!(verify.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("FAILED"));
    let rebuilt = sdsec(state, &build);
    assert!(String::from_utf8_lossy(&rebuilt.stderr).contains("rebuilt"), "{rebuilt:?}");
    assert_eq!(std::fs::read(&initramfs).unwrap(), bytes);
}

#[test]
fn an_application_that_exits_fails_the_boot_and_leaves_no_vm() {
    // The runtime itself, run without arguments as an application, prints its usage and exits.
    let app = static_binary("sdsec-guest");
    let state = tempfile::tempdir().unwrap();
    let state = state.path();
    let out = sdsec(state, &["run", POLICY, "--node", "api", "--app", app.to_str().unwrap(), "--timeout", "120"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stopped while booting") && stderr.contains("exited"), "{stderr}");
    assert!(stderr.contains("Console tail"), "{stderr}");
    let instances = state.join("instances");
    let left: Vec<_> = std::fs::read_dir(&instances).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(left.is_empty(), "instance files left: {left:?}");
    assert!(ok(sdsec(state, &["ps"])).trim().is_empty());
}

/// The first instance recorded under `state`, once its QEMU runs.
fn wait_for_qemu(state: &Path) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let ids: Vec<String> = std::fs::read_dir(state.join("instances"))
            .map(|d| d.flatten().filter_map(|e| e.file_name().to_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        if let Some(id) = ids.into_iter().find(|id| qemu_running(id)) {
            return id;
        }
        assert!(std::time::Instant::now() < deadline, "no QEMU started under {}", state.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_instance_whose_creator_is_killed_mid_boot_is_an_orphan_that_stop_removes() {
    let app = static_binary("sdsec-example-api");
    let state = tempfile::tempdir().unwrap();
    let state = state.path();
    let mut run = Command::new(env!("CARGO_BIN_EXE_sdsec"));
    run.args(["run", POLICY]).args(image_args(&app)).arg("--state-dir").arg(state).env("SDSEC_NETWORK", "user");
    let mut creator = run.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let id = wait_for_qemu(state);
    // SIGKILL while the guest boots: nothing of `sdsec run` gets to clean up.
    creator.kill().unwrap();
    creator.wait().unwrap();
    assert!(qemu_running(&id), "QEMU outlives its creator");

    let ps = ok(sdsec(state, &["ps"]));
    assert!(ps.lines().any(|l| l.starts_with(&id) && l.contains("orphan")), "{ps}");
    let stopped = ok(sdsec(state, &["stop", "--orphans"]));
    assert_eq!(stopped.trim(), format!("stopped orphan {id}"));
    // The kill is sent and waited for; the kernel may still be tearing the process down.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while qemu_running(&id) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!qemu_running(&id), "QEMU of the orphan {id} still runs 5 s after `stop --orphans`");
    assert!(!state.join("instances").join(&id).exists(), "the orphan left files behind");
    assert!(ok(sdsec(state, &["ps"])).trim().is_empty());
}

#[test]
fn a_completed_instance_is_no_orphan_once_its_creator_exits() {
    let app = static_binary("sdsec-example-api");
    let state = tempfile::tempdir().unwrap();
    let state = state.path();
    let mut run: Vec<String> = vec!["run".into(), POLICY.into()];
    run.extend(image_args(&app));
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    let id = field(&ok(sdsec(state, &run)), "instance").to_owned();
    let ps = ok(sdsec(state, &["ps"]));
    assert!(ps.contains(&id) && ps.contains("running") && !ps.contains("orphan"), "{ps}");
    assert!(ok(sdsec(state, &["stop", "--orphans"])).trim().is_empty(), "nothing to stop");
    assert!(qemu_running(&id));
    ok(sdsec(state, &["stop", &id]));
    assert!(!qemu_running(&id));
}

#[test]
fn ingress_that_refuses_the_hosts_probe_does_not_hold_the_boot() {
    let app = static_binary("sdsec-example-api");
    let state = tempfile::tempdir().unwrap();
    let policy = state.path().join("office-only.yaml");
    // Only an office network reaches the application: the host's probe (10.0.2.2 on the
    // user network) is not admitted.
    let marker = "          http: { methods";
    let office = "          ingress: [{ from: [172.16.8.0/22], ports: 8080, action: allow }]\n";
    let text = std::fs::read_to_string(POLICY).unwrap().replacen(marker, &format!("{office}{marker}"), 1);
    std::fs::write(&policy, text).unwrap();
    let state = &state.path().join("state");
    let mut run: Vec<String> = vec!["run".into(), policy.display().to_string()];
    run.extend(image_args(&app));
    run.extend(["--timeout".into(), "90".into()]);
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    let out = ok(sdsec(state, &run));
    eprintln!("ready after {:?}", started.elapsed());
    let id = field(&out, "instance").to_owned();
    let endpoint: SocketAddr = field(&out, "endpoint").trim_start_matches("http://").parse().unwrap();
    let probe = hypervisor::probe::http_status(endpoint, "/items", Duration::from_secs(5));
    ok(sdsec(state, &["stop", &id]));
    assert!(probe.as_ref().is_err_and(hypervisor::probe::ProbeError::dropped), "the ingress drops 10.0.2.2: {probe:?}");
}

#[test]
fn a_state_directory_with_commas_neither_injects_options_nor_breaks_the_boot() {
    let app = static_binary("sdsec-example-api");
    let root = tempfile::tempdir().unwrap();
    // Were the comma not doubled, QEMU would read `server=off` as an option of the socket.
    let state = root.path().join("a,server=off,b");
    let mut run: Vec<String> = vec!["run".into(), POLICY.into()];
    run.extend(image_args(&app));
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    let out = ok(sdsec(&state, &run));
    let id = field(&out, "instance").to_owned();
    let endpoint: SocketAddr = field(&out, "endpoint").trim_start_matches("http://").parse().unwrap();
    let served = http(endpoint, "GET", "/items", Some(TOKEN)).0;
    let audit = std::fs::read_to_string(field(&out, "audit")).unwrap_or_default();
    let logged = ok(sdsec(&state, &["logs", &id, "--audit", "-n", "1000"]));
    ok(sdsec(&state, &["stop", &id]));
    assert_eq!(logged.trim_end(), audit.trim_end(), "sdsec logs --audit prints the audit log");
    assert_eq!(served, 200);
    assert!(audit.starts_with("{\"event\":\"audit_open\""), "{audit}");
    assert!(!qemu_running(&id));
}
