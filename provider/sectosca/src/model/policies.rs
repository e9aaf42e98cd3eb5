//! Properties of the built-in policy types: the security requirements.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::decode::{Bounded, Decode, OneOrMany, Spanned, decode_keywords, record, scalar};
use crate::diagnostic::Sink;
use crate::model::{Effect, Trust};
use crate::parse::Node;
use crate::path::LazyPath;
use crate::values::{
    Cidr, Ipv4Cidr, JwtAlgorithm, Method, PasswordHash, PathGlob, PortRange, PublicKeyPem, Seconds, TokenSha256,
};

// The keywords plans hold too: the plan crate defines them, decoded here.
pub use ::plan::{AuditEvent, AuditSink, HardeningLevel, Protocol, RateScope, Scheme};

decode_keywords!(InvalidValue: Scheme, Protocol, RateScope, HardeningLevel, AuditEvent, AuditSink);

record! {
    /// Someone who can authenticate, with the roles they get.
    pub struct Principal ("a principal", UnknownKey) {
        /// Unique name; appears in audit events.
        pub name: Spanned<String>,
        /// scheme basic: the password's argon2 PHC or bcrypt hash.
        pub password_hash: Option<Spanned<PasswordHash>>,
        /// scheme bearer: the SHA-256 of the token (64 hex digits).
        pub token_sha256: Option<Spanned<TokenSha256>>,
        /// scheme jwt: the issuer's PEM public key.
        pub public_key: Option<Spanned<PublicKeyPem>>,
        /// scheme jwt: the signature algorithm the key signs with.
        pub algorithm: Option<Spanned<JwtAlgorithm>>,
        /// Roles granted to this principal (for jwt, added to the roles from claims).
        pub roles: Option<Vec<Spanned<String>>>,
    }
}

record! {
    /// How JWT claims are checked and mapped to roles.
    pub struct JwtSettings ("jwt settings", UnknownKey) {
        /// Required `iss` claim.
        pub issuer: Option<String>,
        /// Required `aud` claim; required with scheme jwt. `any` accepts every audience.
        pub audience: Option<Spanned<String>>,
        /// The claim holding the values role_map maps (a string or a list). Default `roles`.
        pub roles_claim: Option<String>,
        /// Maps claim values to role names; only mapped values give roles (without it, tokens give no role beyond the principal's `roles`).
        pub role_map: Option<BTreeMap<String, String>>,
        /// Clock skew tolerated on exp/nbf. Default 60s.
        pub leeway: Option<Seconds>,
    }
}

record! {
    /// sdsec.policies.Authentication: answers spoofing.
    pub struct AuthenticationProperties ("sdsec.policies.Authentication properties", UnknownProperty) {
        /// basic, bearer or jwt.
        pub scheme: Spanned<Scheme>,
        /// The realm named in WWW-Authenticate challenges. Default `sdsec`.
        pub realm: Option<String>,
        /// Who can authenticate.
        pub principals: Option<Vec<Principal>>,
        /// JWT settings (scheme jwt only).
        pub jwt: Option<Spanned<JwtSettings>>,
        /// Pass the client's `Authorization` header on to the application. Default false: the application receives the authenticated principal (X-Sdsec-Principal) and roles (X-Sdsec-Roles), never the credentials.
        pub forward_credentials: Option<bool>,
    }
}

record! {
    /// One authorization rule; the first rule that matches a request decides.
    pub struct AuthorizationRule ("an authorization rule", UnknownKey) {
        /// Roles the rule applies to; absent means every request, authenticated or not.
        pub roles: Option<Vec<Spanned<String>>>,
        /// Methods the rule applies to; absent means all.
        pub methods: Option<Vec<Method>>,
        /// Path globs the rule applies to; absent means all.
        pub paths: Option<Vec<PathGlob>>,
        /// allow or deny.
        pub effect: Effect,
    }
}

record! {
    /// sdsec.policies.Authorization: answers elevation of privilege.
    pub struct AuthorizationProperties ("sdsec.policies.Authorization properties", UnknownProperty) {
        /// What happens when no rule matches. Default deny.
        pub default: Option<Effect>,
        /// Rules in order; the first match wins.
        pub rules: Option<Vec<AuthorizationRule>>,
    }
}

record! {
    /// One ingress rule; the first rule that matches a connection decides.
    pub struct IngressRule ("an ingress rule", UnknownKey) {
        /// Source networks (CIDR), one or a list; absent means any source.
        pub from: Option<OneOrMany<Cidr>>,
        /// Destination ports or ranges; absent means any port.
        pub ports: Option<OneOrMany<PortRange>>,
        /// tcp or udp. Default tcp.
        pub protocol: Option<Protocol>,
        /// allow or deny.
        pub action: Effect,
    }
}

record! {
    /// One egress rule: connections the guest may open beyond its declared flows.
    pub struct EgressRule ("an egress rule", UnknownKey) {
        /// The destination network: an IPv4 network in CIDR notation, or one address.
        pub to: Ipv4Cidr,
        /// Destination ports or ranges; absent means any port.
        pub ports: Option<OneOrMany<PortRange>>,
        /// tcp or udp. Default tcp.
        pub protocol: Option<Protocol>,
    }
}

