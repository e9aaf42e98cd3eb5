//! Listing the store and collecting what no configuration references any more.

use std::fs;
use std::io;

use fsutil::io;

use super::lock::DigestLock;
use super::{GcReport, Store, StoreError, StoredImage, TEMP_PREFIX, dir_bytes};
use crate::digest::ImageDigest;

impl Store {
    /// The stored images, unverified, sorted by digest.
    pub fn list(&self) -> Result<Vec<StoredImage>, StoreError> {
        let mut images = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(io("list", &self.root))? {
            let entry = entry.map_err(io("list", &self.root))?;
            let name = entry.file_name();
            if let Some(digest) = name.to_str().and_then(|n| ImageDigest::parse(n).ok()) {
                images.push(StoredImage { bytes: dir_bytes(&entry.path()), digest });
            }
        }
        images.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(images)
    }

    /// Removes every image not in `keep` that nobody is using, the leftovers of interrupted
    /// builds, and lock files of images that are gone.
    pub fn gc(&self, keep: &[ImageDigest]) -> Result<GcReport, StoreError> {
        let mut report = GcReport::default();
        for entry in fs::read_dir(&self.root).map_err(io("list", &self.root))? {
            let entry = entry.map_err(io("list", &self.root))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if let Some(rest) = name.strip_prefix(TEMP_PREFIX) {
                // A temporary directory is stale once no process holds its digest's lock.
                let hex = rest.get(..64).unwrap_or_default();
                if ImageDigest::parse(hex).is_ok() && DigestLock::try_acquire(&self.locks, hex)?.is_some() {
                    // Gone already when it was this collection's own trash, listed while removed.
                    match fs::remove_dir_all(entry.path()) {
                        Ok(()) => report.temp_dirs_removed += 1,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io("remove", &entry.path())(e).into()),
                    }
                }
                continue;
            }
            let Ok(digest) = ImageDigest::parse(&name) else { continue };
            if keep.contains(&digest) {
                continue;
            }
            match DigestLock::try_acquire(&self.locks, digest.hex())? {
                // Another collector removed it between the listing and the lock.
                Some(_) if !self.path(&digest).is_dir() => {}
                Some(lock) => {
                    self.discard_locked(&digest)?;
                    lock.remove()?;
                    report.removed.push(digest);
                }
                None => report.busy.push(digest),
            }
        }
        self.gc_locks(keep)?;
        report.kernels_removed = self.gc_kernels(&|hex| self.references_kernel(hex))?;
        report.removed.sort();
        report.busy.sort();
        Ok(report)
    }

    /// Whether a stored image names the kernel `hex` (read from its manifest unverified: a
    /// damaged manifest at worst costs its image a rebuild, kernel included).
    fn references_kernel(&self, hex: &str) -> Result<bool, StoreError> {
        #[derive(serde::Deserialize)]
        struct KernelOf {
            kernel: crate::input::FileRef,
        }
        for entry in fs::read_dir(&self.root).map_err(io("list", &self.root))? {
            let entry = entry.map_err(io("list", &self.root))?;
            if entry.file_name().to_str().and_then(|n| ImageDigest::parse(n).ok()).is_none() {
                continue;
            }
            let Ok(bytes) = fs::read(entry.path().join(super::MANIFEST)) else { continue };
            if serde_json::from_slice::<KernelOf>(&bytes).is_ok_and(|m| super::kernels::hex(&m.kernel) == hex) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Lock files whose image (or kernel) is gone and not kept.
    fn gc_locks(&self, keep: &[ImageDigest]) -> Result<(), StoreError> {
        for entry in fs::read_dir(&self.locks).map_err(io("list", &self.locks))? {
            let entry = entry.map_err(io("list", &self.locks))?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else { continue };
            // A kernel's lock whose kernel is not stored (a build that failed before storing it).
            if let Some(kernel) = hex.strip_prefix(super::kernels::LOCK_PREFIX) {
                if !self.kernels.join(kernel).exists()
                    && let Some(lock) = DigestLock::try_acquire(&self.locks, hex)?
                {
                    lock.remove()?;
                }
                continue;
            }
            let Ok(digest) = ImageDigest::parse(hex) else { continue };
            if keep.contains(&digest) || self.path(&digest).exists() {
                continue;
            }
            if let Some(lock) = DigestLock::try_acquire(&self.locks, hex)? {
                lock.remove()?;
            }
        }
        Ok(())
    }
}
