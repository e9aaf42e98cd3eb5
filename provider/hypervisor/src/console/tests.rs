use std::io::Write;
use std::net::TcpListener;

use super::*;
use crate::logs::LocalLog;
use std::path::Path;

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn line(event: Event<'_>) -> String {
    format!("{}\n", event.to_line())
}

fn ready() -> Event<'static> {
    Event::Ready { node: "api".into(), listen: "0.0.0.0:80".into(), app: None }
}

fn open() -> Event<'static> {
    Event::AuditOpen { runtime: "0.1.0".into() }
}

#[test]
fn events_are_taken_from_the_audit_log_across_partial_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (console, audit) = (dir.path().join("console.log"), dir.path().join("audit.log"));
    let logs = (LocalLog(console.clone()), LocalLog(audit.clone()));
    let mut watcher = Watcher::new(&logs.0, &logs.1);
    append(&audit, &line(open()));
    let ready = ready().to_line();
    let (head, rest) = ready.split_at(12);
    append(&console, "[    0.1] booting\n");
    append(&audit, head);
    assert!(!watcher.saw_ready());
    append(&audit, &format!("{rest}\n"));
    assert!(watcher.saw_ready());
    assert_eq!(watcher.failure(), None);
    append(&audit, "{\"event\":\"app_exit\" is not an event\n");
    assert_eq!(watcher.failure(), None);
    append(&audit, &line(Event::AppExit { status: Some(3), signal: None }));
    assert!(watcher.failure().unwrap().contains("app_exit"));
}

#[test]
fn the_application_cannot_forge_events_on_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let (console, audit) = (dir.path().join("console.log"), dir.path().join("audit.log"));
    let logs = (LocalLog(console.clone()), LocalLog(audit.clone()));
    let mut watcher = Watcher::new(&logs.0, &logs.1);
    append(&audit, &line(open()));
    // What an application may print once it runs.
    append(&console, &line(ready()));
    append(&console, &line(Event::AppExit { status: Some(0), signal: None }));
    append(&console, &line(Event::InitError { step: "app".into(), error: "forged".into() }));
    assert!(!watcher.saw_ready(), "ready only from the audit channel");
    assert_eq!(watcher.failure(), None, "no init error taken from the console once the audit channel is open");
    append(&console, "[    9.9] Kernel panic - not syncing: Attempted to kill init!\n");
    assert!(watcher.failure().unwrap().contains("Kernel panic"));
}

#[test]
fn init_errors_before_the_audit_channel_are_read_from_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let (console, audit) = (dir.path().join("console.log"), dir.path().join("audit.log"));
    let logs = (LocalLog(console.clone()), LocalLog(audit.clone()));
    let mut watcher = Watcher::new(&logs.0, &logs.1);
    let failed = Event::InitError { step: "audit".into(), error: "no port sdsec.audit".into() }.to_line();
    append(&console, &format!("\x1b[0m{failed}\n"));
    assert!(watcher.failure().unwrap().contains("no port sdsec.audit"));
}

#[test]
fn a_log_rotated_while_followed_is_read_again_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let (console, audit) = (dir.path().join("console.log"), dir.path().join("audit.log"));
    let logs = (LocalLog(console.clone()), LocalLog(audit.clone()));
    let mut watcher = Watcher::new(&logs.0, &logs.1);
    append(&audit, &line(open()));
    append(&audit, &"x".repeat(100));
    append(&audit, "\n");
    assert!(!watcher.saw_ready());
    assert!(logs::rotate(&audit, 10).unwrap());
    append(&audit, &line(ready()));
    assert!(watcher.saw_ready(), "the line written after the truncation is seen");
}

fn spec(http: bool) -> BootSpec {
    let source = "10.213.0.1".parse().unwrap();
    BootSpec { probe: probe::Probe { source, http }, ready_timeout: Duration::from_secs(60), ..crate::sample_spec() }
}

