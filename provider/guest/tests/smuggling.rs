//! Attacks on framing: request smuggling, ambiguous lengths, size limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::auth::*;
use common::{Guest, plan};

// ---- size limits ------------------------------------------------------------------------

#[test]
fn oversized_header_is_431() {
    let g = bearer_guest();
    let r = g.get("/api/items", &format!("X-Big: {}\r\n{}", "a".repeat(3000), bearer(ADMIN_TOKEN)));
    assert_eq!(r.status, 431);
}

#[test]
fn oversized_body_with_content_length_is_413() {
    let g = bearer_guest();
    let body = "x".repeat(2000);
    let r = g.send(
        format!(
            "POST /api/items HTTP/1.1\r\nHost: api\r\n{}Content-Length: 2000\r\nConnection: close\r\n\r\n{body}",
            bearer(ADMIN_TOKEN)
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 413);
}

#[test]
fn oversized_chunked_body_is_413_as_it_streams() {
    let g = bearer_guest();
    let chunk = format!("200\r\n{}\r\n", "y".repeat(0x200));
    let r = g.send(
        format!(
            "POST /api/items HTTP/1.1\r\nHost: api\r\n{}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunk}{chunk}{chunk}0\r\n\r\n",
            bearer(ADMIN_TOKEN)
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 413);
    // Under the limit, chunked bodies pass.
    let r = g.send(
        format!("POST /api/items HTTP/1.1\r\nHost: api\r\n{}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunk}0\r\n\r\n", bearer(ADMIN_TOKEN))
            .as_bytes(),
    );
    assert_eq!((r.status, r.json()["body_len"].as_u64()), (200, Some(0x200)));
}

// ---- smuggling and ambiguous requests ---------------------------------------------------

fn assert_400(raw: &str) {
    let g = Guest::start(&plan("firewall"));
    let r = g.send(raw.as_bytes());
    assert_eq!(r.status, 400, "{raw:?}");
}

#[test]
fn smuggling_content_length_and_transfer_encoding_is_400() {
    assert_400(
        "POST /x HTTP/1.1\r\nHost: api\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: api\r\n\r\n",
    );
    assert_400("POST /x HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n");
}

#[test]
fn smuggling_double_content_length_is_400() {
    assert_400("POST /x HTTP/1.1\r\nHost: api\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd");
    assert_400("POST /x HTTP/1.1\r\nHost: api\r\nContent-Length: 4, 40\r\n\r\nabcd");
}

/// Lists and repeats of one value, signs and leading zeros: read differently by other
/// servers on the pooled connection behind, so refused, and the connection closed.
#[test]
fn content_length_lists_and_odd_numbers_are_400_and_close() {
    let g = Guest::start(&plan("firewall"));
    for length in ["5, 5", "5,5", "05", "+5", "-5", "5\r\nContent-Length: 5"] {
        let raw = format!(
            "POST /x HTTP/1.1\r\nHost: api\r\nContent-Length: {length}\r\n\r\nhelloGET /x HTTP/1.1\r\nHost: api\r\n\r\n"
        );
        let r = g.send(raw.as_bytes());
        assert_eq!(r.status, 400, "{length:?}");
        assert_eq!(r.header("connection"), Some("close"), "{length:?}");
        assert_eq!(r.header("x-upstream"), None, "{length:?}");
        let rest = String::from_utf8_lossy(&r.body);
        assert!(!rest.contains("HTTP/1.1 200"), "a request after it was answered: {rest}");
    }
}

#[test]
fn smuggling_transfer_encoding_other_than_chunked_is_400() {
    assert_400("POST /x HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: gzip\r\n\r\nabcd");
    assert_400("POST /x HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n");
    assert_400(
        "POST /x HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
}

#[test]
fn smuggling_obs_fold_is_400() {
    assert_400("GET /x HTTP/1.1\r\nHost: api\r\nX-Folded: a\r\n  b\r\nConnection: close\r\n\r\n");
    assert_400("POST /x HTTP/1.1\r\nHost: api\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n");
}

#[test]
fn invalid_header_bytes_are_400() {
    assert_400("GET /x HTTP/1.1\r\nHost: api\r\nX-Nul: a\0b\r\nConnection: close\r\n\r\n");
    assert_400("GET /x HTTP/1.1\r\nHost: api\r\nBad Name: x\r\nConnection: close\r\n\r\n");
    assert_400("GET /x HTTP/1.1\r\nHost: api\r\nContent-Length : 0\r\nConnection: close\r\n\r\n");
}

#[test]
fn missing_or_double_host_and_foreign_absolute_form_are_400() {
    assert_400("GET /x HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_400("GET /x HTTP/1.1\r\nHost: api\r\nHost: evil\r\nConnection: close\r\n\r\n");
    assert_400("GET http://evil.example/x HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n");
    assert_400("CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n");
}

#[test]
fn absolute_form_for_us_is_accepted() {
    let g = Guest::start(&plan("firewall"));
    let r = g.send(b"GET http://api/x HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.json()["target"].as_str()), (200, Some("/x")));
}
