//! JSON Web Tokens signed by a principal's key; claims mapped to roles.
//!
//! A token is tried only against keys of the algorithm its header names, and each key only
//! with the algorithm the plan gives it, so a token cannot pick how it is checked. `exp` is
//! required (a token without one would be valid forever); `iss` and `aud` are required
//! when the plan names them (the compiler requires an audience unless the policy says
//! `audience: any`, written as none). Claim values become roles through the role map only.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use plan::defaults::{DEFAULT_LEEWAY_SECONDS, DEFAULT_ROLES_CLAIM};
use plan::{Credential, JwtAlgorithm, JwtPlan, KeyKind, PrincipalPlan, Scheme};

use super::{AuthnError, ConfigError, Principal};

#[derive(Debug)]
struct Key {
    algorithm: Algorithm,
    key: DecodingKey,
    principal: Arc<Principal>,
    validation: Validation,
}

#[derive(Debug)]
pub struct Jwt {
    keys: Vec<Key>,
    roles_claim: String,
    role_map: BTreeMap<String, String>,
}

fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::Es256 => Algorithm::ES256,
        JwtAlgorithm::Es384 => Algorithm::ES384,
        JwtAlgorithm::Rs256 => Algorithm::RS256,
        JwtAlgorithm::Rs384 => Algorithm::RS384,
        JwtAlgorithm::Rs512 => Algorithm::RS512,
        JwtAlgorithm::Ps256 => Algorithm::PS256,
        JwtAlgorithm::EdDsa => Algorithm::EdDSA,
    }
}

fn decoding_key(kind: KeyKind, pem: &str) -> jsonwebtoken::errors::Result<DecodingKey> {
    match kind {
        KeyKind::EcP256 | KeyKind::EcP384 => DecodingKey::from_ec_pem(pem.as_bytes()),
        KeyKind::Rsa => DecodingKey::from_rsa_pem(pem.as_bytes()),
        KeyKind::Ed25519 => DecodingKey::from_ed_pem(pem.as_bytes()),
    }
}

/// How tokens for keys of `algorithm` are checked. A jwt plan without settings means the
/// documented defaults.
fn validation(algorithm: Algorithm, plan: Option<&JwtPlan>) -> Validation {
    let mut v = Validation::new(algorithm);
    v.leeway = plan.map_or(DEFAULT_LEEWAY_SECONDS, |j| j.leeway_seconds);
    v.validate_exp = true;
    v.validate_nbf = true;
    let mut required = vec!["exp"];
    match plan.and_then(|j| j.issuer.as_ref()) {
        Some(iss) => {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        None => v.iss = None,
    }
    match plan.and_then(|j| j.audience.as_ref()) {
        Some(aud) => {
            v.set_audience(&[aud]);
            required.push("aud");
        }
        // Without an audience in the plan, any audience is accepted.
        None => v.validate_aud = false,
    }
    v.set_required_spec_claims(&required);
    v
}

impl Jwt {
    pub fn new(principals: &[PrincipalPlan], plan: Option<&JwtPlan>) -> Result<Self, ConfigError> {
        let mut keys = Vec::new();
        for p in principals {
            let Credential::PublicKey { algorithm: alg, kind, pem } = &p.credential else {
                return Err(ConfigError::WrongCredential(p.name.clone(), Scheme::Jwt));
            };
            if alg.key_kind() != *kind {
                return Err(ConfigError::PublicKey(p.name.clone(), format!("{alg} does not suit a {kind:?} key")));
            }
            let key = decoding_key(*kind, pem).map_err(|e| ConfigError::PublicKey(p.name.clone(), e.to_string()))?;
            let algorithm = algorithm(*alg);
            keys.push(Key {
                algorithm,
                key,
                principal: super::principal_of(p),
                validation: validation(algorithm, plan),
            });
        }
        Ok(Self {
            keys,
            roles_claim: plan.map_or_else(|| DEFAULT_ROLES_CLAIM.to_owned(), |j| j.roles_claim.clone()),
            role_map: plan.map(|j| j.role_map.clone()).unwrap_or_default(),
        })
    }

    pub fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthnError> {
        if token.split('.').count() != 3 || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            return Err(AuthnError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthnError::Malformed)?;
        for k in self.keys.iter().filter(|k| k.algorithm == header.alg) {
            if let Ok(data) = jsonwebtoken::decode::<serde_json::Value>(token, &k.key, &k.validation) {
                let mut roles: BTreeSet<String> = k.principal.roles.clone();
                roles.extend(self.roles_from(&data.claims));
                return Ok(Arc::new(Principal::new(k.principal.name.clone(), roles)));
            }
        }
        Err(AuthnError::Wrong)
    }

    /// Roles named by the roles claim (a string or a list of strings), through the role map
    /// only. Values of any other type, and values the map does not know, give no role; an
    /// empty map gives none at all.
    fn roles_from(&self, claims: &serde_json::Value) -> Vec<String> {
        let values: Vec<&str> = match claims.get(&self.roles_claim) {
            Some(serde_json::Value::String(s)) => vec![s.as_str()],
            Some(serde_json::Value::Array(items)) => items.iter().filter_map(serde_json::Value::as_str).collect(),
            _ => Vec::new(),
        };
        // Never verbatim: a token naming `admin` is not an admin unless the plan maps it.
        values.into_iter().filter_map(|v| self.role_map.get(v).cloned()).collect()
    }
}
