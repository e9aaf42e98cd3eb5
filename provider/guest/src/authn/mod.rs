//! Authentication: who sends a request, per the plan's scheme.

mod basic;
mod bearer;
mod jwt;

use std::collections::BTreeSet;
use std::sync::Arc;

use http::HeaderValue;
use http::header::{AUTHORIZATION, HeaderMap};
use plan::{AuthenticationPlan, Scheme};

/// Someone who proved who they are, with the roles they hold for this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub roles: BTreeSet<String>,
    /// What the application is told, made once with the principal rather than per request:
    /// the name, and the roles sorted and comma-separated. `None` when not a valid header
    /// value (left out rather than sent mangled).
    pub name_header: Option<HeaderValue>,
    pub roles_header: Option<HeaderValue>,
}

impl Principal {
    pub fn new(name: String, roles: BTreeSet<String>) -> Self {
        let name_header = HeaderValue::from_str(&name).ok();
        let list: Vec<&str> = roles.iter().map(String::as_str).collect();
        let roles_header = HeaderValue::from_str(&list.join(",")).ok();
        Self { name, roles, name_header, roles_header }
    }
}

/// Why a request is not authenticated. Answered 401; the reason goes to the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthnError {
    #[error("no credentials")]
    Missing,
    #[error("malformed credentials")]
    Malformed,
    #[error("wrong credentials")]
    Wrong,
    #[error("the credential could not be checked")]
    Unavailable,
}

impl AuthnError {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing_credentials",
            Self::Malformed => "malformed_credentials",
            Self::Wrong => "wrong_credentials",
            Self::Unavailable => "verifier_unavailable",
        }
    }
}

/// A plan's authentication that this runtime cannot enforce.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("principal `{0}` has no credential of the {1} scheme")]
    WrongCredential(String, Scheme),
    #[error("principal `{0}` has an unusable password hash: {1}")]
    PasswordHash(String, String),
    #[error("principal `{0}` has a token hash that is not 64 hex digits")]
    TokenHash(String),
    #[error("principal `{0}` has an unusable public key: {1}")]
    PublicKey(String, String),
    #[error("the realm `{0}` cannot be written in a WWW-Authenticate header")]
    Realm(String),
}

#[derive(Debug)]
enum Verifier {
    Basic(basic::Basic),
    Bearer(bearer::Bearer),
    Jwt(jwt::Jwt),
}

/// The compiled authentication of a plan.
#[derive(Debug)]
pub struct Authenticator {
    verifier: Verifier,
    /// Sent with every 401: the scheme and realm to authenticate with.
    challenge: HeaderValue,
    /// Sent when a token was given but refused (RFC 6750 `invalid_token`).
    challenge_invalid: HeaderValue,
}

fn principal_of(p: &plan::PrincipalPlan) -> Arc<Principal> {
    Arc::new(Principal::new(p.name.clone(), p.roles.iter().cloned().collect()))
}

impl Authenticator {
    pub fn new(plan: &AuthenticationPlan) -> Result<Self, ConfigError> {
        let realm = plan.realm.replace('\\', "\\\\").replace('"', "\\\"");
        let header = |s: String| HeaderValue::try_from(s).map_err(|_| ConfigError::Realm(plan.realm.clone()));
        let (verifier, challenge, challenge_invalid) = match plan.scheme {
            Scheme::Basic => {
                let c = header(format!("Basic realm=\"{realm}\", charset=\"UTF-8\""))?;
                (Verifier::Basic(basic::Basic::new(&plan.principals)?), c.clone(), c)
            }
            Scheme::Bearer => (
                Verifier::Bearer(bearer::Bearer::new(&plan.principals)?),
                header(format!("Bearer realm=\"{realm}\""))?,
                header(format!("Bearer realm=\"{realm}\", error=\"invalid_token\""))?,
            ),
            Scheme::Jwt => (
                Verifier::Jwt(jwt::Jwt::new(&plan.principals, plan.jwt.as_ref())?),
                header(format!("Bearer realm=\"{realm}\""))?,
                header(format!("Bearer realm=\"{realm}\", error=\"invalid_token\""))?,
            ),
        };
        Ok(Self { verifier, challenge, challenge_invalid })
    }

    /// The `WWW-Authenticate` value for a refusal.
    pub fn challenge(&self, error: AuthnError) -> HeaderValue {
        if matches!(error, AuthnError::Missing) { self.challenge.clone() } else { self.challenge_invalid.clone() }
    }

    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Principal>, AuthnError> {
        let (scheme, credentials) = credentials(headers)?;
        match &self.verifier {
            Verifier::Basic(b) if scheme.eq_ignore_ascii_case("basic") => b.verify(credentials).await,
            Verifier::Bearer(b) if scheme.eq_ignore_ascii_case("bearer") => b.verify(credentials),
            Verifier::Jwt(j) if scheme.eq_ignore_ascii_case("bearer") => j.verify(credentials),
            // Credentials of another scheme prove nothing here.
            _ => Err(AuthnError::Malformed),
        }
    }
}

/// The single `Authorization` header, split into scheme and credentials.
fn credentials(headers: &HeaderMap) -> Result<(&str, &str), AuthnError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthnError::Missing)?;
    if values.next().is_some() {
        // Two credentials: which one would the application believe?
        return Err(AuthnError::Malformed);
    }
    let text = value.to_str().map_err(|_| AuthnError::Malformed)?;
    let (scheme, rest) = text.trim().split_once(' ').ok_or(AuthnError::Malformed)?;
    let rest = rest.trim_start_matches(' ');
    if rest.is_empty() {
        return Err(AuthnError::Malformed);
    }
    Ok((scheme, rest))
}

/// RFC 6750 `b64token`: the only characters a bearer token may have.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}
