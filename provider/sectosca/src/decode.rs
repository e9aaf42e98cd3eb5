//! Typed decoding of spanned YAML nodes, collecting every problem instead of stopping at
//! the first. The `record!` macro defines a struct once and gets its JSON Schema (schemars)
//! and its decoder from that one definition, so the schema and the checker cannot disagree.

use std::collections::BTreeMap;

use crate::diagnostic::{Code, Sink};
use crate::parse::{Key, Node, Value, is_null_text};
use crate::path::{LazyPath, YamlPath};
use crate::source::Span;

/// Decodes a typed value from a node, reporting problems to the sink.
/// `None` means a problem was reported.
pub trait Decode: Sized {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self>;

    /// The value when the key is absent. `None` makes the key required.
    fn absent() -> Option<Self> {
        None
    }
}

pub(crate) fn wrong_type(sink: &mut Sink<'_>, node: &Node, path: &YamlPath, expected: &str) {
    sink.report(Code::WrongType, node.span, path, format!("expected {expected}, found {}", node.kind_name()));
}

/// The scalar's text, or a type error.
pub(crate) fn scalar<'n>(node: &'n Node, path: &LazyPath<'_>, sink: &mut Sink<'_>, expected: &str) -> Option<&'n str> {
    match &node.value {
        Value::Scalar { text, .. } if !node.is_null() => Some(text),
        _ => {
            wrong_type(sink, node, path, expected);
            None
        }
    }
}

impl Decode for String {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
        scalar(node, path, sink, "a string").map(str::to_owned)
    }
}

impl Decode for bool {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
        match &node.value {
            Value::Scalar { text, plain: true } if matches!(text.as_str(), "true" | "True" | "TRUE") => Some(true),
            Value::Scalar { text, plain: true } if matches!(text.as_str(), "false" | "False" | "FALSE") => Some(false),
            Value::Scalar { text, plain: false } if text == "true" || text == "false" => {
                sink.report(Code::WrongType, node.span, path, "expected a boolean, found a quoted string").hint =
                    Some(format!("write {text} without quotes"));
                None
            }
            _ => {
                wrong_type(sink, node, path, "a boolean (true or false)");
                None
            }
        }
    }
}

/// Parses an unsigned integer in YAML 1.2 core notation (decimal, 0x, 0o).
pub(crate) fn parse_uint(text: &str) -> Option<u64> {
    let t = text.strip_prefix('+').unwrap_or(text);
    if let Some(hex) = t.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()
    } else if let Some(oct) = t.strip_prefix("0o") {
        u64::from_str_radix(oct, 8).ok()
    } else if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse().ok()
    } else {
        None
    }
}

impl Decode for u64 {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
        match &node.value {
            Value::Scalar { text, plain } => match parse_uint(text) {
                Some(n) if *plain => Some(n),
                Some(_) => {
                    sink.report(Code::WrongType, node.span, path, "expected a whole number, found a quoted string")
                        .hint = Some(format!("write {text} without quotes"));
                    None
                }
                None if *plain && text.starts_with('-') && text[1..].bytes().all(|b| b.is_ascii_digit()) => {
                    sink.report(
                        Code::InvalidValue,
                        node.span,
                        path,
                        format!("expected a number of 0 or more, found {text}"),
                    );
                    None
                }
                None => {
                    wrong_type(sink, node, path, "a whole number");
                    None
                }
            },
            _ => {
                wrong_type(sink, node, path, "a whole number");
                None
            }
        }
    }
}

/// A whole number within `MIN..=MAX`, checked where it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bounded<const MIN: u64, const MAX: u64>(pub u64);

impl<const MIN: u64, const MAX: u64> Decode for Bounded<MIN, MAX> {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
        if let Value::Scalar { text, plain: true } = &node.value
            && text.strip_prefix('-').is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        {
            sink.report(
                Code::InvalidValue,
                node.span,
                path,
                format!("{text} is out of range: expected {MIN} to {MAX}"),
            );
            return None;
        }
        let n = u64::decode(node, path, sink)?;
        if (MIN..=MAX).contains(&n) {
            Some(Self(n))
        } else {
            sink.report(Code::InvalidValue, node.span, path, format!("{n} is out of range: expected {MIN} to {MAX}"));
            None
        }
    }
}

