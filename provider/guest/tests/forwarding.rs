//! What reaches the application and what comes back: answers unchanged, hop-by-hop and
//! identity headers, credentials.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::auth::*;
use common::{FIXED_BODY, Guest, plan, upstream};

// ---- what passes ------------------------------------------------------------------------

#[test]
fn allowed_requests_get_the_upstream_answer_unchanged() {
    let g = Guest::start(&plan("firewall"));
    let raw = b"GET /fixed HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n";
    let direct = common::send(upstream().addr, raw);
    let proxied = g.send(raw);
    assert_eq!(proxied.status, 203);
    assert_eq!(proxied.body, FIXED_BODY);
    assert_eq!(proxied.body, direct.body);
    let end_to_end = |r: &common::Reply| {
        let mut h: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("connection"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        h.sort();
        h
    };
    assert_eq!(end_to_end(&proxied), end_to_end(&direct));
}

#[test]
fn spoofed_principal_header_is_stripped() {
    let g = Guest::start(&plan("firewall"));
    let r = g.get("/x", "X-Sdsec-Principal: admin\r\nx-sdsec-principal: root\r\n");
    assert_eq!(r.status, 200);
    let headers = r.json()["headers"].to_string();
    assert!(!headers.contains("x-sdsec-principal"), "{headers}");
}

#[test]
fn hop_by_hop_headers_are_not_forwarded() {
    let g = Guest::start(&plan("firewall"));
    let r = g.get("/x", "Connection: X-Secret-Hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-End: 2\r\n");
    let headers = r.json()["headers"].to_string();
    assert!(!headers.contains("x-secret-hop") && !headers.contains("keep-alive"), "{headers}");
    assert!(headers.contains("x-end"), "{headers}");
}

#[test]
fn a_plan_of_another_format_is_refused_at_start() {
    let mut json: serde_json::Value = serde_json::to_value(plan("firewall")).unwrap();
    json["format"] = 99.into();
    let err = Guest::start_json(&json.to_string()).err().expect("must not start");
    assert!(err.contains("format 99") && err.contains("format 1 only"), "{err}");
}

#[test]
fn keep_alive_requests_are_each_judged() {
    let g = Guest::start(&plan("firewall"));
    let r =
        g.send(b"GET /x HTTP/1.1\r\nHost: api\r\n\r\nGET /admin HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n");
    // Two answers on one connection: the first forwarded, the second refused.
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("HTTP/1.1 403"), "{text}");
}

/// The values of header `name` the application received (names compared lower-case).
fn received(r: &common::Reply, name: &str) -> Vec<String> {
    let headers = r.json()["headers"].as_array().cloned().unwrap_or_default();
    headers.iter().filter(|h| h[0] == name).map(|h| h[1].as_str().unwrap_or_default().to_owned()).collect()
}

fn names_received(r: &common::Reply) -> Vec<String> {
    let headers = r.json()["headers"].as_array().cloned().unwrap_or_default();
    headers.iter().map(|h| h[0].as_str().unwrap_or_default().to_owned()).collect()
}

#[test]
fn credentials_are_not_forwarded_but_the_principal_and_roles_are() {
    let g = bearer_guest();
    let r = g.get("/api/items", &bearer(READER_TOKEN));
    assert_eq!(r.status, 200);
    assert_eq!(received(&r, "authorization"), Vec::<String>::new(), "the token stays with the runtime");
    assert_eq!(received(&r, "x-sdsec-principal"), ["reporting"]);
    assert_eq!(received(&r, "x-sdsec-roles"), ["reader"]);
    let all = String::from_utf8_lossy(&r.body).into_owned();
    assert!(!all.contains(READER_TOKEN), "{all}");
}

#[test]
fn forward_credentials_passes_the_authorization_header_on() {
    let principals = vec![principal("ops", token_hash(ADMIN_TOKEN), &["reader", "admin"])];
    let mut p = with_auth(plan("rbac_firewall_audit"), plan::Scheme::Bearer, principals, None);
    if let Some(a) = p.runtime.authentication.as_mut() {
        a.forward_credentials = true;
    }
    let g = Guest::start(&p);
    let r = g.get("/api/items", &bearer(ADMIN_TOKEN));
    assert_eq!(received(&r, "authorization"), [format!("Bearer {ADMIN_TOKEN}")]);
    assert_eq!(received(&r, "x-sdsec-roles"), ["admin,reader"], "sorted, comma-separated");
}

#[test]
fn spoofed_identity_headers_never_reach_the_application() {
    let g = Guest::start(&plan("firewall"));
    let spoofed = "X-Sdsec-Principal: admin\r\nx-sdsec-principal: root\r\nX_Sdsec_Principal: admin\r\n\
                   x_sdsec_roles: admin\r\nX-SDSEC-ROLES: admin\r\nX-Sdsec-Whatever: 1\r\n";
    let r = g.get("/x", spoofed);
    assert_eq!(r.status, 200);
    let names = names_received(&r);
    assert!(!names.iter().any(|n| n.replace('_', "-").starts_with("x-sdsec-")), "{names:?}");
}

#[test]
fn forwarding_headers_are_the_runtimes_own() {
    let g = Guest::start(&plan("firewall"));
    let spoofed = "X-Forwarded-For: 10.9.9.9\r\nX_Forwarded_For: 10.9.9.9\r\nX-Real-IP: 10.9.9.9\r\n\
                   x_real_ip: 10.9.9.9\r\nForwarded: for=10.9.9.9\r\nX-Forwarded-Host: evil.example\r\n\
                   X-Forwarded-Proto: https\r\n";
    let r = g.get("/x", spoofed);
    assert_eq!(r.status, 200);
    assert_eq!(received(&r, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(received(&r, "x-real-ip"), ["127.0.0.1"]);
    assert_eq!(received(&r, "forwarded"), ["for=127.0.0.1;proto=http"]);
    assert_eq!(received(&r, "x-forwarded-proto"), ["http"]);
    let names = names_received(&r);
    for gone in ["x_forwarded_for", "x_real_ip", "x-forwarded-host"] {
        assert!(!names.iter().any(|n| n == gone), "{gone} reached the application: {names:?}");
    }
}

#[test]
fn method_overrides_are_stripped() {
    let g = Guest::start(&plan("firewall"));
    let r = g.send(
        b"POST /x HTTP/1.1\r\nHost: api\r\nX-HTTP-Method-Override: DELETE\r\nX-Method-Override: PUT\r\n\
          X_HTTP_Method_Override: DELETE\r\nX-HTTP-Method: DELETE\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let names = names_received(&r);
    assert!(!names.iter().any(|n| n.contains("method")), "{names:?}");
}
