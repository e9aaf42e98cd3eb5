//! Compiling a policy document for Terraform: the computed attributes it yields, and the
//! compiler's diagnostics as Terraform diagnostics on the right attribute. What
//! `sdsec_security_policy` and `sdsec_policy_document` share.

pub mod fields;
mod loader;

use std::collections::BTreeMap;

use sectosca::{Compilation, Source};
use tfplugin::{AttributePath, Diagnostic, Diagnostics};

pub use self::fields::PolicyFields;

/// What a document compiles to, as attribute values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPolicy {
    pub digest: String,
    pub summary: String,
    /// Node name → its enforcement plan as the attribute carries it: see
    /// [`fields::enforcement_value`].
    pub enforcement: BTreeMap<String, String>,
    /// Warnings to show even though the document compiled.
    pub warnings: Vec<sectosca::Diagnostic>,
    /// The document and those it imports, which the warnings point into.
    pub sources: Vec<Source>,
}

/// The name diagnostics give the document: Terraform already points at the attribute.
pub const SOURCE_NAME: &str = "document";

/// Compiles a document that imports nothing (any import but the profile is an error).
/// What `base_dir` means, on the resource and the data source alike.
pub const BASE_DIR_DESCRIPTION: &str = "The directory of the document, which its `imports` are relative to (an imported document's own \
             imports are relative to that document). Default `.`: the working directory Terraform runs in. \
             With `document = file(\"${path.module}/policies/api.yaml\")`, set \
             `base_dir = \"${path.module}/policies\"`. Imported files are read at every validate and plan, so \
             a change in one that changes what is enforced shows in the plan (`digest`, `enforcement`). \
             Imports are relative paths (`../common/audit.yaml` climbs up); URLs and absolute paths are refused.";

pub fn compile(document: &str, inputs: &BTreeMap<String, String>) -> (Source, Compilation) {
    let source = Source::new(SOURCE_NAME, document);
    let compilation = sectosca::compile(&source, inputs, &sectosca::Options::default());
    (source, compilation)
}

/// Compiles a document whose imports are read from `base_dir` (relative to the working
/// directory, Terraform's, unless absolute).
pub fn compile_in(document: &str, inputs: &BTreeMap<String, String>, base_dir: &str) -> Compilation {
    let source = Source::new(SOURCE_NAME, document);
    let loader = loader::FileLoader { base: std::path::PathBuf::from(base_dir) };
    sectosca::compile_with(&source, inputs, &sectosca::Options::default(), &loader)
}

/// Compiles, or returns the compiler's diagnostics mapped onto `document` / `inputs`.
///
/// Terraform asks about each resource instance twice in a row with the same document and
/// inputs (ValidateResourceConfig, then PlanResourceChange; in `plan`, and again in `apply`),
/// and compiling is a pure function of them: the outcome of the last few compiles is kept and
/// handed out again instead of compiling the same document twice.
pub fn compile_policy(
    document: &str,
    inputs: &BTreeMap<String, String>,
    base_dir: &str,
    base: &AttributePath,
) -> Result<CompiledPolicy, Diagnostics> {
    if let Some(outcome) = recent::lookup(document, inputs, base_dir, base) {
        return outcome;
    }
    let outcome = compile_uncached(document, inputs, base_dir, base);
    recent::remember(document, inputs, base_dir, base, &outcome);
    outcome
}

fn compile_uncached(
    document: &str,
    inputs: &BTreeMap<String, String>,
    base_dir: &str,
    base: &AttributePath,
) -> Result<CompiledPolicy, Diagnostics> {
    let compilation = compile_in(document, inputs, base_dir);
    if compilation.has_errors() {
        return Err(to_diagnostics(&compilation.sources, &compilation.diagnostics, base));
    }
    Ok(CompiledPolicy {
        digest: compilation.digest(),
        summary: sectosca::summary::brief(compilation.plans.values()),
        enforcement: compilation
            .plans
            .keys()
            .filter_map(|n| compilation.plan_json(n).map(|j| (n.clone(), fields::enforcement_value(&j))))
            .collect(),
        warnings: compilation.diagnostics.clone(),
        sources: compilation.sources,
    })
}

/// The outcomes of the most recent compiles, oldest first, bounded in number and in size.
mod recent {
    use std::collections::{BTreeMap, VecDeque};
    use std::sync::{Mutex, PoisonError};

