//! Checked value types of the profile: networks, ports, globs, durations, credential hashes,
//! public keys and HTTP methods. Each is validated where it is written.

use std::borrow::Cow;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::decode::{Decode, keywords, scalar};
use crate::diagnostic::{Code, Sink};
use crate::parse::{Node, Value};
use crate::path::YamlPath;

/// Implements `JsonSchema` for a type written as a string, with a description and a pattern.
macro_rules! string_schema {
    ($ty:ty, $name:literal, $description:literal $(, $pattern:literal)?) => {
        impl schemars::JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
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

string_schema!(
    Cidr,
    "Cidr",
    "An IPv4 or IPv6 network in CIDR notation (10.0.0.0/8, ::1/128); a bare address is one host."
);

impl Decode for Cidr {
    fn decode(node: &Node, path: &YamlPath, sink: &mut Sink<'_>) -> Option<Self> {
        let text = scalar(node, path, sink, "a network in CIDR notation")?;
        if let Ok(net) = text.parse::<ipnet::IpNet>() {
            if net.trunc() != net {
                sink.report(Code::InvalidCidr, node.span, path, format!("`{text}` has host bits set")).hint =
                    Some(format!("did you mean `{}`?", net.trunc()));
                return None;
            }
            return Some(Self(net));
        }
        if let Ok(addr) = text.parse::<std::net::IpAddr>() {
            return Some(Self(ipnet::IpNet::from(addr)));
        }
        sink.report(Code::InvalidCidr, node.span, path, format!("`{text}` is not a network in CIDR notation")).hint =
            Some("write an address and a prefix length, e.g. 10.0.0.0/8 or 2001:db8::/32".into());
        None
    }
}

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
            Written::Range(text) => match text.split_once('-') {
                Some((a, b)) => parse_port(a).zip(parse_port(b)).map(|(first, last)| Self { first, last }),
                None => parse_port(&text).map(|p| Self { first: p, last: p }),
            },
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
}

impl schemars::JsonSchema for PortRange {
    fn schema_name() -> Cow<'static, str> {
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

fn parse_port(text: &str) -> Option<u16> {
    text.trim().parse::<u16>().ok().filter(|p| *p != 0)
}

impl Decode for PortRange {
    fn decode(node: &Node, path: &YamlPath, sink: &mut Sink<'_>) -> Option<Self> {
        let text = scalar(node, path, sink, "a port or a port range")?;
        let range = match text.split_once('-') {
            Some((a, b)) => parse_port(a).zip(parse_port(b)).map(|(first, last)| Self { first, last }),
            None => parse_port(text).map(|p| Self { first: p, last: p }),
        };
        match range {
            Some(r) if r.first <= r.last => Some(r),
            Some(r) => {
                sink.report(Code::InvalidPort, node.span, path, format!("the range `{text}` is empty")).hint =
                    Some(format!("write it low to high: {}-{}", r.last, r.first));
                None
            }
            None => {
                sink.report(
                    Code::InvalidPort,
                    node.span,
                    path,
                    format!("`{text}` is not a port (1-65535) or a range such as 8000-8099"),
                );
                None
            }
        }
    }
}

/// A port the application listens on (1-65535).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Port(pub u16);

impl schemars::JsonSchema for Port {
    fn schema_name() -> Cow<'static, str> {
        "Port".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "integer", "minimum": 1, "maximum": 65535 })
    }
}

impl Decode for Port {
    fn decode(node: &Node, path: &YamlPath, sink: &mut Sink<'_>) -> Option<Self> {
        // A plain scalar is a YAML integer (decimal, 0x, 0o), like every other whole number.
        let number =
            |text: &str| crate::decode::parse_uint(text).and_then(|n| u16::try_from(n).ok()).filter(|p| *p != 0);
        match &node.value {
            Value::Scalar { text, plain: true } if number(text).is_some() => number(text).map(Self),
            Value::Scalar { text, plain: false } if number(text).is_some() => {
                sink.report(Code::WrongType, node.span, path, "expected a port number, found a quoted string").hint =
                    Some(format!("write {text} without quotes"));
                None
            }
            Value::Scalar { text, .. } if !node.is_null() => {
                sink.report(Code::InvalidPort, node.span, path, format!("`{text}` is not a port (1-65535)"));
                None
            }
            _ => {
                crate::decode::wrong_type(sink, node, path, "a port number");
                None
            }
        }
    }
}

