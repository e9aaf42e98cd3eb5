//! The enforcement plan: what one unikernel's image and runtime must enforce.
//!
//! This is the contract between the compiler (decision point) and the runtime in the guest
//! (enforcement point). It is split by how a change can be applied: `runtime` parts are
//! reconfigurable in a running instance; `build` and `placement` parts need a new image or
//! a new instance.

use serde::{Deserialize, Serialize};

use crate::canonical::{sha256_digest, to_canonical_json};
use crate::keywords::{
    AuditEvent, AuditSink, Driver, Effect, HardeningLevel, JwtAlgorithm, KeyKind, Method, Protocol, RateScope, Scheme,
    Trust,
};
use crate::values::{Cidr, PasswordHash, PathGlob, PortRange, TokenSha256};

/// Bumped whenever the plan's meaning changes, so runtimes refuse plans they do not understand.
pub const PLAN_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EnforcementPlan {
    pub format: u32,
    /// The node template (unikernel) this plan is for.
    pub node: String,
    pub runtime: RuntimePlan,
    pub build: BuildPlan,
    pub placement: PlacementPlan,
    /// How many instances to run: a count to scale to, which needs neither a new image
    /// nor a reconfiguration.
    pub instances: u64,
    pub provenance: Provenance,
}

/// Mechanisms the runtime can swap in place, without a new image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RuntimePlan {
    /// Deny everything but the health probe (set by an active adaptation).
    pub quarantine: bool,
    /// Absent: requests are anonymous.
    pub authentication: Option<AuthenticationPlan>,
    /// A request is allowed only if every rule set allows it (several policies never loosen each other).
    pub authorization: Vec<AuthorizationRuleSet>,
    pub firewall: FirewallPlan,
    pub audit: AuditPlan,
    /// East-west flows: the unikernels this one may open connections to, and those it accepts connections from.
    pub flows: FlowPlan,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AuthenticationPlan {
    pub scheme: Scheme,
    pub realm: String,
    /// Sorted by name.
    pub principals: Vec<PrincipalPlan>,
    /// scheme jwt only.
    pub jwt: Option<JwtPlan>,
    /// Whether the application receives the credentials (the `Authorization` header) as
    /// the client sent them. False: it receives the principal and roles only.
    #[serde(default)]
    pub forward_credentials: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PrincipalPlan {
    pub name: String,
    pub credential: Credential,
    /// Sorted, without duplicates.
    pub roles: Vec<String>,
}

/// What a principal proves itself with. Only hashes and public keys: never a secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Credential {
    PasswordHash(PasswordHash),
    TokenSha256(TokenSha256),
    PublicKey { algorithm: JwtAlgorithm, kind: KeyKind, pem: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JwtPlan {
    pub issuer: Option<String>,
    /// Absent: any audience (the policy said `audience: any`).
    pub audience: Option<String>,
    pub roles_claim: String,
    /// Claim value to role: only mapped values give roles; empty: tokens give no role
    /// beyond the principal's own.
    pub role_map: std::collections::BTreeMap<String, String>,
    pub leeway_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AuthorizationRuleSet {
    /// The policy the rules come from.
    pub policy: String,
    pub default: Effect,
    /// In order; the first rule that matches decides.
    pub rules: Vec<AuthorizationRulePlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AuthorizationRulePlan {
    /// Empty: any request, authenticated or not. Otherwise: a principal with one of these roles.
    pub roles: Vec<String>,
    /// Empty: any method.
    pub methods: Vec<Method>,
    /// Empty: any path.
    pub paths: Vec<PathGlob>,
    pub effect: Effect,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FirewallPlan {
    /// A connection is accepted only if every rule set allows it.
    pub ingress: Vec<IngressRuleSet>,
    /// Allowed connections out of the guest beyond the host's bridge (beyond the east-west
    /// flows), enforced by the host (nftables), not by the runtime; empty means none. Sorted,
    /// without duplicates. Left out of the JSON when empty, so that plans without egress keep
    /// their bytes and digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressRulePlan>,
    pub http: HttpPlan,
    /// Every limit applies; at most one per scope, the strictest given.
    pub rate_limits: Vec<RateLimitPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IngressRuleSet {
    pub policy: String,
    pub default: Effect,
    pub rules: Vec<IngressRulePlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IngressRulePlan {
    /// Empty: any source.
    pub from: Vec<Cidr>,
    /// Empty: any port.
    pub ports: Vec<PortRange>,
    pub protocol: Protocol,
    pub action: Effect,
}

/// One kind of connection the guest may open: to a network, on some ports, over a protocol.
/// The rules of a plan are alternatives: a connection is allowed if any rule matches it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EgressRulePlan {
    /// The destination network. The compiler writes IPv4 networks only: the host enforces
    /// egress for IPv4 alone.
    pub to: Cidr,
    /// Destination ports, sorted; empty: any port.
    pub ports: Vec<PortRange>,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HttpPlan {
    /// Absent: any method. Otherwise only these.
    pub allowed_methods: Option<Vec<Method>>,
    pub deny_paths: Vec<PathGlob>,
    pub max_body_bytes: u64,
    pub max_header_bytes: u64,
    pub header_timeout_seconds: u64,
    /// Time allowed to send the whole request body, from the end of its head.
    #[serde(default = "defaults::body_timeout")]
    pub body_timeout_seconds: u64,
    /// A kept-alive connection waiting for its next request is closed after this long.
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout_seconds: u64,
    /// Client connections open at once; over it a connection is closed at accept.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: u64,
    /// Client connections open at once from one source; over it closed at accept.
    #[serde(default = "defaults::max_connections_per_source")]
    pub max_connections_per_source: u64,
    /// Connections to the application open at once.
    #[serde(default = "defaults::max_upstream_connections")]
    pub max_upstream_connections: u64,
    /// How long a request waits for a connection to the application before it gets 503.
    #[serde(default = "defaults::upstream_wait")]
    pub upstream_wait_seconds: u64,
    /// How long the application has to begin its answer to a request passed on, beyond the
    /// request body's own time (`body_timeout_seconds`); past it the client gets 504.
    #[serde(default = "defaults::answer_timeout")]
    pub answer_timeout_seconds: u64,
    /// The path the readiness probe uses; it answers nothing else.
    pub health_path: String,
}

/// Serde defaults: plans written before these settings existed read as the defaults.
mod defaults {
    use crate::defaults::*;

    pub fn body_timeout() -> u64 {
        DEFAULT_BODY_TIMEOUT_SECONDS
    }
    pub fn idle_timeout() -> u64 {
        DEFAULT_IDLE_TIMEOUT_SECONDS
    }
    pub fn max_connections() -> u64 {
        DEFAULT_MAX_CONNECTIONS
    }
    pub fn max_connections_per_source() -> u64 {
        DEFAULT_MAX_CONNECTIONS_PER_SOURCE
    }
    pub fn max_upstream_connections() -> u64 {
        DEFAULT_MAX_UPSTREAM_CONNECTIONS
    }
    pub fn upstream_wait() -> u64 {
        DEFAULT_UPSTREAM_WAIT_SECONDS
    }
    pub fn answer_timeout() -> u64 {
        DEFAULT_ANSWER_TIMEOUT_SECONDS
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RateLimitPlan {
    pub per: RateScope,
    pub requests_per_second: u64,
    pub burst: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditPlan {
    /// Sorted, without duplicates; empty means nothing is recorded.
    pub events: Vec<AuditEvent>,
    pub sink: AuditSink,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FlowPlan {
    pub connects_to: Vec<String>,
    pub accepts_from: Vec<String>,
}

/// Settings baked into the image: a change means a new image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BuildPlan {
    pub port: u16,
    pub memory_mb: u64,
    pub vcpus: u64,
    pub hardening: HardeningPlan,
    /// Kernel command-line settings that the hardening level asks for.
    pub kernel_cmdline: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HardeningPlan {
    pub level: HardeningLevel,
    pub read_only_root: bool,
    pub seccomp: bool,
    /// The image is regenerated once older than this.
    pub max_lifetime_seconds: Option<u64>,
    /// Always true: no image holds a shell.
    pub no_shell: bool,
    /// Always true: no image holds a package manager.
    pub no_package_manager: bool,
    pub drop_capabilities: bool,
    pub no_new_privileges: bool,
}

/// Where instances may run; checked against the hypervisor that would run them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PlacementPlan {
    /// The hypervisor node template named by the `host` requirement, with what it declares.
    pub host: Option<HostPlan>,
    pub min_trust: Option<Trust>,
    /// Absent: any tenant. Otherwise the host's tenant must be one of these.
    pub tenants: Option<Vec<String>>,
    pub dedicated_host: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HostPlan {
    pub name: String,
    pub site: String,
    pub tenant: Option<String>,
    pub trust: Trust,
    pub driver: Option<Driver>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Policies that apply to this node, sorted.
    pub policies: Vec<String>,
    /// Adaptations whose condition held and that target this node, sorted.
    pub adaptations: Vec<String>,
}

/// Which mechanisms a change between two plans touches, and so how it can be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    None,
    /// Only runtime mechanisms differ: reconfigure the running instance.
    InPlace,
    /// The image or the placement differs: build a new image and replace the instance.
    Replace,
}

impl EnforcementPlan {
    pub fn change_from(&self, old: &EnforcementPlan) -> ChangeKind {
        if self.build != old.build || self.placement != old.placement || self.format != old.format {
            ChangeKind::Replace
        } else if self.runtime != old.runtime {
            ChangeKind::InPlace
        } else {
            ChangeKind::None
        }
    }

    /// The plan as canonical JSON: what images hold and control messages carry.
    pub fn canonical_json(&self) -> String {
        to_canonical_json(self).unwrap_or_default()
    }

    /// Digest of the canonical JSON: it changes exactly when what is enforced changes.
    pub fn digest(&self) -> String {
        sha256_digest(self.canonical_json().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firewall(egress: Vec<EgressRulePlan>) -> FirewallPlan {
        FirewallPlan {
            ingress: Vec::new(),
            egress,
            http: HttpPlan {
                allowed_methods: None,
                deny_paths: Vec::new(),
                max_body_bytes: 1,
                max_header_bytes: 1,
                header_timeout_seconds: 1,
                body_timeout_seconds: 1,
                idle_timeout_seconds: 1,
                max_connections: 1,
                max_connections_per_source: 1,
                max_upstream_connections: 1,
                upstream_wait_seconds: 1,
                answer_timeout_seconds: 1,
                health_path: "/h".into(),
            },
            rate_limits: Vec::new(),
        }
    }

    #[test]
    fn egress_is_left_out_when_empty_and_read_back_when_given() {
        let none = firewall(Vec::new());
        let json = to_canonical_json(&none).unwrap();
        assert!(!json.contains("egress"), "{json}");
        let back: FirewallPlan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, none);

        let to = Cidr("10.0.0.0/8".parse().unwrap());
        let some = firewall(vec![EgressRulePlan {
            to,
            ports: vec![PortRange { first: 443, last: 443 }],
            protocol: Protocol::Tcp,
        }]);
        let json = to_canonical_json(&some).unwrap();
        assert!(json.contains(r#""egress":[{"ports":[443],"protocol":"tcp","to":"10.0.0.0/8"}]"#), "{json}");
        let back: FirewallPlan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, some);
    }
}
