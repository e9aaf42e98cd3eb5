//! Diagnostics: how user errors reach Terraform. They travel inside the
//! response so Terraform can show them against the configuration line of
//! the offending attribute; a gRPC error would instead abort the run with a
//! message about the plugin crashing.

use std::fmt;

use magma_protocol::tfplugin6 as proto;

/// One step into a value: an object attribute, a map key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathStep {
    Attribute(String),
    Key(String),
    Index(i64),
}

/// Where in a configuration or state a diagnostic points, e.g.
/// `application.args[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AttributePath {
    steps: Vec<PathStep>,
}

impl AttributePath {
    /// The empty path: the whole object.
    pub fn root() -> Self {
        AttributePath::default()
    }

    /// Shorthand for the path of a top-level attribute.
    pub fn attr(name: impl Into<String>) -> Self {
        AttributePath::root().attribute(name)
    }

    pub fn attribute(mut self, name: impl Into<String>) -> Self {
        self.steps.push(PathStep::Attribute(name.into()));
        self
    }

    /// A map element.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.steps.push(PathStep::Key(key.into()));
        self
    }

    /// A list or tuple element.
    pub fn index(mut self, index: i64) -> Self {
        self.steps.push(PathStep::Index(index));
        self
    }

    /// This path followed by `rest`.
    pub fn join(mut self, rest: &AttributePath) -> Self {
        self.steps.extend(rest.steps.iter().cloned());
        self
    }

    pub fn steps(&self) -> &[PathStep] {
        &self.steps
    }

    pub fn to_proto(&self) -> proto::AttributePath {
        use proto::attribute_path::{Step, step::Selector};
        let steps = self
            .steps
            .iter()
            .map(|step| Step {
                selector: Some(match step {
                    PathStep::Attribute(name) => Selector::AttributeName(name.clone()),
                    PathStep::Key(key) => Selector::ElementKeyString(key.clone()),
                    PathStep::Index(index) => Selector::ElementKeyInt(*index),
                }),
            })
            .collect();
        proto::AttributePath { steps }
    }
}

impl fmt::Display for AttributePath {
    /// HCL-like rendering for messages; the root renders as `(root)`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            return formatter.write_str("(root)");
        }
        for (position, step) in self.steps.iter().enumerate() {
            match step {
                PathStep::Attribute(name) if position == 0 => formatter.write_str(name)?,
                PathStep::Attribute(name) => write!(formatter, ".{name}")?,
                PathStep::Key(key) => write!(formatter, "[{key:?}]")?,
                PathStep::Index(index) => write!(formatter, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// A message for the person running Terraform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// One line saying what is wrong.
    pub summary: String,
    /// Why, and how to fix it.
    pub detail: String,
    /// The attribute it is about, when there is one.
    pub attribute: Option<AttributePath>,
}

impl Diagnostic {
    pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Error, summary: summary.into(), detail: detail.into(), attribute: None }
    }

    pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(summary, detail) }
    }

    /// Points this diagnostic at an attribute.
    pub fn at(mut self, path: AttributePath) -> Self {
        self.attribute = Some(path);
        self
    }

    pub fn to_proto(&self) -> proto::Diagnostic {
        let severity = match self.severity {
            Severity::Error => proto::diagnostic::Severity::Error,
            Severity::Warning => proto::diagnostic::Severity::Warning,
        };
        proto::Diagnostic {
            severity: severity.into(),
            summary: self.summary.clone(),
            detail: self.detail.clone(),
            attribute: self.attribute.as_ref().map(AttributePath::to_proto),
        }
    }
}

/// An ordered collection of diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Self {
        Diagnostics::default()
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn error(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.push(Diagnostic::error(summary, detail));
    }

    pub fn attribute_error(&mut self, path: AttributePath, summary: impl Into<String>, detail: impl Into<String>) {
        self.push(Diagnostic::error(summary, detail).at(path));
    }

    pub fn warning(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.push(Diagnostic::warning(summary, detail));
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|diagnostic| diagnostic.severity == Severity::Error)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    pub fn to_proto(&self) -> Vec<proto::Diagnostic> {
        self.0.iter().map(Diagnostic::to_proto).collect()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(diagnostic: Diagnostic) -> Self {
        Diagnostics(vec![diagnostic])
    }
}

impl FromIterator<Diagnostic> for Diagnostics {
    fn from_iter<I: IntoIterator<Item = Diagnostic>>(iter: I) -> Self {
        Diagnostics(iter.into_iter().collect())
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::attribute_path::step::Selector;

    #[test]
    fn path_renders_like_hcl_and_converts_every_step() {
        let path = AttributePath::attr("application").attribute("env").key("HOME").index(2);
        assert_eq!(path.to_string(), r#"application.env["HOME"][2]"#);
        let selectors: Vec<_> = path.to_proto().steps.into_iter().filter_map(|step| step.selector).collect();
        assert_eq!(
            selectors,
            vec![
                Selector::AttributeName("application".into()),
                Selector::AttributeName("env".into()),
                Selector::ElementKeyString("HOME".into()),
                Selector::ElementKeyInt(2),
            ]
        );
    }

    #[test]
    fn warnings_are_not_errors() {
        let mut diagnostics = Diagnostics::new();
        diagnostics.warning("careful", "");
        assert!(!diagnostics.has_errors());
        diagnostics.attribute_error(AttributePath::attr("size"), "too big", "at most 8");
        assert!(diagnostics.has_errors());
        let wire = diagnostics.to_proto();
        assert_eq!(wire[1].severity, proto::diagnostic::Severity::Error as i32);
        assert!(wire[1].attribute.is_some());
    }
}
