//! The provider's own record of each `sdsec_security_policy`: its document and inputs,
//! kept under the state directory. It is what import reads and what refresh checks the
//! Terraform state against. Documents hold only hashes and public keys, never secrets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fsutil::{IoError, io};
use serde::{Deserialize, Serialize};

use crate::Input;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the policy store: {0}")]
    Io(#[from] IoError),
    #[error("the policy record {path} is corrupt: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("`{0}` is not a policy id (expected pol- and 16 hex digits)")]
    BadId(String),
    #[error(transparent)]
    Random(#[from] fsutil::RandomError),
}

impl StoreError {
    /// The input at fault: only an id can be; the rest is the state directory's.
    pub fn input(&self) -> Option<Input> {
        matches!(self, StoreError::BadId(_)).then_some(Input::Id)
    }
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
        fsutil::create_private_dir(&dir)?;
        Ok(Self { dir })
    }

    pub fn new_id() -> Result<String, StoreError> {
        Ok(fsutil::random_id("pol-", 8)?)
    }

    fn path(&self, id: &str) -> Result<PathBuf, StoreError> {
        if !is_policy_id(id) {
            return Err(StoreError::BadId(id.to_owned()));
        }
        Ok(self.dir.join(format!("{id}.json")))
    }

    /// Writes the record atomically: a reader sees the old record or the new one, never half.
    pub fn put(&self, record: &PolicyRecord) -> Result<(), StoreError> {
        Ok(fsutil::write_json_atomically(&self.path(&record.id)?, record)?)
    }

    /// The record, or `None` when there is none (deleted outside Terraform, or never made).
    pub fn get(&self, id: &str) -> Result<Option<PolicyRecord>, StoreError> {
        let path = self.path(id)?;
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|source| StoreError::Corrupt { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path)(e).into()),
        }
    }

    /// Removes the record; removing one that is already gone is not an error.
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        let path = self.path(id)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &path)(e).into()),
        }
    }
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
            let err = store.get(bad).unwrap_err();
            assert!(matches!(err, StoreError::BadId(_)) && err.input() == Some(crate::Input::Id), "{bad}");
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
