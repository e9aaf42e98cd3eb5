//! Attacks and checks on the connection level: ingress rules, connection caps, slow senders.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Guest, plan, upstream};
use plan::{Effect, IngressRulePlan, IngressRuleSet};

/// A plan whose one ingress rule allows loopback to `port` only, default deny.
fn ingress_to_port(port: u16) -> plan::EnforcementPlan {
    let mut p = plan("firewall");
    p.runtime.audit.events = vec![plan::AuditEvent::FirewallDrop];
    let rule: IngressRulePlan = serde_json::from_value(serde_json::json!({
        "from": ["127.0.0.0/8"], "ports": [port], "protocol": "tcp", "action": "allow"
    }))
    .unwrap();
    p.runtime.firewall.ingress = vec![IngressRuleSet { policy: "fw".into(), default: Effect::Deny, rules: vec![rule] }];
    p
}

#[test]
fn ingress_ports_name_the_applications_port() {
    // `ports: [<the application's port>]` admits clients, whatever port the runtime listens on.
    let g = Guest::start(&ingress_to_port(upstream().addr.port()));
    assert_eq!(g.get("/x", "").status, 200, "the service port is the application's");
    // The runtime's own listening port is not what rules name.
    let other = Guest::start(&ingress_to_port(g.addr.port()));
    let r = other.get("/x", "");
    assert_eq!(r.raw_len, 0, "a rule naming the runtime's port does not admit the application's clients");
    other.audit(|v| v["event"] == "firewall_drop" && v["reason"] == "ingress");
}

#[test]
fn source_outside_allowed_cidrs_is_dropped_without_an_answer() {
    let g = Guest::start(&plan("ingress"));
    let r = g.get("/x", "");
    assert_eq!(r.raw_len, 0, "not a byte is answered");
    g.audit(|v| {
        v["event"] == "firewall_drop"
            && v["reason"] == "ingress"
            && v["src"].as_str().is_some_and(|s| s.starts_with("127.0.0.1:"))
    });
}

// ---- rate limits and slow senders -------------------------------------------------------

#[test]
fn rate_limit_is_429_with_retry_after() {
    let g = Guest::start(&plan("rate_limit"));
    // Two requests fit the burst; a third within the same second does not (one token per second).
    assert_eq!(g.get("/x", "").status, 200);
    assert_eq!(g.get("/x", "").status, 200);
    let r = g.get("/x", "");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
}

#[test]
fn slow_header_sender_is_cut_off() {
    let g = Guest::start(&plan("header_timeout"));
    let mut stream = std::net::TcpStream::connect(g.addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
    std::io::Write::write_all(&mut stream, b"GET /x HTTP/1.1\r\nHost: api\r\nX-Slow: ").unwrap();
    // The head never completes: the runtime closes the connection on its own, without an
    // answer, well before the read timeout of the test.
    let r = common::read_reply(&mut stream);
    assert_eq!((r.status, r.raw_len), (0, 0));
    g.audit(|v| v["event"] == "firewall_drop" && v["reason"] == "header_timeout");
}
