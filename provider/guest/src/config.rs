//! The plan, read and checked, and compiled into what requests are judged against.

use std::path::Path;
use std::time::Duration;

use http::HeaderValue;
use plan::{EnforcementPlan, PLAN_FORMAT, RuntimePlan};

use crate::authn::{self, Authenticator};
use crate::ratelimit::{FailureLimiter, RateLimiter};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the plan {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the plan {path} is not a JSON object with a `format`: {source}")]
    NotAPlan { path: String, source: serde_json::Error },
    #[error(
        "the plan {path} has format {found}, but this runtime understands format {PLAN_FORMAT} only: \
         build the image with the sdsec that compiled the plan"
    )]
    Format { path: String, found: u64 },
    #[error("the plan {path} is not a valid format {PLAN_FORMAT} plan: {source}")]
    Invalid { path: String, source: serde_json::Error },
    #[error(transparent)]
    Authentication(#[from] authn::ConfigError),
    #[error("the health path `{0}` is not a normalised absolute path")]
    HealthPath(String),
    #[error("principal name `{0}` cannot be sent in the X-Sdsec-Principal header")]
    PrincipalName(String),
    #[error("{0} is too large for this machine")]
    Limit(&'static str),
}

/// Reads a plan: the canonical JSON of one node's enforcement plan.
pub fn load_plan(path: &Path) -> Result<EnforcementPlan, ConfigError> {
    read_plan(path).map(|(plan, _)| plan)
}

/// [`load_plan`], and the file's text.
pub fn read_plan(path: &Path) -> Result<(EnforcementPlan, String), ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
    Ok((parse_plan(&shown, &text)?, text))
}

/// Parses a plan, checking its format first: a newer plan would otherwise fail on some
/// unknown field, which says nothing about the real problem.
pub fn parse_plan(name: &str, text: &str) -> Result<EnforcementPlan, ConfigError> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        format: u64,
    }
    let versioned: Versioned =
        serde_json::from_str(text).map_err(|source| ConfigError::NotAPlan { path: name.to_owned(), source })?;
    if versioned.format != u64::from(PLAN_FORMAT) {
        return Err(ConfigError::Format { path: name.to_owned(), found: versioned.format });
    }
    serde_json::from_str(text).map_err(|source| ConfigError::Invalid { path: name.to_owned(), source })
}

/// A plan's runtime part, ready to judge requests. Swapped whole on reconfiguration.
#[derive(Debug)]
pub struct Runtime {
    pub plan: RuntimePlan,
    pub authenticator: Option<Authenticator>,
    pub limiter: RateLimiter,
    /// Failed authentications per source; starts over when the plan is swapped.
    pub failures: FailureLimiter,
    pub max_header_bytes: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub upstream_wait: Duration,
    /// How long the application has, from when the request is sent to it, to begin its
    /// answer: the request body's own bound plus the plan's answer timeout. Past it the client gets 504,
    /// and the connection is dropped: a hung application does not hold it for good.
    pub answer_timeout: Duration,
    /// Sent with 405 answers.
    pub allow: Option<HeaderValue>,
}

impl Runtime {
    pub fn new(plan: &RuntimePlan) -> Result<Self, ConfigError> {
        let http = &plan.firewall.http;
        let health = crate::path::normalise(&http.health_path).ok();
        if health.is_none_or(|p| p.matching != http.health_path) {
            return Err(ConfigError::HealthPath(http.health_path.clone()));
        }
        if let Some(auth) = &plan.authentication
            && let Some(p) = auth.principals.iter().find(|p| HeaderValue::from_str(&p.name).is_err())
        {
            return Err(ConfigError::PrincipalName(p.name.clone()));
        }
        let allow = http.allowed_methods.as_ref().map(|methods| {
            let list: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
            // Method names are tokens, always a valid header value.
            HeaderValue::from_str(&list.join(", ")).unwrap_or(HeaderValue::from_static(""))
        });
        Ok(Self {
            authenticator: plan.authentication.as_ref().map(Authenticator::new).transpose()?,
            limiter: RateLimiter::new(&plan.firewall.rate_limits),
            failures: FailureLimiter::default(),
            max_header_bytes: usize::try_from(http.max_header_bytes)
                .map_err(|_| ConfigError::Limit("max_header_bytes"))?,
            header_timeout: Duration::from_secs(http.header_timeout_seconds.max(1)),
            body_timeout: Duration::from_secs(http.body_timeout_seconds.max(1)),
            idle_timeout: Duration::from_secs(http.idle_timeout_seconds.max(1)),
            upstream_wait: Duration::from_secs(http.upstream_wait_seconds.max(1)),
            answer_timeout: Duration::from_secs(http.body_timeout_seconds.max(1))
                .saturating_add(Duration::from_secs(http.answer_timeout_seconds.max(1))),
            allow,
            plan: plan.clone(),
        })
    }
}

/// The plan of `tests/policies/bare.yaml` (one unikernel, no policy), as the compiler gave it.
#[cfg(test)]
pub(crate) fn bare_plan() -> EnforcementPlan {
    let mut plans: std::collections::BTreeMap<String, EnforcementPlan> =
        serde_json::from_str(include_str!("../tests/policies/bare.plans.json")).expect("a plans map");
    plans.remove("api").expect("the plan of `api`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_formats_are_refused_with_a_clear_error() {
        let e = parse_plan("p.json", r#"{"format": 2, "node": "api", "future": true}"#).err();
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("format 2") && text.contains("format 1 only"), "{text}");
        assert!(matches!(parse_plan("p.json", "[]"), Err(ConfigError::NotAPlan { .. })));
        assert!(matches!(parse_plan("p.json", r#"{"format": 1}"#), Err(ConfigError::Invalid { .. })));
    }

    /// Every plan the compiler gave for the test documents (`tests/policies`) loads.
    #[test]
    fn compiled_plans_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policies");
        let mut loaded = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !path.to_string_lossy().ends_with(".plans.json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let plans: std::collections::BTreeMap<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
            for (node, json) in plans {
                let plan = parse_plan(&node, &json.to_string());
                assert!(plan.as_ref().is_ok_and(|p| Runtime::new(&p.runtime).is_ok()), "{}: {plan:?}", path.display());
                loaded += 1;
            }
        }
        assert!(loaded > 0, "no plans in {}", dir.display());
        assert!(Runtime::new(&bare_plan().runtime).is_ok());
    }
}
