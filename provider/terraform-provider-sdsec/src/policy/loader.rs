//! Reads the documents a policy imports, under the policy's `base_dir`.

use std::io::Read as _;
use std::path::PathBuf;

use sectosca::LoadError;

/// Reads imported documents by the names the compiler works out (relative to the document,
/// which stands in `base`): regular files only, no more than the parser's size limit + 1
/// bytes of each (the parser then reports a document over the limit).
#[derive(Debug, Clone)]
pub struct FileLoader {
    pub base: PathBuf,
}

impl sectosca::Loader for FileLoader {
    fn load(&self, name: &str) -> Result<String, LoadError> {
        let path = self.base.join(name);
        let metadata = std::fs::metadata(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LoadError::Unreadable(format!("no file {}", path.display())),
            _ => LoadError::Unreadable(format!("{}: {e}", path.display())),
        })?;
        if !metadata.is_file() {
            return Err(LoadError::Refused(format!("{} is not a regular file", path.display())));
        }
        let file = std::fs::File::open(&path).map_err(|e| LoadError::Unreadable(format!("{}: {e}", path.display())))?;
        let limit = u64::try_from(sectosca::Limits::default().max_bytes).unwrap_or(u64::MAX).saturating_add(1);
        let mut text = String::new();
        file.take(limit)
            .read_to_string(&mut text)
            .map_err(|e| LoadError::Unreadable(format!("{}: {e}", path.display())))?;
        Ok(text)
    }
}
