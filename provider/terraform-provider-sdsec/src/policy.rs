//! Compiling a policy document for Terraform: the computed attributes it yields, and the
//! compiler's diagnostics as Terraform diagnostics on the right attribute.

use std::collections::BTreeMap;

use sectosca::{Code, Compilation, Source};
use tfplugin::{AttributePath, Diagnostic, Diagnostics, Value};

use crate::values::map_value;

/// What a document compiles to, as attribute values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPolicy {
    pub digest: String,
    pub summary: String,
    /// Node name → canonical JSON of its enforcement plan.
    pub enforcement: BTreeMap<String, String>,
    /// Warnings to show even though the document compiled.
    pub warnings: Vec<sectosca::Diagnostic>,
}

impl CompiledPolicy {
    /// Sets `digest`, `summary` and `enforcement` on a resource or data source value.
    pub fn apply_to(&self, value: &mut Value) {
        value.set("digest", Value::from(self.digest.as_str()));
        value.set("summary", Value::from(self.summary.as_str()));
        value.set("enforcement", map_value(&self.enforcement));
    }
}

/// The name diagnostics give the document: Terraform already points at the attribute.
pub const SOURCE_NAME: &str = "document";

pub fn compile(document: &str, inputs: &BTreeMap<String, String>) -> (Source, Compilation) {
    let source = Source::new(SOURCE_NAME, document);
    let compilation = sectosca::compile(&source, inputs, &sectosca::Options::default());
    (source, compilation)
}

/// Compiles, or returns the compiler's diagnostics mapped onto `document` / `inputs`.
pub fn compile_policy(document: &str, inputs: &BTreeMap<String, String>, base: &AttributePath) -> Result<CompiledPolicy, Diagnostics> {
    let (source, compilation) = compile(document, inputs);
    if compilation.has_errors() {
        return Err(to_diagnostics(&source, &compilation.diagnostics, inputs, base));
    }
    Ok(CompiledPolicy {
        digest: compilation.digest(),
        summary: sectosca::summary::summarize(compilation.plans.values()),
        enforcement: compilation.plans.keys().filter_map(|n| compilation.plan_json(n).map(|j| (n.clone(), j))).collect(),
        warnings: compilation.diagnostics.clone(),
    })
}

/// Problems with a value given from outside belong on `inputs["name"]`; everything else
/// on `document`.
fn attribute_for(d: &sectosca::Diagnostic, inputs: &BTreeMap<String, String>, base: &AttributePath) -> AttributePath {
    let input_codes = [Code::InputConstraint, Code::InputType, Code::UndeclaredInput];
    if input_codes.contains(&d.code) {
        if let Some(name) = inputs.keys().find(|name| d.message.contains(&format!("`{name}`"))) {
            return base.clone().join(&AttributePath::attr("inputs").key(name.clone()));
        }
    }
    base.clone().join(&AttributePath::attr("document"))
}

pub fn to_diagnostics(source: &Source, diagnostics: &[sectosca::Diagnostic], inputs: &BTreeMap<String, String>, base: &AttributePath) -> Diagnostics {
    diagnostics
        .iter()
        .map(|d| {
            let summary = format!("{}: {}", d.code, d.message);
            let detail = detail(source, d);
            let attribute = attribute_for(d, inputs, base);
            let diagnostic = if d.is_error() { Diagnostic::error(summary, detail) } else { Diagnostic::warning(summary, detail) };
            diagnostic.at(attribute)
        })
        .collect()
}

/// Where the problem is in the document, the offending line with a marker, and the hint.
fn detail(source: &Source, d: &sectosca::Diagnostic) -> String {
    let mut out = String::new();
    if let Some(loc) = &d.location {
        out.push_str(&format!("{}:{}:{}", loc.file, loc.line, loc.column));
        if !d.path.is_root() {
            out.push_str(&format!(" at {}", d.path));
        }
        out.push('\n');
        if let Some(line) = source.text.lines().nth(loc.line - 1) {
            let width = source.text.get(loc.span.start..loc.span.end).map_or(1, |s| s.lines().next().unwrap_or("").chars().count().max(1));
            out.push_str(&format!("\n  {line}\n  {}{}\n", " ".repeat(loc.column - 1), "^".repeat(width)));
        }
    } else if !d.path.is_root() {
        out.push_str(&format!("at {}\n", d.path));
    }
    if let Some(hint) = &d.hint {
        out.push_str(&format!("\nHint: {hint}"));
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAD: &str = "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  policies:\n    - fw: { type: sdsec.policies.Firewall, targets: [api], properties: { ingress: [ { from: 10.0.0.1/8, action: allow } ] } }\n";

    #[test]
    fn errors_point_at_the_document_with_line_column_and_a_marker() {
        let err = compile_policy(BAD, &BTreeMap::new(), &AttributePath::root()).unwrap_err();
        let d = err.iter().next().unwrap();
        assert!(d.summary.starts_with("E0401: "), "{}", d.summary);
        assert!(d.detail.contains("document:4:"), "{}", d.detail);
        assert!(d.detail.contains("^^^^^^^^^^"), "{}", d.detail);
        assert!(d.detail.contains("Hint: did you mean `10.0.0.0/8`?"), "{}", d.detail);
        assert_eq!(d.attribute.as_ref().map(ToString::to_string).as_deref(), Some("document"));
    }
}
