//! Reads the documents a SecTOSCA document imports, from the file system.

use std::io::Read as _;
use std::path::PathBuf;

use sectosca::LoadError;

/// Reads imported documents by the names the compiler works out: paths relative to the
/// importing document (the compiled document's name is the path given on the command line,
/// so these are relative to the working directory), joined to `base` when set. Only regular
/// files are read, and no more than `max_bytes` + 1 bytes of them (the parser then reports
/// a document over the limit).
#[derive(Debug, Clone)]
pub struct FileLoader {
    pub base: Option<PathBuf>,
    pub max_bytes: usize,
}

impl FileLoader {
    pub fn new(base: Option<PathBuf>) -> Self {
        Self { base, max_bytes: sectosca::Limits::default().max_bytes }
    }
}

impl sectosca::Loader for FileLoader {
    fn load(&self, name: &str) -> Result<String, LoadError> {
        let path = match &self.base {
            Some(base) => base.join(name),
            None => PathBuf::from(name),
        };
        let metadata = std::fs::metadata(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LoadError::NotFound,
            _ => LoadError::Unreadable(e.to_string()),
        })?;
        if !metadata.is_file() {
            return Err(LoadError::Refused(format!("{} is not a regular file", path.display())));
        }
        let file = std::fs::File::open(&path).map_err(|e| LoadError::Unreadable(e.to_string()))?;
        let mut text = String::new();
        let limit = u64::try_from(self.max_bytes).unwrap_or(u64::MAX).saturating_add(1);
        file.take(limit).read_to_string(&mut text).map_err(|e| LoadError::Unreadable(e.to_string()))?;
        Ok(text)
    }
}
