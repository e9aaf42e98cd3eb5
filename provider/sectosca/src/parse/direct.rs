//! A direct reader for documents written the common way: block mappings and sequences
//! indented with spaces, flow collections on one line, plain and simply quoted scalars,
//! comments. It builds the very tree the event parser's events give, spans included, at a
//! small part of its cost (the event parser spends some 200 instructions on each byte).
//!
//! It gives up on anything else: anchors, tags, block scalars, escapes, values over several
//! lines, empty list items, tabs, non-ASCII text, and every error. The event parser then
//! reads the document, so that what it reports, and how, stays the event parser's.

use std::collections::HashSet;

use super::{Key, Limits, Node, Value};
use crate::source::Span;

/// The document's tree, or `None` when it is not written in the subset read here.
pub(super) fn read(text: &str, limits: &Limits) -> Option<Node> {
    // Columns in chars are columns in bytes, no tab can be mistaken for indentation, and no
    // control character needs the event parser's judgement.
    if !text.as_bytes().chunks(4096).all(is_plain_ascii) {
        return None;
    }
    let mut reader = Reader { text, bytes: text.as_bytes(), nodes: 0, limits };
    let (start, indent) = reader.next_content(0)??;
    let (root, next) = reader.block(start, indent, 0)?;
    // One document, and nothing after it.
    next.is_none().then_some(root)
}

/// Printable ASCII and newlines only. Written as a fold rather than an early exit so that it
/// is compiled to vector instructions: this looks at every byte of the document.
fn is_plain_ascii(bytes: &[u8]) -> bool {
    let other = |b: u8| u8::from(b.wrapping_sub(b' ') > b'~' - b' ' && b != b'\n');
    bytes.iter().fold(0, |seen, &b| seen | other(b)) == 0
}

/// Where the next line with content has its first character, and that character's column;
/// `None` at the end of the document.
type Next = Option<(usize, usize)>;

/// Mappings with more keys than this find duplicates with a hash set rather than a scan.
const SCANNED_KEYS: usize = 16;

/// The longest key the event parser accepts without an explicit `?`.
const MAX_KEY_LEN: usize = 1024;

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    /// Nodes made so far, counted as the event builder counts them.
    nodes: usize,
    limits: &'a Limits,
}

impl<'a> Reader<'a> {
    fn count(&mut self) -> Option<()> {
        self.nodes += 1;
        (self.nodes <= self.limits.max_nodes).then_some(())
    }

    /// Counts a collection opened inside `depth` others.
    fn open(&mut self, depth: usize) -> Option<()> {
        if depth >= self.limits.max_depth {
            return None;
        }
        self.count()
    }

    fn at(&self, pos: usize) -> Option<u8> {
        self.bytes.get(pos).copied()
    }

    fn skip_spaces(&self, mut pos: usize) -> usize {
        while self.at(pos) == Some(b' ') {
            pos += 1;
        }
        pos
    }

    /// Where the line `pos` is on ends: its newline, or the end of the text.
    fn line_end(&self, pos: usize) -> usize {
        self.bytes[pos..].iter().position(|&b| b == b'\n').map_or(self.bytes.len(), |i| pos + i)
    }

    /// The start of the line after the one `pos` is on, or the end of the text.
    fn next_line(&self, pos: usize) -> usize {
        (self.line_end(pos) + 1).min(self.bytes.len())
    }

    /// From the start of a line, skips blank lines and comment lines. `None` gives up (a
    /// document marker or directive).
    fn next_content(&self, mut pos: usize) -> Option<Next> {
        loop {
            let line = pos;
            pos = self.skip_spaces(pos);
            match self.at(pos) {
                None => return Some(None),
                Some(b'\n' | b'#') => pos = self.next_line(pos),
                Some(_) => {
                    let indent = pos - line;
                    let rest = &self.bytes[pos..];
                    if indent == 0 && (rest.starts_with(b"---") || rest.starts_with(b"...") || rest[0] == b'%') {
                        return None;
                    }
                    return Some(Some((pos, indent)));
                }
            }
        }
    }