/// A URL path glob: `*` matches within one segment, `**` any number of whole segments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PathGlob(pub String);

string_schema!(
    PathGlob,
    "PathGlob",
    "A URL path glob starting with `/`: `*` matches within one segment, `**` any number of whole segments.",
    "^/"
);

impl PathGlob {
    /// Why `text` is not a valid glob, if it is not.
    pub fn problem(text: &str) -> Option<String> {
        if !text.starts_with('/') {
            return Some("a path glob starts with `/`".into());
        }
        if let Some(c) = text
            .chars()
            .find(|c| c.is_control() || c.is_whitespace() || matches!(c, '?' | '#' | '[' | ']' | '{' | '}' | '\\'))
        {
            return Some(format!("the character {c:?} is not allowed in a path glob"));
        }
        for segment in text.split('/').skip(1) {
            if segment == "." || segment == ".." {
                return Some("dot segments (`.`, `..`) are not allowed: paths are normalised before matching".into());
            }
            if segment.contains("**") && segment != "**" {
                return Some(format!("`**` must be a whole segment, found `{segment}`"));
            }
            if segment.contains('%') {
                return Some("write paths decoded: percent-encoding is removed before matching".into());
            }
        }
        if text.len() > 1 && text.contains("//") {
            return Some("empty segments (`//`) never match: duplicate slashes are merged before matching".into());
        }
        None
    }

    /// Matches an already normalised path.
    pub fn matches(&self, path: &str) -> bool {
        let pattern: Vec<&str> = self.0.split('/').skip(1).collect();
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        match_segments(&pattern, &segments)
    }
}

fn match_segments(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| match_segments(rest, &path[skip..])),
        Some((p, rest)) => {
            path.split_first().is_some_and(|(s, tail)| match_segment(p, s) && match_segments(rest, tail))
        }
    }
}

fn match_segment(pattern: &str, segment: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == segment,
        Some((head, tail)) => {
            let Some(rest) = segment.strip_prefix(head) else { return false };
            (0..=rest.len()).filter(|i| rest.is_char_boundary(*i)).any(|i| match_segment(tail, &rest[i..]))
        }
    }
}

impl Decode for PathGlob {
    fn decode(node: &Node, path: &YamlPath, sink: &mut Sink<'_>) -> Option<Self> {
        let text = scalar(node, path, sink, "a path glob")?;
        if let Some(problem) = Self::problem(text) {
            sink.report(Code::InvalidGlob, node.span, path, format!("`{text}` is not a valid path glob: {problem}"));
            return None;
        }
        Some(Self(text.to_owned()))
    }
}

/// A duration such as `90s`, `15m`, `24h`, `7d` or `1h30m`, kept in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seconds(pub u64);

string_schema!(
    Seconds,
    "Duration",
    "A duration: numbers with units s, m, h or d, e.g. 90s, 15m, 24h, 7d, 1h30m.",
    "^([0-9]+[smhd])+$"
);

impl Seconds {
    pub fn parse(text: &str) -> Option<Self> {
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in text.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return None,
            };
            let n: u64 = digits.parse().ok()?;
            total = total.checked_add(n.checked_mul(unit)?)?;
            digits.clear();
        }
        (digits.is_empty() && !text.is_empty() && total > 0).then_some(Self(total))
    }
}

