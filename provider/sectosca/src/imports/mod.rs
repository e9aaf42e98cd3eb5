//! `imports`: documents that reuse the templates, policies, inputs and outputs of others.
//!
//! An import names a local document by a path relative to the importing document. The
//! compiler does no I/O: it works out the imported document's name and asks a [`Loader`]
//! for its text (the CLI reads files, the provider reads them under its `base_dir`). Each
//! imported document is parsed with the same limits as any document, its spans numbered
//! after those of the documents read before it so that every diagnostic keeps its file,
//! line and column. What imported documents define is merged into the importer by
//! [`template`].
//!
//! The `sdsec` profile (`sdsec-profile.yaml`, by any path) is never read: its types are
//! built in, and importing it changes nothing.

mod paths;
pub mod template;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::decode::{Fields, Spanned, wrong_type};
use crate::diagnostic::{Code, Sink};
use crate::parse::{self, Limits, Node, Value};
use crate::path::{LazyPath, YamlPath};
use crate::source::{Source, Span};

pub use paths::{PROFILE_FILE, is_profile, join};

/// Why a loader could not give an imported document's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("no such file")]
    NotFound,
    #[error("{0}")]
    Unreadable(String),
    #[error("{0}")]
    Refused(String),
    #[error("imported documents are not read here")]
    Unavailable,
}

/// Gives the text of an imported document, by the name the compiler worked out for it: the
/// import's path joined to the importing document's directory, normalised (`a/../b` is
/// `b`), with `/` separators; relative unless the compiled document's name is absolute.
pub trait Loader {
    fn load(&self, name: &str) -> Result<String, LoadError>;
}

impl<F: Fn(&str) -> Result<String, LoadError>> Loader for F {
    fn load(&self, name: &str) -> Result<String, LoadError> {
        self(name)
    }
}

/// For contexts that read no files: every import other than the profile is an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLoader;

impl Loader for NoLoader {
    fn load(&self, _name: &str) -> Result<String, LoadError> {
        Err(LoadError::Unavailable)
    }
}

/// An imported document, parsed, its spans numbered after the previous documents'.
#[derive(Debug)]
pub struct Imported {
    pub name: Arc<str>,
    pub root: Node,
}

/// Reads the imports of `root` (the compiled document's tree), and theirs, depth first:
/// each document comes after the documents it imports, and once only.
pub fn load(root: &Node, loader: &dyn Loader, limits: &Limits, sink: &mut Sink<'_>) -> Vec<Imported> {
    let main = sink.source.name.clone();
    let next_base = sink.source.text.len() + 1;
    let mut loading =
        Loading { loader, limits, stack: vec![main.clone()], seen: BTreeSet::new(), out: Vec::new(), next_base };
    loading.seen.insert(main.clone());
    loading.visit(root, &main, sink);
    loading.out
}

struct Loading<'l> {
    loader: &'l dyn Loader,
    limits: &'l Limits,
    /// The documents being read, the compiled one first: importing one of them again is a cycle.
    stack: Vec<Arc<str>>,
    /// Every document asked for so far.
    seen: BTreeSet<Arc<str>>,
    out: Vec<Imported>,
    next_base: usize,
}

/// One entry of `imports`: the path as written.
fn read_entry(item: &Node, path: &YamlPath, sink: &mut Sink<'_>) -> Option<Spanned<String>> {
    if let Value::Scalar { .. } = item.value {
        return crate::decode::Decode::decode(item, &LazyPath::new(path), sink);
    }
    let at = LazyPath::new(path);
    let mut fields = Fields::open(item, &at, sink, "import definitions", Code::UnknownKey)?;
    let file = fields.field::<Spanned<String>>("file", sink);
    let mut refused = false;
    for (key, why) in [
        ("repository", "imports from repositories are not supported: SecTOSCA imports local files"),
        ("namespace_uri", "`namespace_uri` is not supported: SecTOSCA imports local files by path"),
        (
            "namespace_prefix",
            "`namespace_prefix` is not supported: the sdsec types are built in, and imported templates and policies keep their names",
        ),
    ] {
        if let Some(node) = fields.raw(key) {
            refused = true;
            sink.report(Code::UnsupportedImport, node.span, &path.key(key), why).hint =
                Some(format!("remove `{key}`; write `- file: relative/path.yaml` or just the path"));
        }
    }
    fields.finish(sink);
    file.filter(|_| !refused)
}

