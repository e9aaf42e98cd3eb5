//! Attribute validators, run by the framework on known, non-null
//! configuration values before the resource's own `validate` hook.

use std::fmt;

use crate::{AttributePath, Diagnostic, Diagnostics, Value};

/// Checks one attribute value. Implementations add diagnostics pointing at
/// `path`; they never see unknown or null values.
pub trait Validator: Send + Sync + fmt::Debug {
    /// A sentence for documentation, e.g. "one of `qemu`, `libvirt`".
    fn description(&self) -> String;
    fn validate(&self, value: &Value, path: &AttributePath, diagnostics: &mut Diagnostics);
}

/// The string must be one of the listed values.
#[derive(Debug, Clone)]
pub struct OneOf(pub Vec<String>);

impl OneOf {
    pub fn new<S: Into<String>>(allowed: impl IntoIterator<Item = S>) -> Self {
        OneOf(allowed.into_iter().map(Into::into).collect())
    }

    fn listing(&self) -> String {
        let quoted: Vec<String> = self.0.iter().map(|allowed| format!("`{allowed}`")).collect();
        quoted.join(", ")
    }
}

impl Validator for OneOf {
    fn description(&self) -> String {
        format!("one of {}", self.listing())
    }

    fn validate(&self, value: &Value, path: &AttributePath, diagnostics: &mut Diagnostics) {
        let Some(text) = value.as_str() else { return };
        if !self.0.iter().any(|allowed| allowed == text) {
            diagnostics.push(
                Diagnostic::error(
                    format!("Invalid value for {path}"),
                    format!("{text:?} is not allowed here; use one of {}.", self.listing()),
                )
                .at(path.clone()),
            );
        }
    }
}

/// The number must be a whole number within `min..=max`.
#[derive(Debug, Clone, Copy)]
pub struct IntegerBetween {
    pub min: i64,
    pub max: i64,
}

impl Validator for IntegerBetween {
    fn description(&self) -> String {
        format!("a whole number from {} to {}", self.min, self.max)
    }

    fn validate(&self, value: &Value, path: &AttributePath, diagnostics: &mut Diagnostics) {
        let Some(number) = value.as_number() else { return };
        let within = number.as_i64().is_some_and(|int| (self.min..=self.max).contains(&int));
        if !within {
            diagnostics.push(
                Diagnostic::error(
                    format!("Invalid value for {path}"),
                    format!("{number} is not {}.", self.description()),
                )
                .at(path.clone()),
            );
        }
    }
}

/// The string must not be empty.
#[derive(Debug, Clone, Copy)]
pub struct NonEmpty;

impl Validator for NonEmpty {
    fn description(&self) -> String {
        "a non-empty string".to_owned()
    }

    fn validate(&self, value: &Value, path: &AttributePath, diagnostics: &mut Diagnostics) {
        if value.as_str() == Some("") {
            diagnostics.push(
                Diagnostic::error(format!("Empty value for {path}"), "This attribute must not be an empty string.")
                    .at(path.clone()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(validator: &dyn Validator, value: Value) -> Diagnostics {
        let mut diagnostics = Diagnostics::new();
        validator.validate(&value, &AttributePath::attr("x"), &mut diagnostics);
        diagnostics
    }

    #[test]
    fn one_of_accepts_listed_and_rejects_others_with_path() {
        let hypervisors = OneOf::new(["qemu", "libvirt"]);
        assert!(run(&hypervisors, Value::from("qemu")).is_empty());
        let diagnostics = run(&hypervisors, Value::from("xen"));
        let first = diagnostics.iter().next().cloned();
        assert_eq!(first.and_then(|d| d.attribute), Some(AttributePath::attr("x")));
    }

    #[test]
    fn integer_between_rejects_fractions_and_out_of_range() {
        let range = IntegerBetween { min: 1, max: 8 };
        assert!(run(&range, Value::from(8)).is_empty());
        assert!(run(&range, Value::from(9)).has_errors());
        assert!(run(&range, Value::number(1.5)).has_errors());
        assert!(run(&NonEmpty, Value::from("")).has_errors());
    }
}
