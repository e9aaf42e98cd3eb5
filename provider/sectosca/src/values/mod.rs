//! Checked value types of the profile: networks, ports, globs, durations, credential hashes,
//! public keys and HTTP methods. Each is validated where it is written. The types plans hold
//! are the plan crate's; their decoders, which say what is wrong in a document, are here.

mod der;

use std::borrow::Cow;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

pub use ::plan::{Cidr, JwtAlgorithm, KeyKind, Method, PasswordHash, PathGlob, PortRange, TokenSha256};

use crate::decode::{Decode, decode_keywords, scalar};
use crate::diagnostic::{Code, Sink};
use crate::parse::{Node, Value};
use crate::path::LazyPath;

decode_keywords!(InvalidValue: JwtAlgorithm);
decode_keywords!(InvalidMethod: Method);

impl Decode for Cidr {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
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

/// An IPv4 network, where only IPv4 is enforced (egress destinations, by the host): an
/// IPv6 network is a well-formed CIDR refused with its own code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr(pub Cidr);

plan::string_schema!(
    Ipv4Cidr,
    "Ipv4Cidr",
    "An IPv4 network in CIDR notation (10.0.0.0/8); a bare address is one host. IPv6 is refused.",
    "^[0-9]{1,3}(\\.[0-9]{1,3}){3}(/[0-9]{1,2})?$"
);

impl Decode for Ipv4Cidr {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
        let cidr = Cidr::decode(node, path, sink)?;
        if let ipnet::IpNet::V6(net) = cidr.0 {
            sink.report(
                Code::Ipv6Egress,
                node.span,
                path,
                format!("`{net}` is an IPv6 network: the host enforces egress for IPv4 only"),
            )
            .hint = Some("allow an IPv4 network; egress to IPv6 destinations cannot be allowed in this release".into());
            return None;
        }
        Some(Self(cidr))
    }
}

impl Decode for PortRange {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
        let text = scalar(node, path, sink, "a port or a port range")?;
        match Self::parse(text) {
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
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
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

/// Why `text` is not a valid path glob, if it is not.
pub fn glob_problem(text: &str) -> Option<String> {
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

impl Decode for PathGlob {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
        let text = scalar(node, path, sink, "a path glob")?;
        if let Some(problem) = glob_problem(text) {
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

plan::string_schema!(
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
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
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

const B64_PHC: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

/// Why `text` is not a usable argon2 or bcrypt hash, if it is not.
pub fn password_hash_problem(text: &str) -> Option<&'static str> {
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

impl Decode for PasswordHash {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
        let text = scalar(node, path, sink, "a password hash")?;
        if let Some(problem) = password_hash_problem(text) {
            sink.report(Code::InvalidPasswordHash, node.span, path, format!("not a usable password hash: {problem}"))
                .hint = Some("store a hash, never the password: e.g. `htpasswd -nbB -C 12 user PASSWORD | cut -d: -f2` (bcrypt) or the `argon2` command (argon2id)".into());
            return None;
        }
        Some(Self(text.to_owned()))
    }
}

impl Decode for TokenSha256 {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
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

impl Decode for PublicKeyPem {
    fn decode(node: &Node, path: &LazyPath<'_>, sink: &mut Sink<'_>) -> Option<Self> {
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
    fn glob_problems() {
        assert!(glob_problem("/a/../b").is_some());
        assert!(glob_problem("/a/**x").is_some());
        assert!(glob_problem("a").is_some());
        assert!(glob_problem("/").is_none());
    }

    #[test]
    fn password_hashes() {
        let argon = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3m2Xv7bcdUCCzCnWYPHl9l4Q6YxIj3bS7yrcF6U0d6U";
        assert_eq!(password_hash_problem(argon), None);
        let bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        assert_eq!(password_hash_problem(bcrypt), None);
        assert!(password_hash_problem("hunter2").is_some());
        assert!(password_hash_problem("$2b$99$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW").is_some());
    }
}
