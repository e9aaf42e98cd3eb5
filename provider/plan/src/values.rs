//! Value types plans hold: networks, port ranges, path globs and credential hashes. The
//! compiler checks each where it is written; here they are carried and, for ports and
//! globs, matched.

use serde::{Deserialize, Serialize};

/// Implements `JsonSchema` for a type written as a string, with a description and a pattern.
/// Exported for the compiler's own string-valued types.
#[cfg(feature = "schema")]
#[macro_export]
macro_rules! string_schema {
    ($ty:ty, $name:literal, $description:literal $(, $pattern:literal)?) => {
        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                #[allow(unused_mut)]
                let mut schema = schemars::json_schema!({ "type": "string", "description": $description });
                $( schema.insert("pattern".into(), $pattern.into()); )?
                schema
            }
        }
    };
}

/// An IPv4 or IPv6 network; a bare address means that one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cidr(pub ipnet::IpNet);

#[cfg(feature = "schema")]
string_schema!(
    Cidr,
    "Cidr",
    "An IPv4 or IPv6 network in CIDR notation (10.0.0.0/8, ::1/128); a bare address is one host."
);

/// An inclusive range of TCP/UDP ports; one port is a range of one. Written, in documents
/// and plans alike, as a number (`8080`) or a string `first-last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.first == self.last {
            s.serialize_u16(self.first)
        } else {
            s.collect_str(&format_args!("{}-{}", self.first, self.last))
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            One(u16),
            Range(String),
        }
        let range = match Written::deserialize(d)? {
            Written::One(p) => Some(Self { first: p, last: p }),
            Written::Range(text) => Self::parse(&text),
        };
        range
            .filter(|r| r.first != 0 && r.first <= r.last)
            .ok_or_else(|| serde::de::Error::custom("expected a port 1-65535 or a range `first-last`"))
    }
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// Reads `port` or `first-last` (ports 1-65535), without checking the range's order:
    /// the compiler reports an empty range in its own words.
    pub fn parse(text: &str) -> Option<Self> {
        fn port(text: &str) -> Option<u16> {
            text.trim().parse::<u16>().ok().filter(|p| *p != 0)
        }
        match text.split_once('-') {
            Some((a, b)) => port(a).zip(port(b)).map(|(first, last)| Self { first, last }),
            None => port(text).map(|p| Self { first: p, last: p }),
        }
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for PortRange {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PortRange".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A port (1-65535) or an inclusive range written `first-last`.",
            "anyOf": [
                { "type": "integer", "minimum": 1, "maximum": 65535 },
                { "type": "string", "pattern": "^[0-9]{1,5}(-[0-9]{1,5})?$" }
            ]
        })
    }
}

/// A URL path glob: `*` matches within one segment, `**` any number of whole segments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PathGlob(pub String);

#[cfg(feature = "schema")]
string_schema!(
    PathGlob,
    "PathGlob",
    "A URL path glob starting with `/`: `*` matches within one segment, `**` any number of whole segments.",
    "^/"
);

impl PathGlob {
    /// Matches an already normalised path. Allocates nothing: the runtime asks this of
    /// every request.
    pub fn matches(&self, path: &str) -> bool {
        match_segments(segments(&self.0), segments(path), false)
    }

    /// Matches with ASCII letters compared without case: what a rule that refuses must use,
    /// since many servers route `/ADMIN` to the handler of `/admin`.
    pub fn matches_ignoring_case(&self, path: &str) -> bool {
        match_segments(segments(&self.0), segments(path), true)
    }
}

/// The segments after the first `/` (what comes before it is not looked at).
fn segments(text: &str) -> std::str::Split<'_, char> {
    let mut split = text.split('/');
    split.next();
    split
}

fn match_segments(mut pattern: std::str::Split<'_, char>, mut path: std::str::Split<'_, char>, fold: bool) -> bool {
    match pattern.next() {
        None => path.next().is_none(),
        // Any number of whole segments: try the rest of the pattern after skipping each.
        Some("**") => loop {
            if match_segments(pattern.clone(), path.clone(), fold) {
                return true;
            }
            if path.next().is_none() {
                return false;
            }
        },
        Some(p) => path.next().is_some_and(|s| match_segment(p, s, fold)) && match_segments(pattern, path, fold),
    }
}

fn match_segment(pattern: &str, segment: &str, fold: bool) -> bool {
    let same = |a: &str, b: &str| if fold { a.eq_ignore_ascii_case(b) } else { a == b };
    match pattern.split_once('*') {
        None => same(pattern, segment),
        Some((head, tail)) => {
            let Some(rest) = segment.get(head.len()..).filter(|_| same(&segment[..head.len()], head)) else {
                return false;
            };
            (0..=rest.len()).filter(|i| rest.is_char_boundary(*i)).any(|i| match_segment(tail, &rest[i..], fold))
        }
    }
}

/// An argon2 (PHC string) or bcrypt (MCF) password hash. Plaintext passwords are refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(pub String);

#[cfg(feature = "schema")]
string_schema!(
    PasswordHash,
    "PasswordHash",
    "An argon2 PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash) or a bcrypt hash ($2b$12$...).",
    "^\\$(argon2(id|i|d)|2[aby])\\$"
);

/// The SHA-256 of a bearer token, as 64 lowercase hex digits (a `sha256:` prefix is accepted).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenSha256(pub String);

#[cfg(feature = "schema")]
string_schema!(
    TokenSha256,
    "TokenSha256",
    "SHA-256 of a bearer token: 64 hex digits, optionally prefixed `sha256:`.",
    "^(sha256:)?[0-9a-fA-F]{64}$"
);

#[cfg(test)]
mod glob_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_segments() {
        let g = PathGlob("/admin/**".into());
        assert!(g.matches("/admin"));
        assert!(g.matches("/admin/users/1"));
        assert!(!g.matches("/administrator"));
        let g = PathGlob("/api/*/items".into());
        assert!(g.matches("/api/v1/items"));
        assert!(!g.matches("/api/v1/x/items"));
        let g = PathGlob("/files/*.txt".into());
        assert!(g.matches("/files/a.txt"));
        assert!(!g.matches("/files/a.txt/x"));
    }

    #[test]
    fn port_ranges_are_written_as_a_number_or_first_last() {
        let one: PortRange = serde_json::from_str("8080").unwrap();
        assert_eq!((one.first, one.last), (8080, 8080));
        let range: Result<PortRange, _> = serde_json::from_str("\"8000-8099\"");
        assert!(range.is_ok_and(|r| r.contains(8050) && !r.contains(8100)));
        for bad in ["0", "\"9-1\"", "\"x\"", "\"0-5\""] {
            assert!(serde_json::from_str::<PortRange>(bad).is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&PortRange { first: 1, last: 2 }).unwrap(), "\"1-2\"");
    }
}
