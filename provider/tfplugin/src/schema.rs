//! Schemas of the provider, resources and data sources, with a builder that
//! reads like the HCL it describes, and their conversion to the wire form.

use std::sync::Arc;

use magma_protocol::tfplugin6 as proto;

use crate::modifiers::PlanModifier;
use crate::validators::Validator;
use crate::value::{Type, Value, encode_msgpack};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SchemaError {
    #[error("{0:?} is not a valid attribute name: use lowercase letters, digits and '_'")]
    InvalidName(String),
    #[error("{0:?} is declared twice")]
    Duplicate(String),
    #[error("attribute {name:?}: default does not have type {typ}: {reason}")]
    DefaultTypeMismatch { name: String, typ: String, reason: String },
}

/// A versioned schema. Bump `version` when stored state must be upgraded.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

/// Attributes and nested blocks at one level of a configuration.
#[derive(Debug, Clone, Default)]
pub struct Block {
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<NestedBlock>,
    /// Markdown.
    pub description: String,
    pub deprecated: bool,
}

/// Who sets an attribute: the user, the provider, or either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Required,
    Optional,
    /// Set by the provider only.
    Computed,
    /// Set by the user, or by the provider (or its default) when left out.
    OptionalComputed,
}

#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: String,
    pub typ: Type,
    /// Markdown.
    pub description: String,
    pub presence: Presence,
    /// Terraform hides the value in plans and output.
    pub sensitive: bool,
    pub deprecated: bool,
    /// Value planned when the configuration leaves the attribute out.
    pub default: Option<Value>,
    pub plan_modifiers: Vec<PlanModifier>,
    pub validators: Vec<Arc<dyn Validator>>,
}

/// How many instances of a nested block may appear, and in what shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    Single,
    List,
    Set,
    Map,
}

#[derive(Debug, Clone)]
pub struct NestedBlock {
    pub type_name: String,
    pub block: Block,
    pub nesting: Nesting,
    pub min_items: i64,
    pub max_items: i64,
}

impl Schema {
    pub fn new(version: i64) -> Self {
        Schema { version, block: Block::default() }
    }

    /// Markdown description of the resource, data source or provider.
    pub fn description(mut self, markdown: impl Into<String>) -> Self {
        self.block.description = markdown.into();
        self
    }

    pub fn attribute(mut self, attribute: Attribute) -> Self {
        self.block.attributes.push(attribute);
        self
    }

    pub fn block(mut self, block: NestedBlock) -> Self {
        self.block.blocks.push(block);
        self
    }

    pub fn deprecated(mut self) -> Self {
        self.block.deprecated = true;
        self
    }

    /// The object type of configuration, plan and state values.
    pub fn value_type(&self) -> Type {
        self.block.value_type()
    }

    /// The top-level attribute called `name`.
    pub fn find_attribute(&self, name: &str) -> Option<&Attribute> {
        self.block.attributes.iter().find(|attribute| attribute.name == name)
    }

    /// Catches schema mistakes at start-up rather than at a user's plan.
    pub fn check(&self) -> Result<(), SchemaError> {
        self.block.check()
    }

    pub fn to_proto(&self) -> proto::Schema {
        proto::Schema { version: self.version, block: Some(self.block.to_proto(self.version)) }
    }
}

impl Block {
    pub fn new() -> Self {
        Block::default()
    }

    pub fn description(mut self, markdown: impl Into<String>) -> Self {
        self.description = markdown.into();
        self
    }

    pub fn attribute(mut self, attribute: Attribute) -> Self {
        self.attributes.push(attribute);
        self
    }

    pub fn block(mut self, block: NestedBlock) -> Self {
        self.blocks.push(block);
        self
    }

