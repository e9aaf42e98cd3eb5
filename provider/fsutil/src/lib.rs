//! What every crate that keeps records under the state directory needs, written once: an
//! I/O error that names the action and the file, writes that a reader sees whole or not at
//! all, directories only the owner can enter, and random record ids.
//!
//! A leaf crate (std, serde and getrandom only) so that the image builder, the hypervisor
//! backends and the engine above them can all use it without depending on one another.

mod atomic;
mod id;

use std::path::{Path, PathBuf};

pub use atomic::{write_atomically, write_atomically_with_mode, write_json_atomically};
pub use id::{RandomError, random_id};

/// A failed file system operation, with what was being done and to which path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {path}: {source}")]
pub struct IoError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    /// Whether the file or directory did not exist.
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == std::io::ErrorKind::NotFound
    }
}

/// `.map_err(io("read", &path))`: turns a `std::io::Error` into an [`IoError`] naming `path`.
pub fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> IoError + 'a {
    move |source| IoError { action, path: path.to_owned(), source }
}

/// Creates `dir` and its missing parents, `dir` itself readable by the owner only (records
/// may hold keys or documents other users have no business reading).
pub fn create_private_dir(dir: &Path) -> Result<(), IoError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io("create", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_name_the_action_and_the_path() {
        let missing = Path::new("/nonexistent/sdsec/record.json");
        let err = std::fs::read(missing).map_err(io("read", missing)).unwrap_err();
        assert!(err.is_not_found());
        assert!(err.to_string().starts_with("cannot read /nonexistent/sdsec/record.json: "), "{err}");
    }

    #[test]
    fn private_directories_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_private_dir(&dir).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
