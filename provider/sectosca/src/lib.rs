//! The SecTOSCA compiler: security requirements written in SecTOSCA (TOSCA plus the
//! `sdsec` profile) become one enforcement plan per unikernel.
//!
//! Stages: [`parse`] → [`resolve`] → [`check`] → [`lower`]. Every problem is a
//! [`Diagnostic`] with a stable code, a position and a YAML path; all of them are
//! reported, not just the first. This crate does no I/O and knows nothing of Terraform
//! or hypervisors.

pub mod canonical;
pub mod check;
mod decode;
pub mod diagnostic;
pub mod imports;
pub mod lower;
pub mod model;
pub mod parse;
pub mod path;
pub mod profile;
pub mod resolve;
pub mod schema;
pub mod source;
pub mod summary;
pub mod values;

use std::collections::BTreeMap;

pub use diagnostic::{Code, Diagnostic, Location, Severity};
pub use imports::{LoadError, Loader, NoLoader};
pub use lower::plan::{ChangeKind, EnforcementPlan, PLAN_FORMAT};
pub use parse::Limits;
pub use path::YamlPath;
pub use resolve::Output;
pub use source::{Source, Span};

/// The version of the compiler, part of every image digest built from its plans.
pub const COMPILER_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub limits: Limits,
}

/// What compiling one document gave.
#[derive(Debug, Clone)]
pub struct Compilation {
    /// One plan per unikernel, by node template name; empty when there are errors.
    pub plans: BTreeMap<String, EnforcementPlan>,
    /// Errors and warnings, in document order: the compiled document's, then each imported
    /// document's in the order they were read. Each names its document in `location.file`.
    pub diagnostics: Vec<Diagnostic>,
    /// The compiled document, then each document it imports (directly or not), in the order
    /// they were read: what diagnostics point into, and what the plans depend on.
    pub sources: Vec<Source>,
    /// The topology's outputs, by name; empty when there are errors.
    pub outputs: BTreeMap<String, Output>,
}

impl Compilation {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    /// Canonical JSON of every plan, by node name.
    pub fn canonical_json(&self) -> String {
        canonical::to_canonical_json(&self.plans).unwrap_or_default()
    }

    /// Digest of all plans: it changes exactly when what is enforced changes.
    pub fn digest(&self) -> String {
        canonical::sha256_digest(self.canonical_json().as_bytes())
    }

    /// Canonical JSON of one node's plan.
    pub fn plan_json(&self, node: &str) -> Option<String> {
        self.plans.get(node).and_then(|p| canonical::to_canonical_json(p).ok())
    }
}

/// Compiles one document with input values given as text (from Terraform or a command line).
/// Imports other than the sdsec profile are refused: see [`compile_with`].
pub fn compile(source: &Source, inputs: &BTreeMap<String, String>, options: &Options) -> Compilation {
    compile_with(source, inputs, options, &NoLoader)
}

/// Compiles one document and the documents it imports, whose text `loader` gives.
pub fn compile_with(
    source: &Source,
    inputs: &BTreeMap<String, String>,
    options: &Options,
    loader: &dyn Loader,
) -> Compilation {
    let mut sink = diagnostic::Sink::new(source);
    let mut plans = BTreeMap::new();
    let mut outputs = BTreeMap::new();
    if let Some(root) = parse::parse(&mut sink, &options.limits) {
        let imported = imports::load(&root, loader, &options.limits, &mut sink);
        if let Some(template) = imports::template::template(&root, &imported, &mut sink)
            && let Some(resolved) = resolve::resolve(&template, inputs, &mut sink)
        {
            let checked = check::check(&resolved, &mut sink);
            let lowered = lower::lower(&checked, &mut sink);
            if !sink.has_errors() {
                plans = lowered;
                outputs = resolved.outputs.clone();
            }
        }
    }
    let sources: Vec<Source> = std::iter::once(source.clone()).chain(sink.imported().iter().cloned()).collect();
    let mut diagnostics = sink.diagnostics;
    // Spans count across documents while compiling: in order of documents, then of places.
    diagnostics.sort_by_key(|d| (d.location.as_ref().map(|l| l.span.start), d.code));
    diagnostics.dedup();
    for d in &mut diagnostics {
        if d.hint.is_none() {
            d.hint = Some(d.code.default_hint().to_owned());
        }
        if let Some(loc) = &mut d.location
            && let Some(file) = sources.iter().find(|s| s.name == loc.file)
        {
            loc.span = loc.span.unshifted(file.base());
        }
    }
    let sources = sources.into_iter().map(|s| s.with_base(0)).collect();
    Compilation { plans, diagnostics, sources, outputs }
}

/// Compiles text named `name` with no inputs and default options.
pub fn compile_str(name: &str, text: &str) -> Compilation {
    compile(&Source::new(name, text), &BTreeMap::new(), &Options::default())
}