    /// After a value only spaces and a comment may follow on its line: the next line's start.
    fn end_of_line(&self, after: usize) -> Option<usize> {
        let pos = self.skip_spaces(after);
        match self.at(pos) {
            None => Some(pos),
            Some(b'\n') => Some(pos + 1),
            Some(b'#') if pos > after => Some(self.next_line(pos)),
            _ => None,
        }
    }

    /// Where the event parser ends a quoted scalar's or a closing bracket's span: past the
    /// spaces and the comment after it. `None` for a comment not set apart by a space.
    fn token_end(&self, after: usize) -> Option<usize> {
        let end = self.skip_spaces(after);
        match self.at(end) {
            Some(b'#') if end == after => None,
            Some(b'#') => Some(self.line_end(end)),
            _ => Some(end),
        }
    }

    /// `- ` (or `-` ending its line) starts a list item.
    fn is_entry(&self, pos: usize) -> bool {
        self.at(pos) == Some(b'-') && matches!(self.at(pos + 1), None | Some(b' ' | b'\n'))
    }

    fn block(&mut self, start: usize, indent: usize, depth: usize) -> Option<(Node, Next)> {
        if self.is_entry(start) { self.sequence(start, indent, depth) } else { self.mapping(start, indent, depth) }
    }

    fn mapping(&mut self, start: usize, indent: usize, depth: usize) -> Option<(Node, Next)> {
        self.open(depth)?;
        let mut entries: Vec<(Key, Node)> = Vec::new();
        let mut seen = None;
        let mut pos = start;
        loop {
            let key = self.block_key(pos)?;
            if self.is_duplicate(&entries, &mut seen, key.span) {
                return None;
            }
            let colon = key.span.end;
            let (value, next) = self.mapping_value(colon, indent, depth)?;
            entries.push((key, value));
            let end = match next {
                Some((p, i)) if i == indent && !self.is_entry(p) => {
                    pos = p;
                    continue;
                }
                Some((p, i)) if i < indent => p,
                None => self.bytes.len(),
                Some(_) => return None,
            };
            return Some((Node { value: Value::Map(entries), span: Span::new(start, end) }, next));
        }
    }

    /// The value after `key:`, on the same line or as a block below it.
    fn mapping_value(&mut self, colon: usize, indent: usize, depth: usize) -> Option<(Node, Next)> {
        let pos = self.skip_spaces(colon + 1);
        if matches!(self.at(pos), None | Some(b'\n' | b'#')) {
            let next = self.next_content(self.next_line(pos))?;
            return match next {
                Some((p, i)) if i > indent => self.block(p, i, depth + 1),
                // A list at the key's own indentation: the event parser places it oddly.
                Some((p, i)) if i == indent && self.is_entry(p) => None,
                _ => {
                    self.count()?;
                    let empty = Value::Scalar { text: String::new(), plain: true };
                    Some((Node { value: empty, span: Span::new(colon, colon) }, next))
                }
            };
        }
        self.value_on_line(pos, indent, depth)
    }

    /// A scalar or flow collection that must end its line; what follows must not be more
    /// indented than `indent` (that would continue the value).
    fn value_on_line(&mut self, pos: usize, indent: usize, depth: usize) -> Option<(Node, Next)> {
        let (value, after) = match self.at(pos)? {
            b'[' | b'{' => self.flow(pos, depth + 1)?,
            b'"' | b'\'' => self.quoted(pos)?,
            _ => self.plain(pos, false)?,
        };
        let next = self.next_content(self.end_of_line(after)?)?;
        if next.is_some_and(|(_, i)| i > indent) {
            return None;
        }
        Some((value, next))
    }

