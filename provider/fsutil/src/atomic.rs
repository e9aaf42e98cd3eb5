//! Whole-file writes through a temporary file in the same directory and a rename: a reader
//! (another `terraform plan`, `sdsec ps`) sees the old content or the new, never half.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::{IoError, io};

/// Temporary files written so far by this process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A name no other writer uses at the same time: the process id tells processes apart,
/// the counter threads of one process.
fn temporary_path(path: &Path) -> PathBuf {
    temporary_path_numbered(path, NEXT.fetch_add(1, Ordering::Relaxed))
}

fn temporary_path_numbered(path: &Path, n: u64) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Writes `bytes` to `path`, replacing what was there at once. Synced before the rename, so
/// a crash leaves the old content or the new. The file is the owner's alone (0600): records
/// hold plans, ids and keys.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    write_atomically_with_mode(path, bytes, 0o600)
}

/// [`write_atomically`] with the file's mode given (before the umask), for files other
/// users read: a kernel cache shared between users, a schema written for editors.
pub fn write_atomically_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IoError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = temporary_path(path);
    // Not `create_new`: the name is unique among live writers, so a file of that name was
    // left by a writer that died (whose process id came round again) and is ours to replace.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .map_err(io("write", &tmp))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(io("write", path)));
    if written.is_err() {
        // Nothing half-written stays behind; the error that matters is the one above.
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    // The rename itself is durable once the directory is synced.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io("sync", dir))?;
    }
    Ok(())
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub fn write_json_atomically<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), IoError> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| io("encode", path)(std::io::Error::other(e)))?;
    write_atomically(path, &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.json");
        write_json_atomically(&path, &serde_json::json!({ "n": 1 })).unwrap();
        write_json_atomically(&path, &serde_json::json!({ "n": 2 })).unwrap();
        let read: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(read["n"], 2);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn temporary_files_a_dead_writer_left_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("current");
        // The temporary names this process uses next, as a writer that died with the same
        // process id left them (other tests may take some of the numbers meanwhile).
        let next = NEXT.load(Ordering::Relaxed);
        for n in next..next + 64 {
            std::fs::write(temporary_path_numbered(&path, n), b"stale").unwrap();
        }
        write_atomically_with_mode(&path, b"6.1\n", 0o644).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"6.1\n");
    }

    #[test]
    fn a_failed_write_names_the_file_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("record.json");
        let err = write_atomically(&path, b"x").unwrap_err();
        assert_eq!(err.action, "write");
        assert!(err.path.starts_with(dir.path().join("missing-dir")), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
