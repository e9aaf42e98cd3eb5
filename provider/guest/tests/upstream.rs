//! What the client and the audit trail see when the application fails: refused
//! connections, connections closed before an answer, and requests the application gives
//! no answer to.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::net::TcpListener;

use common::{Guest, plan};

/// A port nothing listens on: bound, then closed.
fn closed_port() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// An "application" that reads each request head and closes without answering.
fn hangs_up() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in l.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            drop(stream);
        }
    });
    addr
}

#[test]
fn an_application_not_listening_is_502_and_audited_whatever_the_plan() {
    let mut p = plan("firewall");
    // Not asked for by the plan: upstream errors are written anyway.
    p.runtime.audit.events = Vec::new();
    let g = Guest::start_to(&p, closed_port());
    let r = g.get("/items?secret=1", "");
    assert_eq!(r.status, 502);
    let line = g.audit(|v| v["event"] == "upstream_error");
    assert_eq!(line["reason"], "connect_refused", "{line}");
    assert_eq!((line["status"].as_u64(), line["path"].as_str()), (Some(502), Some("/items")), "{line}");
    assert_eq!(line["method"], "GET");
}

#[test]
fn an_application_closing_without_an_answer_is_502_and_audited() {
    let g = Guest::start_to(&plan("firewall"), hangs_up());
    assert_eq!(g.get("/x", "").status, 502);
    let line = g.audit(|v| v["event"] == "upstream_error");
    assert_eq!(line["reason"], "closed_before_answer", "{line}");
}

/// An "application" that reads each request and keeps the connection open, never answering.
fn never_answers() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in l.incoming().map_while(Result::ok) {
            let _ = stream.read(&mut [0u8; 4096]);
            held.push(stream);
        }
    });
    addr
}

#[test]
fn an_application_that_never_answers_is_504_once_its_time_is_up() {
    let mut p = plan("firewall");
    p.runtime.firewall.http.body_timeout_seconds = 1;
    p.runtime.firewall.http.answer_timeout_seconds = 1;
    let g = Guest::start_to(&p, never_answers());
    let started = std::time::Instant::now();
    assert_eq!(g.get("/items", "").status, 504);
    let waited = started.elapsed();
    assert!(waited >= std::time::Duration::from_secs(2) && waited < std::time::Duration::from_secs(10), "{waited:?}");
    let line = g.audit(|v| v["event"] == "upstream_error");
    assert_eq!((line["reason"].as_str(), line["status"].as_u64()), (Some("answer_timeout"), Some(504)), "{line}");
}
