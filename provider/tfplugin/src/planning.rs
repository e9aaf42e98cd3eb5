//! The fixed planning order, implemented once for every resource:
//!
//! 1. destroying (proposed state null): plan null;
//! 2. apply `default`s to optional+computed attributes left out of config;
//! 3. if the resource is created, or anything differs from prior state,
//!    mark computed attributes the config leaves out as unknown. When only
//!    such attributes would differ, prior values are kept, so an unchanged
//!    configuration never shows a perpetual "known after apply" diff;
//! 4. per attribute, plan modifiers in declaration order;
//! 5. the resource's own `plan` hook (called by the server, not here).
//!
//! Steps 2–4 apply to top-level attributes. Attributes of nested blocks
//! are planned as Terraform proposed them, with the hook free to adjust.

use crate::modifiers::PlanModifier;
use crate::schema::Block;
use crate::{AttributePath, Diagnostics, Schema, Value};

/// The framework's part of a plan, before the resource's hook.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FrameworkPlan {
    pub planned_state: Value,
    pub requires_replace: Vec<AttributePath>,
}

/// Steps 2–4. `prior` is null for a create; `proposed` is not null (the
/// caller handles destroy).
pub(crate) fn plan_attributes(schema: &Schema, prior: &Value, proposed: &Value, config: &Value) -> FrameworkPlan {
    let creating = prior.is_null();
    let attributes = &schema.block.attributes;
    let config_value = |name: &str| config.get(name).cloned().unwrap_or(Value::Null);
    let prior_value = |name: &str| prior.get(name).cloned().unwrap_or(Value::Null);
    let mut planned = proposed.clone();

    for attribute in attributes {
        if let Some(default) = &attribute.default
            && config_value(&attribute.name).is_null()
        {
            planned.set(&attribute.name, default.clone());
        }
    }

    if creating || planned != *prior {
        for attribute in attributes {
            if attribute.is_computed() && attribute.default.is_none() && config_value(&attribute.name).is_null() {
                planned.set(&attribute.name, Value::unknown());
            }
        }
    }

    let mut requires_replace = Vec::new();
    for attribute in attributes {
        let name = attribute.name.as_str();
        let prior = prior_value(name);
        for modifier in &attribute.plan_modifiers {
            let planned_now = planned.get(name).cloned().unwrap_or(Value::Null);
            let changed = !creating && planned_now != prior;
            match modifier {
                PlanModifier::UseStateForUnknown => {
                    let config_known = !config_value(name).is_unknown();
                    if !creating && planned_now.is_unknown() && !prior.is_null() && config_known {
                        planned.set(name, prior.clone());
                    }
                }
                PlanModifier::RequiresReplace => {
                    if changed {
                        push_unique(&mut requires_replace, AttributePath::attr(name));
                    }
                }
                PlanModifier::RequiresReplaceIf { condition, .. } => {
                    if changed && condition(&prior, &planned_now) {
                        push_unique(&mut requires_replace, AttributePath::attr(name));
                    }
                }
            }
        }
    }

    FrameworkPlan { planned_state: planned, requires_replace }
}

pub(crate) fn push_unique(paths: &mut Vec<AttributePath>, path: AttributePath) {
    if !paths.contains(&path) {
        paths.push(path);
    }
}

/// Runs attribute validators over the known, non-null parts of `config`,
/// including attributes inside nested blocks.
pub(crate) fn validate_attributes(schema: &Schema, config: &Value) -> Diagnostics {
    let mut diagnostics = Diagnostics::new();
    validate_block(&schema.block, config, &AttributePath::root(), &mut diagnostics);
    diagnostics
}