    use tfplugin::{AttributePath, Diagnostics};

    use super::CompiledPolicy;

    /// Well above Terraform's default parallelism (10), so an instance's plan still finds
    /// the compile of its validate while other instances are validated in between.
    const ENTRIES: usize = 32;
    /// Upper bound on the text kept (documents and their enforcement plans), so that large
    /// documents cannot make the provider hold much memory.
    const BYTES: usize = 8 << 20;

    struct Entry {
        document: String,
        inputs: BTreeMap<String, String>,
        base_dir: String,
        base: AttributePath,
        outcome: Result<CompiledPolicy, Diagnostics>,
        bytes: usize,
    }

    static RECENT: Mutex<VecDeque<Entry>> = Mutex::new(VecDeque::new());

    pub(super) fn lookup(
        document: &str,
        inputs: &BTreeMap<String, String>,
        base_dir: &str,
        base: &AttributePath,
    ) -> Option<Result<CompiledPolicy, Diagnostics>> {
        let recent = RECENT.lock().unwrap_or_else(PoisonError::into_inner);
        recent
            .iter()
            .rev()
            .find(|e| e.document == document && e.inputs == *inputs && e.base_dir == base_dir && e.base == *base)
            .map(|e| e.outcome.clone())
    }

    pub(super) fn remember(
        document: &str,
        inputs: &BTreeMap<String, String>,
        base_dir: &str,
        base: &AttributePath,
        outcome: &Result<CompiledPolicy, Diagnostics>,
    ) {
        let output_bytes =
            outcome.as_ref().map_or(0, |c| c.summary.len() + c.enforcement.values().map(String::len).sum::<usize>());
        let imported = outcome.as_ref().map_or(0, |c| c.sources.iter().skip(1).map(|s| s.text.len()).sum::<usize>());
        let bytes = document.len() + output_bytes + imported;
        if bytes > BYTES {
            return;
        }
        let mut recent = RECENT.lock().unwrap_or_else(PoisonError::into_inner);
        recent.push_back(Entry {
            document: document.to_owned(),
            inputs: inputs.clone(),
            base_dir: base_dir.to_owned(),
            base: base.clone(),
            outcome: outcome.clone(),
            bytes,
        });
        while recent.len() > ENTRIES || recent.iter().map(|e| e.bytes).sum::<usize>() > BYTES {
            recent.pop_front();
        }
    }

