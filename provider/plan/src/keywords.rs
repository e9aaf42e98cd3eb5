//! Keywords: enums written as one of a fixed set of strings, in documents and plans alike.
//! The compiler decodes them from documents (with its own diagnostics) through `ALL` and
//! `as_str`, so the set of strings is written once, here.

/// Defines an enum written as one of a fixed set of strings, with `ALL`, `as_str`,
/// `Display` and serde. Attributes before `pub enum` are kept: give the JSON Schema derive
/// there. The compiler defines its own keywords (TOSCA versions, input types) with it too.
#[macro_export]
macro_rules! keywords {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name { $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

keywords! {
    /// How far a host is trusted, from least to most.
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    pub enum Trust {
        Untrusted = "untrusted",
        Shared = "shared",
        Trusted = "trusted",
        Dedicated = "dedicated",
    }
}

keywords! {
    /// What a rule does with what it matches.
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    pub enum Effect {
        Allow = "allow",
        Deny = "deny",
    }
}

impl Effect {
    /// Deny is stricter than allow.
    pub fn strictest(self, other: Self) -> Self {
        if self == Self::Deny || other == Self::Deny { Self::Deny } else { Self::Allow }
    }
}

keywords! {
    /// How a hypervisor is driven.
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    pub enum Driver {
        Qemu = "qemu",
        Libvirt = "libvirt",
    }
}

keywords! {
    /// How requests prove who sends them.
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    pub enum Scheme {
        /// HTTP Basic with argon2 or bcrypt password hashes.
        Basic = "basic",
        /// Bearer tokens, stored as SHA-256 hashes.
        Bearer = "bearer",
        /// JSON Web Tokens signed by a principal's key; claims map to roles.
        Jwt = "jwt",
    }
}

keywords! {
    /// Transport protocols.
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    pub enum Protocol {
        Tcp = "tcp",
        Udp = "udp",
    }
}

keywords! {
    /// What a rate limit counts requests per.
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    pub enum RateScope {
        Source = "source",
        Global = "global",
    }
}

keywords! {
    /// Hardening levels, from least to most strict.
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    pub enum HardeningLevel {
        Baseline = "baseline",
        Strict = "strict",
    }
}

keywords! {
    /// Events the audit log records.
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    pub enum AuditEvent {
        AuthnFailure = "authn_failure",
        AuthzDeny = "authz_deny",
        FirewallDrop = "firewall_drop",
        Request = "request",
    }
}

keywords! {
    /// Where audit events go.
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    pub enum AuditSink {
        /// JSON lines on the guest's serial console.
        Console = "console",
    }
}

keywords! {
    /// Signature algorithms accepted for JWTs.
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    pub enum JwtAlgorithm {
        Es256 = "ES256",
        Es384 = "ES384",
        Rs256 = "RS256",
        Rs384 = "RS384",
        Rs512 = "RS512",
        Ps256 = "PS256",
        EdDsa = "EdDSA",
    }
}

/// The key type a public key holds, read from its SubjectPublicKeyInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    EcP256,
    EcP384,
    Rsa,
    Ed25519,
}

impl JwtAlgorithm {
    /// The key type that verifies this algorithm's signatures.
    pub fn key_kind(self) -> KeyKind {
        match self {
            Self::Es256 => KeyKind::EcP256,
            Self::Es384 => KeyKind::EcP384,
            Self::Rs256 | Self::Rs384 | Self::Rs512 | Self::Ps256 => KeyKind::Rsa,
            Self::EdDsa => KeyKind::Ed25519,
        }
    }
}

keywords! {
    /// HTTP request methods.
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    pub enum Method {
        Get = "GET",
        Head = "HEAD",
        Post = "POST",
        Put = "PUT",
        Patch = "PATCH",
        Delete = "DELETE",
        Options = "OPTIONS",
        Trace = "TRACE",
        Connect = "CONNECT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_written_as_their_text() {
        assert_eq!(serde_json::to_string(&Method::Get).ok().as_deref(), Some("\"GET\""));
        assert_eq!(serde_json::from_str::<JwtAlgorithm>("\"EdDSA\"").ok(), Some(JwtAlgorithm::EdDsa));
        assert!(serde_json::from_str::<Scheme>("\"Basic\"").is_err(), "case matters");
        assert_eq!(AuditEvent::ALL.iter().map(|e| e.to_string()).collect::<Vec<_>>().len(), 4);
        assert!(Trust::Untrusted < Trust::Dedicated);
    }
}
