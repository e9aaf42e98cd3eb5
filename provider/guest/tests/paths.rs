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

// ---- what other servers read differently --------------------------------------------------

#[test]
fn matrix_parameters_are_400() {
    let g = bearer_guest();
    // Servlet containers route these to /admin; the rules would have matched them as written.
    for target in
        ["/admin;x", "/admin;jsessionid=1/users", "/..;/admin", "/public/..;/admin", "/admin%3Bx", "/x%3b/../admin"]
    {
        let r = g.get(target, &bearer(ADMIN_TOKEN));
        assert_eq!(r.status, 400, "{target}");
        assert_eq!(r.header("x-upstream"), None, "{target}");
    }
}

#[test]
fn case_variants_of_denied_paths_are_403() {
    let g = bearer_guest();
    // Many routers (Express by default, IIS, case-insensitive file systems) serve /ADMIN as /admin.
    for target in ["/ADMIN", "/Admin/users", "/aDmIn/", "/%41DMIN"] {
        let r = g.get(target, &bearer(ADMIN_TOKEN));
        assert_eq!(r.status, 403, "{target}");
        assert_eq!(r.header("x-upstream"), None, "{target}");
    }
}

#[test]
fn lower_case_methods_are_400() {
    let g = Guest::start(&plan("firewall"));
    for method in ["get", "Get", "delete", "pOST"] {
        let r = g.send(
            format!("{method} /x HTTP/1.1\r\nHost: api\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 400, "{method}");
        assert_eq!(r.header("x-upstream"), None, "{method}");
    }
}

#[test]
fn http2_prior_knowledge_is_never_forwarded() {
    let g = Guest::start(&plan("firewall"));
    let r = g.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00");
    assert_ne!(r.status, 200);
    assert_eq!(r.header("x-upstream"), None);
    assert!(r.status == 0 || r.status >= 400, "{r:?}");
}

#[test]
fn h2c_and_other_upgrades_are_400() {
    let g = Guest::start(&plan("firewall"));
    let h2c = g.get(
        "/x",
        "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n",
    );
    assert_eq!((h2c.status, h2c.header("x-upstream")), (400, None));
    let settings_only = g.get("/x", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n");
    assert_eq!(settings_only.status, 400);
    let websocket = g.get(
        "/x",
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    );
    assert_eq!((websocket.status, websocket.header("x-upstream")), (400, None));
}

#[test]
fn traversal_out_of_the_health_path_is_judged_like_any_path() {
    let g = bearer_guest();
    for target in ["/.sdsec/health/../../admin", "/.sdsec/health/..%2F..%2Fadmin", "/.sdsec/health/%2e%2e/%2e%2e/admin"]
    {
        let r = g.get(target, "");
        assert!(matches!(r.status, 400 | 401 | 403), "{target}: {}", r.status);
        assert_eq!(r.header("x-upstream"), None, "{target}");
        assert_ne!(r.body, b"ok\n", "{target} answered as the health path");
    }
    // Anything below or beside the health path is not the health path.
    for target in ["/.sdsec/health/..", "/.sdsec/health/x", "/.sdsec/healthz"] {
        let r = g.get(target, "");
        assert_eq!(r.status, 401, "{target}: authentication applies as anywhere");
    }
    assert_eq!(g.get("/.sdsec/health/x/..", "").status, 200, "normalised back to the health path");
}
