//! The enforcement plan: the contract between the SecTOSCA compiler (which decides) and the
//! runtime in the guest (which enforces), with the value and keyword types it holds, how a
//! change between two plans can be applied, and the canonical JSON and digest of a plan.
//!
//! Serde only: no parser, no compiler. Validation of what is written in documents stays in
//! the compiler; here a value is trusted to be what its type says. The JSON Schemas of the
//! types are behind the `schema` feature.

pub mod canonical;
pub mod changes;
pub mod defaults;
mod enforcement;
pub mod ingress;
mod keywords;
mod values;

pub use canonical::{CanonicalError, sha256_digest, to_canonical_json};
pub use enforcement::{
    AuditPlan, AuthenticationPlan, AuthorizationRulePlan, AuthorizationRuleSet, BuildPlan, ChangeKind, Credential,
    EgressRulePlan, EnforcementPlan, FirewallPlan, FlowPlan, HardeningPlan, HostPlan, HttpPlan, IngressRulePlan,
    IngressRuleSet, JwtPlan, PLAN_FORMAT, PlacementPlan, PrincipalPlan, Provenance, RateLimitPlan, RuntimePlan,
};
pub use keywords::{
    AuditEvent, AuditSink, Driver, Effect, HardeningLevel, JwtAlgorithm, KeyKind, Method, Protocol, RateScope, Scheme,
    Trust,
};
pub use values::{Cidr, PasswordHash, PathGlob, PortRange, TokenSha256};
