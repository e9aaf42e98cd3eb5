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
pub mod lower;
pub mod model;
pub mod parse;
pub mod path;
pub mod resolve;
pub mod schema;
pub mod source;
pub mod summary;
pub mod values;

use std::collections::BTreeMap;

pub use diagnostic::{Code, Diagnostic, Location, Severity};
pub use lower::plan::{ChangeKind, EnforcementPlan, PLAN_FORMAT};
pub use parse::Limits;
pub use path::YamlPath;
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
    /// Errors and warnings, in document order.
    pub diagnostics: Vec<Diagnostic>,
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
pub fn compile(source: &Source, inputs: &BTreeMap<String, String>, options: &Options) -> Compilation {
    let mut sink = diagnostic::Sink::new(source);
    let mut plans = BTreeMap::new();
    if let Some(root) = parse::parse(&mut sink, &options.limits)
        && let Some(resolved) = resolve::resolve(&root, inputs, &mut sink)
    {
        let checked = check::check(&resolved, &mut sink);
        let lowered = lower::lower(&checked, &mut sink);
        if !sink.has_errors() {
            plans = lowered;
        }
    }
    let mut diagnostics = sink.diagnostics;
    diagnostics.sort_by_key(|d| (d.location.as_ref().map(|l| (l.line, l.column)), d.code));
    diagnostics.dedup();
    for d in &mut diagnostics {
        if d.hint.is_none() {
            d.hint = Some(d.code.default_hint().to_owned());
        }
    }
    Compilation { plans, diagnostics }
}

/// Compiles text named `name` with no inputs and default options.
pub fn compile_str(name: &str, text: &str) -> Compilation {
    compile(&Source::new(name, text), &BTreeMap::new(), &Options::default())
}
