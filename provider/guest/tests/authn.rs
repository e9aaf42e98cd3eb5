//! Attacks on authentication and authorization: missing, malformed, wrong and right
//! credentials of each scheme, roles, and what anonymous requests get.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::auth::*;
use common::{Guest, plan};

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

#[test]
fn repeated_failed_authentications_are_429_before_any_hashing() {
    let g = basic_guest();
    // The default: ten failures per source and minute.
    for i in 0..10 {
        assert_eq!(g.get("/api/items", &basic("alice", &format!("guess-{i}"))).status, 401, "guess {i}");
    }
    let r = g.get("/api/items", &basic("alice", "alice-secret"));
    assert_eq!(r.status, 429, "even the right password waits: the source is guessing");
    let wait: u64 = r.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1..=60).contains(&wait), "{r:?}");
    // Requests without credentials (a client asking for the challenge) are not guesses.
    let fresh = basic_guest();
    for _ in 0..12 {
        assert_eq!(fresh.get("/api/items", "").status, 401);
    }
    assert_eq!(fresh.get("/api/items", &basic("alice", "alice-secret")).status, 200);
}

/// A jwt plan without a role map: the roles claim is never read verbatim, so a token
/// that calls itself `admin` gets only the principal's own roles.
#[test]
fn jwt_claims_without_a_role_map_give_no_role() {
    let (key, public) = es256_key();
    let credential =
        plan::Credential::PublicKey { algorithm: plan::JwtAlgorithm::Es256, kind: plan::KeyKind::EcP256, pem: public };
    let settings = plan::JwtPlan {
        issuer: None,
        audience: None,
        roles_claim: "roles".into(),
        role_map: Default::default(),
        leeway_seconds: 5,
    };
    let p = with_auth(plan("rbac"), plan::Scheme::Jwt, vec![principal("idp", credential, &[])], Some(settings));
    let g = Guest::start(&p);
    let token = jwt(&key, &serde_json::json!({ "exp": now() + 300, "roles": ["admin", "reader"] }));
    let post = g.send(
        format!(
            "POST /api/items HTTP/1.1\r\nHost: api\r\n{}Content-Length: 0\r\nConnection: close\r\n\r\n",
            bearer(&token)
        )
        .as_bytes(),
    );
    assert_eq!(post.status, 403, "`admin` in the token is not the admin role");
    assert_eq!(g.get("/api/items", &bearer(&token)).status, 403, "nor `reader`");
    assert_eq!(g.get("/public/x", &bearer(&token)).status, 200, "the token itself is valid (any audience)");
}