/// A runtime whose ingress drops the probe: every connection accepted and closed.
fn dropping_listener() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    addr
}

#[test]
fn dropped_probes_fail_the_boot_at_once_naming_the_probes_source() {
    let dir = tempfile::tempdir().unwrap();
    let (console, audit) = (dir.path().join("console.log"), dir.path().join("audit.log"));
    append(&audit, &line(open()));
    append(&audit, &line(ready()));
    let id: InstanceId = "i-0123456789abcdef".parse().unwrap();
    let logs = (LocalLog(console.clone()), LocalLog(audit.clone()));
    let paths = BootChannels { console: &logs.0, audit: &logs.1, control: None };
    let started = Instant::now();
    let err = wait_ready(&spec(true), &id, paths, dropping_listener(), started, || true).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(30), "failed early, not at the timeout");
    let message = err.to_string();
    assert!(matches!(err, HypervisorError::ProbeDropped { times: DROPPED_PROBES, .. }), "{message}");
    assert!(message.contains("10.213.0.1") && message.contains("ingress"), "{message}");
}

#[test]
fn a_probe_the_ingress_refuses_is_not_sent_and_ready_is_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let (console, audit) = (dir.path().join("console.log"), dir.path().join("audit.log"));
    append(&audit, &line(open()));
    append(&audit, &line(ready()));
    let id: InstanceId = "i-0123456789abcdef".parse().unwrap();
    let logs = (LocalLog(console.clone()), LocalLog(audit.clone()));
    let paths = BootChannels { console: &logs.0, audit: &logs.1, control: None };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = listener.local_addr().unwrap();
    wait_ready(&spec(false), &id, paths, endpoint, Instant::now(), || true).unwrap();
    assert!(listener.accept().is_err(), "no probe was sent");
}

/// A health path that answers 503 `unready` times, then 200; counts the probes.
fn health(unready: usize) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::Read;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let probes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&probes);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = stream.read(&mut [0; 1024]);
            let status = if n < unready { "503 Service Unavailable" } else { "200 OK" };
            let _ = write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (addr, probes)
}

/// The host hands over the instance's key and seed first thing; the runtime's notice then
/// ends the wait with nothing on the audit log; the channel is given
/// up at once for other clients, and a health path not yet answering 200 is probed at the
/// logs' pace, not in a tight loop.
#[test]
fn the_ready_notice_is_readiness_and_probes_keep_their_pace_after_it() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let (console, audit, socket) =
        (dir.path().join("console.log"), dir.path().join("audit.log"), dir.path().join("control.sock"));
    append(&audit, &line(open()));
    let key = abi::control::Key::generate().unwrap();
    let notice = abi::control::Notice::new(&key, abi::control::NoticeKind::Ready, "sha256:ab".into());
    let runtime = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let guest_key = key.clone();
    let guest = std::thread::spawn(move || {
        let (mut stream, _) = runtime.accept().unwrap();
        // The instance's key and seed come first, before init would go on.
        let mut first = Vec::new();
        let mut byte = [0u8; 1];
        while byte[0] != b'\n' {
            stream.read_exact(&mut byte).unwrap();
            first.push(byte[0]);
        }
        let provision = abi::control::Provision::parse(&first).unwrap();
        assert_eq!(provision.key, guest_key, "the instance's own key is handed over");
        stream.write_all(format!("{}\n", serde_json::to_string(&notice).unwrap()).as_bytes()).unwrap();
        let released = Instant::now();
        // The host hangs up once told.
        assert_eq!(stream.read(&mut [0; 16]).unwrap(), 0);
        released.elapsed()
    });
    let control = crate::ControlBoot { key };
    let spec = BootSpec { probe: probe::Probe::default(), control: Some(control), ..spec(true) };
    let (endpoint, probes) = health(3);
    let id: InstanceId = "i-0123456789abcdef".parse().unwrap();
    let logs = (LocalLog(console.clone()), LocalLog(audit.clone()));
    let channel = Some(ControlChannel::Socket(socket.clone()));
    let paths = BootChannels { console: &logs.0, audit: &logs.1, control: channel };
    let started = Instant::now();
    wait_ready(&spec, &id, paths, endpoint, started, || true).unwrap();
    assert_eq!(probes.load(std::sync::atomic::Ordering::SeqCst), 4, "three 503s, then the 200");
    assert!(started.elapsed() >= POLL * 3, "probes are paced: {:?}", started.elapsed());
    assert!(guest.join().unwrap() < Duration::from_secs(5), "the channel was given up once the notice came");
}

