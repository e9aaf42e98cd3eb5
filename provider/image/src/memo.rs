//! What this process has already hashed or verified, while the files are unchanged.
//!
//! A plan of N unikernels digests the same kernel N times, and a refresh verifies the same
//! image for each of them; a 53 MB kernel takes about 0.15 s each time. Results are kept
//! per process, keyed by each file's identity (device, inode), size and modification and
//! change times: every write updates the change time, and no unprivileged call can set it
//! back. A file changed behind the process's back is therefore read again before it is
//! trusted (a tampered image is still caught before any boot).

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use crate::input::FileRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

pub fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path).ok().map(|m| stamp_of(&m))
}

fn stamp_of(m: &std::fs::Metadata) -> Stamp {
    Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    }
}

const SETTLE_SECONDS: i64 = 2;

/// Timestamps are as coarse as the kernel's clock tick, so a write right after the one a
/// stamp saw could leave the same stamp: only files last changed well before now are kept.
fn settled(s: &Stamp) -> bool {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    s.ctime.0.saturating_add(SETTLE_SECONDS) < now as i64
}

static HASHED: LazyLock<Mutex<HashMap<PathBuf, (Stamp, FileRef)>>> = LazyLock::new(Default::default);

/// `compute(path)`, or what it gave last time if the file has not changed since.
pub fn hash(path: &Path, compute: impl FnOnce(&Path) -> io::Result<FileRef>) -> io::Result<FileRef> {
    let before = stamp(path);
    if let Some(before) = before
        && let Some((at, file)) = HASHED.lock().ok().and_then(|m| m.get(path).cloned())
        && at == before
    {
        return Ok(file);
    }
    let file = compute(path)?;
    // Kept only if the file did not change while it was read.
    if let Some(before) = before
        && settled(&before)
        && stamp(path) == Some(before)
        && let Ok(mut map) = HASHED.lock()
    {
        map.insert(path.to_owned(), (before, file.clone()));
    }
    Ok(file)
}

/// `compute(file)` for an open file, or what it gave last time under `key` if the file
/// stamped then is this one, unchanged (its stamps taken through the descriptor).
pub fn hash_open(
    key: &Path,
    file: &std::fs::File,
    compute: impl FnOnce(&std::fs::File) -> io::Result<FileRef>,
) -> io::Result<FileRef> {
    let before = file.metadata().ok().map(|m| stamp_of(&m));
    if let Some(before) = before
        && let Some((at, hashed)) = HASHED.lock().ok().and_then(|m| m.get(key).cloned())
        && at == before
    {
        return Ok(hashed);
    }
    let hashed = compute(file)?;
    if let Some(before) = before
        && settled(&before)
        && file.metadata().ok().map(|m| stamp_of(&m)) == Some(before)
        && let Ok(mut map) = HASHED.lock()
    {
        map.insert(key.to_owned(), (before, hashed.clone()));
    }
    Ok(hashed)
}

/// The digest a set of files was checked against, and their stamps then.
type Verification = (String, Vec<Option<Stamp>>);

/// Sets of files checked together against a digest (an image directory's files).
static VERIFIED: LazyLock<Mutex<HashMap<PathBuf, Verification>>> = LazyLock::new(Default::default);

/// Stamps of `files` now: taken before a verification, given to [`record_verified`] after.
pub fn stamps(files: &[PathBuf]) -> Vec<Option<Stamp>> {
    files.iter().map(|f| stamp(f)).collect()
}

/// Whether `files` were verified against `digest` (under the key `dir`) and none changed
/// since.
pub fn is_verified(dir: &Path, digest: &str, files: &[PathBuf]) -> bool {
    let Ok(map) = VERIFIED.lock() else { return false };
    map.get(dir).is_some_and(|(verified, at)| verified == digest && *at == stamps(files))
}

/// Records that `files` were verified against `digest`, if they are all settled and
/// unchanged since `before` (their stamps taken before the verification read them).
pub fn record_verified(dir: &Path, digest: &str, files: &[PathBuf], before: Vec<Option<Stamp>>) {
    let all_settled = before.iter().all(|s| s.as_ref().is_some_and(settled));
    if all_settled
        && stamps(files) == before
        && let Ok(mut map) = VERIFIED.lock()
    {
        map.insert(dir.to_owned(), (digest.to_owned(), before));
    }
}

/// Forgets what was verified under `dir` (an image removed or replaced).
pub fn forget(dir: &Path) {
    if let Ok(mut map) = VERIFIED.lock() {
        map.remove(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verification_is_remembered_until_a_file_changes() {
        // A file of the source tree: changed long before the tests run.
        let settled_file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh");
        std::fs::write(&fresh, b"one").unwrap();
        let key = dir.path();

        let files = vec![settled_file.clone()];
        assert!(!is_verified(key, "d", &files));
        record_verified(key, "d", &files, stamps(&files));
        assert!(is_verified(key, "d", &files));
        assert!(!is_verified(key, "other digest", &files));
        forget(key);
        assert!(!is_verified(key, "d", &files));

        // A file written a moment ago could be written again within the same clock tick
        // without its stamp changing: never remembered.
        let files = vec![settled_file, fresh.clone()];
        record_verified(key, "d", &files, stamps(&files));
        assert!(!is_verified(key, "d", &files));

        // Stamps taken before a change do not vouch for the changed file.
        let files = vec![fresh.clone()];
        let stale = stamps(&files);
        std::fs::write(&fresh, b"two, longer").unwrap();
        record_verified(key, "d", &files, stale);
        assert!(!is_verified(key, "d", &files));
    }
}