record! {
    /// Application-layer (HTTP) rules.
    pub struct HttpRules ("http rules", UnknownKey) {
        /// Methods allowed at all; absent means all.
        pub methods: Option<Vec<Method>>,
        /// Path globs refused for everyone.
        pub deny_paths: Option<Vec<PathGlob>>,
        /// Largest request body in bytes. Default 1048576.
        pub max_body_bytes: Option<Bounded<0, 17_179_869_184>>,
        /// Largest request head (request line and headers) in bytes. Default 16384.
        pub max_header_bytes: Option<Bounded<256, 1_048_576>>,
        /// Time allowed to send the request head (cuts off slow senders). Default 10s.
        pub header_timeout: Option<Seconds>,
        /// Time allowed to send the whole request body, from the end of its head. Default 30s.
        pub body_timeout: Option<Seconds>,
        /// A kept-alive connection waiting for its next request is closed after this. Default 30s.
        pub idle_timeout: Option<Seconds>,
        /// Client connections open at once; more are closed at accept. Default 512.
        pub max_connections: Option<Bounded<1, 65_536>>,
        /// Client connections open at once from one source address (IPv6: its /64). Default 64.
        pub max_connections_per_source: Option<Bounded<1, 65_536>>,
        /// Connections to the application open at once. Default 64.
        pub max_upstream_connections: Option<Bounded<1, 4096>>,
        /// How long a request waits for a connection to the application before 503. Default 5s.
        pub upstream_wait: Option<Seconds>,
        /// How long the application has to begin its answer, beyond the request body's own
        /// time (`body_timeout`), before 504. Default 60s.
        pub answer_timeout: Option<Seconds>,
    }
}

record! {
    /// A token-bucket rate limit.
    pub struct RateLimit ("a rate limit", UnknownKey) {
        /// Sustained requests per second.
        pub requests_per_second: Bounded<1, 1_000_000>,
        /// Requests allowed in a burst. Default: requests_per_second.
        pub burst: Option<Bounded<1, 1_000_000>>,
        /// source (per client address) or global. Default source.
        pub per: Option<RateScope>,
    }
}

record! {
    /// sdsec.policies.Firewall: answers denial of service and information disclosure.
    pub struct FirewallProperties ("sdsec.policies.Firewall properties", UnknownProperty) {
        /// What happens to connections no ingress rule matches. Default deny when ingress rules are given, otherwise allow.
        pub default: Option<Effect>,
        /// L3/L4 rules in order; the first match wins.
        pub ingress: Option<Vec<IngressRule>>,
        /// Connections out of the guest allowed beyond its declared flows, enforced by the host (IPv4 only). Default none; several policies allow only what all of them allow.
        pub egress: Option<Vec<EgressRule>>,
        /// Application-layer rules.
        pub http: Option<HttpRules>,
        /// Request rate limit.
        pub rate_limit: Option<RateLimit>,
    }
}

record! {
    /// sdsec.policies.Hardening: answers elevation of privilege and tampering. No image ever holds a shell or a package manager.
    pub struct HardeningProperties ("sdsec.policies.Hardening properties", UnknownProperty) {
        /// baseline or strict. Default baseline.
        pub level: Option<HardeningLevel>,
        /// Mount the root file system read-only. Default true.
        pub read_only_root: Option<bool>,
        /// Confine the application with a seccomp filter (stricter at level strict). Default true.
        pub seccomp: Option<bool>,
        /// The image is regenerated once older than this, e.g. 24h.
        pub max_lifetime: Option<Seconds>,
    }
}

record! {
    /// sdsec.policies.Isolation: answers co-residence and VM hopping.
    pub struct IsolationProperties ("sdsec.policies.Isolation properties", UnknownProperty) {
        /// The least trusted host allowed.
        pub min_trust: Option<Spanned<Trust>>,
        /// Tenants allowed to own or share the host.
        pub tenants: Option<Spanned<Vec<String>>>,
        /// The target must be alone on its host.
        pub dedicated_host: Option<Spanned<bool>>,
    }
}

record! {
    /// sdsec.policies.Audit: answers repudiation.
    pub struct AuditProperties ("sdsec.policies.Audit properties", UnknownProperty) {
        /// Events to record. Default authn_failure, authz_deny and firewall_drop.
        pub events: Option<Vec<AuditEvent>>,
        /// Where events go. Default console.
        pub sink: Option<AuditSink>,
    }
}

/// A scalar compared as text: `elevated`, `3`, `true`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Literal(pub String);

impl Decode for Literal {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
        scalar(node, path, sink, "a scalar value").map(|s| Self(s.to_owned()))
    }
}

impl schemars::JsonSchema for Literal {
    fn schema_name() -> Cow<'static, str> {
        "Literal".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

record! {
    /// A condition on one input. Give exactly one of `equals` and `in`.
    pub struct Condition ("an adaptation condition", UnknownKey) {
        /// The input the condition reads.
        pub input: Spanned<String>,
        /// Holds when the input equals this value.
        pub equals: Option<Literal>,
        /// Holds when the input is one of these values.
        pub any_of as "in": Option<Vec<Literal>>,
    }
}

/// `then` of an adaptation: property overrides by policy name, and `quarantine`.
/// Kept as written; resolve applies it to the named policies before they are checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Overrides(pub Node);

impl Decode for Overrides {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
        if node.as_map().is_none() && !node.is_null() {
            crate::decode::wrong_type(sink, node, path, "a mapping of policy names to property overrides");
            return None;
        }
        Some(Self(node.clone()))
    }
}

impl schemars::JsonSchema for Overrides {
    fn schema_name() -> Cow<'static, str> {
        "AdaptationOverrides".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "Property overrides keyed by policy name (merged into that policy's properties), and `quarantine: true` to deny everything but the health probe on the targets.",
            "properties": { "quarantine": { "type": "boolean" } },
            "additionalProperties": { "type": "object" }
        })
    }
}

record! {
    /// sdsec.policies.Adaptation: adapts other policies to the context given by inputs.
    pub struct AdaptationProperties ("sdsec.policies.Adaptation properties", UnknownProperty) {
        /// When the adaptation applies.
        pub when: Condition,
        /// What it changes.
        pub then: Overrides,
    }
}