    #[cfg(test)]
    pub(super) fn len() -> usize {
        RECENT.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Problems with a value given from outside belong on `inputs["name"]`, as the compiler
/// says by naming the input; everything else on `document`.
fn attribute_for(d: &sectosca::Diagnostic, base: &AttributePath) -> AttributePath {
    let attribute = match &d.input {
        Some(name) => AttributePath::attr(fields::INPUTS).key(name.clone()),
        None => AttributePath::attr(fields::DOCUMENT),
    };
    base.clone().join(&attribute)
}

/// The compiler's diagnostics as Terraform's; `sources` are the document and those it
/// imports, for the line each diagnostic shows.
pub fn to_diagnostics(sources: &[Source], diagnostics: &[sectosca::Diagnostic], base: &AttributePath) -> Diagnostics {
    diagnostics
        .iter()
        .filter_map(|d| {
            let summary = format!("{}: {}", d.code, d.message);
            let detail = detail(sectosca::source::of(sources, d)?, d);
            let diagnostic =
                if d.is_error() { Diagnostic::error(summary, detail) } else { Diagnostic::warning(summary, detail) };
            Some(diagnostic.at(attribute_for(d, base)))
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
            let width = source
                .text
                .get(loc.span.start..loc.span.end)
                .map_or(1, |s| s.lines().next().unwrap_or("").chars().count().max(1));
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
        let err = compile_policy(BAD, &BTreeMap::new(), ".", &AttributePath::root()).unwrap_err();
        let d = err.iter().next().unwrap();
        assert!(d.summary.starts_with("E0401: "), "{}", d.summary);
        assert!(d.detail.contains("document:4:"), "{}", d.detail);
        assert!(d.detail.contains("^^^^^^^^^^"), "{}", d.detail);
        assert!(d.detail.contains("Hint: did you mean `10.0.0.0/8`?"), "{}", d.detail);
        assert_eq!(d.attribute.as_ref().map(ToString::to_string).as_deref(), Some("document"));
    }

    #[test]
    fn a_repeated_compile_gives_the_same_outcome_and_the_cache_stays_bounded() {
        const GOOD: &str = "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    api: { type: sdsec.nodes.Unikernel, properties: { port: 8080 } }\n";
        let inputs = BTreeMap::new();
        let root = AttributePath::root();
        assert_eq!(compile_policy(GOOD, &inputs, ".", &root), compile_uncached(GOOD, &inputs, ".", &root));
        assert_eq!(compile_policy(GOOD, &inputs, ".", &root), compile_uncached(GOOD, &inputs, ".", &root));
        assert_eq!(compile_policy(BAD, &inputs, ".", &root), compile_uncached(BAD, &inputs, ".", &root));
        // The base path is part of the key: diagnostics point under it.
        let nested = AttributePath::attr("policy");
        assert_eq!(compile_policy(BAD, &inputs, ".", &nested), compile_uncached(BAD, &inputs, ".", &nested));
        for port in 0..100 {
            let document = GOOD.replace("8080", &(9000 + port).to_string());
            assert_eq!(
                compile_policy(&document, &inputs, ".", &root),
                compile_uncached(&document, &inputs, ".", &root)
            );
        }
        assert!(recent::len() <= 32);
    }

    #[test]
    fn a_bad_input_value_points_at_that_input_and_a_bad_document_at_the_document() {
        const QUICKSTART: &str = include_str!("../../../../examples/quickstart/policy.yaml");
        let root = AttributePath::root();
        let attributes = |inputs: &[(&str, &str)]| -> Vec<String> {
            let inputs = inputs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            let diags = compile_policy(QUICKSTART, &inputs, ".", &root).unwrap_err();
            diags.iter().map(|d| d.attribute.as_ref().map(ToString::to_string).unwrap_or_default()).collect()
        };
        assert_eq!(attributes(&[("threat_level", "extreme")]), ["inputs[\"threat_level\"]"]);
        assert_eq!(attributes(&[("threat_levle", "high")]), ["inputs[\"threat_levle\"]"]);
        // A value that names an input but is the document's problem stays on the document.
        let broken = QUICKSTART.replace("in: [elevated, high]", "in: [elevated, threat_level]");
        let (source, compilation) = compile(&broken, &[("threat_level".to_owned(), "high".to_owned())].into());
        let diags = to_diagnostics(std::slice::from_ref(&source), &compilation.diagnostics, &root);
        assert!(diags.iter().any(|d| d.summary.contains("can never match")), "{diags:?}");
        for d in diags.iter() {
            assert_eq!(d.attribute.as_ref().map(ToString::to_string).as_deref(), Some("document"), "{d:?}");
        }
    }

    #[test]
    fn imports_are_read_under_base_dir_and_their_mistakes_shown_there() {
        let dir = std::env::temp_dir().join(format!("sdsec-policy-imports-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("policies")).unwrap();
        std::fs::create_dir_all(dir.join("common")).unwrap();
        let fragment = "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  policies:\n    - audit: { type: sdsec.policies.Audit, properties: { events: [request] } }\n";
        std::fs::write(dir.join("common/audit.yaml"), fragment).unwrap();
        let document = "tosca_definitions_version: tosca_simple_yaml_1_3\nimports: [ ../common/audit.yaml ]\ntopology_template:\n  node_templates:\n    api: { type: sdsec.nodes.Unikernel }\n";
        let base_dir = dir.join("policies").display().to_string();
        let root = AttributePath::root();
        let compiled = compile_policy(document, &BTreeMap::new(), &base_dir, &root).unwrap();
        assert!(compiled.enforcement["api"].contains("\"request\""), "{}", compiled.enforcement["api"]);
        // The working directory is not where the fragment is.
        assert!(compile_policy(document, &BTreeMap::new(), ".", &root).is_err());

        std::fs::write(dir.join("common/audit.yaml"), fragment.replace("[request]", "[requests]")).unwrap();
        let err = compile_policy(document, &BTreeMap::new(), &format!("{base_dir}/"), &root).unwrap_err();
        let detail = format!("{err:?}");
        assert!(detail.contains("../common/audit.yaml:4:"), "{detail}");
        assert!(detail.contains("events: [requests]"), "{detail}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