    pub fn value_type(&self) -> Type {
        let attributes = self.attributes.iter().map(|attribute| (attribute.name.clone(), attribute.typ.clone()));
        let blocks = self.blocks.iter().map(|nested| {
            let object = nested.block.value_type();
            let typ = match nested.nesting {
                Nesting::Single => object,
                Nesting::List => Type::list(object),
                Nesting::Set => Type::set(object),
                Nesting::Map => Type::map(object),
            };
            (nested.type_name.clone(), typ)
        });
        Type::Object(attributes.chain(blocks).collect())
    }

    fn check(&self) -> Result<(), SchemaError> {
        let mut seen = std::collections::BTreeSet::new();
        let names = self
            .attributes
            .iter()
            .map(|attribute| &attribute.name)
            .chain(self.blocks.iter().map(|nested| &nested.type_name));
        for name in names {
            let valid = !name.is_empty()
                && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_');
            if !valid {
                return Err(SchemaError::InvalidName(name.clone()));
            }
            if !seen.insert(name) {
                return Err(SchemaError::Duplicate(name.clone()));
            }
        }
        for attribute in &self.attributes {
            if let Some(default) = &attribute.default {
                encode_msgpack(default, &attribute.typ).map_err(|error| SchemaError::DefaultTypeMismatch {
                    name: attribute.name.clone(),
                    typ: attribute.typ.to_json().to_string(),
                    reason: error.to_string(),
                })?;
            }
        }
        self.blocks.iter().try_for_each(|nested| nested.block.check())
    }

    fn to_proto(&self, version: i64) -> proto::schema::Block {
        proto::schema::Block {
            version,
            attributes: self.attributes.iter().map(Attribute::to_proto).collect(),
            block_types: self.blocks.iter().map(|nested| nested.to_proto(version)).collect(),
            description: self.description.clone(),
            description_kind: proto::StringKind::Markdown.into(),
            deprecated: self.deprecated,
            deprecation_message: String::new(),
        }
    }
}

impl Attribute {
    /// An optional attribute of any type; chain `.required()`, `.computed()`…
    pub fn new(name: impl Into<String>, typ: Type) -> Self {
        Attribute {
            name: name.into(),
            typ,
            description: String::new(),
            presence: Presence::Optional,
            sensitive: false,
            deprecated: false,
            default: None,
            plan_modifiers: Vec::new(),
            validators: Vec::new(),
        }
    }

    pub fn string(name: impl Into<String>) -> Self {
        Attribute::new(name, Type::String)
    }

    pub fn number(name: impl Into<String>) -> Self {
        Attribute::new(name, Type::Number)
    }

    pub fn bool(name: impl Into<String>) -> Self {
        Attribute::new(name, Type::Bool)
    }

    pub fn description(mut self, markdown: impl Into<String>) -> Self {
        self.description = markdown.into();
        self
    }

    pub fn required(mut self) -> Self {
        self.presence = Presence::Required;
        self
    }

    pub fn optional(mut self) -> Self {
        self.presence = Presence::Optional;
        self
    }

    pub fn computed(mut self) -> Self {
        self.presence = Presence::Computed;
        self
    }

    pub fn optional_computed(mut self) -> Self {
        self.presence = Presence::OptionalComputed;
        self
    }

    /// Planned when the configuration leaves the attribute out. Makes the
    /// attribute optional+computed, which Terraform requires for a value
    /// the provider fills in.
    pub fn default(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(value.into());
        self.presence = Presence::OptionalComputed;
        self
    }

    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    pub fn deprecated(mut self) -> Self {
        self.deprecated = true;
        self
    }

    pub fn plan_modifier(mut self, modifier: PlanModifier) -> Self {
        self.plan_modifiers.push(modifier);
        self
    }

    /// Shorthand for the most common modifier.
    pub fn requires_replace(self) -> Self {
        self.plan_modifier(PlanModifier::RequiresReplace)
    }

    /// Shorthand: keep the prior value instead of "known after apply".
    pub fn use_state_for_unknown(self) -> Self {
        self.plan_modifier(PlanModifier::UseStateForUnknown)
    }