    fn sequence(&mut self, start: usize, indent: usize, depth: usize) -> Option<(Node, Next)> {
        self.open(depth)?;
        let mut items = Vec::new();
        let mut pos = start;
        loop {
            let item = self.skip_spaces(pos + 1);
            if matches!(self.at(item), None | Some(b'\n' | b'#')) || self.is_entry(item) {
                return None;
            }
            let (node, next) = if self.key_end(item).is_some() {
                // `- key: value` starts a mapping whose keys line up with this first one.
                self.mapping(item, indent + (item - pos), depth + 1)?
            } else {
                self.value_on_line(item, indent, depth)?
            };
            items.push(node);
            let end = match next {
                Some((p, i)) if i == indent && self.is_entry(p) => {
                    pos = p;
                    continue;
                }
                Some((p, i)) if i < indent => p,
                None => self.bytes.len(),
                Some(_) => return None,
            };
            return Some((Node { value: Value::Seq(items), span: Span::new(start, end) }, next));
        }
    }

    /// A plain key followed by `: ` (or `:` ending the line); its span ends at the colon.
    fn block_key(&mut self, pos: usize) -> Option<Key> {
        let end = self.key_end(pos)?;
        self.count()?;
        Some(Key { text: self.text[pos..end].to_owned(), span: Span::new(pos, end) })
    }

    /// Where the plain key at `pos` ends (at its colon), if a plain key is there.
    fn key_end(&self, pos: usize) -> Option<usize> {
        if !self.plain_start(pos) {
            return None;
        }
        let mut end = pos;
        loop {
            match self.at(end) {
                None | Some(b'\n') => return None,
                Some(b'#') if self.at(end - 1) == Some(b' ') => return None,
                Some(b':') if matches!(self.at(end + 1), None | Some(b' ' | b'\n')) => break,
                Some(_) => end += 1,
            }
        }
        (self.at(end - 1) != Some(b' ') && end - pos <= MAX_KEY_LEN).then_some(end)
    }

    /// A plain scalar in block context (`in_flow` false) or inside a flow collection; it
    /// ends at the line's end, a comment, or (in flow) `,`, `]` or `}`.
    fn plain(&mut self, pos: usize, in_flow: bool) -> Option<(Node, usize)> {
        if !self.plain_start(pos) {
            return None;
        }
        let mut end = pos;
        loop {
            match self.at(end) {
                None | Some(b'\n') if in_flow => return None,
                None | Some(b'\n') => break,
                Some(b',' | b']' | b'}') if in_flow => break,
                Some(b'[' | b'{' | b':' | b'#') if in_flow => return None,
                Some(b'#') if self.at(end - 1) == Some(b' ') => break,
                // `a: b: c` is an error; `a: b:c` is one scalar.
                Some(b':') if matches!(self.at(end + 1), None | Some(b' ' | b'\n')) => return None,
                Some(_) => end += 1,
            }
        }
        while self.at(end - 1) == Some(b' ') {
            end -= 1;
        }
        self.count()?;
        let value = Value::Scalar { text: self.text[pos..end].to_owned(), plain: true };
        Some((Node { value, span: Span::new(pos, end) }, end))
    }

    /// Whether a plain scalar may start here: letters, digits and a few safe characters
    /// (never an indicator such as `-`, `?`, `:`, `&`, `*`, `!`, `|`, `>`, `@` or a quote).
    fn plain_start(&self, pos: usize) -> bool {
        match self.at(pos) {
            Some(b'-') => self.at(pos + 1).is_some_and(|c| c.is_ascii_alphanumeric()),
            Some(c) => c.is_ascii_alphanumeric() || b"_./~+$(=<^;".contains(&c),
            None => false,
        }
    }

