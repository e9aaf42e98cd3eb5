//! Checking a stored image against its digest before it is used.
//!
//! The check is anchored in the digest, not in files beside the image: `manifest.json` must
//! hash to the digest (the kernel, stored apart, is checked against the manifest's kernel
//! by the store), and every member of the initramfs is compared with the tree the manifest describes (path, type,
//! mode, owner, time, content hash). `SHA256SUMS` is checked too, but an attacker who
//! rewrites it along with the image is still caught by the rest.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::cpio;
use crate::digest::ImageDigest;
use crate::input::FileRef;
use crate::layout::{self, Slot};
use crate::manifest::Manifest;

pub const MANIFEST: &str = "manifest.json";
pub const INITRAMFS: &str = "initramfs.cpio";
pub const SUMS: &str = "SHA256SUMS";

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Tampered(String),
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn tampered(reason: impl Into<String>) -> VerifyError {
    VerifyError::Tampered(reason.into())
}

/// Reads a file of the image; a missing file means an incomplete (so tampered) image.
fn read(dir: &Path, name: &str) -> Result<Vec<u8>, VerifyError> {
    read_at_most(dir, name, usize::MAX)
}

/// Refuses a file larger than `limit` before reading it: a planted file is not loaded whole.
fn read_at_most(dir: &Path, name: &str, limit: usize) -> Result<Vec<u8>, VerifyError> {
    let path = dir.join(name);
    let failed = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound => tampered(format!("{name} is missing")),
        _ => VerifyError::Io { path: path.clone(), source },
    };
    let size = std::fs::metadata(&path).map_err(failed)?.len();
    if size > limit as u64 {
        return Err(tampered(format!("{name} is larger than the tree its manifest describes")));
    }
    std::fs::read(&path).map_err(failed)
}

/// `SHA256SUMS` in the format `sha256sum -c` reads: `<hex>  <name>` per line, sorted.
pub fn sums_text(sums: &BTreeMap<&str, &FileRef>) -> String {
    sums.iter().map(|(name, f)| format!("{}  {name}\n", f.sha256.trim_start_matches("sha256:"))).collect()
}

fn check_sums(text: &[u8], actual: &BTreeMap<&str, &FileRef>) -> Result<(), VerifyError> {
    let text = String::from_utf8_lossy(text);
    for (name, file) in actual {
        let recorded = text.lines().find_map(|l| l.strip_suffix(name)?.strip_suffix("  "));
        if recorded != Some(file.sha256.trim_start_matches("sha256:")) {
            return Err(tampered(format!("{name} does not match its hash in {SUMS}")));
        }
    }
    if text != sums_text(actual) {
        return Err(tampered(format!("{SUMS} lists other files")));
    }
    Ok(())
}

/// An upper bound of the archive's size, from the tree: no honest initramfs is larger, and
/// a larger one is not parsed.
fn archive_bound(slots: &[Slot]) -> usize {
    let per_entry: usize =
        slots.iter().map(|s| 110 + s.path.len() + 4 + s.file.as_ref().map_or(0, |f| f.size as usize + 3)).sum();
    per_entry + 256
}

fn check_tree(slots: &[Slot], archive: &[u8]) -> Result<(), VerifyError> {
    let members = cpio::read(archive).map_err(|e| tampered(format!("{INITRAMFS} is not a valid archive: {e}")))?;
    if members.len() != slots.len() {
        return Err(tampered(format!(
            "{INITRAMFS} has {} entries, the manifest describes {}",
            members.len(),
            slots.len()
        )));
    }
    for (slot, member) in slots.iter().zip(&members) {
        let what = |m: &str| tampered(format!("{INITRAMFS}: /{} {m}", slot.path));
        if member.path != slot.path {
            return Err(tampered(format!("{INITRAMFS} has /{} where the manifest has /{}", member.path, slot.path)));
        }
        if (member.uid, member.gid, member.mtime) != (0, 0, 0) {
            return Err(what("has another owner or time"));
        }
        if member.permissions() != slot.mode {
            return Err(what("has other permissions"));
        }
        match &slot.file {
            None if !member.is_dir() => return Err(what("is not a directory")),
            Some(file) if !member.is_file() || FileRef::of(&member.data) != *file => {
                return Err(what("differs from the manifest"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks the image in `dir` against `digest`; gives its manifest.
pub fn verify_dir(dir: &Path, digest: &ImageDigest) -> Result<Manifest, VerifyError> {
    let manifest_bytes = read(dir, MANIFEST)?;
    if ImageDigest::of(&manifest_bytes) != *digest {
        return Err(tampered(format!("{MANIFEST} does not hash to the image digest")));
    }
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| tampered(format!("{MANIFEST} is not a manifest this version reads: {e}")))?;
    let slots = layout::tree(&manifest).map_err(|e| tampered(format!("{MANIFEST} describes a bad tree: {e}")))?;
    let initramfs_bytes = read_at_most(dir, INITRAMFS, archive_bound(&slots))?;
    let initramfs_file = FileRef::of(&initramfs_bytes);
    let manifest_file = FileRef::of(&manifest_bytes);
    let actual = BTreeMap::from([(INITRAMFS, &initramfs_file), (MANIFEST, &manifest_file)]);
    check_sums(&read(dir, SUMS)?, &actual)?;
    check_tree(&slots, &initramfs_bytes)?;
    Ok(manifest)
}