/// A guest on `socket` that reads the host's provisioning line, then writes `notice` (if
/// any) and waits for the host to hang up.
fn provisioned_guest(
    socket: &Path,
    notice: Option<abi::control::Notice>,
) -> std::thread::JoinHandle<abi::control::Provision> {
    use std::io::Read;
    let runtime = std::os::unix::net::UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = runtime.accept().unwrap();
        let (mut first, mut byte) = (Vec::new(), [0u8; 1]);
        while byte[0] != b'\n' {
            stream.read_exact(&mut byte).unwrap();
            first.push(byte[0]);
        }
        if let Some(notice) = notice {
            stream.write_all(format!("{}\n", serde_json::to_string(&notice).unwrap()).as_bytes()).unwrap();
        }
        let _ = stream.read(&mut [0; 16]);
        abi::control::Provision::parse(&first).unwrap()
    })
}

/// A guest given its key by this host is ready by the notice under that key only: the
/// audit log's ready does not do, and a notice under another key (a key something else
/// wrote first) fails the boot at once.
#[test]
fn a_provisioned_guest_is_ready_by_its_notice_only_and_a_foreign_key_fails_the_boot() {
    let dir = tempfile::tempdir().unwrap();
    let (console, audit) = (dir.path().join("console.log"), dir.path().join("audit.log"));
    append(&audit, &line(open()));
    append(&audit, &line(ready()));
    let key = abi::control::Key::generate().unwrap();
    let id: InstanceId = "i-0123456789abcdef".parse().unwrap();
    let spec =
        |wait| BootSpec { control: Some(crate::ControlBoot { key: key.clone() }), ready_timeout: wait, ..spec(false) };
    let endpoint = dropping_listener();

    // The audit log says ready, no notice comes: not ready.
    let socket = dir.path().join("silent.sock");
    let guest = provisioned_guest(&socket, None);
    let logs = (LocalLog(console.clone()), LocalLog(audit.clone()));
    let channel = Some(ControlChannel::Socket(socket.clone()));
    let paths = BootChannels { console: &logs.0, audit: &logs.1, control: channel };
    let err = wait_ready(&spec(Duration::from_millis(600)), &id, paths, endpoint, Instant::now(), || true).unwrap_err();
    assert!(matches!(err, HypervisorError::NotReady { .. }), "{err}");
    assert_eq!(guest.join().unwrap().key, key, "the guest was given the instance's key");

    // The notice comes under another key.
    let other = abi::control::Key::generate().unwrap();
    let foreign = abi::control::Notice::new(&other, abi::control::NoticeKind::Ready, "sha256:ab".into());
    let socket = dir.path().join("foreign.sock");
    let guest = provisioned_guest(&socket, Some(foreign));
    let logs = (LocalLog(console.clone()), LocalLog(audit.clone()));
    let channel = Some(ControlChannel::Socket(socket.clone()));
    let paths = BootChannels { console: &logs.0, audit: &logs.1, control: channel };
    let started = Instant::now();
    let err = wait_ready(&spec(Duration::from_secs(30)), &id, paths, endpoint, started, || true).unwrap_err();
    assert!(matches!(err, HypervisorError::ForeignKey { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "failed at once: {:?}", started.elapsed());
    guest.join().unwrap();
}