    pub fn validator(mut self, validator: impl Validator + 'static) -> Self {
        self.validators.push(Arc::new(validator));
        self
    }

    pub fn is_computed(&self) -> bool {
        matches!(self.presence, Presence::Computed | Presence::OptionalComputed)
    }

    fn to_proto(&self) -> proto::schema::Attribute {
        proto::schema::Attribute {
            name: self.name.clone(),
            r#type: self.typ.to_json_bytes(),
            nested_type: None,
            description: self.description.clone(),
            required: self.presence == Presence::Required,
            optional: matches!(self.presence, Presence::Optional | Presence::OptionalComputed),
            computed: self.is_computed(),
            sensitive: self.sensitive,
            description_kind: proto::StringKind::Markdown.into(),
            deprecated: self.deprecated,
            write_only: false,
            deprecation_message: String::new(),
        }
    }
}

impl NestedBlock {
    pub fn new(type_name: impl Into<String>, nesting: Nesting, block: Block) -> Self {
        NestedBlock { type_name: type_name.into(), block, nesting, min_items: 0, max_items: 0 }
    }

    /// Bounds on the number of blocks; 0 means unbounded.
    pub fn items(mut self, min_items: i64, max_items: i64) -> Self {
        self.min_items = min_items;
        self.max_items = max_items;
        self
    }

    fn to_proto(&self, version: i64) -> proto::schema::NestedBlock {
        use proto::schema::nested_block::NestingMode;
        let nesting = match self.nesting {
            Nesting::Single => NestingMode::Single,
            Nesting::List => NestingMode::List,
            Nesting::Set => NestingMode::Set,
            Nesting::Map => NestingMode::Map,
        };
        proto::schema::NestedBlock {
            type_name: self.type_name.clone(),
            block: Some(self.block.to_proto(version)),
            nesting: nesting.into(),
            min_items: self.min_items,
            max_items: self.max_items,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Schema {
        Schema::new(2)
            .description("A **pool**.")
            .attribute(Attribute::string("id").computed().use_state_for_unknown())
            .attribute(Attribute::number("size").default(3))
            .attribute(Attribute::string("token").required().sensitive())
            .block(NestedBlock::new(
                "rule",
                Nesting::List,
                Block::new().attribute(Attribute::string("port").required()),
            ))
    }

    #[test]
    fn value_type_includes_attributes_and_blocks() {
        let typ = example().value_type().to_json().to_string();
        assert_eq!(
            typ,
            r#"["object",{"id":"string","rule":["list",["object",{"port":"string"}]],"size":"number","token":"string"}]"#
        );
    }

    #[test]
    fn wire_schema_has_flags_types_and_markdown() {
        let wire = example().to_proto();
        let block = wire.block.unwrap_or_default();
        assert_eq!(wire.version, 2);
        assert_eq!(block.description_kind, proto::StringKind::Markdown as i32);
        let size = &block.attributes[1];
        assert!(size.optional && size.computed && !size.required);
        assert_eq!(size.r#type, br#""number""#);
        let token = &block.attributes[2];
        assert!(token.required && token.sensitive && !token.computed);
        assert_eq!(block.block_types[0].type_name, "rule");
    }

    #[test]
    fn check_catches_duplicates_bad_names_and_bad_defaults() {
        assert_eq!(example().check(), Ok(()));
        let duplicate = example().attribute(Attribute::string("size"));
        assert_eq!(duplicate.check(), Err(SchemaError::Duplicate("size".into())));
        let bad_name = Schema::new(0).attribute(Attribute::string("Name"));
        assert!(matches!(bad_name.check(), Err(SchemaError::InvalidName(_))));
        let bad_default = Schema::new(0).attribute(Attribute::number("n").default("x"));
        assert!(matches!(bad_default.check(), Err(SchemaError::DefaultTypeMismatch { .. })));
    }
}