impl Loading<'_> {
    fn visit(&mut self, root: &Node, name: &Arc<str>, sink: &mut Sink<'_>) {
        let Some(imports) = root.get("imports").filter(|n| !n.is_null()) else { return };
        let path = YamlPath::root().key("imports");
        let Value::Seq(items) = &imports.value else {
            wrong_type(sink, imports, &path, "a list of imports such as `- common/audit.yaml`");
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let ipath = path.index(i);
            let Some(file) = read_entry(item, &ipath, sink) else { continue };
            let target: Arc<str> = match join(name, &file.value) {
                Ok(target) => target.into(),
                Err(why) => {
                    sink.report(Code::UnsupportedImport, file.span, &file.path, why);
                    continue;
                }
            };
            if is_profile(&file.value) {
                continue;
            }
            if let Some(at) = self.stack.iter().position(|n| *n == target) {
                let cycle: Vec<&str> = self.stack[at..].iter().map(|n| &**n).chain(std::iter::once(&*target)).collect();
                sink.report(
                    Code::ImportCycle,
                    file.span,
                    &file.path,
                    format!("importing `{target}` makes a cycle: {}", cycle.join(" → ")),
                );
                continue;
            }
            if !self.seen.insert(target.clone()) {
                continue; // imported already, through another document
            }
            if self.stack.len() > self.limits.max_import_depth || self.seen.len() > self.limits.max_documents {
                sink.report(
                    Code::TooManyImports,
                    file.span,
                    &file.path,
                    format!(
                        "importing `{target}` goes past the limits: {} documents in all, imports {} deep",
                        self.limits.max_documents, self.limits.max_import_depth
                    ),
                );
                continue;
            }
            match self.loader.load(&target) {
                Ok(text) => self.read(target, text, sink),
                Err(e) => {
                    let written =
                        if *target == *file.value { String::new() } else { format!(", imported as `{}`", file.value) };
                    let d = sink.report(
                        Code::ImportNotFound,
                        file.span,
                        &file.path,
                        format!("cannot read `{target}`{written}: {e}"),
                    );
                    if e == LoadError::Unavailable {
                        d.hint = Some(
                            "imports are read by `sdsec check`/`compile` and by sdsec_security_policy (from base_dir); here, write the document whole".into(),
                        );
                    }
                }
            }
        }
    }

    /// Parses an imported document, then reads its own imports.
    fn read(&mut self, name: Arc<str>, text: String, sink: &mut Sink<'_>) {
        let base = self.next_base;
        self.next_base += text.len() + 1;
        let source = Source::new(name.clone(), text);
        let mut own = Sink::new(&source);
        let root = parse::parse(&mut own, self.limits);
        for mut d in own.diagnostics {
            if let Some(loc) = &mut d.location {
                loc.span = loc.span.shifted(base);
            }
            sink.diagnostics.push(d);
        }
        sink.add_source(source.with_base(base));
        let Some(mut root) = root else { return };
        shift(&mut root, base);
        self.stack.push(name.clone());
        self.visit(&root, &name, sink);
        self.stack.pop();
        self.out.push(Imported { name, root });
    }
}

/// Moves every span of a tree `by` bytes.
fn shift(node: &mut Node, by: usize) {
    node.span = node.span.shifted(by);
    match &mut node.value {
        Value::Scalar { .. } => {}
        Value::Seq(items) => items.iter_mut().for_each(|n| shift(n, by)),
        Value::Map(entries) => {
            for (key, value) in entries {
                key.span = key.span.shifted(by);
                shift(value, by);
            }
        }
    }
}

/// Where a span is, as `file:line:column`, for messages that name another place.
pub(crate) fn place(sink: &Sink<'_>, span: Span) -> String {
    let source = sink.source_of(span);
    let (line, column) = source.line_col(span.start.saturating_sub(source.base()));
    format!("{}:{line}:{column}", source.name)
}

#[cfg(test)]
mod tests;
