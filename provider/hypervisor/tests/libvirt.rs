//! The libvirt backend against a real libvirt daemon and a real image: boot, the
//! enforcement runtime's answers through the forwarded port, pause/resume, stop, and
//! nothing left behind. Needs libvirtd (scripts/libvirt.sh) and the image's parts built
//! (scripts/build.sh): the guest runtime, the example API and the `sdsec` CLI.
// Helpers outside #[test] functions report failed expectations the same way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use abi::event::Event;
use hypervisor::libvirt::Libvirt;
use hypervisor::{AccelChoice, BootSpec, Hypervisor, HypervisorError, InstanceState};

#[allow(dead_code)]
#[path = "remote_host/mod.rs"]
mod remote_host;

mod quickstart;

use quickstart::{quickstart_spec, run, status};

const SYSTEM: &str = "qemu:///system";
/// A second daemon standing for another host, started by scripts/libvirt.sh --second.
const SECOND_SOCKET: &str = "/run/sdsec-libvirt2/libvirt-sock";

fn connect(state: &Path, uri: &str) -> Libvirt {
    Libvirt::new(state, uri, AccelChoice::Auto)
        .unwrap_or_else(|e| panic!("libvirtd is not reachable at {uri}: {e}\nrun scripts/libvirt.sh (as root) first"))
}

fn virsh_names(uri: &str) -> String {
    run(Command::new("virsh").args(["-c", uri, "list", "--all", "--name"]))
}

/// The process id of the QEMU whose command line holds `marker`.
fn qemu_pid(marker: &str) -> u32 {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker)
            && let Ok(pid) = entry.file_name().to_string_lossy().parse()
        {
            return pid;
        }
    }
    panic!("no QEMU process with {marker} in its command line");
}

/// The user id of the QEMU process whose command line holds `marker`.
fn qemu_uid(marker: &str) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", qemu_pid(marker))).unwrap();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap();
    uid.split_whitespace().next().unwrap().parse().unwrap()
}

fn virsh_volumes(uri: &str) -> String {
    run(Command::new("virsh").args(["-c", uri, "vol-list", hypervisor::DEFAULT_LIBVIRT_POOL]))
}

/// One instance's whole life on `uri`.
fn life_cycle(uri: &str, state: &Path, spec: &BootSpec) {
    let lv = connect(state, uri);
    let started = Instant::now();
    let instance = lv.boot(spec).unwrap_or_else(|e| panic!("boot on {uri}: {e}"));
    eprintln!("{uri}: ready in {} ms (boot() returned after {:?})", instance.boot_ms, started.elapsed());
    let id = instance.id.clone();
    let dir = state.join("libvirt/instances").join(id.as_str());
    // The logs are volumes of sdsec's pool on the daemon's host; only the key is here.
    assert!(instance.console_log.ends_with(format!("sdsec-{id}.console.log")), "{instance:?}");
    assert!(instance.audit_log.as_ref().unwrap().ends_with(format!("sdsec-{id}.audit.log")));
    assert!(virsh_names(uri).contains(&format!("sdsec-{id}")));
    assert!(virsh_volumes(uri).contains(&format!("sdsec-{id}.audit.log")));
    let uid = qemu_uid(&format!("guest=sdsec-{id}"));
    assert_ne!(uid, 0, "QEMU runs as the daemon's unprivileged user, not as root");

    assert_eq!(status(instance.endpoint, "/items", None), 401);
    assert_eq!(status(instance.endpoint, "/items", Some("quickstart-token")), 200);

    // Found again through a fresh connection, from the domain's metadata alone.
    let again = connect(state, uri);
    assert_eq!(again.instance(&id).unwrap(), instance);
    let listed = again.list().unwrap();
    assert!(listed.contains(&(instance.clone(), InstanceState::Running)), "{listed:?}");
    assert_eq!(again.instance(&id).unwrap().metadata["resource"], "sdsec_unikernel.api");

    lv.pause(&id).unwrap();
    assert_eq!(lv.state(&id).unwrap(), InstanceState::Paused);
    lv.resume(&id).unwrap();
    assert_eq!(lv.state(&id).unwrap(), InstanceState::Running);
    assert_eq!(status(instance.endpoint, "/items", Some("quickstart-token")), 200);
    // The audit log and the console over the connection, the control channel too.
    let (events, log) = lv.events(&id).unwrap();
    assert!(events.iter().any(|e| matches!(e, Event::Ready { .. })), "{log}: {events:?}");
    assert!(lv.console_tail(&id, 50).contains("listening on"), "{}", lv.console_tail(&id, 50));
    let channel = again.control(&id).unwrap();
    let status = channel.call(abi::control::Command::Status, Duration::from_secs(20)).unwrap();
    assert!(status.digest.is_some_and(|d| d.starts_with("sha256:")));
    let forged = abi::control::Request::new(&abi::control::Key::generate().unwrap(), 1, abi::control::Command::Status);
    let refused = channel.exchange(&forged, Duration::from_secs(20)).unwrap();
    assert!(!refused.ok, "a request under another key is refused");
    let (events, _) = lv.events(&id).unwrap();
    assert!(events.iter().any(|e| matches!(e, Event::ControlRefused { .. })), "{events:?}");

    again.stop(&id, Duration::from_secs(5)).unwrap();
    assert_eq!(lv.state(&id).unwrap(), InstanceState::Gone);
    assert!(!virsh_names(uri).contains(&format!("sdsec-{id}")), "the domain is still there");
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(!virsh_volumes(uri).contains(&format!("sdsec-{id}")), "its logs are still there");
    assert!(lv.list().unwrap().iter().all(|(i, _)| i.id != id));
    assert!(matches!(lv.pause(&id), Err(HypervisorError::NoSuchInstance(_))));
    lv.stop(&id, Duration::from_secs(1)).expect("stopping a gone instance succeeds");
}

