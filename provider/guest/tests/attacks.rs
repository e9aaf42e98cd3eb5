//! The attack suite: the runtime as a host process on 127.0.0.1, in front of a real upstream,
//! one test per attack. Every request is written as raw bytes, so what is tested is what an
//! attacker can send.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::{FIXED_BODY, Guest, plan, upstream};
use p256::ecdsa::signature::Signer;
use p256::pkcs8::{EncodePublicKey, LineEnding};
use plan::{
    AuditEvent, AuthenticationPlan, Credential, EnforcementPlan, JwtAlgorithm, JwtPlan, KeyKind, PasswordHash,
    PrincipalPlan, Scheme, TokenSha256,
};
use sha2::{Digest, Sha256};

// The plans come from the documents in tests/policies (`plan("rbac")` is rbac.yaml's):
// `rbac` lets anyone GET /public/**, admin do anything, reader GET and HEAD; `firewall`
// allows GET, HEAD and POST, denies /admin/**, and limits bodies to 1024 and heads to 2048
// bytes; `…_audit` adds the default audit (authn_failure, authz_deny, firewall_drop).

const READER_TOKEN: &str = "reader-token-0123456789";
const ADMIN_TOKEN: &str = "admin-token-9876543210";

fn principal(name: &str, credential: Credential, roles: &[&str]) -> PrincipalPlan {
    PrincipalPlan { name: name.into(), credential, roles: roles.iter().map(|r| (*r).to_owned()).collect() }
}

fn with_auth(
    mut p: EnforcementPlan,
    scheme: Scheme,
    principals: Vec<PrincipalPlan>,
    jwt: Option<JwtPlan>,
) -> EnforcementPlan {
    p.runtime.authentication = Some(AuthenticationPlan { scheme, realm: "shop".into(), principals, jwt });
    p
}

fn token_hash(token: &str) -> Credential {
    Credential::TokenSha256(TokenSha256(format!("{:x}", Sha256::digest(token))))
}

fn bearer_guest() -> Guest {
    let principals = vec![
        principal("ops", token_hash(ADMIN_TOKEN), &["admin"]),
        principal("reporting", token_hash(READER_TOKEN), &["reader"]),
    ];
    Guest::start(&with_auth(plan("rbac_firewall_audit"), Scheme::Bearer, principals, None))
}

fn basic_guest() -> Guest {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(1024, 1, 1, None).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap();
    let alice = argon.hash_password(b"alice-secret", &salt).unwrap().to_string();
    let bob = bcrypt::hash("bob-secret", 4).unwrap();
    let principals = vec![
        principal("alice", Credential::PasswordHash(PasswordHash(alice)), &["admin"]),
        principal("bob", Credential::PasswordHash(PasswordHash(bob)), &["reader"]),
    ];
    Guest::start(&with_auth(plan("rbac"), Scheme::Basic, principals, None))
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// A fresh ES256 key pair: the signing key, and the public key as the plan holds it.
fn es256_key() -> (p256::ecdsa::SigningKey, String) {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    let key = p256::ecdsa::SigningKey::from_slice(&seed).unwrap();
    let pem = key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    (key, pem)
}

fn jwt(key: &p256::ecdsa::SigningKey, claims: &serde_json::Value) -> String {
    let input = format!("{}.{}", b64url(br#"{"alg":"ES256","typ":"JWT"}"#), b64url(claims.to_string().as_bytes()));
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64url(&signature.to_bytes()))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn jwt_guest(public_pem: &str) -> Guest {
    let credential =
        Credential::PublicKey { algorithm: JwtAlgorithm::Es256, kind: KeyKind::EcP256, pem: public_pem.into() };
    let settings = JwtPlan {
        issuer: Some("https://id.example".into()),
        audience: Some("shop-api".into()),
        roles_claim: "groups".into(),
        role_map: [("shop-admins".to_owned(), "admin".to_owned()), ("shop-readers".to_owned(), "reader".to_owned())]
            .into(),
        leeway_seconds: 5,
    };
    Guest::start(&with_auth(plan("rbac"), Scheme::Jwt, vec![principal("idp", credential, &[])], Some(settings)))
}

fn claims(groups: &[&str]) -> serde_json::Value {
    serde_json::json!({ "iss": "https://id.example", "aud": "shop-api", "exp": now() + 300, "sub": "u1", "groups": groups })
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

// ---- authentication: bearer -------------------------------------------------------------

#[test]
fn bearer_missing_token_is_401_with_a_challenge() {
    let g = bearer_guest();
    let r = g.get("/api/items", "");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"shop\""));
}

#[test]
fn bearer_malformed_token_is_401() {
    let g = bearer_guest();
    for h in [
        "Authorization: Bearer\r\n",
        "Authorization: Bearer a b\r\n",
        "Authorization: Bearer tok\"en\r\n",
        "Authorization: Token x\r\n",
    ] {
        let r = g.get("/api/items", h);
        assert_eq!(r.status, 401, "{h}");
        assert!(r.header("www-authenticate").is_some_and(|c| c.starts_with("Bearer realm=\"shop\"")), "{h}");
    }
}

#[test]
fn bearer_wrong_token_is_401() {
    let g = bearer_guest();
    let r = g.get("/api/items", &bearer("reader-token-0123456788"));
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"shop\", error=\"invalid_token\""));
    let two = format!("{}{}", bearer(READER_TOKEN), bearer(ADMIN_TOKEN));
    assert_eq!(g.get("/api/items", &two).status, 401, "two credentials are ambiguous");
}

