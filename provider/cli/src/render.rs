//! Renders compiler diagnostics with source snippets (miette), on standard error.

use std::io::IsTerminal as _;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource, Report};
use sectosca::{Diagnostic, Severity, Source};

fn to_miette(d: &Diagnostic) -> MietteDiagnostic {
    let mut m = MietteDiagnostic::new(d.message.clone()).with_code(format!("sectosca::{}", d.code)).with_severity(
        match d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        },
    );
    if let Some(loc) = &d.location {
        let label = if d.path.is_root() { "here".to_owned() } else { d.path.to_string() };
        m = m.with_label(LabeledSpan::new(Some(label), loc.span.start, loc.span.len()));
    }
    if let Some(hint) = &d.hint {
        m = m.with_help(hint.clone());
    }
    m
}

/// Renders each diagnostic with a snippet of the document it is in: `sources` are the
/// compiled document and those it imports (`Compilation::sources`).
pub fn diagnostics(sources: &[Source], diagnostics: &[Diagnostic]) {
    if diagnostics.is_empty() {
        return;
    }
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let theme = if colour { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
    for d in diagnostics {
        let Some(source) = sectosca::source::of(sources, d) else { continue };
        let report =
            Report::new(to_miette(d)).with_source_code(NamedSource::new(&source.name, source.text.to_string()));
        let mut out = String::new();
        if handler.render_report(&mut out, report.as_ref()).is_err() {
            out = d.to_string();
        }
        eprint!("{out}");
    }
}
