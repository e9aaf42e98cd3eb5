//! The record each instance leaves under the state directory, so that later processes
//! (the next `terraform plan`, `sdsec stop`) find it:
//!
//! ```text
//! <state_dir>/instances/<id>/instance.json   what was booted, where it listens
//!                            qemu.pid        written by QEMU
//!                            qmp.sock        QEMU's control socket
//!                            control.sock    the guest runtime's control channel
//!                            control.key     its key (0600)
//!                            console.log     the guest's serial console (kernel, application)
//!                            audit.log       the runtime's events (its virtio-serial port)
//!                            *.log.1         the previous file of a rotated log ([`crate::logs`])
//! ```
//!
//! `instance.json` is written before QEMU starts, naming the process creating the instance
//! ([`crate::creator`]), so an instance whose creator dies is found again.

use std::fs;
use std::path::{Path, PathBuf};

use fsutil::io;
use serde::{Deserialize, Serialize};

use crate::{HypervisorError, Instance, Result};

pub const RECORD: &str = "instance.json";
pub const PIDFILE: &str = "qemu.pid";
pub const QMP_SOCKET: &str = "qmp.sock";
pub const CONSOLE: &str = "console.log";
pub const AUDIT: &str = "audit.log";
pub const CONTROL_SOCKET: &str = "control.sock";
pub const CONTROL_KEY: &str = "control.key";

/// `i-` and 16 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceId(String);

impl InstanceId {
    pub fn random() -> Result<InstanceId> {
        Ok(InstanceId(fsutil::random_id("i-", 8)?))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InstanceId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<InstanceId> for String {
    fn from(id: InstanceId) -> String {
        id.0
    }
}

impl std::str::FromStr for InstanceId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = s.len() == 18 && s.starts_with("i-") && s[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if ok {
            Ok(InstanceId(s.to_ascii_lowercase()))
        } else {
            Err(format!("`{s}` is not an instance id (i-<16 hex>)"))
        }
    }
}

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
}

/// Where the libvirt backend keeps its instances' files, under the state directory.
pub const LIBVIRT_DIR: &str = "libvirt";

impl Registry {
    pub fn new(state_dir: &Path) -> Registry {
        Registry { root: state_dir.join("instances") }
    }

    /// Whether either backend keeps a record of `id` under `state_dir` (a booting or
    /// running instance, or one whose process died and that was not stopped yet).
    pub fn recorded_by_any(state_dir: &Path, id: &InstanceId) -> bool {
        [Registry::new(state_dir), Registry::new(&state_dir.join(LIBVIRT_DIR))].iter().any(|r| r.dir(id).is_dir())
    }

    pub fn dir(&self, id: &InstanceId) -> PathBuf {
        self.root.join(id.as_str())
    }

    /// `private` makes the instance's directory 0700: its sockets and key are then the
    /// provider user's alone. (A libvirt daemon's QEMU may run as another user, who must
    /// write the console log there.)
    pub fn create_dir(&self, id: &InstanceId, private: bool) -> Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt as _;
        let dir = self.dir(id);
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        fs::DirBuilder::new().mode(if private { 0o700 } else { 0o755 }).create(&dir).map_err(io("create", &dir))?;
        Ok(dir)
    }

    /// Written atomically, so a reader sees the whole record or none.
    pub fn save(&self, instance: &Instance) -> Result<()> {
        Ok(fsutil::write_json_atomically(&self.dir(&instance.id).join(RECORD), instance)?)
    }

    pub fn load(&self, id: &InstanceId) -> Result<Instance> {
        let path = self.dir(id).join(RECORD);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HypervisorError::NoSuchInstance(id.clone()));
            }
            Err(e) => return Err(io("read", &path)(e).into()),
        };
        serde_json::from_str(&text).map_err(|e| HypervisorError::BadRecord { path, reason: e.to_string() })
    }

    /// Ids with a directory, whether or not their record was completed.
    pub fn ids(&self) -> Result<Vec<InstanceId>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &self.root)(e).into()),
        };
        let mut ids: Vec<InstanceId> =
            entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok())).collect();
        ids.sort();
        Ok(ids)
    }

    pub fn remove(&self, id: &InstanceId) -> Result<()> {
        let dir = self.dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &dir)(e).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        let id = InstanceId::random().unwrap();
        assert_eq!(id.as_str().parse::<InstanceId>().unwrap(), id);
        for bad in ["", "i-", "i-xyz", "x-0123456789abcdef", "i-0123456789abcdef0", "../etc"] {
            assert!(bad.parse::<InstanceId>().is_err(), "{bad}");
        }
    }
}
