//! The names of sdsec's volumes: a content's digest (`sha256-<hex>`), and an upload's staging
//! volume, marked and dated so that one a cut upload left can be told and swept.

use super::pool::PoolError;

/// What marks a staging volume's name, before its creation time in seconds.
pub const STAGING_MARK: &str = ".part-";

/// Staging names carry their creation time from 2023 on (earlier ones carried a pid there).
pub const DATED_SINCE: u64 = 1_672_531_200;

pub fn unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// When the staging volume `name` was made; `None` for any other volume.
pub fn staging_since(name: &str) -> Option<u64> {
    let (_, rest) = name.split_once(STAGING_MARK)?;
    rest.split('-').next()?.parse().ok()
}

/// The digest's hex of a volume at `path` named by its content's digest; `None` for any other.
pub fn digest_of_volume_path(path: &str) -> Option<String> {
    let name = path.rsplit('/').next()?;
    digest_hex(&format!("sha256:{}", name.strip_prefix("sha256-")?)).ok()
}

/// A volume's name for the digest of its content.
pub fn volume_name(hex: &str) -> String {
    format!("sha256-{hex}")
}

pub fn digest_hex(digest: &str) -> Result<String, PoolError> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
            Ok(hex.to_owned())
        }
        _ => Err(PoolError::BadDigest(digest.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_path_names_its_digest() {
        let hex = "ab".repeat(32);
        assert_eq!(digest_of_volume_path(&format!("/var/lib/libvirt/sdsec-pools/p/sha256-{hex}")), Some(hex.clone()));
        assert_eq!(digest_of_volume_path(&format!("/p/sha256-{hex}.part-1-2-3")), None);
        assert_eq!(digest_of_volume_path("/boot/vmlinuz"), None);
    }

    #[test]
    fn staging_volumes_are_told_by_their_mark_and_dated() {
        assert_eq!(staging_since("sha256-ab.part-1700000000-42-x1y2"), Some(1_700_000_000));
        assert_eq!(staging_since("sha256-ab"), None);
        assert_eq!(staging_since("sdsec-i-0123456789abcdef.audit.log"), None);
        assert!(staging_since("sha256-ab.part-42-x").is_some_and(|t| t < DATED_SINCE), "a pid of an earlier release");
    }
}