#[test]
fn bearer_right_token_passes_with_the_principal() {
    let g = bearer_guest();
    let r = g.get("/api/items", &bearer(READER_TOKEN));
    assert_eq!(r.status, 200);
    let headers = &r.json()["headers"];
    assert!(
        headers.as_array().unwrap().iter().any(|h| h[0] == "x-sdsec-principal" && h[1] == "reporting"),
        "{headers}"
    );
}

// ---- authentication: basic --------------------------------------------------------------

#[test]
fn basic_missing_credentials_is_401_with_a_challenge() {
    let g = basic_guest();
    let r = g.get("/api/items", "");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"shop\", charset=\"UTF-8\""));
}

#[test]
fn basic_malformed_credentials_are_401() {
    let g = basic_guest();
    for h in ["Authorization: Basic !!!\r\n", "Authorization: Basic YWxpY2U=\r\n", "Authorization: Basic\r\n"] {
        assert_eq!(g.get("/api/items", h).status, 401, "{h}");
    }
}

#[test]
fn basic_wrong_password_or_user_is_401() {
    let g = basic_guest();
    assert_eq!(g.get("/api/items", &basic("alice", "alice-secreT")).status, 401);
    assert_eq!(g.get("/api/items", &basic("bob", "bob-secret-but-longer")).status, 401);
    assert_eq!(g.get("/api/items", &basic("mallory", "alice-secret")).status, 401);
}

#[test]
fn basic_right_password_passes_for_argon2_and_bcrypt() {
    let g = basic_guest();
    for _ in 0..2 {
        // The second round is answered from the verification cache.
        assert_eq!(g.get("/api/items", &basic("alice", "alice-secret")).status, 200);
        assert_eq!(g.get("/api/items", &basic("bob", "bob-secret")).status, 200);
    }
}

// ---- authentication: jwt ----------------------------------------------------------------

#[test]
fn jwt_missing_token_is_401() {
    let (_, public) = es256_key();
    let g = jwt_guest(&public);
    let r = g.get("/api/items", "");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"shop\""));
}

