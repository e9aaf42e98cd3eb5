//! The provider's own record of each `sdsec_security_policy`: its document and inputs,
//! kept under the state directory. It is what import reads and what refresh checks the
//! Terraform state against. Documents hold only hashes and public keys, never secrets.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the policy store at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the policy record {path} is corrupt: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("`{0}` is not a policy id (expected pol- and 16 hex digits)")]
    BadId(String),
    #[error("cannot draw a random policy id: {0}")]
    Random(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub id: String,
    pub document: String,
    pub inputs: BTreeMap<String, String>,
    pub digest: String,
}

#[derive(Debug, Clone)]
pub struct PolicyStore {
    dir: PathBuf,
}

pub fn is_policy_id(id: &str) -> bool {
    id.strip_prefix("pol-").is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl PolicyStore {
    /// The store under `state_dir`, created (owner-only) if needed.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let dir = state_dir.join("policies");
        create_private_dir(&dir)?;
        Ok(Self { dir })
    }

    pub fn new_id() -> Result<String, StoreError> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
        Ok(format!("pol-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
    }

    fn path(&self, id: &str) -> Result<PathBuf, StoreError> {
        if !is_policy_id(id) {
            return Err(StoreError::BadId(id.to_owned()));
        }
        Ok(self.dir.join(format!("{id}.json")))
    }

    /// Writes the record atomically: a reader sees the old record or the new one, never half.
    pub fn put(&self, record: &PolicyRecord) -> Result<(), StoreError> {
        let path = self.path(&record.id)?;
        let io = |source| StoreError::Io { path: path.clone(), source };
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io)?;
        let json =
            serde_json::to_vec_pretty(record).map_err(|source| StoreError::Corrupt { path: path.clone(), source })?;
        tmp.write_all(&json).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// The record, or `None` when there is none (deleted outside Terraform, or never made).
    pub fn get(&self, id: &str) -> Result<Option<PolicyRecord>, StoreError> {
        let path = self.path(id)?;
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|source| StoreError::Corrupt { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Removes the record; removing one that is already gone is not an error.
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        let path = self.path(id)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }
}

/// Creates a directory (and its parents) readable by the owner only.
pub fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> PolicyRecord {
        PolicyRecord {
            id: id.into(),
            document: "doc".into(),
            inputs: BTreeMap::from([("k".into(), "v".into())]),
            digest: "sha256:x".into(),
        }
    }

    #[test]
    fn put_get_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::open(dir.path()).unwrap();
        let id = PolicyStore::new_id().unwrap();
        assert!(is_policy_id(&id), "{id}");
        assert_eq!(store.get(&id).unwrap(), None);
        store.put(&record(&id)).unwrap();
        assert_eq!(store.get(&id).unwrap(), Some(record(&id)));
        store.remove(&id).unwrap();
        store.remove(&id).unwrap();
        assert_eq!(store.get(&id).unwrap(), None);
        assert_eq!(std::fs::read_dir(dir.path().join("policies")).unwrap().count(), 0, "no temporary files left");
    }

    #[test]
    fn rejects_ids_that_could_escape_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::open(dir.path()).unwrap();
        for bad in ["../etc/passwd", "pol-../../x", "pol-0123", ""] {
            assert!(matches!(store.get(bad), Err(StoreError::BadId(_))), "{bad}");
        }
    }

    #[test]
    fn corrupt_records_are_reported_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::open(dir.path()).unwrap();
        let id = "pol-0123456789abcdef";
        std::fs::write(dir.path().join("policies").join(format!("{id}.json")), "{not json").unwrap();
        assert!(matches!(store.get(id), Err(StoreError::Corrupt { .. })));
    }
}