    /// A quoted scalar on one line: no escapes in double quotes; `''` in single quotes.
    fn quoted(&mut self, pos: usize) -> Option<(Node, usize)> {
        let quote = self.bytes[pos];
        let mut close = pos + 1;
        let mut doubled = false;
        loop {
            match self.at(close)? {
                b'\n' => return None,
                b'\\' if quote == b'"' => return None,
                b'\'' if quote == b'\'' && self.at(close + 1) == Some(b'\'') => {
                    doubled = true;
                    close += 2;
                }
                c if c == quote => break,
                _ => close += 1,
            }
        }
        let raw = &self.text[pos + 1..close];
        let text = if doubled { raw.replace("''", "'") } else { raw.to_owned() };
        self.count()?;
        let value = Value::Scalar { text, plain: false };
        Some((Node { value, span: Span::new(pos, self.token_end(close + 1)?) }, close + 1))
    }

    /// A flow sequence or mapping on one line, from its opening bracket.
    fn flow(&mut self, open: usize, depth: usize) -> Option<(Node, usize)> {
        self.open(depth)?;
        let is_map = self.bytes[open] == b'{';
        let closing = if is_map { b'}' } else { b']' };
        let mut items = Vec::new();
        let mut entries: Vec<(Key, Node)> = Vec::new();
        let mut seen = None;
        let mut pos = self.skip_spaces(open + 1);
        if self.at(pos) != Some(closing) {
            loop {
                if is_map {
                    let key = self.flow_key(pos)?;
                    if self.is_duplicate(&entries, &mut seen, key.span) {
                        return None;
                    }
                    let value_at = self.skip_spaces(key.span.end + 1);
                    let (value, after) = self.flow_item(value_at, depth)?;
                    entries.push((key, value));
                    pos = self.skip_spaces(after);
                } else {
                    let (item, after) = self.flow_item(pos, depth)?;
                    items.push(item);
                    pos = self.skip_spaces(after);
                }
                match self.at(pos)? {
                    b',' => {
                        pos = self.skip_spaces(pos + 1);
                        // A trailing comma: valid, but left to the event parser.
                        if self.at(pos) == Some(closing) {
                            return None;
                        }
                    }
                    c if c == closing => break,
                    _ => return None,
                }
            }
        }
        let end = self.token_end(pos + 1)?;
        let value = if is_map { Value::Map(entries) } else { Value::Seq(items) };
        Some((Node { value, span: Span::new(open, end) }, pos + 1))
    }

    fn flow_item(&mut self, pos: usize, depth: usize) -> Option<(Node, usize)> {
        match self.at(pos)? {
            b'[' | b'{' => self.flow(pos, depth + 1),
            b'"' | b'\'' => self.quoted(pos),
            _ => self.plain(pos, true),
        }
    }

    /// A plain key in a flow mapping, followed by `: `; its span ends at the colon.
    fn flow_key(&mut self, pos: usize) -> Option<Key> {
        if !self.plain_start(pos) {
            return None;
        }
        let len = self.bytes[pos..].iter().position(|b| b",[]{}#\n:".contains(b))?;
        let colon = pos + len;
        if self.bytes[colon] != b':' || self.at(colon + 1) != Some(b' ') || self.at(colon - 1) == Some(b' ') {
            return None;
        }
        self.count()?;
        Some(Key { text: self.text[pos..colon].to_owned(), span: Span::new(pos, colon) })
    }

    /// Whether the key at `span` is in `entries` already (the event builder stops there).
    fn is_duplicate(&self, entries: &[(Key, Node)], seen: &mut Option<HashSet<&'a str>>, span: Span) -> bool {
        let key = &self.text[span.start..span.end];
        if let Some(set) = seen {
            return !set.insert(key);
        }
        if entries.iter().any(|(k, _)| k.text == key) {
            return true;
        }
        if entries.len() >= SCANNED_KEYS {
            // Keys read here are plain: their text is the source's.
            let mut set: HashSet<&'a str> = entries.iter().map(|(k, _)| &self.text[k.span.start..k.span.end]).collect();
            set.insert(key);
            *seen = Some(set);
        }
        false
    }
}

#[cfg(test)]
mod tests;