#[test]
fn jwt_malformed_token_is_401() {
    let (key, public) = es256_key();
    let g = jwt_guest(&public);
    let good = jwt(&key, &claims(&["shop-readers"]));
    let unsigned =
        format!("{}.{}.", b64url(br#"{"alg":"none"}"#), b64url(claims(&["shop-admins"]).to_string().as_bytes()));
    for token in ["abc", "a.b", &good[..good.len() / 2], &unsigned, "e30.e30.e30"] {
        assert_eq!(g.get("/api/items", &bearer(token)).status, 401, "{token}");
    }
}

#[test]
fn jwt_wrong_key_expired_or_other_audience_is_401() {
    let (key, public) = es256_key();
    let (other_key, _) = es256_key();
    let g = jwt_guest(&public);
    let mut expired = claims(&["shop-readers"]);
    expired["exp"] = (now() - 3600).into();
    let mut audience = claims(&["shop-readers"]);
    audience["aud"] = "another-api".into();
    let mut no_exp = claims(&["shop-readers"]);
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut issuer = claims(&["shop-readers"]);
    issuer["iss"] = "https://evil.example".into();
    for (what, token) in [
        ("signed by another key", jwt(&other_key, &claims(&["shop-readers"]))),
        ("expired", jwt(&key, &expired)),
        ("other audience", jwt(&key, &audience)),
        ("no exp", jwt(&key, &no_exp)),
        ("other issuer", jwt(&key, &issuer)),
    ] {
        let r = g.get("/api/items", &bearer(&token));
        assert_eq!(r.status, 401, "{what}");
        assert!(r.header("www-authenticate").is_some_and(|c| c.contains("invalid_token")), "{what}");
    }
}

#[test]
fn jwt_roles_come_from_mapped_claims() {
    let (key, public) = es256_key();
    let g = jwt_guest(&public);
    assert_eq!(g.get("/api/items", &bearer(&jwt(&key, &claims(&["shop-readers"])))).status, 200);
    let post = |token: &str| {
        g.send(
            format!(
                "POST /api/items HTTP/1.1\r\nHost: api\r\n{}Content-Length: 0\r\nConnection: close\r\n\r\n",
                bearer(token)
            )
            .as_bytes(),
        )
    };
    assert_eq!(post(&jwt(&key, &claims(&["shop-readers"]))).status, 403, "readers may not POST");
    assert_eq!(post(&jwt(&key, &claims(&["shop-admins"]))).status, 200, "admins may");
    assert_eq!(post(&jwt(&key, &claims(&["admin"]))).status, 403, "unmapped claim values give no role");
}

// ---- authorization and the HTTP firewall ------------------------------------------------

#[test]
fn insufficient_role_is_403() {
    let g = bearer_guest();
    let r = g.send(
        format!("DELETE /api/items/1 HTTP/1.1\r\nHost: api\r\n{}Connection: close\r\n\r\n", bearer(READER_TOKEN))
            .as_bytes(),
    );
    // DELETE is not even an allowed method; POST is, but not for readers.
    assert_eq!(r.status, 405);
    let r = g.send(
        format!(
            "POST /api/items HTTP/1.1\r\nHost: api\r\n{}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}",
            bearer(READER_TOKEN)
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 403);
    g.audit(|v| v["event"] == "authz_deny" && v["principal"] == "reporting" && v["status"] == 403);
}

#[test]
fn anonymous_requests_get_only_what_rules_without_roles_give() {
    let g = bearer_guest();
    // /public/** is allowed to anyone, but the scheme still wants a token first.
    assert_eq!(g.get("/public/x", "").status, 401);
    let open = Guest::start(&plan("rbac"));
    assert_eq!(open.get("/public/x", "").status, 200);
    assert_eq!(open.get("/api/items", "").status, 403);
}

#[test]
fn disallowed_method_is_405_with_allow() {
    let g = bearer_guest();
    let r = g.send(
        format!(
            "PUT /api/items HTTP/1.1\r\nHost: api\r\n{}Content-Length: 0\r\nConnection: close\r\n\r\n",
            bearer(ADMIN_TOKEN)
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
}

#[test]
fn denied_path_is_403_even_for_admins() {
    let g = bearer_guest();
    assert_eq!(g.get("/admin", &bearer(ADMIN_TOKEN)).status, 403);
    assert_eq!(g.get("/admin/users", &bearer(ADMIN_TOKEN)).status, 403);
    assert_eq!(g.get("/administrator", &bearer(ADMIN_TOKEN)).status, 200, "a glob segment is matched whole");
}

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

// ---- audit ------------------------------------------------------------------------------

#[test]
fn audit_lines_are_emitted_and_hold_no_secrets() {
    let mut p = plan("audit_every_event");
    p.runtime.authentication = Some(AuthenticationPlan {
        scheme: Scheme::Bearer,
        realm: "shop".into(),
        principals: vec![principal("reporting", token_hash(READER_TOKEN), &["reader"])],
        jwt: None,
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