fn validate_block(block: &Block, value: &Value, path: &AttributePath, diagnostics: &mut Diagnostics) {
    for attribute in &block.attributes {
        let Some(attribute_value) = value.get(&attribute.name) else {
            continue;
        };
        if attribute_value.is_null() || attribute_value.is_unknown() {
            continue;
        }
        let attribute_path = path.clone().attribute(&attribute.name);
        for validator in &attribute.validators {
            validator.validate(attribute_value, &attribute_path, diagnostics);
        }
    }
    for nested in &block.blocks {
        let block_path = path.clone().attribute(&nested.type_name);
        match value.get(&nested.type_name) {
            Some(single @ Value::Object(_)) => {
                validate_block(&nested.block, single, &block_path, diagnostics);
            }
            Some(Value::List(items)) => {
                for (index, item) in items.iter().enumerate() {
                    let index = i64::try_from(index).unwrap_or(i64::MAX);
                    validate_block(&nested.block, item, &block_path.clone().index(index), diagnostics);
                }
            }
            // Set elements have no stable address in protocol 6 paths: point
            // at the block itself.
            Some(Value::Set(items)) => {
                for item in items {
                    validate_block(&nested.block, item, &block_path, diagnostics);
                }
            }
            Some(Value::Map(items)) => {
                for (key, item) in items {
                    validate_block(&nested.block, item, &block_path.clone().key(key), diagnostics);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attribute, Block, NestedBlock, Nesting, validators::OneOf};

    fn schema() -> Schema {
        Schema::new(0)
            .attribute(Attribute::string("id").computed().use_state_for_unknown())
            .attribute(Attribute::string("name").required().requires_replace())
            .attribute(Attribute::number("size").default(3))
            .attribute(Attribute::string("endpoint").computed())
            .attribute(Attribute::string("note").optional())
    }

    fn state(id: Value, name: &str, size: i64, endpoint: Value, note: Value) -> Value {
        Value::object([
            ("id", id),
            ("name", Value::from(name)),
            ("size", Value::from(size)),
            ("endpoint", endpoint),
            ("note", note),
        ])
    }

    fn config(name: &str, size: Value, note: Value) -> Value {
        Value::object([
            ("id", Value::Null),
            ("name", Value::from(name)),
            ("size", size),
            ("endpoint", Value::Null),
            ("note", note),
        ])
    }

    #[test]
    fn create_applies_defaults_and_marks_computed_unknown() {
        let config = config("api", Value::Null, Value::Null);
        let plan = plan_attributes(&schema(), &Value::Null, &config, &config);
        let expected = state(Value::unknown(), "api", 3, Value::unknown(), Value::Null);
        assert_eq!(plan.planned_state, expected);
        assert!(plan.requires_replace.is_empty());
    }

    #[test]
    fn unchanged_config_keeps_prior_values() {
        let prior = state(Value::from("i-1"), "api", 3, Value::from("127.0.0.1:80"), Value::Null);
        let config = config("api", Value::Null, Value::Null);
        // Terraform proposes prior values for computed attributes.
        let plan = plan_attributes(&schema(), &prior, &prior, &config);
        assert_eq!(plan.planned_state, prior);
    }

    #[test]
    fn in_place_change_marks_computed_unknown_but_state_for_unknown_keeps_id() {
        let prior = state(Value::from("i-1"), "api", 3, Value::from("127.0.0.1:80"), Value::Null);
        let config = config("api", Value::Null, Value::from("hello"));
        let mut proposed = prior.clone();
        proposed.set("note", Value::from("hello"));
        let plan = plan_attributes(&schema(), &prior, &proposed, &config);
        let expected = state(Value::from("i-1"), "api", 3, Value::unknown(), Value::from("hello"));
        assert_eq!(plan.planned_state, expected);
        assert!(plan.requires_replace.is_empty());
    }

    #[test]
    fn changing_a_requires_replace_attribute_is_reported() {
        let prior = state(Value::from("i-1"), "api", 3, Value::from("e"), Value::Null);
        let config = config("web", Value::Null, Value::Null);
        let mut proposed = prior.clone();
        proposed.set("name", Value::from("web"));
        let plan = plan_attributes(&schema(), &prior, &proposed, &config);
        assert_eq!(plan.requires_replace, vec![AttributePath::attr("name")]);
    }

    #[test]
    fn requires_replace_if_consults_the_condition() {
        let grows_only = PlanModifier::requires_replace_if("shrinking", |prior, planned| {
            let size = |value: &Value| value.as_number().map_or(0.0, |n| n.as_f64());
            size(planned) < size(prior)
        });
        let schema = Schema::new(0).attribute(Attribute::number("size").required().plan_modifier(grows_only));
        let prior = Value::object([("size", Value::from(4))]);
        let grow = Value::object([("size", Value::from(5))]);
        let shrink = Value::object([("size", Value::from(3))]);
        assert!(plan_attributes(&schema, &prior, &grow, &grow).requires_replace.is_empty());
        assert_eq!(
            plan_attributes(&schema, &prior, &shrink, &shrink).requires_replace,
            vec![AttributePath::attr("size")]
        );
    }

    #[test]
    fn validators_reach_into_nested_blocks_with_paths() {
        let schema = Schema::new(0).block(NestedBlock::new(
            "rule",
            Nesting::List,
            Block::new().attribute(Attribute::string("action").validator(OneOf::new(["allow", "deny"]))),
        ));
        let config = Value::object([(
            "rule",
            Value::List(vec![
                Value::object([("action", Value::from("allow"))]),
                Value::object([("action", Value::from("drop"))]),
                Value::object([("action", Value::unknown())]),
            ]),
        )]);
        let diagnostics = validate_attributes(&schema, &config);
        let paths: Vec<String> =
            diagnostics.iter().filter_map(|d| d.attribute.as_ref().map(ToString::to_string)).collect();
        assert_eq!(paths, vec!["rule[1].action".to_owned()]);
    }
}
