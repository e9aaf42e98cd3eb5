//! Bearer tokens, known only by their SHA-256.

use std::sync::Arc;

use plan::{Credential, PrincipalPlan, Scheme};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthnError, ConfigError, Principal, principal_of};

#[derive(Debug)]
pub struct Bearer {
    tokens: Vec<([u8; 32], Arc<Principal>)>,
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.strip_prefix("sha256:").unwrap_or(text);
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

impl Bearer {
    pub fn new(principals: &[PrincipalPlan]) -> Result<Self, ConfigError> {
        let tokens = principals
            .iter()
            .map(|p| match &p.credential {
                Credential::TokenSha256(h) => {
                    decode_hex(&h.0).map(|d| (d, principal_of(p))).ok_or_else(|| ConfigError::TokenHash(p.name.clone()))
                }
                _ => Err(ConfigError::WrongCredential(p.name.clone(), Scheme::Bearer)),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { tokens })
    }

    pub fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthnError> {
        if !super::is_b64token(token) {
            return Err(AuthnError::Malformed);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Every stored hash is compared, in constant time, so timing says nothing about
        // how close a guess came or which principal it was meant for.
        let mut found = None;
        for (hash, principal) in &self.tokens {
            if bool::from(hash.ct_eq(&digest)) {
                found = Some(principal);
            }
        }
        found.cloned().ok_or(AuthnError::Wrong)
    }
}
