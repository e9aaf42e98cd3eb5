//! Snapshots of images, kept under the state directory and started instead of booting
//! ([`hypervisor::snapshot`]):
//!
//! ```text
//! <state_dir>/snapshots/<key>/snapshot.json   what it was made from, its digest, its key (0600)
//!                             state           QEMU's migration stream (0400)
//!                       <key>.lock            held while one is made or removed
//!                       .<key>.<pid>/         one being made by process <pid>
//! ```
//!
//! `<key>` is a digest of the image's digest and what the hypervisor binds a snapshot to
//! (emulator build, accelerator, and under KVM the host's CPU and kernel): another QEMU
//! never gets a stream it may not load. A snapshot is verified against its digest before
//! every start, like an image (once per process while the file is unchanged), through the
//! descriptor QEMU is then handed, and one that fails is removed and made again, never
//! started. One that verifies but that QEMU refuses to load all the same (what the compat
//! string does not capture) is removed when a copy fails to load it. It is made by booting
//! the image once, with a NIC that leads nowhere (so
//! copies may start on QEMU's user network or on the bridge), to readiness, marked
//! `sdsec.snapshot=1`, and saving it; every copy is resumed
//! with its own key, randomness, clock and address before it serves.

mod collect;

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use abi::control::Key;
use fsutil::{IoError, io};
use hypervisor::{HypervisorError, Restore};
use plan::EnforcementPlan;
use serde::{Deserialize, Serialize};

use crate::host::{Host, HostError};
use crate::launch::{self, LaunchError};

/// Changes when what a snapshot holds or how it is resumed changes: older ones are made again.
pub(crate) const REVISION: u32 = 1;
const RECORD: &str = "snapshot.json";
const STATE: &str = "state";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}; check the state directory's permissions")]
    Io(#[from] IoError),
    #[error(transparent)]
    Hypervisor(#[from] HypervisorError),
    #[error("cannot boot the instance a snapshot is made from: {0}")]
    Boot(HostError),
    #[error(transparent)]
    Control(LaunchError),
    #[error("the snapshot {dir} is damaged ({reason}); it was removed and is made again at the next start")]
    Tampered { dir: PathBuf, reason: String },
    #[error(
        "the snapshot {dir} verifies but does not load on this host ({reason}); it was removed and is made again at the next start: start again"
    )]
    Unloadable { dir: PathBuf, reason: String },
}

/// What a stored snapshot was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub revision: u32,
    pub image_digest: String,
    /// What the hypervisor binds it to ([`hypervisor::Hypervisor::snapshot_compat`]).
    pub compat: String,
    /// `sha256:` and the hex digest of the state.
    pub state_sha256: String,
    pub size: u64,
    /// The control key the saved instance was booted with (hex in the file; `Debug` shows
    /// nothing of it): every copy answers to it until resumed with its own.
    pub key: Key,
    /// How long the saved instance took to boot to readiness, in ms (what a start from the
    /// snapshot saves).
    pub boot_ms: u64,
}

/// A verified snapshot, ready to start a copy from.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub dir: PathBuf,
    pub record: Record,
    /// The state, opened once and verified through this descriptor, which the copy's QEMU
    /// is handed: what was verified is what loads, whatever the path names by then.
    state: Arc<File>,
}

impl Snapshot {
    /// How a boot restores it (the host adds the copy's address). The descriptor's offset
    /// is shared: one copy at a time per [`Snapshots::ensure`].
    pub fn restore(&self) -> Restore {
        Restore { state: Arc::clone(&self.state), snapshot_key: self.record.key.clone(), network: None }
    }
}

/// The snapshots under one state directory.
#[derive(Debug, Clone)]
pub struct Snapshots {
    root: PathBuf,
}

impl Snapshots {
    pub fn new(state_dir: &Path) -> Snapshots {
        Snapshots { root: state_dir.join("snapshots") }
    }

    /// The name of the snapshot of `image_digest` for `compat`.
    pub(crate) fn key(image_digest: &str, compat: &str) -> String {
        let digest = plan::sha256_digest(format!("{REVISION}\n{image_digest}\n{compat}").as_bytes());
        digest.trim_start_matches("sha256:")[..32].to_owned()
    }

    /// Holds `key`'s lock until dropped, waiting for it.
    fn lock(&self, key: &str) -> Result<File, SnapshotError> {
        let file = self.lock_file(key)?;
        file.lock().map_err(io("lock", &self.root.join(format!("{key}.lock"))))?;
        Ok(file)
    }

    /// `key`'s lock file, opened and not locked.
    fn lock_file(&self, key: &str) -> Result<File, SnapshotError> {
        fs::create_dir_all(&self.root).map_err(io("create", &self.root))?;
        let path = self.root.join(format!("{key}.lock"));
        Ok(File::options().create(true).truncate(false).write(true).open(&path).map_err(io("open", &path))?)
    }