impl Decode for Seconds {
    fn decode(node: &Node, path: &YamlPath, sink: &mut Sink<'_>) -> Option<Self> {
        let text = scalar(node, path, sink, "a duration")?;
        let parsed = Self::parse(text);
        if parsed.is_none() {
            let well_formed =
                text.ends_with(['s', 'm', 'h', 'd']) && text.chars().all(|c| c.is_ascii_digit() || "smhd".contains(c));
            let zero = well_formed && text.chars().all(|c| c == '0' || "smhd".contains(c));
            let (message, hint) = if zero {
                (format!("`{text}` is zero; a duration must be longer than that"), "give at least 1s".to_owned())
            } else if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                (format!("`{text}` has no unit"), format!("add a unit: {text}s, {text}m, {text}h or {text}d"))
            } else {
                (
                    format!("`{text}` is not a duration"),
                    "use numbers with units s, m, h or d, e.g. 90s, 15m, 24h, 7d, 1h30m".to_owned(),
                )
            };
            sink.report(Code::InvalidDuration, node.span, path, message).hint = Some(hint);
        }
        parsed
    }
}

/// An argon2 (PHC string) or bcrypt (MCF) password hash. Plaintext passwords are refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(pub String);

string_schema!(
    PasswordHash,
    "PasswordHash",
    "An argon2 PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash) or a bcrypt hash ($2b$12$...).",
    "^\\$(argon2(id|i|d)|2[aby])\\$"
);

const B64_PHC: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

impl PasswordHash {
    pub fn problem(text: &str) -> Option<&'static str> {
        let parts: Vec<&str> = text.split('$').collect();
        match parts.as_slice() {
            ["", alg, version, params, salt, hash] if alg.starts_with("argon2") => {
                if !matches!(*alg, "argon2id" | "argon2i" | "argon2d") {
                    return Some("unknown argon2 variant");
                }
                if !version.starts_with("v=") {
                    return Some("the argon2 version field (v=19) is missing");
                }
                let names: Vec<&str> = params.split(',').filter_map(|kv| kv.split_once('=').map(|(k, _)| k)).collect();
                if names != ["m", "t", "p"] {
                    return Some("argon2 parameters must be m=...,t=...,p=...");
                }
                if B64_PHC.decode(salt).is_err() || B64_PHC.decode(hash).map_or(true, |h| h.len() < 16) {
                    return Some("the salt or hash is not unpadded base64 of the right length");
                }
                None
            }
            ["", alg, cost, rest] if matches!(*alg, "2a" | "2b" | "2y") => {
                let cost_ok = cost.len() == 2 && cost.parse::<u8>().is_ok_and(|c| (4..=31).contains(&c));
                if !cost_ok {
                    return Some("the bcrypt cost must be two digits from 04 to 31");
                }
                if rest.len() != 53 || !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/') {
                    return Some("a bcrypt salt and hash are 53 characters of ./A-Za-z0-9");
                }
                None
            }
            _ => Some("expected an argon2 PHC string or a bcrypt hash; plaintext passwords are refused"),
        }
    }
}

impl Decode for PasswordHash {
    fn decode(node: &Node, path: &YamlPath, sink: &mut Sink<'_>) -> Option<Self> {
        let text = scalar(node, path, sink, "a password hash")?;
        if let Some(problem) = Self::problem(text) {
            sink.report(Code::InvalidPasswordHash, node.span, path, format!("not a usable password hash: {problem}"))
                .hint = Some("store a hash, never the password: e.g. `htpasswd -nbB -C 12 user PASSWORD | cut -d: -f2` (bcrypt) or the `argon2` command (argon2id)".into());
            return None;
        }
        Some(Self(text.to_owned()))
    }
}

/// The SHA-256 of a bearer token, as 64 lowercase hex digits (a `sha256:` prefix is accepted).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenSha256(pub String);

string_schema!(
    TokenSha256,
    "TokenSha256",
    "SHA-256 of a bearer token: 64 hex digits, optionally prefixed `sha256:`.",
    "^(sha256:)?[0-9a-fA-F]{64}$"
);

