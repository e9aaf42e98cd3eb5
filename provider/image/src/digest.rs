//! The image digest: `sha256:` and 64 lowercase hex digits, the SHA-256 of the canonical
//! manifest. It names a directory of the store, so it is parsed strictly: nothing but hex
//! digits ever reaches a path.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an image digest: expected `sha256:` followed by 64 lowercase hex digits")]
pub struct DigestError(pub String);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageDigest(String);

impl ImageDigest {
    /// Accepts `sha256:<hex>` or the bare hex (as the store's directory names are).
    pub fn parse(text: &str) -> Result<ImageDigest, DigestError> {
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        let ok = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok { Ok(ImageDigest(format!("sha256:{hex}"))) } else { Err(DigestError(text.to_owned())) }
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> ImageDigest {
        ImageDigest(plan::sha256_digest(bytes))
    }

    /// The 64 hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> &str {
        self.0.strip_prefix("sha256:").unwrap_or(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ImageDigest {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ImageDigest::parse(&s)
    }
}

impl From<ImageDigest> for String {
    fn from(d: ImageDigest) -> String {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_digests_parse() {
        let hex = "ab".repeat(32);
        assert_eq!(ImageDigest::parse(&hex).unwrap().as_str(), format!("sha256:{hex}"));
        assert_eq!(ImageDigest::parse(&format!("sha256:{hex}")).unwrap().hex(), hex);
        for bad in ["", "sha256:", "../../etc", &"AB".repeat(32), &"ab".repeat(33), &format!("md5:{hex}")] {
            assert!(ImageDigest::parse(bad).is_err(), "{bad}");
        }
    }
}
