//! Reading the build inputs from the host, with errors that name the file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::memo;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read the {what} {path}: {source}; check that the path is right and readable")]
    Read { what: &'static str, path: PathBuf, source: io::Error },
    #[error(
        "the kernel {0} is neither a bzImage nor an ELF vmlinux; give the path of a Linux kernel, or `sdsec` / `debian-cloud` for a cached one"
    )]
    NotKernel(PathBuf),
    #[error(
        "the {what} {path} changed since the image digest was computed (expected {expected}, read {found}); compute the plan again"
    )]
    Changed { what: &'static str, path: PathBuf, expected: String, found: String },
}

/// A file by content: what the manifest records of each input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// `sha256:` and the hex digest of the bytes.
    pub sha256: String,
    pub size: u64,
}

impl FileRef {
    pub fn of(bytes: &[u8]) -> FileRef {
        FileRef { sha256: plan::sha256_digest(bytes), size: bytes.len() as u64 }
    }

    /// Fails with [`InputError::Changed`] unless `found` is this file.
    pub fn expect(&self, found: &FileRef, what: &'static str, path: &Path) -> Result<(), InputError> {
        if self == found {
            return Ok(());
        }
        Err(InputError::Changed {
            what,
            path: path.to_owned(),
            expected: self.sha256.clone(),
            found: found.sha256.clone(),
        })
    }
}

pub fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, InputError> {
    std::fs::read(path).map_err(|source| InputError::Read { what, path: path.to_owned(), source })
}

fn hex_of(hasher: Sha256) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("sha256:");
    for b in hasher.finalize() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Streams `path` through SHA-256, copying the bytes to `sink` as they are read, and keeps
/// the first `head_len` bytes.
fn copy_hashing(path: &Path, mut sink: impl Write, head_len: usize) -> io::Result<(FileRef, Vec<u8>)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(head_len);
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        if head.len() < head_len {
            head.extend_from_slice(&chunk[..n.min(head_len - head.len())]);
        }
        hasher.update(chunk);
        sink.write_all(chunk)?;
        size += n as u64;
    }
    Ok((FileRef { sha256: hex_of(hasher), size }, head))
}

/// The content of the open `file`, read from its start through the descriptor with
/// positioned reads (its offset is left where it was), every time. What is hashed is the
/// file the caller holds, whatever its path names by now.
pub fn hash_descriptor(file: &File) -> io::Result<FileRef> {
    use std::os::unix::fs::FileExt as _;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read_at(&mut buf, size)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(FileRef { sha256: hex_of(hasher), size })
}

/// [`hash_descriptor`], once per process while the file is unchanged ([`memo`]): the
/// result is remembered under `key` (the file's path) with the descriptor's own stamp
/// (`fstat`), so a file swapped in at that path since is hashed again.
pub fn hash_open(file: &File, key: &Path) -> io::Result<FileRef> {
    memo::hash_open(key, file, hash_descriptor)
}

/// The content of a file too large to want in memory, hashed once per process while the
/// file is unchanged ([`memo`]).
pub fn hash_file(path: &Path) -> io::Result<FileRef> {
    memo::hash(path, |path| Ok(copy_hashing(path, io::sink(), 0)?.0))
}

/// Hashes the kernel at `path` without copying it (for digests at plan time), checking it
/// looks like a kernel; hashed once per process while the file is unchanged.
pub fn hash_kernel_file(path: &Path) -> Result<FileRef, InputError> {
    let read_err = |source| InputError::Read { what: "kernel", path: path.to_owned(), source };
    let file = memo::hash(path, |path| hash_kernel(path, io::sink()).map_err(io::Error::other)).map_err(|e| match e
        .into_inner()
        .map(|inner| inner.downcast::<InputError>())
    {
        Some(Ok(input)) => *input,
        Some(Err(other)) => read_err(io::Error::other(other)),
        None => read_err(io::Error::other("unreadable")),
    })?;
    Ok(file)
}

/// Hashes the kernel at `path` while copying it to `sink` (the store copies the kernel that
/// way, so that the copy is exactly the bytes that were hashed). Checks the first bytes look
/// like a kernel: ELF magic, or `HdrS` at 0x202 (the x86 boot protocol header of a bzImage).
pub fn hash_kernel(path: &Path, sink: impl Write) -> Result<FileRef, InputError> {
    let (file, head) = copy_hashing(path, sink, 0x206).map_err(|source| InputError::Read {
        what: "kernel",
        path: path.to_owned(),
        source,
    })?;
    let is_elf = head.starts_with(b"\x7fELF");
    let is_bzimage = head.get(0x202..0x206) == Some(b"HdrS");
    if !is_elf && !is_bzimage {
        return Err(InputError::NotKernel(path.to_owned()));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_rewritten_file_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, b"one").unwrap();
        assert_eq!(super::hash_file(&path).unwrap(), super::FileRef::of(b"one"));
        // Same size, within one clock tick: too recent to be kept, so hashed again.
        std::fs::write(&path, b"two").unwrap();
        assert_eq!(super::hash_file(&path).unwrap(), super::FileRef::of(b"two"));
        let other = dir.path().join("k2");
        std::fs::write(&other, b"six").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_eq!(super::hash_file(&path).unwrap(), super::FileRef::of(b"six"));
    }

    use super::*;

    #[test]
    fn kernels_are_sniffed_and_hashed_while_copied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmlinuz");
        let mut bytes = vec![0u8; 100_000];
        bytes[0x202..0x206].copy_from_slice(b"HdrS");
        std::fs::write(&path, &bytes).unwrap();
        let mut copy = Vec::new();
        assert_eq!(hash_kernel(&path, &mut copy).unwrap(), FileRef::of(&bytes));
        assert_eq!(copy, bytes);
        std::fs::write(&path, b"not a kernel").unwrap();
        let err = hash_kernel(&path, io::sink()).unwrap_err().to_string();
        assert!(err.contains("neither a bzImage nor an ELF vmlinux"), "{err}");
        let err = hash_kernel(&dir.path().join("missing"), io::sink()).unwrap_err().to_string();
        assert!(err.contains("cannot read the kernel") && err.contains("missing"), "{err}");
    }
}
