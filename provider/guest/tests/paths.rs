//! Attacks on the request target: path bypasses of deny rules, encodings, the health path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::auth::*;
use common::{Guest, plan};

macro_rules! bypass {
    ($name:ident, $target:literal) => {
        #[test]
        fn $name() {
            let g = bearer_guest();
            let r = g.get($target, &bearer(ADMIN_TOKEN));
            // The echo would have answered 200: the request never reached the application.
            assert_eq!(r.status, 403, "{} must be refused like /admin/**", $target);
            assert_eq!(r.header("x-upstream"), None);
        }
    };
}

bypass!(bypass_dot_dot_is_403, "/admin/../admin");
bypass!(bypass_percent_encoded_letter_is_403, "/%61dmin");
bypass!(bypass_double_slash_is_403, "//admin");
bypass!(bypass_dot_segment_is_403, "/admin/./x");
bypass!(bypass_encoded_dot_dot_is_403, "/public/%2e%2e/admin");
bypass!(bypass_encoded_dot_dot_upper_is_403, "/%2E%2E/admin/x");
bypass!(bypass_trailing_slash_is_403, "/admin/");

#[test]
fn encoded_slash_and_nul_are_400() {
    let g = bearer_guest();
    for target in ["/admin%2fusers", "/x%2F..%2Fadmin", "/admin%00", "/a%5cadmin", "/%252e%252e/admin"] {
        assert_eq!(g.get(target, &bearer(ADMIN_TOKEN)).status, 400, "{target}");
    }
}

#[test]
fn forwarded_path_is_the_normalised_one() {
    let g = bearer_guest();
    let r = g.get("/api//v1/./%69tems/../items?q=%2F&x=1", &bearer(ADMIN_TOKEN));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["target"], "/api/v1/items?q=%2F&x=1");
}

// ---- ingress, quarantine, health --------------------------------------------------------

#[test]
fn quarantine_answers_503_to_everything_but_health() {
    let mut p = plan("firewall");
    p.runtime.quarantine = true;
    let g = Guest::start(&p);
    assert_eq!(g.get("/x", "").status, 503);
    assert_eq!(g.get("/.sdsec/health", "").status, 200);
}

#[test]
fn health_path_answers_without_auth_and_is_never_proxied() {
    let g = bearer_guest();
    let r = g.get("/.sdsec/health", "");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]));
    assert_eq!(r.header("x-upstream"), None, "answered by the runtime, not the application");
    assert_eq!(g.get("//.sdsec/./health", "").status, 200, "normalised like any path");
    assert_eq!(
        g.send(b"POST /.sdsec/health HTTP/1.1\r\nHost: api\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").status,
        405
    );
    assert_eq!(g.get("/.sdsec/other", "").status, 401, "nothing else is answered locally");
}
