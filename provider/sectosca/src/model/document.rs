//! The shape of a whole SecTOSCA document, for the JSON Schema that editors use.
//! The resolver reads the same shape by hand so that it can report every problem with
//! its position; a unit test keeps the key sets of both in step.

use std::collections::BTreeMap;

use crate::decode::decode_keywords;
use crate::model::nodes::{HypervisorProperties, UnikernelProperties};
use crate::model::policies::{
    AdaptationProperties, AuditProperties, AuthenticationProperties, AuthorizationProperties, FirewallProperties,
    HardeningProperties, IsolationProperties, Literal,
};

::plan::keywords! {
    /// The TOSCA versions this compiler reads.
    #[derive(schemars::JsonSchema)]
    pub enum ToscaVersion {
        V1_3 = "tosca_simple_yaml_1_3",
    }
}

/// A SecTOSCA service template.
#[derive(Debug, schemars::JsonSchema)]
#[schemars(deny_unknown_fields, title = "SecTOSCA service template")]
pub struct ServiceTemplate {
    pub tosca_definitions_version: ToscaVersion,
    pub description: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub topology_template: TopologyTemplate,
}

/// Inputs, node templates and policies.
#[derive(Debug, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TopologyTemplate {
    pub description: Option<String>,
    /// Context values, e.g. a threat level; set from Terraform or `sdsec compile --input`.
    pub inputs: Option<BTreeMap<String, InputDefinition>>,
    /// Unikernels and the hypervisors they run on. Without node templates, every policy
    /// target names a unikernel.
    pub node_templates: Option<BTreeMap<String, NodeTemplate>>,
    /// The security requirements: a list of single-entry mappings `name: {type, targets, properties}`.
    pub policies: Option<Vec<BTreeMap<String, PolicyTemplate>>>,
}

::plan::keywords! {
    /// Input value types.
    #[derive(schemars::JsonSchema)]
    pub enum InputType {
        String = "string",
        Integer = "integer",
        Float = "float",
        Boolean = "boolean",
    }
}

decode_keywords!(InvalidValue: ToscaVersion, InputType);

/// A declared input.
#[derive(Debug, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct InputDefinition {
    #[schemars(rename = "type")]
    pub input_type: InputType,
    pub description: Option<String>,
    pub default: Option<Literal>,
    /// Whether a value must be given when there is no default. Default true.
    pub required: Option<bool>,
    pub constraints: Option<Vec<Constraint>>,
}

/// A constraint on an input's value; each is a single-entry mapping.
#[derive(Debug, schemars::JsonSchema)]
#[schemars(rename_all = "snake_case")]
pub enum Constraint {
    Equal(Literal),
    GreaterThan(Literal),
    GreaterOrEqual(Literal),
    LessThan(Literal),
    LessOrEqual(Literal),
    InRange([Literal; 2]),
    ValidValues(Vec<Literal>),
    Length(u64),
    MinLength(u64),
    MaxLength(u64),
}

/// A node template, by type.
#[derive(Debug, schemars::JsonSchema)]
#[schemars(tag = "type")]
pub enum NodeTemplate {
    #[schemars(rename = "sdsec.nodes.Unikernel")]
    Unikernel {
        description: Option<String>,
        metadata: Option<BTreeMap<String, String>>,
        properties: Option<UnikernelProperties>,
        /// `- host: <hypervisor>` (one at most) and `- connects_to: <unikernel>` (the only east-west flows allowed).
        requirements: Option<Vec<Requirement>>,
    },
    #[schemars(rename = "sdsec.nodes.Hypervisor")]
    Hypervisor {
        description: Option<String>,
        metadata: Option<BTreeMap<String, String>>,
        properties: Option<HypervisorProperties>,
    },
}

/// One requirement: a single-entry mapping.
#[derive(Debug, schemars::JsonSchema)]
#[schemars(rename_all = "snake_case")]
pub enum Requirement {
    Host(RequirementTarget),
    ConnectsTo(RequirementTarget),
}

/// A node template name, or `{ node: name }`.
#[derive(Debug, schemars::JsonSchema)]
#[schemars(untagged)]
pub enum RequirementTarget {
    Name(String),
    Node { node: String },
}

macro_rules! policy_templates {
    ($($variant:ident = $type_name:literal, $props:ty;)*) => {
        /// A policy, by type.
        #[derive(Debug, schemars::JsonSchema)]
        #[schemars(tag = "type")]
        pub enum PolicyTemplate {
            $(
                #[schemars(rename = $type_name)]
                $variant {
                    description: Option<String>,
                    metadata: Option<BTreeMap<String, String>>,
                    /// Node templates (or, in a fragment, unikernel names) the policy applies to; absent means every unikernel.
                    targets: Option<Vec<String>>,
                    properties: Option<$props>,
                },
            )*
        }
    };
}

policy_templates! {
    Authentication = "sdsec.policies.Authentication", AuthenticationProperties;
    Authorization = "sdsec.policies.Authorization", AuthorizationProperties;
    Firewall = "sdsec.policies.Firewall", FirewallProperties;
    Hardening = "sdsec.policies.Hardening", HardeningProperties;
    Isolation = "sdsec.policies.Isolation", IsolationProperties;
    Audit = "sdsec.policies.Audit", AuditProperties;
    Adaptation = "sdsec.policies.Adaptation", AdaptationProperties;
}
