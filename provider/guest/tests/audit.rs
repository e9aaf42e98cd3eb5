//! The audit trail: what is written, and that it holds no secrets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::auth::*;
use common::{Guest, plan};
use plan::{AuditEvent, AuthenticationPlan, Scheme};

// ---- audit ------------------------------------------------------------------------------

#[test]
fn audit_lines_are_emitted_and_hold_no_secrets() {
    let mut p = plan("audit_every_event");
    p.runtime.authentication = Some(AuthenticationPlan {
        scheme: Scheme::Bearer,
        realm: "shop".into(),
        principals: vec![principal("reporting", token_hash(READER_TOKEN), &["reader"])],
        jwt: None,
        forward_credentials: false,
    });
    let g = Guest::start(&p);
    let wrong = "guessed-token-secret-42";
    assert_eq!(g.get("/api/items", &bearer(wrong)).status, 401);
    assert_eq!(g.get(&format!("/api/items?access_token={READER_TOKEN}"), &bearer(READER_TOKEN)).status, 200);
    assert_eq!(
        g.send(
            format!(
                "POST /api/x HTTP/1.1\r\nHost: api\r\n{}Content-Length: 0\r\nConnection: close\r\n\r\n",
                bearer(READER_TOKEN)
            )
            .as_bytes()
        )
        .status,
        403
    );
    let failure = g.audit(|v| v["event"] == "authn_failure");
    assert_eq!((failure["status"].as_u64(), failure["reason"].as_str()), (Some(401), Some("wrong_credentials")));
    assert!(
        failure["src"].as_str().is_some_and(|s| s.starts_with("127.0.0.1:"))
            && failure["ts"].as_str().is_some_and(|t| t.ends_with('Z'))
    );
    let ok = g.audit(|v| v["event"] == "request" && v["status"] == 200);
    assert_eq!(
        (ok["principal"].as_str(), ok["path"].as_str(), ok["method"].as_str()),
        (Some("reporting"), Some("/api/items"), Some("GET"))
    );
    g.audit(|v| v["event"] == "authz_deny" && v["principal"] == "reporting");
    let all = g.seen.lock().unwrap().join("\n");
    for secret in [wrong, READER_TOKEN] {
        assert!(!all.contains(secret), "a secret is in the audit log:\n{all}");
    }
}

#[test]
fn unlisted_audit_events_are_not_written() {
    let mut p = plan("firewall");
    p.runtime.audit.events = vec![AuditEvent::FirewallDrop];
    let g = Guest::start(&p);
    assert_eq!(g.get("/x", "").status, 200);
    assert_eq!(g.send(b"PUT /x HTTP/1.1\r\nHost: api\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").status, 405);
    let line = g.audit(|v| v["event"] != "ready");
    assert_eq!((line["event"].as_str(), line["reason"].as_str()), (Some("firewall_drop"), Some("method_not_allowed")));
}
