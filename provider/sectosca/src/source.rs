//! Source documents and the mapping from parser positions to lines, columns and byte offsets.

use std::sync::Arc;

/// One SecTOSCA document as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// What diagnostics call the document: a file path, or a name such as `document`.
    pub name: Arc<str>,
    /// The document's text.
    pub text: Arc<str>,
    line_starts: Arc<[usize]>,
    /// All ASCII: a column in chars is a column in bytes.
    ascii: bool,
    /// Where the document's spans start when several documents are compiled together (an
    /// importing document and the documents it imports): 0 for the document compiled, past
    /// the end of the previous one for each imported one, so that a span says which
    /// document it is in.
    base: usize,
}

impl Source {
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let line_starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        let ascii = text.is_ascii();
        Self { name: name.into(), text, line_starts: line_starts.into(), ascii, base: 0 }
    }

    /// The same document, its spans starting at `base`.
    pub(crate) fn with_base(mut self, base: usize) -> Self {
        self.base = base;
        self
    }

    /// Where this document's spans start (see the field): 0 unless it was imported.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Whether a span (as the compiler numbers spans across documents) is in this document.
    pub(crate) fn contains(&self, span: Span) -> bool {
        span.start >= self.base && span.start <= self.base + self.text.len()
    }

    /// Byte offset of a position given as a 1-based line and a 0-based column counted in chars,
    /// which is how the YAML scanner reports it.
    pub fn offset(&self, line: usize, char_col: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        if self.ascii {
            return (start + char_col).min(self.text.len());
        }
        let rest = &self.text[start..];
        let within = rest.char_indices().nth(char_col).map_or(rest.len(), |(i, _)| i);
        start + within
    }

    /// 1-based line and column (in chars) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let col = self.text.get(start..offset).map_or(0, |s| s.chars().count());
        (line, col + 1)
    }
}

/// The document of `sources` (a compilation's: the compiled one first) that a diagnostic
/// is in: the one its location names, else the compiled one.
pub fn of<'a>(sources: &'a [Source], diagnostic: &crate::Diagnostic) -> Option<&'a Source> {
    let named = diagnostic.location.as_ref().and_then(|l| sources.iter().find(|s| s.name == l.file));
    named.or_else(|| sources.first())
}

/// A byte range in one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub const fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The span moved `by` bytes further.
    pub const fn shifted(self, by: usize) -> Self {
        Self { start: self.start + by, end: self.end + by }
    }

    /// The span moved `by` bytes back (not below 0).
    pub const fn unshifted(self, by: usize) -> Self {
        Self { start: self.start.saturating_sub(by), end: self.end.saturating_sub(by) }
    }

    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_with_multibyte_text() {
        let src = Source::new("t", "a: é\nbb: x\n");
        let off = src.offset(2, 4);
        assert_eq!(&src.text[off..off + 1], "x");
        assert_eq!(src.line_col(off), (2, 5));
        assert_eq!(src.line_col(0), (1, 1));
        let ascii = Source::new("t", "a: b\ncc: d\n");
        assert_eq!(ascii.offset(2, 4), 9);
        assert_eq!(ascii.offset(2, 99), ascii.text.len());
        assert_eq!(ascii.offset(9, 0), ascii.text.len());
    }
}
