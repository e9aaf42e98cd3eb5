//! The record each instance leaves under the state directory, so that later processes
//! (the next `terraform plan`, `sdsec stop`) find it:
//!
//! ```text
//! <state_dir>/instances/<id>/instance.json   what was booted, where it listens
//!                            qemu.pid        written by QEMU
//!                            qmp.sock        QEMU's control socket
//!                            control.sock    the guest runtime's control channel
//!                            control.key     its key (0600)
//!                            initrd          the image's initramfs + this instance's overlay (0600)
//!                            console.log     the guest's serial console
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{HypervisorError, Instance, Result};

pub const RECORD: &str = "instance.json";
pub const PIDFILE: &str = "qemu.pid";
pub const QMP_SOCKET: &str = "qmp.sock";
pub const CONSOLE: &str = "console.log";
pub const CONTROL_SOCKET: &str = "control.sock";
pub const CONTROL_KEY: &str = "control.key";
pub const INITRD: &str = "initrd";

/// `i-` and 16 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceId(String);

impl InstanceId {
    pub fn random() -> Result<InstanceId> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| HypervisorError::Io {
            action: "draw a random instance id",
            path: PathBuf::from("getrandom"),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(InstanceId(format!("i-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())))
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

impl Registry {
    pub fn new(state_dir: &Path) -> Registry {
        Registry { root: state_dir.join("instances") }
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
        let fail = |source| HypervisorError::Io { action: "create", path: dir.clone(), source };
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(fail)?;
        }
        fs::DirBuilder::new().mode(if private { 0o700 } else { 0o755 }).create(&dir).map_err(fail)?;
        Ok(dir)
    }

    /// Written through a rename, so a reader sees the whole record or none.
    pub fn save(&self, instance: &Instance) -> Result<()> {
        let path = self.dir(&instance.id).join(RECORD);
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_string_pretty(instance)
            .map_err(|e| HypervisorError::BadRecord { path: path.clone(), reason: e.to_string() })?;
        fs::write(&tmp, json).map_err(|source| HypervisorError::Io { action: "write", path: tmp.clone(), source })?;
        fs::rename(&tmp, &path).map_err(|source| HypervisorError::Io { action: "write", path, source })
    }

    pub fn load(&self, id: &InstanceId) -> Result<Instance> {
        let path = self.dir(id).join(RECORD);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HypervisorError::NoSuchInstance(id.clone()));
            }
            Err(source) => return Err(HypervisorError::Io { action: "read", path, source }),
        };
        serde_json::from_str(&text).map_err(|e| HypervisorError::BadRecord { path, reason: e.to_string() })
    }

    /// Ids with a directory, whether or not their record was completed.
    pub fn ids(&self) -> Result<Vec<InstanceId>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(HypervisorError::Io { action: "list", path: self.root.clone(), source }),
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
            Err(source) => Err(HypervisorError::Io { action: "remove", path: dir, source }),
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