impl Decode for TokenSha256 {
    fn decode(node: &Node, path: &YamlPath, sink: &mut Sink<'_>) -> Option<Self> {
        let text = scalar(node, path, sink, "a SHA-256 token hash")?;
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(Self(hex.to_ascii_lowercase()));
        }
        let what = if hex.len() == 64 { "has characters that are not hex digits" } else { "is not 64 hex digits long" };
        sink.report(
            Code::InvalidTokenHash,
            node.span,
            path,
            format!("the token hash {what}; plaintext tokens are refused"),
        )
        .hint = Some("store the token's SHA-256 instead: printf %s \"$TOKEN\" | sha256sum".into());
        None
    }
}

keywords! {
    /// Signature algorithms accepted for JWTs.
    pub enum JwtAlgorithm {
        Es256 = "ES256",
        Es384 = "ES384",
        Rs256 = "RS256",
        Rs384 = "RS384",
        Rs512 = "RS512",
        Ps256 = "PS256",
        EdDsa = "EdDSA",
    }
}

/// The key type a public key holds, read from its SubjectPublicKeyInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    EcP256,
    EcP384,
    Rsa,
    Ed25519,
}

impl JwtAlgorithm {
    pub fn key_kind(self) -> KeyKind {
        match self {
            Self::Es256 => KeyKind::EcP256,
            Self::Es384 => KeyKind::EcP384,
            Self::Rs256 | Self::Rs384 | Self::Rs512 | Self::Ps256 => KeyKind::Rsa,
            Self::EdDsa => KeyKind::Ed25519,
        }
    }
}

/// A public key in PEM (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKeyPem {
    pub kind: KeyKind,
    pub pem: String,
}

impl schemars::JsonSchema for PublicKeyPem {
    fn schema_name() -> Cow<'static, str> {
        "PublicKeyPem".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A PEM public key (-----BEGIN PUBLIC KEY-----): EC P-256/P-384, RSA or Ed25519.",
            "pattern": "-----BEGIN PUBLIC KEY-----"
        })
    }
}

// DER encodings of the algorithm identifiers we accept, as they appear inside an SPKI.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_RSA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// Reads one DER element: its tag, its content, and what follows it.
fn der_element(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The size in bits of an RSA key's modulus, from its SubjectPublicKeyInfo:
/// SEQUENCE { SEQUENCE { algorithm }, BIT STRING { SEQUENCE { INTEGER n, INTEGER e } } }.
fn rsa_modulus_bits(spki: &[u8]) -> Option<usize> {
    let (0x30, body, _) = der_element(spki)? else { return None };
    let (0x30, _, rest) = der_element(body)? else { return None };
    let (0x03, bits, _) = der_element(rest)? else { return None };
    let (0x30, key, _) = der_element(bits.get(1..)?)? else { return None };
    let (0x02, modulus, _) = der_element(key)? else { return None };
    let significant: &[u8] = match modulus.iter().position(|b| *b != 0) {
        Some(i) => &modulus[i..],
        None => return Some(0),
    };
    Some(significant.len() * 8 - significant[0].leading_zeros() as usize)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl PublicKeyPem {
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let body = text
            .trim()
            .strip_prefix("-----BEGIN PUBLIC KEY-----")
            .and_then(|rest| rest.strip_suffix("-----END PUBLIC KEY-----"))
            .ok_or(if text.contains("PRIVATE KEY") {
                "this is a PRIVATE key: never put private keys in a policy"
            } else {
                "expected a PEM block -----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----"
            })?;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der =
            base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| "the PEM body is not valid base64")?;
        if der.first() != Some(&0x30) || der.len() < 32 {
            return Err("the PEM body is not a DER SubjectPublicKeyInfo");
        }
        let head = &der[..der.len().min(32)];
        let kind = if contains(head, OID_EC_PUBLIC_KEY) && contains(head, OID_P256) {
            KeyKind::EcP256
        } else if contains(head, OID_EC_PUBLIC_KEY) && contains(head, OID_P384) {
            KeyKind::EcP384
        } else if contains(head, OID_RSA) {
            KeyKind::Rsa
        } else if contains(head, OID_ED25519) {
            KeyKind::Ed25519
        } else {
            return Err("unsupported key type: use EC P-256, EC P-384, RSA or Ed25519");
        };
        // The SubjectPublicKeyInfo of each key type has a fixed size (RSA: at least that of
        // a 2048-bit modulus); anything else is a truncated or weak key.
        let size_ok = match kind {
            // Uncompressed or compressed curve points.
            KeyKind::EcP256 => der.len() == 91 || der.len() == 59,
            KeyKind::EcP384 => der.len() == 120 || der.len() == 72,
            KeyKind::Ed25519 => der.len() == 44,
            KeyKind::Rsa => rsa_modulus_bits(&der).is_some_and(|bits| bits >= 2048),
        };
        if !size_ok {
            return Err(if kind == KeyKind::Rsa {
                "the RSA key is shorter than 2048 bits"
            } else {
                "the key is truncated or malformed: its DER has the wrong length for its type"
            });
        }
        let pem = text.trim().to_owned() + "\n";
        Ok(Self { kind, pem })
    }
}

