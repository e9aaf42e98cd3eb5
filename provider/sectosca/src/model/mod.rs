//! The SecTOSCA profile: built-in types and the properties each one takes.
//!
//! Every property struct here is both the decoder used by the checker and the source of
//! the JSON Schema in `schemas/sectosca.schema.json`.

pub mod document;
pub mod nodes;
pub mod policies;

use crate::decode::keywords;

/// The built-in node types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeKind {
    Unikernel,
    Hypervisor,
}

impl NodeKind {
    pub const ALL: &'static [NodeKind] = &[NodeKind::Unikernel, NodeKind::Hypervisor];

    pub const fn type_name(self) -> &'static str {
        match self {
            Self::Unikernel => "sdsec.nodes.Unikernel",
            Self::Hypervisor => "sdsec.nodes.Hypervisor",
        }
    }

    /// The type and the types it derives from, most specific first.
    pub const fn lineage(self) -> &'static [&'static str] {
        match self {
            Self::Unikernel => &["sdsec.nodes.Unikernel", "tosca.nodes.Compute", "tosca.nodes.Root"],
            Self::Hypervisor => &["sdsec.nodes.Hypervisor", "tosca.nodes.Root"],
        }
    }

    pub fn from_type_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.type_name() == name)
    }
}

/// The built-in policy types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    Authentication,
    Authorization,
    Firewall,
    Hardening,
    Isolation,
    Audit,
    Adaptation,
}

impl PolicyKind {
    pub const ALL: &'static [PolicyKind] = &[
        Self::Authentication,
        Self::Authorization,
        Self::Firewall,
        Self::Hardening,
        Self::Isolation,
        Self::Audit,
        Self::Adaptation,
    ];

    pub const fn type_name(self) -> &'static str {
        match self {
            Self::Authentication => "sdsec.policies.Authentication",
            Self::Authorization => "sdsec.policies.Authorization",
            Self::Firewall => "sdsec.policies.Firewall",
            Self::Hardening => "sdsec.policies.Hardening",
            Self::Isolation => "sdsec.policies.Isolation",
            Self::Audit => "sdsec.policies.Audit",
            Self::Adaptation => "sdsec.policies.Adaptation",
        }
    }

    pub fn from_type_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.type_name() == name)
    }
}

keywords! {
    /// How far a host is trusted, from least to most.
    pub enum Trust {
        Untrusted = "untrusted",
        Shared = "shared",
        Trusted = "trusted",
        Dedicated = "dedicated",
    }
}

keywords! {
    /// What a rule does with what it matches.
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
