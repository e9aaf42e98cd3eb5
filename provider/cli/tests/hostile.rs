//! A booted image under hostile use: the example application with its deliberately unsafe
//! test routes stands for a compromised application, and the client for an attacker. Each
//! check is something seen to go wrong before (issue 13): the application read the plan's
//! credential hashes, executed another program, received the client's credentials and
//! forged identity headers, and printed lines the host took as the runtime's events; a
//! server that forks per connection looked healthy under `strict` and answered only 502.
//! Needs what `scripts/build.sh` prepares.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use abi::event::Event;
use support::{field, sdsec, static_binary};

const POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/quickstart/policy.yaml");
/// The quickstart's demo token: principal `deployer`, roles deployer and reader.
const TOKEN: &str = "quickstart-token";

/// `sdsec run` of the quickstart policy, optionally at another hardening level, with the
/// example application and `app_flags`.
fn run(state: &Path, level: Option<&str>, app_flags: &[&str]) -> Output {
    let policy = match level {
        Some(level) => {
            let text = std::fs::read_to_string(POLICY).unwrap().replace("level: strict", &format!("level: {level}"));
            let path = state.join(format!("policy-{level}.yaml"));
            std::fs::write(&path, text).unwrap();
            path
        }
        None => PathBuf::from(POLICY),
    };
    let app = static_binary("sdsec-example-api");
    let mut args = vec!["run", policy.to_str().unwrap(), "--node", "api", "--app", app.to_str().unwrap()];
    args.extend(["--arg", "--listen", "--arg", "0.0.0.0:8080", "--timeout", "120"]);
    for flag in app_flags {
        args.extend(["--arg", flag]);
    }
    sdsec(state, &args)
}

/// Sends `head` (and nothing else) on a new connection; the whole answer, empty when the
/// connection was closed without one.
fn raw(endpoint: SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&endpoint, Duration::from_secs(10)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = stream.write_all(head.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(endpoint: SocketAddr, path: &str, extra: &str) -> (u16, serde_json::Value) {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {TOKEN}\r\n{extra}Connection: close\r\n\r\n"
    );
    let answer = raw(endpoint, &head);
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no answer: {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.to_owned())))
}

fn status_of(answer: &str) -> Option<u16> {
    answer.get(9..12).and_then(|s| s.parse().ok())
}