impl Decode for PublicKeyPem {
    fn decode(node: &Node, path: &YamlPath, sink: &mut Sink<'_>) -> Option<Self> {
        let text = scalar(node, path, sink, "a PEM public key")?;
        match Self::parse(text) {
            Ok(key) => Some(key),
            Err(problem) => {
                let hint = if text.contains("PRIVATE KEY") {
                    "put the public half here (`openssl pkey -in key.pem -pubout`), and treat this private key as leaked: replace it"
                } else if problem.contains("2048") {
                    "generate a longer key, e.g. `openssl genrsa 3072 | openssl rsa -pubout`, or use EC or Ed25519"
                } else if problem.contains("truncated") {
                    "paste the whole PEM block, every line of it"
                } else {
                    "write the key as a YAML block scalar: `public_key: |` then the PEM lines indented"
                };
                sink.report(Code::InvalidPublicKey, node.span, path, format!("not a usable public key: {problem}"))
                    .hint = Some(hint.into());
                None
            }
        }
    }
}

keywords! {
    /// HTTP request methods.
    pub enum Method (InvalidMethod) {
        Get = "GET",
        Head = "HEAD",
        Post = "POST",
        Put = "PUT",
        Patch = "PATCH",
        Delete = "DELETE",
        Options = "OPTIONS",
        Trace = "TRACE",
        Connect = "CONNECT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(Seconds::parse("24h"), Some(Seconds(86_400)));
        assert_eq!(Seconds::parse("1h30m"), Some(Seconds(5_400)));
        for bad in ["", "24", "h", "1x", "0s", "-1h", "99999999999999999999d"] {
            assert_eq!(Seconds::parse(bad), None, "{bad}");
        }
    }

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
        assert!(PathGlob::problem("/a/../b").is_some());
        assert!(PathGlob::problem("/a/**x").is_some());
        assert!(PathGlob::problem("a").is_some());
        assert!(PathGlob::problem("/").is_none());
    }

    #[test]
    fn password_hashes() {
        let argon = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3m2Xv7bcdUCCzCnWYPHl9l4Q6YxIj3bS7yrcF6U0d6U";
        assert_eq!(PasswordHash::problem(argon), None);
        let bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        assert_eq!(PasswordHash::problem(bcrypt), None);
        assert!(PasswordHash::problem("hunter2").is_some());
        assert!(PasswordHash::problem("$2b$99$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW").is_some());
    }

    #[test]
    fn public_keys_are_recognised_by_type() {
        let p256 = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\nq9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n-----END PUBLIC KEY-----";
        assert_eq!(PublicKeyPem::parse(p256).map(|k| k.kind), Ok(KeyKind::EcP256));
        assert!(PublicKeyPem::parse("-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----").is_err());
        assert!(PublicKeyPem::parse("-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----").is_err());
    }
}
