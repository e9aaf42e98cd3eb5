//! Kernels, stored once per content digest and shared by every image that boots them
//! (`<state_dir>/images/kernels/<sha256 hex>`, read-only). An image's manifest names its
//! kernel by digest; a kernel is checked against that digest before an image boots it
//! (once per process while the file is unchanged), and one no image names is collected.

use std::fs::{self, File, Permissions};
use std::io::{self, BufWriter};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use fsutil::io;

use super::lock::DigestLock;
use super::{Store, StoreError, TEMP_PREFIX, sync_dir};
use crate::input::{self, FileRef};

/// The directory under the image store.
pub const KERNELS: &str = "kernels";
/// Kernel locks share the image locks' directory under this prefix.
pub(super) const LOCK_PREFIX: &str = "kernel-";

/// The hex digest of a kernel, from its manifest entry.
pub(super) fn hex(file: &FileRef) -> &str {
    file.sha256.trim_start_matches("sha256:")
}

/// What checking a stored kernel found.
pub(super) enum KernelCheck {
    Intact(PathBuf),
    Missing,
    Tampered(String),
}

impl Store {
    pub(super) fn kernel_path(&self, file: &FileRef) -> PathBuf {
        self.kernels.join(hex(file))
    }

    /// Held shared by every build that uses the kernel (two builds copying it at once write
    /// the same bytes, each renamed into place whole); gc removes it only under an exclusive
    /// hold, so never under a build.
    pub(super) fn lock_kernel(&self, file: &FileRef) -> Result<DigestLock, StoreError> {
        Ok(DigestLock::acquire_shared(&self.locks, &format!("{LOCK_PREFIX}{}", hex(file)))?)
    }

    /// Checks the stored kernel `file` names against its digest and size.
    pub(super) fn check_kernel(&self, file: &FileRef) -> Result<KernelCheck, StoreError> {
        let path = self.kernel_path(file);
        match input::hash_file(&path) {
            Ok(found) if found == *file => Ok(KernelCheck::Intact(path)),
            Ok(found) => Ok(KernelCheck::Tampered(format!(
                "the kernel {} has {} ({} bytes), its image expects {} ({} bytes)",
                path.display(),
                found.sha256,
                found.size,
                file.sha256,
                file.size
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(KernelCheck::Missing),
            Err(e) => Err(io("read", &path)(e).into()),
        }
    }

    /// Makes the store hold the kernel `file`, copied from `source` unless an intact copy is
    /// there; a damaged copy is replaced. The caller holds the kernel's lock.
    pub(super) fn ensure_kernel_locked(&self, source: &Path, file: &FileRef) -> Result<PathBuf, StoreError> {
        match self.check_kernel(file)? {
            KernelCheck::Intact(path) => return Ok(path),
            KernelCheck::Missing | KernelCheck::Tampered(_) => {}
        }
        fs::create_dir_all(&self.kernels).map_err(io("create", &self.kernels))?;
        // Builds hold the kernel's lock shared, so several may copy it at once, also from
        // separate `Store` values of one process: the copy's name is unique in the process.
        static COPIES: AtomicU64 = AtomicU64::new(0);
        let n = COPIES.fetch_add(1, Ordering::Relaxed);
        let tmp = self.kernels.join(format!("{TEMP_PREFIX}{}-{}-k{n}", hex(file), std::process::id()));
        let result = self.copy_kernel(source, file, &tmp);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn copy_kernel(&self, source: &Path, file: &FileRef, tmp: &Path) -> Result<PathBuf, StoreError> {
        let mut out = BufWriter::new(File::create(tmp).map_err(io("create", tmp))?);
        let copied = input::hash_kernel(source, &mut out)?;
        file.expect(&copied, "kernel", source)?;
        let written = out.into_inner().map_err(|e| io("write", tmp)(e.into_error()))?;
        written.set_permissions(Permissions::from_mode(0o444)).map_err(io("set permissions of", tmp))?;
        written.sync_all().map_err(io("sync", tmp))?;
        let path = self.kernel_path(file);
        fs::rename(tmp, &path).map_err(io("move into place", &path))?;
        sync_dir(&self.kernels)?;
        Ok(path)
    }

    /// Removes stored kernels that no image in `referenced` names and nobody is storing,
    /// and leftovers of interrupted copies. Gives how many kernels were removed.
    pub(super) fn gc_kernels(
        &self,
        referenced: &dyn Fn(&str) -> Result<bool, StoreError>,
    ) -> Result<usize, StoreError> {
        let entries = match fs::read_dir(&self.kernels) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io("list", &self.kernels)(e).into()),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(io("list", &self.kernels))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            let hex = name.strip_prefix(TEMP_PREFIX).and_then(|rest| rest.get(..64)).unwrap_or(&name).to_owned();
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            // Held while an image that boots this kernel is built: not collectable then.
            let Some(lock) = DigestLock::try_acquire(&self.locks, &format!("{LOCK_PREFIX}{hex}"))? else { continue };
            let stale_copy = name.starts_with(TEMP_PREFIX);
            if stale_copy || !referenced(&hex)? {
                match fs::remove_file(entry.path()) {
                    Ok(()) => removed += usize::from(!stale_copy),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io("remove", &entry.path())(e).into()),
                }
                if !stale_copy {
                    lock.remove()?;
                }
            }
        }
        Ok(removed)
    }
}
