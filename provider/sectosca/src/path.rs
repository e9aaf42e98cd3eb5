//! YAML paths such as `topology_template.policies[2].api_fw.properties.ingress[0].from`.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    /// Borrowed for the keys the compiler names itself, which are read everywhere.
    Key(Cow<'static, str>),
    Index(usize),
}

/// Where a value sits in the document, from the root.
///
/// Paths are made for every value the checker visits, so they share their parents: `key`
/// and `index` allocate one link, and `clone` only counts a reference.
#[derive(Clone, Default)]
pub struct YamlPath(Option<Arc<Link>>);

#[derive(Debug)]
struct Link {
    parent: YamlPath,
    segment: Segment,
}

impl YamlPath {
    pub fn root() -> Self {
        Self::default()
    }

    pub fn key(&self, key: &str) -> Self {
        self.push(Segment::Key(Cow::Owned(key.to_owned())))
    }

    /// Like [`key`](Self::key) for a key the compiler knows, without copying it.
    pub fn field(&self, key: &'static str) -> Self {
        self.push(Segment::Key(Cow::Borrowed(key)))
    }

    pub fn index(&self, index: usize) -> Self {
        self.push(Segment::Index(index))
    }

    fn push(&self, segment: Segment) -> Self {
        Self(Some(Arc::new(Link { parent: self.clone(), segment })))
    }

    /// The segments from the root.
    pub fn segments(&self) -> Vec<Segment> {
        self.segment_refs().into_iter().cloned().collect()
    }

    fn segment_refs(&self) -> Vec<&Segment> {
        let mut out = Vec::new();
        let mut at = self;
        while let Some(link) = &at.0 {
            out.push(&link.segment);
            at = &link.parent;
        }
        out.reverse();
        out
    }

    /// Whether this path is `prefix` or lies under it.
    pub fn starts_with(&self, prefix: &YamlPath) -> bool {
        self.segment_refs().starts_with(&prefix.segment_refs())
    }

    pub fn is_root(&self) -> bool {
        self.0.is_none()
    }
}

/// Where a value being decoded sits, made into a [`YamlPath`] only when something asks for it
/// (a diagnostic, a [`Spanned`](crate::decode::Spanned) value), and then once: a `YamlPath`
/// costs an allocation per segment, and most values decode without needing theirs.
///
/// It dereferences to the `YamlPath`, so it goes wherever one is expected.
pub struct LazyPath<'p> {
    parent: Option<&'p LazyPath<'p>>,
    segment: LazySegment<'p>,
    made: OnceCell<YamlPath>,
}

enum LazySegment<'p> {
    Made,
    Field(&'static str),
    Key(&'p str),
    Index(usize),
}

impl<'p> LazyPath<'p> {
    pub fn new(path: &YamlPath) -> Self {
        Self { parent: None, segment: LazySegment::Made, made: OnceCell::from(path.clone()) }
    }

    pub fn key(&'p self, key: &'p str) -> Self {
        self.child(LazySegment::Key(key))
    }

    /// Like [`key`](Self::key) for a key the compiler knows.
    pub fn field(&'p self, key: &'static str) -> Self {
        self.child(LazySegment::Field(key))
    }

    pub fn index(&'p self, index: usize) -> Self {
        self.child(LazySegment::Index(index))
    }

    fn child(&'p self, segment: LazySegment<'p>) -> Self {
        Self { parent: Some(self), segment, made: OnceCell::new() }
    }

    pub fn path(&self) -> &YamlPath {
        self.made.get_or_init(|| {
            let parent = self.parent.map_or_else(YamlPath::root, |p| p.path().clone());
            match self.segment {
                LazySegment::Made => parent,
                LazySegment::Field(key) => parent.field(key),
                LazySegment::Key(key) => parent.key(key),
                LazySegment::Index(index) => parent.index(index),
            }
        })
    }
}

impl std::ops::Deref for LazyPath<'_> {
    type Target = YamlPath;

    fn deref(&self) -> &YamlPath {
        self.path()
    }
}

impl fmt::Debug for LazyPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.path(), f)
    }
}

impl fmt::Display for LazyPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.path(), f)
    }
}

impl PartialEq for YamlPath {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) => true,
            _ => self.segment_refs() == other.segment_refs(),
        }
    }
}

impl Eq for YamlPath {}

impl PartialOrd for YamlPath {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for YamlPath {
    fn cmp(&self, other: &Self) -> Ordering {
        self.segment_refs().cmp(&other.segment_refs())
    }
}

impl Hash for YamlPath {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.segment_refs().hash(state);
    }
}

impl fmt::Debug for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "YamlPath({self})")
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            return f.write_str("(document)");
        }
        for (i, segment) in self.segment_refs().into_iter().enumerate() {
            match segment {
                Segment::Key(k) if i == 0 => f.write_str(k)?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_keys_and_indices() {
        let p = YamlPath::root()
            .key("topology_template")
            .key("policies")
            .index(2)
            .key("api_fw")
            .key("properties")
            .key("ingress")
            .index(0)
            .key("from");
        assert_eq!(p.to_string(), "topology_template.policies[2].api_fw.properties.ingress[0].from");
        assert_eq!(p.segments().len(), 8);
        assert!(p.starts_with(&YamlPath::root().key("topology_template").key("policies")));
        assert!(!p.starts_with(&YamlPath::root().key("policies")));
        assert_eq!(p, p.clone());
        assert!(YamlPath::root().key("a").index(1) < YamlPath::root().key("a").index(2));
        assert_eq!(YamlPath::root().key("a"), YamlPath::root().key("a"));
    }

    #[test]
    fn lazy_paths_make_the_same_path() {
        let base = YamlPath::root().key("policies");
        let root = LazyPath::new(&base);
        let item = root.index(2);
        let name = item.key("api_fw");
        let field = name.field("properties");
        assert_eq!(*field, base.index(2).key("api_fw").key("properties"));
        assert_eq!(field.to_string(), "policies[2].api_fw.properties");
        // Made once: the parent's path is shared by what is made under it.
        assert!(std::ptr::eq(field.path(), field.path()));
        assert_eq!(*name.key("x"), base.index(2).key("api_fw").key("x"));
    }
}
