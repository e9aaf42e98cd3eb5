//! One exclusive lock per digest, so that concurrent builds of one image build it once and
//! nothing reads an image while another process replaces or removes it. Kernels, shared by
//! many images, are locked shared by the builds that use them and exclusively by the
//! collector that removes them.
//!
//! Lock files live in `images/.locks/<hex>.lock` and are taken with `flock` (std's
//! `File::lock`), which the kernel releases when the holder exits, even on a crash. The
//! garbage collector deletes lock files while holding them; a process that opened the file
//! just before would then hold a lock on a deleted inode, so after locking, the holder
//! checks that the path still names the file it locked, and starts again otherwise.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot take the lock {path}: {source}; check that the state directory is writable")]
pub struct LockError {
    pub path: PathBuf,
    pub source: io::Error,
}

#[derive(Debug)]
pub struct DigestLock {
    // Held for its lock, released when dropped.
    _file: File,
    path: PathBuf,
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).truncate(false).write(true).open(path)
}

/// Whether `path` still names the open `file`.
fn still_linked(path: &Path, file: &File) -> io::Result<bool> {
    let held = file.metadata()?;
    match fs::metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

impl DigestLock {
    /// Waits for the lock of `hex`.
    pub fn acquire(locks_dir: &Path, hex: &str) -> Result<DigestLock, LockError> {
        Self::acquire_with(locks_dir, hex, File::lock)
    }

    /// Waits for a shared hold of the lock of `hex`: many may hold it at once, never
    /// alongside an exclusive holder.
    pub fn acquire_shared(locks_dir: &Path, hex: &str) -> Result<DigestLock, LockError> {
        Self::acquire_with(locks_dir, hex, File::lock_shared)
    }

    fn acquire_with(locks_dir: &Path, hex: &str, lock: fn(&File) -> io::Result<()>) -> Result<DigestLock, LockError> {
        let path = locks_dir.join(format!("{hex}.lock"));
        let fail = |source| LockError { path: path.clone(), source };
        loop {
            let file = open(&path).map_err(fail)?;
            lock(&file).map_err(fail)?;
            if still_linked(&path, &file).map_err(fail)? {
                return Ok(DigestLock { _file: file, path });
            }
        }
    }

    /// Takes the lock of `hex` if nobody holds it.
    pub fn try_acquire(locks_dir: &Path, hex: &str) -> Result<Option<DigestLock>, LockError> {
        let path = locks_dir.join(format!("{hex}.lock"));
        let fail = |source| LockError { path: path.clone(), source };
        loop {
            let file = open(&path).map_err(fail)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(fail(e)),
            }
            if still_linked(&path, &file).map_err(fail)? {
                return Ok(Some(DigestLock { _file: file, path }));
            }
        }
    }

    /// Deletes the lock file, then releases the lock.
    pub fn remove(self) -> Result<(), LockError> {
        fs::remove_file(&self.path).map_err(|source| LockError { path: self.path.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_blocks_others_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let held = DigestLock::acquire(dir.path(), "ab").unwrap();
        assert!(DigestLock::try_acquire(dir.path(), "ab").unwrap().is_none());
        assert!(DigestLock::try_acquire(dir.path(), "cd").unwrap().is_some());
        drop(held);
        let again = DigestLock::try_acquire(dir.path(), "ab").unwrap().unwrap();
        again.remove().unwrap();
        assert!(!dir.path().join("ab.lock").exists());
    }
}
