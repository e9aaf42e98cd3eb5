//! The proxy process as init starts it: the real binary, its descriptors handed over, plans
//! sent over the link. Run as root, it also checks the process's user, capabilities,
//! no_new_privs and seccomp mode.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::os::fd::AsFd as _;
use std::path::Path;
use std::time::Duration;

use guest::init::proxy_process::{self, PROXY_ID};
use guest::init::ready::Probe;

fn status_field(pid: i32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')).map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

#[test]
fn the_proxy_process_serves_takes_new_plans_and_holds_no_privilege() {
    let root = rustix::process::geteuid().is_root();
    let (events_in, events_out) = std::io::pipe().unwrap();
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut proxy = proxy_process::start(
        Path::new(env!("CARGO_BIN_EXE_sdsec-guest")),
        root,
        listen,
        common::upstream().addr,
        events_out.as_fd(),
        &common::plan("bare").canonical_json(),
    )
    .unwrap();
    drop(events_out);
    let pid = proxy.pid.as_raw_nonzero().get();

    assert_eq!(common::send(proxy.local, b"GET /admin/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").status, 200);
    // PID 1's readiness probe, sent by the proxy process.
    assert_eq!(proxy.link.probe().unwrap(), Probe::Answered(200));
    // Acknowledged only once in force: the very next request is judged by the new plan.
    proxy.link.send(&common::plan("firewall")).unwrap();
    assert_eq!(common::send(proxy.local, b"GET /admin/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").status, 403);

    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    assert_eq!(status_field(pid, "Seccomp"), "2", "the process's own filter is installed");
    if root {
        let id = PROXY_ID.to_string();
        assert!(status_field(pid, "Uid").split_whitespace().all(|u| u == id));
        assert!(status_field(pid, "Gid").split_whitespace().all(|g| g == id));
        for set in ["CapPrm", "CapEff", "CapBnd", "CapAmb", "CapInh"] {
            assert_eq!(u64::from_str_radix(&status_field(pid, set), 16).unwrap(), 0, "{set}");
        }
    }

    // Its events come on the descriptor it was handed.
    proxy.link.send(&common::plan("audit_every_event")).unwrap();
    assert_eq!(
        common::send(proxy.local, b"GET /public/seen HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").status,
        200
    );
    let mut line = String::new();
    BufReader::new(events_in).read_line(&mut line).unwrap();
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!((event["event"].as_str(), event["path"].as_str()), (Some("request"), Some("/public/seen")), "{line}");

    // Closing the link is PID 1 going away: the process ends.
    drop(proxy.link);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match rustix::process::waitpid(Some(proxy.pid), rustix::process::WaitOptions::NOHANG) {
            Ok(Some(_)) => break,
            _ if std::time::Instant::now() > deadline => panic!("the proxy process outlived its link"),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
