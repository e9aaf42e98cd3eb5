//! Building the initramfs: the tree of the manifest filled with the input bytes, written as
//! cpio newc and compressed with zstd. Every input is read again and checked against the
//! manifest, so the bytes built are the bytes the digest was computed from.

use std::path::Path;

use abi::paths;

use crate::cpio::{self, CpioError, Entry};
use crate::input::{self, FileRef, InputError};
use crate::layout::{self, LayoutError};
use crate::manifest::{self, Manifest, ManifestError, ZSTD_LEVEL};
use crate::spec::ImageSpec;

#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot write the initramfs archive: {0}")]
    Cpio(#[from] CpioError),
    #[error("cannot compress the initramfs with zstd: {0}")]
    Compress(std::io::Error),
    #[error("the image tree has `{0}`, which no input of the spec provides (internal error; please report it)")]
    Unfilled(String),
}

/// Reads `path` and checks its bytes are `expected`.
fn checked(what: &'static str, path: &Path, expected: &FileRef) -> Result<Vec<u8>, InputError> {
    let bytes = input::read(what, path)?;
    expected.expect(&FileRef::of(&bytes), what, path)?;
    Ok(bytes)
}

/// The uncompressed cpio archive of the image `manifest` describes, from the files of `spec`.
pub fn archive(spec: &ImageSpec, manifest: &Manifest) -> Result<Vec<u8>, InitramfsError> {
    let mut contents: Vec<(String, Vec<u8>)> = Vec::new();
    contents.push((paths::INIT.to_owned(), checked("runtime", &spec.runtime, &manifest.init)?));
    let app = &spec.application;
    contents.push((paths::app(&app.name), checked("application", &app.path, &manifest.application.file())?));
    let plan = manifest::plan_json(spec)?.into_bytes();
    // The plan is in memory, but it too must be the one the digest was computed from.
    manifest.plan.expect(&FileRef::of(&plan), "plan", &paths::in_guest(paths::PLAN))?;
    contents.push((paths::PLAN.to_owned(), plan));
    for module in &spec.modules {
        let expected = manifest.modules.iter().find(|m| m.path == module.image_path);
        let Some(expected) = expected else { return Err(InitramfsError::Unfilled(module.image_path.clone())) };
        let file = FileRef { sha256: expected.sha256.clone(), size: expected.size };
        contents.push((layout::module_path(&module.image_path)?, checked("kernel module", &module.host_path, &file)?));
    }
    let mut entries = Vec::new();
    for slot in layout::tree(manifest)? {
        match slot.file {
            None => entries.push(Entry::dir(&slot.path, slot.mode)),
            Some(_) => {
                let at = contents.iter().position(|(p, _)| *p == slot.path);
                let Some(at) = at else { return Err(InitramfsError::Unfilled(slot.path)) };
                entries.push(Entry::file(&slot.path, slot.mode, contents.swap_remove(at).1));
            }
        }
    }
    Ok(cpio::write(entries)?)
}

/// The compressed initramfs. zstd's one-shot API on one thread, at a fixed level, is a
/// function of its input, which makes the image reproducible.
pub fn build(spec: &ImageSpec, manifest: &Manifest) -> Result<Vec<u8>, InitramfsError> {
    let archive = archive(spec, manifest)?;
    zstd::bulk::compress(&archive, ZSTD_LEVEL).map_err(InitramfsError::Compress)
}

/// Decompresses a stored initramfs, refusing to grow past `limit` bytes (a tampered file
/// could otherwise be a decompression bomb).
pub fn decompress(bytes: &[u8], limit: usize) -> std::io::Result<Vec<u8>> {
    zstd::bulk::decompress(bytes, limit)
}