impl<const MIN: u64, const MAX: u64> schemars::JsonSchema for Bounded<MIN, MAX> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Integer_{MIN}_to_{MAX}").into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "integer", "minimum": MIN, "maximum": MAX })
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
        if node.is_null() { Some(None) } else { T::decode(node, path, sink).map(Some) }
    }

    fn absent() -> Option<Self> {
        Some(None)
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
        let Value::Seq(items) = &node.value else {
            wrong_type(sink, node, path, "a list");
            return None;
        };
        // Every item is decoded, so that every problem is reported.
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, n) in items.iter().enumerate() {
            match T::decode(n, &path.index(i), sink) {
                Some(v) if ok => out.push(v),
                Some(_) => {}
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

impl<T: Decode> Decode for BTreeMap<String, T> {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
        if node.is_null() {
            return Some(BTreeMap::new());
        }
        let Value::Map(entries) = &node.value else {
            wrong_type(sink, node, path, "a mapping");
            return None;
        };
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (k, v) in entries {
            match T::decode(v, &path.key(&k.text), sink) {
                Some(v) if ok => {
                    out.insert(k.text.clone(), v);
                }
                Some(_) => {}
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

/// A value together with where it was written, for checks that run after decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
    pub path: YamlPath,
}

impl<T: Decode> Decode for Spanned<T> {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
        T::decode(node, path, sink).map(|value| Self { value, span: node.span, path: path.path().clone() })
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// Either one value or a list of them: `from: 10.0.0.0/8` or `from: [10.0.0.0/8, ...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T: Decode> Decode for OneOrMany<T> {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
        match &node.value {
            Value::Seq(_) => Vec::<T>::decode(node, path, sink).map(Self),
            _ => T::decode(node, path, sink).map(|v| Self(vec![v])),
        }
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for OneOrMany<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("OneOrMany_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let one = generator.subschema_for::<T>();
        schemars::json_schema!({ "anyOf": [one, { "type": "array", "items": one }] })
    }
}

/// Reads the fields of one mapping, then reports the keys nobody asked for. Allocates
/// nothing for mappings of up to 64 keys read with up to 16 names: it runs for every
/// mapping of a document.
#[derive(Debug)]
pub struct Fields<'n, 'p> {
    node: &'n Node,
    entries: &'n [(Key, Node)],
    path: &'p LazyPath<'p>,
    /// Entries asked for, one bit each; `used_more` holds entries past the 64th.
    used: u64,
    used_more: Vec<bool>,
    /// Names asked for, kept for the hint about an unknown key.
    asked: [&'static str; ASKED_INLINE],
    asked_len: usize,
    asked_more: Vec<&'static str>,
    unknown_code: Code,
    what: &'static str,
}

const ASKED_INLINE: usize = 16;

static EMPTY: [(Key, Node); 0] = [];

impl<'n, 'p> Fields<'n, 'p> {
    /// `what` names the mapping in messages, e.g. "sdsec.policies.Firewall properties".
    pub fn open(
        node: &'n Node,
        path: &'p LazyPath<'p>,
        sink: &mut Sink<'_>,
        what: &'static str,
        unknown_code: Code,
    ) -> Option<Self> {
        let entries: &'n [(Key, Node)] = match &node.value {
            Value::Map(entries) => entries,
            Value::Scalar { text, plain: true } if is_null_text(text) => &EMPTY,
            _ => {
                wrong_type(sink, node, path, &format!("a mapping ({what})"));
                return None;
            }
        };
        Some(Self {
            node,
            entries,
            path,
            used: 0,
            used_more: vec![false; entries.len().saturating_sub(64)],
            asked: [""; ASKED_INLINE],
            asked_len: 0,
            asked_more: Vec::new(),
            unknown_code,
            what,
        })
    }

    /// The raw node of a key, marking it as known.
    pub fn raw(&mut self, key: &'static str) -> Option<&'n Node> {
        match self.asked.get_mut(self.asked_len) {
            Some(slot) => {
                *slot = key;
                self.asked_len += 1;
            }
            None => self.asked_more.push(key),
        }
        let i = self.entries.iter().position(|(k, _)| k.text == key)?;
        match i.checked_sub(64) {
            None => self.used |= 1 << i,
            Some(more) => self.used_more[more] = true,
        }
        Some(&self.entries[i].1)
    }

    fn is_used(&self, i: usize) -> bool {
        match i.checked_sub(64) {
            None => self.used & (1 << i) != 0,
            Some(more) => self.used_more[more],
        }
    }

    pub fn field<T: Decode>(&mut self, key: &'static str, sink: &mut Sink<'_>) -> Option<T> {
        match self.raw(key) {
            Some(node) => T::decode(node, &self.path.field(key), sink),
            None => T::absent().or_else(|| {
                let need = if self.singular() { "needs" } else { "need" };
                sink.report(Code::MissingKey, self.node.span, self.path, format!("{} {need} `{key}`", self.what));
                None
            }),
        }
    }

    /// Whether `what` names one thing ("an ingress rule") rather than a kind ("policies").
    fn singular(&self) -> bool {
        self.what.starts_with("a ") || self.what.starts_with("an ")
    }

    /// Reports every key that no `field`/`raw` call asked for.
    pub fn finish(self, sink: &mut Sink<'_>) {
        for (i, (key, _)) in self.entries.iter().enumerate() {
            if self.is_used(i) {
                continue;
            }
            let asked: Vec<&str> = self.asked[..self.asked_len].iter().chain(&self.asked_more).copied().collect();
            let have = if self.singular() { "has" } else { "have" };
            let d = sink.report(
                self.unknown_code,
                key.span,
                &self.path.key(&key.text),
                format!("{} {have} no `{}`", self.what, key.text),
            );
            d.hint = Some(match closest(&key.text, &asked) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("known keys: {}", asked.join(", ")),
            });
        }
    }
}

/// The candidate closest to `word` by edit distance, if close enough to be a typo.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(row[j]).min(row[j + 1]) };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Defines a struct whose fields are decoded from a YAML mapping by name (optionally renamed
/// with `as "key"`). `Option` fields are optional; every other field is required. Doc comments
/// become descriptions in the JSON Schema.
macro_rules! record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident ($what:literal, $unknown:ident) {
            $( $(#[$fmeta:meta])* pub $field:ident $(as $key:literal)? : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
        #[schemars(deny_unknown_fields)]
        pub struct $name {
            $( $(#[$fmeta])* $(#[schemars(rename = $key)])? pub $field: $ty, )*
        }

        impl $crate::decode::Decode for $name {
            fn decode(
                node: &$crate::parse::Node,
                path: &$crate::path::LazyPath<'_>,
                sink: &mut $crate::diagnostic::Sink<'_>,
            ) -> Option<Self> {
                let mut fields = $crate::decode::Fields::open(node, path, sink, $what, $crate::diagnostic::Code::$unknown)?;
                $( let $field = fields.field::<$ty>(record!(@key $field $($key)?), sink); )*
                fields.finish(sink);
                Some(Self { $( $field: $field?, )* })
            }
        }
    };
    (@key $field:ident) => { stringify!($field) };
    (@key $field:ident $key:literal) => { $key };
}

/// Decodes one of a fixed set of keywords (`all`, written as `text_of` gives), reporting
/// any other text with `code` and the closest keyword as a hint.
pub(crate) fn keyword<T: Copy>(
    node: &Node,
    path: &LazyPath<'_>,
    sink: &mut Sink<'_>,
    all: &[T],
    text_of: fn(T) -> &'static str,
    code: Code,
) -> Option<T> {
    let text = scalar(node, path, sink, "a string")?;
    if let Some(found) = all.iter().copied().find(|k| text_of(*k) == text) {
        return Some(found);
    }
    let allowed: Vec<&str> = all.iter().map(|k| text_of(*k)).collect();
    let d = sink.report(code, node.span, path, format!("`{text}` is not one of: {}", allowed.join(", ")));
    d.hint = match allowed.iter().find(|a| a.eq_ignore_ascii_case(text)) {
        Some(same) => Some(format!("did you mean `{same}`? (case matters)")),
        None => closest(text, &allowed).map(|best| format!("did you mean `{best}`?")),
    };
    None
}

/// Implements `Decode` for keyword enums of the plan crate (which give `ALL` and `as_str`);
/// a value outside the set is reported with the code given before the colon.
macro_rules! decode_keywords {
    ($code:ident: $($ty:ty),+ $(,)?) => {$(
        impl $crate::decode::Decode for $ty {
            fn decode(
                node: &$crate::parse::Node,
                path: &$crate::path::LazyPath<'_>,
                sink: &mut $crate::diagnostic::Sink<'_>,
            ) -> Option<Self> {
                let code = $crate::diagnostic::Code::$code;
                $crate::decode::keyword(node, path, sink, <$ty>::ALL, <$ty>::as_str, code)
            }
        }
    )+};
}

pub(crate) use {decode_keywords, record};

#[cfg(test)]
mod tests;
