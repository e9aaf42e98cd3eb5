//! The SecTOSCA profile: built-in types and the properties each one takes.
//!
//! Every property struct here is both the decoder used by the checker and the source of
//! the JSON Schema in `schemas/sectosca.schema.json`.

pub mod document;
pub mod nodes;
pub mod policies;

use crate::decode::decode_keywords;

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

// Trust and Effect are written in plans too: the plan crate defines them, decoded here.
pub use ::plan::{Effect, Trust};

decode_keywords!(InvalidValue: Trust, Effect);
