//! HTTP Basic with argon2 (PHC) or bcrypt (MCF) password hashes.
//!
//! A password hash is slow on purpose (argon2 with the recommended parameters takes tens of
//! milliseconds and tens of MiB), so successful verifications are cached under a keyed hash
//! of the credential, and verifications run on blocking threads, a few at a time: a flood of
//! wrong passwords queues up instead of exhausting memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use argon2::PasswordVerifier;
use base64::Engine as _;
use plan::{Credential, PrincipalPlan, Scheme};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::{AuthnError, ConfigError, Principal, principal_of};

/// Successful verifications remembered; past this the cache starts over.
const CACHE_ENTRIES: usize = 1024;

#[derive(Debug, Clone)]
enum Hash {
    Argon2(String),
    Bcrypt(String),
}

impl Hash {
    fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("$argon2") {
            argon2::PasswordHash::new(text).map_err(|e| e.to_string())?;
            Ok(Self::Argon2(text.to_owned()))
        } else if text.starts_with("$2") {
            // Parsed, not verified against a dummy password: a verification costs what the
            // hash's cost says (seconds under TCG at cost 12), and every start paid it.
            let parts: bcrypt::HashParts = text.parse().map_err(|e: bcrypt::BcryptError| e.to_string())?;
            if !(4..=31).contains(&parts.get_cost()) {
                return Err(format!("bcrypt cost {} is outside 4-31", parts.get_cost()));
            }
            Ok(Self::Bcrypt(text.to_owned()))
        } else {
            Err("neither argon2 nor bcrypt".into())
        }
    }

    fn verify(&self, password: &[u8]) -> bool {
        match self {
            Self::Argon2(phc) => argon2::PasswordHash::new(phc)
                .is_ok_and(|h| argon2::Argon2::default().verify_password(password, &h).is_ok()),
            // Refuses passwords past bcrypt's 72 bytes instead of checking only their start.
            Self::Bcrypt(mcf) => bcrypt::non_truncating_verify(password, mcf).unwrap_or(false),
        }
    }
}

#[derive(Debug)]
pub struct Basic {
    users: HashMap<String, (Hash, Arc<Principal>)>,
    /// Verified against when the user is unknown, so that costs as much as a wrong password.
    decoy: Option<Hash>,
    cache: Mutex<HashMap<[u8; 32], Arc<Principal>>>,
    /// Keys the cache: a memory dump does not give hashes cheap enough to guess against.
    cache_key: [u8; 32],
    verifying: Arc<Semaphore>,
}

impl Basic {
    pub fn new(principals: &[PrincipalPlan]) -> Result<Self, ConfigError> {
        let mut users = HashMap::new();
        for p in principals {
            let Credential::PasswordHash(h) = &p.credential else {
                return Err(ConfigError::WrongCredential(p.name.clone(), Scheme::Basic));
            };
            let hash = Hash::parse(&h.0).map_err(|e| ConfigError::PasswordHash(p.name.clone(), e))?;
            users.insert(p.name.clone(), (hash, principal_of(p)));
        }
        let mut cache_key = [0u8; 32];
        // Without randomness the key is fixed; the cache is still bounded and correct.
        let _ = getrandom::fill(&mut cache_key);
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            decoy: users.values().next().map(|(h, _)| h.clone()),
            users,
            cache: Mutex::new(HashMap::new()),
            cache_key,
            verifying: Arc::new(Semaphore::new(parallel)),
        })
    }

    pub async fn verify(&self, credentials: &str) -> Result<Arc<Principal>, AuthnError> {
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(credentials).map_err(|_| AuthnError::Malformed)?;
        let colon = decoded.iter().position(|b| *b == b':').ok_or(AuthnError::Malformed)?;
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let user = std::str::from_utf8(user).map_err(|_| AuthnError::Malformed)?;

        let key: [u8; 32] = Sha256::new()
            .chain_update(self.cache_key)
            .chain_update((user.len() as u64).to_be_bytes())
            .chain_update(user)
            .chain_update(password)
            .finalize()
            .into();
        if let Some(p) = self.cache.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return Ok(Arc::clone(p));
        }

        let known = self.users.get(user);
        let Some(hash) = known.map(|(h, _)| h.clone()).or_else(|| self.decoy.clone()) else {
            return Err(AuthnError::Wrong);
        };
        let permit = Arc::clone(&self.verifying).acquire_owned().await.map_err(|_| AuthnError::Unavailable)?;
        let password = password.to_vec();
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hash.verify(&password)
        })
        .await
        .map_err(|_| AuthnError::Unavailable)?;

        match known {
            Some((_, principal)) if ok => {
                let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
                if cache.len() >= CACHE_ENTRIES {
                    cache.clear();
                }
                cache.insert(key, Arc::clone(principal));
                Ok(Arc::clone(principal))
            }
            _ => Err(AuthnError::Wrong),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOB: &str = "$2b$12$lLmc2Vbep9M.Yg8QIxPTwO3xKeVkyf6Ii/12raY8NOc6C6vdyi//m";

    #[test]
    fn bcrypt_hashes_are_checked_by_their_form() {
        assert!(matches!(Hash::parse(BOB), Ok(Hash::Bcrypt(_))));
        for bad in [
            "$2b$99$lLmc2Vbep9M.Yg8QIxPTwO3xKeVkyf6Ii/12raY8NOc6C6vdyi//m",
            "$2b$03$lLmc2Vbep9M.Yg8QIxPTwO3xKeVkyf6Ii/12raY8NOc6C6vdyi//m",
            "$2b$12$short",
            "$2q$12$lLmc2Vbep9M.Yg8QIxPTwO3xKeVkyf6Ii/12raY8NOc6C6vdyi//m",
        ] {
            assert!(Hash::parse(bad).is_err(), "{bad}");
        }
        let bob = Hash::parse(BOB).unwrap();
        assert!(bob.verify(b"demo-bob-password"));
        assert!(!bob.verify(b"demo-bob-passwore"));
    }
}