    fn verified(&self, key: &str, image_digest: &str, compat: &str) -> Result<Option<Snapshot>, SnapshotError> {
        let dir = self.root.join(key);
        let text = match fs::read_to_string(dir.join(RECORD)) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => return Ok(None),
            Err(e) => return Err(self.remove_damaged(&dir, &format!("its record is unreadable: {e}"))),
        };
        let record: Record = match serde_json::from_str(&text) {
            Ok(record) => record,
            Err(e) => return Err(self.remove_damaged(&dir, &format!("its record does not parse: {e}"))),
        };
        if record.revision != REVISION || record.image_digest != image_digest || record.compat != compat {
            return Err(self.remove_damaged(&dir, "its record names another image or emulator"));
        }
        let path = dir.join(STATE);
        let opened = File::open(&path).and_then(|file| Ok((sdsec_image::input::hash_open(&file, &path)?, file)));
        let (found, state) = match opened {
            Ok(opened) => opened,
            Err(e) => return Err(self.remove_damaged(&dir, &format!("its state is unreadable: {e}"))),
        };
        if found.sha256 != record.state_sha256 || found.size != record.size {
            return Err(self.remove_damaged(&dir, "its state does not match its digest"));
        }
        Ok(Some(Snapshot { dir, record, state: Arc::new(state) }))
    }

    fn remove_damaged(&self, dir: &Path, reason: &str) -> SnapshotError {
        let _ = fs::remove_dir_all(dir);
        SnapshotError::Tampered { dir: dir.to_owned(), reason: reason.to_owned() }
    }

    /// The snapshot of `image` (built with `plan`) for `host`: the stored one when it
    /// verifies, otherwise made now. Nothing half-made is left: the instance booted to make
    /// it is stopped, and the snapshot appears whole (by rename) or not at all.
    pub fn ensure(
        &self,
        host: &Host,
        image: &sdsec_image::Image,
        plan: &EnforcementPlan,
        timeout: Duration,
    ) -> Result<Snapshot, SnapshotError> {
        let image_digest = image.digest.to_string();
        let compat = host.snapshot_compat()?;
        let key = Self::key(&image_digest, &compat);
        let _lock = self.lock(&key)?;
        match self.verified(&key, &image_digest, &compat) {
            Ok(Some(snapshot)) => return Ok(snapshot),
            // Removed: made again below.
            Ok(None) | Err(SnapshotError::Tampered { .. }) => {}
            Err(e) => return Err(e),
        }
        // Under the lock no other make of this key runs: whatever partial dir it has is a
        // crashed make's.
        self.remove_partials(&key);
        let partial = self.root.join(format!(".{key}.{}", std::process::id()));
        // Root's only: the record holds the saved instance's key.
        std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700)
            .create(&partial)
            .map_err(io("create", &partial))?;
        let made = self.make(host, image, plan, timeout, &partial, &compat);
        let dir = self.root.join(&key);
        let placed = made.and_then(|(record, state)| {
            fs::rename(&partial, &dir).map_err(io("move into place", &dir))?;
            Ok(Snapshot { dir, record, state: Arc::new(state) })
        });
        if placed.is_err() {
            let _ = fs::remove_dir_all(&partial);
        }
        placed
    }

    fn make(
        &self,
        host: &Host,
        image: &sdsec_image::Image,
        plan: &EnforcementPlan,
        timeout: Duration,
        partial: &Path,
        compat: &str,
    ) -> Result<(Record, File), SnapshotError> {
        let mut spec = launch::boot_spec(image, plan, timeout);
        spec.name = format!("{}-snapshot", plan.node);
        spec.cmdline = abi::cmdline::with_snapshot(&spec.cmdline);
        let control = launch::control_boot().map_err(SnapshotError::Control)?;
        let key = control.key.clone();
        spec.control = Some(control);
        let instance = host.boot_detached(spec).map_err(SnapshotError::Boot)?;
        let state = partial.join(STATE);
        let saved = host.save(&instance.id, &state);
        // Saved or not, the instance is done with: it never serves.
        let _ = host.stop(&instance.id, Duration::from_secs(2));
        saved?;
        // Hashed through the descriptor the first copy loads from.
        let file = File::open(&state).map_err(io("open", &state))?;
        let found = sdsec_image::input::hash_descriptor(&file).map_err(io("read", &state))?;
        fs::set_permissions(&state, fs::Permissions::from_mode(0o400)).map_err(io("protect", &state))?;
        let record = Record {
            revision: REVISION,
            image_digest: image.digest.to_string(),
            compat: compat.to_owned(),
            state_sha256: found.sha256,
            size: found.size,
            key,
            boot_ms: instance.boot_ms,
        };
        fsutil::write_json_atomically(&partial.join(RECORD), &record)?;
        fs::set_permissions(partial.join(RECORD), fs::Permissions::from_mode(0o600))
            .map_err(io("protect", &partial.join(RECORD)))?;
        Ok((record, file))
    }

    /// A copy of `snapshot` failed to load for reasons of its stream
    /// ([`hypervisor::HypervisorError::SnapshotUnloadable`]): it verifies, but will never load
    /// here, so it is removed to be made again at the next start; the error says so. Left
    /// alone if another process has made it again meanwhile.
    pub fn unloadable(&self, snapshot: &Snapshot, reason: String) -> SnapshotError {
        let dir = snapshot.dir.clone();
        let key = dir.file_name().map(|k| k.to_string_lossy().into_owned()).unwrap_or_default();
        if let Ok(_lock) = self.lock(&key)
            && self.record(&dir).is_some_and(|record| record == snapshot.record)
        {
            let _ = fs::remove_dir_all(&dir);
        }
        SnapshotError::Unloadable { dir, reason }
    }

    fn record(&self, dir: &Path) -> Option<Record> {
        fs::read_to_string(dir.join(RECORD)).ok().and_then(|text| serde_json::from_str(&text).ok())
    }
}

#[cfg(test)]
mod tests;
