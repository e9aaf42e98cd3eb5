//! Per-attribute plan modifiers, run by the framework in declaration order
//! after defaults and unknown-marking (see `planning`).

use std::fmt;
use std::sync::Arc;

/// Decides whether a change of one attribute forces replacement, given the
/// attribute's prior value and its planned value.
pub type ReplaceCondition = Arc<dyn Fn(&crate::Value, &crate::Value) -> bool + Send + Sync>;

#[derive(Clone)]
pub enum PlanModifier {
    /// Plan the prior value instead of "known after apply" for a computed
    /// attribute that never changes once set (ids, creation times).
    UseStateForUnknown,
    /// Any change of this attribute on an existing resource replaces it.
    RequiresReplace,
    /// A change replaces the resource when `condition(prior, planned)` holds.
    RequiresReplaceIf {
        /// Says when, for humans reading the code and the docs.
        description: String,
        condition: ReplaceCondition,
    },
}

impl PlanModifier {
    pub fn requires_replace_if(
        description: impl Into<String>,
        condition: impl Fn(&crate::Value, &crate::Value) -> bool + Send + Sync + 'static,
    ) -> Self {
        PlanModifier::RequiresReplaceIf { description: description.into(), condition: Arc::new(condition) }
    }
}

impl fmt::Debug for PlanModifier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanModifier::UseStateForUnknown => formatter.write_str("UseStateForUnknown"),
            PlanModifier::RequiresReplace => formatter.write_str("RequiresReplace"),
            PlanModifier::RequiresReplaceIf { description, .. } => {
                write!(formatter, "RequiresReplaceIf({description:?})")
            }
        }
    }
}
