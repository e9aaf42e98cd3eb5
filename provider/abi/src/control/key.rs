//! The per-instance key.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub(super) type HmacSha256 = Hmac<Sha256>;

const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot draw a random key: {0}")]
    Random(String),
    #[error("cannot {action} the control key {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the control key {0} is not 64 hex digits")]
    Malformed(PathBuf),
}

/// 32 random bytes. Never printed: `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_BYTES]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    pub fn generate() -> Result<Key, KeyError> {
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Key(bytes))
    }

    /// 64 lower-case hex digits, the form the key is stored in.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<Key> {
        let text = text.trim();
        if text.len() != KEY_BYTES * 2 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; KEY_BYTES];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
        }
        Some(Key(bytes))
    }

    /// Writes the key to a new file readable by this user only.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        let fail = |action| move |source| KeyError::Io { action, path: path.to_owned(), source };
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(fail("create"))?;
        file.write_all(self.to_hex().as_bytes()).and_then(|()| file.sync_all()).map_err(fail("write"))
    }

    pub fn read(path: &Path) -> Result<Key, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        Key::from_hex(&text).ok_or_else(|| KeyError::Malformed(path.to_owned()))
    }

    pub(super) fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; 32 bytes cannot fail.
        <HmacSha256 as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_files_readable_by_the_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = Key::generate().unwrap();
        let path = dir.path().join("control.key");
        key.write_new(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(Key::read(&path).unwrap(), key);
        assert!(key.write_new(&path).is_err(), "an existing key is never overwritten");
        assert_eq!(format!("{key:?}"), "Key(..)");
        assert!(Key::from_hex("00").is_none());
        assert!(Key::from_hex(&"zz".repeat(32)).is_none());
        assert_ne!(Key::generate().unwrap(), key);
    }
}
