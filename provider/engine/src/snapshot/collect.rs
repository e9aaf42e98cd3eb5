//! What of the snapshots directory is no longer of use: snapshots of images that are gone,
//! snapshots no start will ever use again (made by an older revision, or bound to another
//! emulator, accelerator or host than the current one), and partial dirs left by a make that
//! crashed. A snapshot is only removed under its lock; a make in progress is never touched.

use std::fs;

use super::{REVISION, Snapshots};

impl Snapshots {
    /// Removes every snapshot whose image is not among `images` (their images are gone, or
    /// going), whose revision is not this one, or, when `compat` is given (the current
    /// [`hypervisor::Hypervisor::snapshot_compat`]), that is bound to another; and the
    /// partial dirs of makes that died. How many snapshots went.
    pub fn retain(&self, images: &[String], compat: Option<&str>) -> usize {
        let Ok(entries) = fs::read_dir(&self.root) else { return 0 };
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".lock") || !path.is_dir() {
                continue;
            }
            if let Some((key, pid)) = partial_name(&name) {
                self.remove_partial_if_dead(key, pid);
                continue;
            }
            let Ok(_lock) = self.lock(&name) else { continue };
            let kept = self.record(&path).is_some_and(|r| {
                r.revision == REVISION
                    && images.contains(&r.image_digest)
                    && compat.is_none_or(|c| c == r.compat)
                    && Self::key(&r.image_digest, &r.compat) == name
            });
            // The lock file stays: another process may be waiting on it.
            if !kept && fs::remove_dir_all(&path).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Removes the partial dirs of `key`; only called with its lock held, when no make of
    /// `key` runs.
    pub(super) fn remove_partials(&self, key: &str) {
        let Ok(entries) = fs::read_dir(&self.root) else { return };
        for entry in entries.flatten() {
            if partial_name(&entry.file_name().to_string_lossy()).is_some_and(|(k, _)| k == key) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Removes the partial dir of `key` made by `pid` if that make is over: `pid` no longer
    /// runs, or nothing holds `key`'s lock (a make holds it from before it creates its dir
    /// until the dir is renamed or removed, so `pid` is then another process that took the
    /// number over). A live make keeps both its process and the lock.
    fn remove_partial_if_dead(&self, key: &str, pid: u32) {
        let dir = self.root.join(format!(".{key}.{pid}"));
        let running = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !running {
            let _ = fs::remove_dir_all(&dir);
            return;
        }
        let Ok(lock) = self.lock_file(key) else { return };
        if lock.try_lock().is_ok() {
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

/// `(key, pid)` of a partial dir's name, `.<key>.<pid>`.
fn partial_name(name: &str) -> Option<(&str, u32)> {
    let (key, pid) = name.strip_prefix('.')?.rsplit_once('.')?;
    let is_key = !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit());
    is_key.then_some(())?;
    Some((key, pid.parse().ok()?))
}
