//! Request path normalisation, done before any rule is matched.
//!
//! Every rule (deny paths, authorization globs, the health path) is matched against one
//! canonical form, and the application receives that same form, so a path the policy saw
//! as `/public` can never reach the application as `/admin`. Encodings that different
//! servers decode differently (encoded `/`, NUL, backslashes, double encoding) are refused
//! rather than guessed at.

/// A request path in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    /// Decoded, dot segments resolved, duplicate and trailing slashes removed: what rules match.
    pub matching: String,
    /// The same path re-encoded for the wire, keeping a trailing slash: what the application gets.
    pub forward: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the target is not an absolute path")]
    NotAbsolute,
    #[error("a percent escape is not two hex digits")]
    BadEscape,
    #[error("an encoded slash (%2F) is ambiguous")]
    EncodedSlash,
    #[error("a backslash is ambiguous")]
    Backslash,
    #[error("the path holds a NUL or control character")]
    Control,
    #[error("the decoded path is not UTF-8")]
    NotUtf8,
    #[error("the path is percent-encoded twice")]
    DoubleEncoded,
    #[error("a `;` (a path parameter, which some servers strip) is ambiguous")]
    Parameter,
}

impl PathError {
    /// A stable reason for audit lines.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotAbsolute => "path_not_absolute",
            Self::BadEscape => "path_bad_escape",
            Self::EncodedSlash => "path_encoded_slash",
            Self::Backslash => "path_backslash",
            Self::Control => "path_control_character",
            Self::NotUtf8 => "path_not_utf8",
            Self::DoubleEncoded => "path_double_encoded",
            Self::Parameter => "path_parameter",
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one segment (no `/` inside), refusing what could be read two ways.
fn decode_segment(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let decoded = if b == b'%' {
            let (Some(h), Some(l)) = (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
            else {
                return Err(PathError::BadEscape);
            };
            i += 3;
            let d = (h << 4) | l;
            match d {
                b'/' => return Err(PathError::EncodedSlash),
                // A literal `%` after decoding means the client encoded twice: an application
                // that decodes again would see a different path than the one we matched.
                b'%' => return Err(PathError::DoubleEncoded),
                _ => d,
            }
        } else {
            i += 1;
            b
        };
        match decoded {
            b'\\' => return Err(PathError::Backslash),
            // Servlet containers read `/admin;x` as `/admin` and `/..;/admin` as `/../admin`:
            // matched here as written, they would reach the application as another path.
            b';' => return Err(PathError::Parameter),
            0..=0x1f | 0x7f => return Err(PathError::Control),
            _ => out.push(decoded),
        }
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
}

/// Bytes kept as they are on the wire: unreserved, sub-delims, `:` and `@` (RFC 3986 pchar).
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

fn encode_segment(segment: &str, out: &mut String) {
    for &b in segment.as_bytes() {
        if is_pchar(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xf)]));
        }
    }
}

/// Whether `raw` is already in canonical form, both for matching and on the wire: absolute,
/// no empty or dot segment, no trailing slash, only bytes that decode and encode to
/// themselves. Most requests' paths are; they skip the segment-by-segment rewrite.
fn canonical(raw: &str) -> bool {
    raw.strip_prefix('/').is_some_and(|rest| {
        rest.split('/').all(|s| !s.is_empty() && s != "." && s != ".." && s.bytes().all(|b| is_pchar(b) && b != b';'))
    })
}

/// Normalises the path part of an origin-form target (without the query).
pub fn normalise(raw: &str) -> Result<NormalPath, PathError> {
    if canonical(raw) {
        return Ok(NormalPath { matching: raw.to_owned(), forward: raw.to_owned() });
    }
    rewrite(raw)
}

fn rewrite(raw: &str) -> Result<NormalPath, PathError> {
    let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut segments: Vec<String> = Vec::new();
    let mut trailing_slash = false;
    for raw_segment in rest.split('/') {
        let segment = decode_segment(raw_segment)?;
        // Resolved after decoding, so `%2e%2e` is a dot segment as well.
        trailing_slash = matches!(segment.as_str(), "" | "." | "..");
        match segment.as_str() {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let mut matching = String::with_capacity(raw.len());
    let mut forward = String::with_capacity(raw.len());
    for s in &segments {
        matching.push('/');
        matching.push_str(s);
        forward.push('/');
        encode_segment(s, &mut forward);
    }
    if matching.is_empty() {
        matching.push('/');
    }
    // The trailing slash can matter to the application (directory listings, redirects),
    // but not to rules: `/admin/` and `/admin` are the same resource to most routers.
    if trailing_slash || forward.is_empty() {
        forward.push('/');
    }
    Ok(NormalPath { matching, forward })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(raw: &str) -> Result<String, PathError> {
        normalise(raw).map(|p| p.matching)
    }

    #[test]
    fn bypass_variants_normalise_to_the_same_path() {
        for raw in
            ["/admin", "/admin/", "//admin", "/admin/../admin", "/%61dmin", "/./admin", "/x/%2e%2e/admin", "/../admin"]
        {
            assert_eq!(m(raw).as_deref(), Ok("/admin"), "{raw}");
        }
        assert_eq!(m("/admin/./x").as_deref(), Ok("/admin/x"));
        assert_eq!(m("/").as_deref(), Ok("/"));
        assert_eq!(m("/a/..").as_deref(), Ok("/"));
    }

    #[test]
    fn ambiguous_encodings_are_refused() {
        assert_eq!(m("/a%2Fb"), Err(PathError::EncodedSlash));
        assert_eq!(m("/a%2fb"), Err(PathError::EncodedSlash));
        assert_eq!(m("/a%00"), Err(PathError::Control));
        assert_eq!(m("/a%5c..%5cadmin"), Err(PathError::Backslash));
        assert_eq!(m("/a%"), Err(PathError::BadEscape));
        assert_eq!(m("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(m("/%252e%252e/admin"), Err(PathError::DoubleEncoded));
        assert_eq!(m("/%ff"), Err(PathError::NotUtf8));
        assert_eq!(m("*"), Err(PathError::NotAbsolute));
        assert_eq!(m("/admin;x"), Err(PathError::Parameter));
        assert_eq!(m("/..;/admin"), Err(PathError::Parameter));
        assert_eq!(m("/admin%3Bx"), Err(PathError::Parameter));
        assert_eq!(m("/admin%3bx"), Err(PathError::Parameter));
    }

    /// Paths taken as they are give what the full rewrite gives.
    #[test]
    fn canonical_paths_are_their_own_rewrite() {
        for raw in [
            "/api/items",
            "/a/b-c_d~e!$&'()*+,=:@",
            "/a.b/c..d/.e",
            "/x",
            "/api/items/",
            "/",
            "//a",
            "/a/./b",
            "/a/../b",
            "/a/.",
            "/a/..",
            "/a%41",
            "/a;b",
            "/A/B",
            "/a b",
            "/caf\u{e9}",
        ] {
            assert_eq!(normalise(raw), rewrite(raw), "{raw}");
        }
        assert!(canonical("/api/items") && !canonical("/api/items/") && !canonical("/a%41") && !canonical("/"));
    }

    #[test]
    fn forward_form_is_re_encoded_and_keeps_a_trailing_slash() {
        let p = normalise("/caf%C3%A9//docs/./x%20y/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.matching, "/café/docs/x y");
        assert_eq!(p.forward, "/caf%C3%A9/docs/x%20y/");
        assert_eq!(normalise("/").map(|p| p.forward).as_deref(), Ok("/"));
    }
}