#[test]
fn boots_serves_pauses_and_stops_leaving_nothing() {
    let state = tempfile::tempdir().unwrap();
    let spec = quickstart_spec(state.path());
    life_cycle(SYSTEM, state.path(), &spec);
}

#[test]
fn a_failed_boot_leaves_no_domain_and_tells_why() {
    let state = tempfile::tempdir().unwrap();
    let spec = BootSpec {
        health_path: "/.sdsec/no-such-health".into(),
        ready_timeout: Duration::from_secs(20),
        ..quickstart_spec(state.path())
    };
    let lv = connect(state.path(), SYSTEM);
    let err = lv.boot(&spec).unwrap_err();
    let text = err.to_string();
    let HypervisorError::NotReady { id, .. } = err else { panic!("not a NotReady: {text}") };
    assert!(text.contains("answered 401") && text.contains("Console tail:"), "{text}");
    assert_eq!(lv.state(&id).unwrap(), InstanceState::Gone);
    assert!(!virsh_names(SYSTEM).contains(id.as_str()), "the domain is still there");
    let left: Vec<_> = std::fs::read_dir(state.path().join("libvirt/instances")).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_unreachable_uri_says_what_to_do() {
    let state = tempfile::tempdir().unwrap();
    let uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock";
    let err = Libvirt::new(state.path(), uri, AccelChoice::Tcg).unwrap_err().to_string();
    assert!(err.contains(uri) && err.contains("start libvirtd"), "{err}");
    // Instances' control keys travel over the connection: never unencrypted.
    let tcp = "qemu+tcp://127.0.0.1/system";
    let err = Libvirt::new(state.path(), tcp, AccelChoice::Tcg).unwrap_err().to_string();
    assert!(err.contains("unencrypted") && err.contains("qemu+tls://"), "{err}");
}

/// Two daemons standing for two hosts, the second reached through a remote-driver URI.
#[test]
fn a_second_daemon_behind_another_uri_works_too() {
    let second = format!("qemu+unix:///system?socket={SECOND_SOCKET}");
    assert!(
        Path::new(SECOND_SOCKET).exists(),
        "no second libvirtd at {SECOND_SOCKET}: run scripts/libvirt.sh --second (as root) first"
    );
    let state = tempfile::tempdir().unwrap();
    let spec = quickstart_spec(state.path());
    let first = connect(state.path(), SYSTEM);
    let other = connect(state.path(), &second);
    // Each daemon sees its own instances only: they are two hosts to sdsec.
    let on_other = other.boot(&spec).unwrap_or_else(|e| panic!("boot on {second}: {e}"));
    assert_eq!(first.state(&on_other.id).unwrap(), InstanceState::Gone);
    assert_eq!(status(on_other.endpoint, "/items", Some("quickstart-token")), 200);
    life_cycle(SYSTEM, state.path(), &spec);
    other.stop(&on_other.id, Duration::from_secs(5)).unwrap();
    assert_eq!(other.state(&on_other.id).unwrap(), InstanceState::Gone);
    assert!(!virsh_names(&second).contains(on_other.id.as_str()));
}

/// A daemon that shares nothing with this host ([`remote_host`]): the image travels to it,
/// the logs and the control channel come over the connection, and the forward listens on
/// its address, where this host reaches the guest.
#[test]
fn a_daemon_on_another_host_boots_serves_and_leaves_nothing() {
    let remote = remote_host::RemoteHost::start(40);
    let state = tempfile::tempdir().unwrap();
    let spec = quickstart_spec(state.path());
    life_cycle(&remote.uri, state.path(), &spec);
    let left = virsh_volumes(&remote.uri);
    assert_eq!(left.lines().filter(|l| l.contains("sha256-")).count(), 2, "kernel and initramfs stay: {left}");
    assert!(!left.contains(".log"), "{left}");
}

/// The daemon restarted under a running instance: a new connection finds it running, its
/// runtime answers on the control channel and through the forward, its logs read back.
/// Killed while no daemon watched, it is reported gone, and stopping it removes its logs.
#[test]
fn a_restarted_daemon_reports_the_truth_about_its_instances() {
    let mut remote = remote_host::RemoteHost::start(41);
    let state = tempfile::tempdir().unwrap();
    let spec = quickstart_spec(state.path());
    let instance = connect(state.path(), &remote.uri).boot(&spec).unwrap();
    let id = instance.id.clone();

    remote.restart_daemon();
    let after = connect(state.path(), &remote.uri);
    assert_eq!(after.state(&id).unwrap(), InstanceState::Running);
    assert_eq!(after.instance(&id).unwrap(), instance);
    let status = after.control(&id).unwrap().call(abi::control::Command::Status, Duration::from_secs(20)).unwrap();
    assert!(status.digest.is_some());
    assert_eq!(status_of(&instance), 200);
    assert!(after.events(&id).unwrap().0.iter().any(|e| matches!(e, Event::Ready { .. })));

    // Killed behind the daemon's back: the truth is that it is gone.
    let qemu = qemu_pid(&format!("guest=sdsec-{id}"));
    run(Command::new("kill").args(["-KILL", &qemu.to_string()]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while after.state(&id).unwrap() != InstanceState::Gone {
        assert!(Instant::now() < deadline, "a killed instance still reported {:?}", after.state(&id));
        std::thread::sleep(Duration::from_millis(200));
    }
    after.stop(&id, Duration::from_secs(5)).unwrap();
    assert!(!virsh_volumes(&remote.uri).contains(&format!("sdsec-{id}")), "its logs are still there");
}

fn status_of(instance: &hypervisor::Instance) -> u16 {
    status(instance.endpoint, "/items", Some("quickstart-token"))
}
