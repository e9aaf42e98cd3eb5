//! Authentication fixtures: principals, credentials and guests with each scheme.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use p256::ecdsa::signature::Signer;
use p256::pkcs8::{EncodePublicKey, LineEnding};
use plan::{
    AuthenticationPlan, Credential, EnforcementPlan, JwtAlgorithm, JwtPlan, KeyKind, PasswordHash, PrincipalPlan,
    Scheme, TokenSha256,
};
use sha2::{Digest, Sha256};

use super::{Guest, plan};

// The plans come from the documents in tests/policies (`plan("rbac")` is rbac.yaml's):
// `rbac` lets anyone GET /public/**, admin do anything, reader GET and HEAD; `firewall`
// allows GET, HEAD and POST, denies /admin/**, and limits bodies to 1024 and heads to 2048
// bytes; `…_audit` adds the default audit (authn_failure, authz_deny, firewall_drop).

pub const READER_TOKEN: &str = "reader-token-0123456789";
pub const ADMIN_TOKEN: &str = "admin-token-9876543210";

pub fn principal(name: &str, credential: Credential, roles: &[&str]) -> PrincipalPlan {
    PrincipalPlan { name: name.into(), credential, roles: roles.iter().map(|r| (*r).to_owned()).collect() }
}

pub fn with_auth(
    mut p: EnforcementPlan,
    scheme: Scheme,
    principals: Vec<PrincipalPlan>,
    jwt: Option<JwtPlan>,
) -> EnforcementPlan {
    p.runtime.authentication =
        Some(AuthenticationPlan { scheme, realm: "shop".into(), principals, jwt, forward_credentials: false });
    p
}

pub fn token_hash(token: &str) -> Credential {
    Credential::TokenSha256(TokenSha256(format!("{:x}", Sha256::digest(token))))
}

pub fn bearer_guest() -> Guest {
    let principals = vec![
        principal("ops", token_hash(ADMIN_TOKEN), &["admin"]),
        principal("reporting", token_hash(READER_TOKEN), &["reader"]),
    ];
    Guest::start(&with_auth(plan("rbac_firewall_audit"), Scheme::Bearer, principals, None))
}

pub fn basic_guest() -> Guest {
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

pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

pub fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// A fresh ES256 key pair: the signing key, and the public key as the plan holds it.
pub fn es256_key() -> (p256::ecdsa::SigningKey, String) {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    let key = p256::ecdsa::SigningKey::from_slice(&seed).unwrap();
    let pem = key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    (key, pem)
}

pub fn jwt(key: &p256::ecdsa::SigningKey, claims: &serde_json::Value) -> String {
    let input = format!("{}.{}", b64url(br#"{"alg":"ES256","typ":"JWT"}"#), b64url(claims.to_string().as_bytes()));
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64url(&signature.to_bytes()))
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub fn jwt_guest(public_pem: &str) -> Guest {
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

pub fn claims(groups: &[&str]) -> serde_json::Value {
    serde_json::json!({ "iss": "https://id.example", "aud": "shop-api", "exp": now() + 300, "sub": "u1", "groups": groups })
}

pub fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}