/// The application, compromised, cannot read the plan, execute a program or forge events;
/// the client cannot pass credentials or identities through, or smuggle requests.
fn hostile_checks(endpoint: SocketAddr, console: &Path, audit: &Path) {
    // Item 5: the plan holds every principal's credential hash: root's alone.
    let (status, body) = get(endpoint, "/read/etc/sdsec/plan.json", "");
    assert_eq!(status, 403, "the application read the plan: {body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("Permission denied"), "{body}");
    let (status, body) = get(endpoint, "/read/proc/1/environ", "");
    assert_eq!(status, 403, "the application read PID 1's environment: {body}");

    // Item 4: under strict nothing is executed after the application's own start.
    let (status, body) = get(endpoint, "/exec/app/sdsec-example-api", "");
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("Operation not permitted"), "{body}");

    // Items 6 and 7: the application sees the runtime's identity and forwarding headers only.
    let spoofed = "X-Forwarded-For: 203.0.113.9\r\nX-Real-IP: 203.0.113.9\r\nForwarded: for=203.0.113.9\r\n\
                   X_Sdsec_Principal: admin\r\nX-Sdsec-Roles: admin\r\nX-HTTP-Method-Override: DELETE\r\n";
    let (status, seen) = get(endpoint, "/headers", spoofed);
    assert_eq!(status, 200, "{seen}");
    let one =
        |name: &str| seen[name].as_array().map(|v| v.iter().map(|s| s.as_str().unwrap_or("")).collect::<Vec<_>>());
    assert_eq!(one("authorization"), None, "credentials reached the application: {seen}");
    assert_eq!(one("x-sdsec-principal"), Some(vec!["deployer"]), "{seen}");
    assert_eq!(one("x-sdsec-roles"), Some(vec!["deployer,reader"]), "{seen}");
    assert_eq!(one("x_sdsec_principal"), None, "{seen}");
    assert_eq!(one("x-http-method-override"), None, "{seen}");
    let client = one("x-forwarded-for").unwrap_or_default();
    assert!(client.len() == 1 && !client[0].contains("203.0.113.9"), "the client's address was taken: {seen}");
    assert_eq!(one("x-real-ip").map(|v| v.concat()), Some(client[0].to_owned()), "{seen}");

    // Item 13: no Content-Length list, no leading zeros; h2c and matrix parameters refused.
    for extra in ["Content-Length: 5, 5\r\n", "Content-Length: 05\r\n"] {
        let head = format!("POST /items HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {TOKEN}\r\n{extra}\r\nhello");
        assert_eq!(status_of(&raw(endpoint, &head)), Some(400), "{extra}");
    }
    let h2c = format!(
        "GET /items HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {TOKEN}\r\nConnection: Upgrade, HTTP2-Settings\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
    );
    assert_eq!(status_of(&raw(endpoint, &h2c)), Some(400));
    let prior_knowledge = raw(endpoint, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    assert!(!prior_knowledge.contains(" 200 "), "{prior_knowledge}");
    assert_eq!(get(endpoint, "/admin;x/stats", "").0, 400);
    assert_eq!(get(endpoint, "/ADMIN/stats", "").0, 403, "deny_paths ignore case");

    // Item 9: what the application prints is on the console, never taken as an event.
    assert_eq!(get(endpoint, "/forge", "").0, 200);
    std::thread::sleep(Duration::from_millis(500));
    let events: Vec<Event> = Event::scan(&std::fs::read_to_string(audit).unwrap()).collect();
    assert!(matches!(events.first(), Some(Event::AuditOpen { .. })), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, Event::Ready { .. })), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, Event::ExecRefused { .. })), "exec attempts are audited: {events:?}");
    let forged = |e: &Event| match e {
        Event::ControlRefused { seq, .. } => *seq == 424_242,
        Event::AppExit { .. } => true,
        Event::InitError { step, .. } => step == "forged",
        _ => false,
    };
    assert!(!events.iter().any(forged), "the application forged an event: {events:?}");
    let console = std::fs::read_to_string(console).unwrap();
    assert!(console.contains("424242"), "the application's output reaches the console: {console}");
    assert!(!console.contains(TOKEN), "no credential on the console");
}

#[test]
fn a_compromised_application_and_a_hostile_client_get_nothing_they_should_not() {
    let state = tempfile::tempdir().unwrap();
    let out = run(state.path(), None, &["--test-routes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let endpoint: SocketAddr = field(&stdout, "endpoint").trim_start_matches("http://").parse().unwrap();
    let (console, audit) = (PathBuf::from(field(&stdout, "console")), PathBuf::from(field(&stdout, "audit")));
    let checks = std::panic::catch_unwind(|| hostile_checks(endpoint, &console, &audit));
    let _ = sdsec(state.path(), &["stop", "--all"]);
    if let Err(panic) = checks {
        std::panic::resume_unwind(panic);
    }
}

/// Item 3: a server that starts a process per connection cannot answer under `strict`; the
/// boot fails at once naming why and what to do, and the same server serves at `baseline`.
#[test]
fn a_server_its_hardening_breaks_fails_its_boot_with_the_reason() {
    let state = tempfile::tempdir().unwrap();
    let out = run(state.path(), None, &["--process-per-connection"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "booted as if healthy");
    assert!(
        stderr.contains("strict") && stderr.contains("baseline"),
        "the error names the cause and the fix:\n{stderr}"
    );
    let listed = String::from_utf8_lossy(&sdsec(state.path(), &["ps"]).stdout).into_owned();
    assert!(!listed.contains("i-"), "nothing left running: {listed}");

    let out = run(state.path(), Some("baseline"), &["--process-per-connection"]);
    let ran = std::panic::catch_unwind(|| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let endpoint: SocketAddr = field(&stdout, "endpoint").trim_start_matches("http://").parse().unwrap();
        assert_eq!(get(endpoint, "/items", "").0, 200);
    });
    let _ = sdsec(state.path(), &["stop", "--all"]);
    if let Err(panic) = ran {
        std::panic::resume_unwind(panic);
    }
}
