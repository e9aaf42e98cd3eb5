//! The content-addressed image store under the state directory:
//!
//! ```text
//! <state_dir>/images/<digest hex>/manifest.json       canonical manifest, hashes to the digest
//!                                 initramfs.cpio.zst
//!                                 kernel              a copy of the kernel's bytes
//!                                 SHA256SUMS          `sha256sum -c` format
//! <state_dir>/images/.tmp-<hex>-<pid>-<n>/            an image being built (or a crash's leftover)
//! <state_dir>/images/.locks/<hex>.lock                one lock per digest
//! ```
//!
//! An image is built in a temporary directory on the same file system, synced, and renamed
//! into place, so a reader sees a whole image or none. Every access holds the digest's
//! lock, so concurrent builds of one digest build once and nothing reads an image that is
//! being replaced. Images are verified before they are handed out.

mod gc;
mod lock;
mod verify;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use fsutil::{IoError, io};
use lock::DigestLock;
pub use lock::LockError;
use verify::VerifyError;
pub use verify::{INITRAMFS, KERNEL, MANIFEST, SUMS};

use crate::digest::ImageDigest;
use crate::initramfs::{self, InitramfsError};
use crate::input::{self, FileRef, InputError};
use crate::manifest::{Manifest, ManifestError};
use crate::spec::ImageSpec;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Build(#[from] InitramfsError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{0}; check the state directory's permissions and free space")]
    Io(#[from] IoError),
    #[error("image {0} is not in the store; build it with `sdsec build`")]
    NotFound(ImageDigest),
    #[error("image {digest} in {dir} is tampered or damaged ({reason}); it must not be booted: build it again")]
    Tampered { digest: ImageDigest, dir: PathBuf, reason: String },
}

/// A verified image in the store.
#[derive(Debug, Clone)]
pub struct Image {
    pub digest: ImageDigest,
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
}

impl Image {
    pub fn cmdline(&self) -> &str {
        &self.manifest.cmdline
    }
}

/// What [`Store::ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A verified image was already there.
    Reused,
    Built,
    /// The stored image failed verification, was removed and built again.
    Rebuilt {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct Ensured {
    pub image: Image,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    pub digest: ImageDigest,
    /// Bytes of its files.
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub removed: Vec<ImageDigest>,
    /// Unreferenced, but locked by a build or a reader: left for the next collection.
    pub busy: Vec<ImageDigest>,
    /// Leftovers of interrupted builds.
    pub temp_dirs_removed: usize,
}

#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    locks: PathBuf,
    builds: AtomicU64,
    temp_serial: AtomicU64,
}

const TEMP_PREFIX: &str = ".tmp-";

/// Removes a temporary directory unless the build it holds completed.
struct TempDir(Option<PathBuf>);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // Best effort: what is left is removed by the next gc.
            let _ = fs::remove_dir_all(path);
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut file = File::create(path).map_err(io("create", path))?;
    file.write_all(bytes).map_err(io("write", path))?;
    Ok(file.sync_all().map_err(io("sync", path))?)
}

fn sync_dir(path: &Path) -> Result<(), StoreError> {
    Ok(File::open(path).and_then(|d| d.sync_all()).map_err(io("sync", path))?)
}

fn dir_bytes(dir: &Path) -> u64 {
    let files = fs::read_dir(dir).into_iter().flatten().flatten();
    files.filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
}

impl Store {
    /// Opens (creating if needed) the store under `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let root = state_dir.join("images");
        let locks = root.join(".locks");
        fs::create_dir_all(&locks).map_err(io("create", &locks))?;
        Ok(Store { root, locks, builds: AtomicU64::new(0), temp_serial: AtomicU64::new(0) })
    }

    /// Where the image of `digest` is (or would be) stored.
    pub fn path(&self, digest: &ImageDigest) -> PathBuf {
        self.root.join(digest.hex())
    }

    /// How many images this `Store` value has built (for tests and benchmarks).
    pub fn builds(&self) -> u64 {
        self.builds.load(Ordering::Relaxed)
    }

    /// The verified image of `spec`: reused if stored and intact, otherwise (re)built.
    pub fn ensure(&self, spec: &ImageSpec) -> Result<Ensured, StoreError> {
        let manifest = Manifest::from_spec(spec)?;
        self.ensure_manifest(spec, &manifest)
    }

    /// As [`Store::ensure`], for a manifest computed earlier (at plan time). The build
    /// fails if an input no longer matches it.
    pub fn ensure_manifest(&self, spec: &ImageSpec, manifest: &Manifest) -> Result<Ensured, StoreError> {
        let digest = manifest.digest()?;
        let _lock = DigestLock::acquire(&self.locks, digest.hex())?;
        let outcome = match self.verify_locked(&digest) {
            Ok(image) => return Ok(Ensured { image, outcome: Outcome::Reused }),
            Err(StoreError::NotFound(_)) => Outcome::Built,
            Err(StoreError::Tampered { reason, .. }) => {
                self.discard_locked(&digest)?;
                Outcome::Rebuilt { reason }
            }
            Err(e) => return Err(e),
        };
        let image = self.build_locked(spec, manifest, &digest)?;
        Ok(Ensured { image, outcome })
    }

    /// Checks the stored bytes of `digest`; an image that fails is reported, never handed out.
    pub fn verify(&self, digest: &ImageDigest) -> Result<Image, StoreError> {
        let _lock = DigestLock::acquire(&self.locks, digest.hex())?;
        self.verify_locked(digest)
    }

    fn verify_locked(&self, digest: &ImageDigest) -> Result<Image, StoreError> {
        let dir = self.path(digest);
        if !dir.is_dir() {
            return Err(StoreError::NotFound(digest.clone()));
        }
        match verify::verify_dir(&dir, digest) {
            Ok(manifest) => Ok(Image {
                digest: digest.clone(),
                kernel: dir.join(KERNEL),
                initramfs: dir.join(INITRAMFS),
                dir,
                manifest,
            }),
            Err(VerifyError::Tampered(reason)) => Err(StoreError::Tampered { digest: digest.clone(), dir, reason }),
            Err(VerifyError::Io { path, source }) => Err(io("read", &path)(source).into()),
        }
    }

    fn temp_dir(&self, digest: &ImageDigest) -> PathBuf {
        let n = self.temp_serial.fetch_add(1, Ordering::Relaxed);
        self.root.join(format!("{TEMP_PREFIX}{}-{}-{n}", digest.hex(), std::process::id()))
    }

    /// Renames the image out of place first, so that a crash while deleting leaves a
    /// temporary directory for gc, never a partial image under its digest.
    fn discard_locked(&self, digest: &ImageDigest) -> Result<(), StoreError> {
        let dir = self.path(digest);
        let trash = self.temp_dir(digest);
        fs::rename(&dir, &trash).map_err(io("move aside", &dir))?;
        Ok(fs::remove_dir_all(&trash).map_err(io("remove", &trash))?)
    }

    fn build_locked(&self, spec: &ImageSpec, manifest: &Manifest, digest: &ImageDigest) -> Result<Image, StoreError> {
        let tmp = self.temp_dir(digest);
        fs::create_dir(&tmp).map_err(io("create", &tmp))?;
        let mut guard = TempDir(Some(tmp.clone()));

        let kernel_path = tmp.join(KERNEL);
        let kernel_file = File::create(&kernel_path).map_err(io("create", &kernel_path))?;
        let mut out = BufWriter::new(kernel_file);
        let kernel = input::hash_kernel(&spec.kernel, &mut out)?;
        manifest.kernel.expect(&kernel, "kernel", &spec.kernel)?;
        let kernel_file = out.into_inner().map_err(|e| io("write", &kernel_path)(e.into_error()))?;
        kernel_file.sync_all().map_err(io("sync", &kernel_path))?;

        let initramfs = initramfs::build(spec, manifest)?;
        write_synced(&tmp.join(INITRAMFS), &initramfs)?;
        let manifest_json = manifest.canonical_json()?;
        write_synced(&tmp.join(MANIFEST), manifest_json.as_bytes())?;
        let (initramfs_file, manifest_file) = (FileRef::of(&initramfs), FileRef::of(manifest_json.as_bytes()));
        let sums = [(INITRAMFS, &initramfs_file), (KERNEL, &kernel), (MANIFEST, &manifest_file)].into_iter().collect();
        write_synced(&tmp.join(SUMS), verify::sums_text(&sums).as_bytes())?;
        sync_dir(&tmp)?;

        let dir = self.path(digest);
        fs::rename(&tmp, &dir).map_err(io("move into place", &dir))?;
        guard.0 = None;
        sync_dir(&self.root)?;
        self.builds.fetch_add(1, Ordering::Relaxed);
        Ok(Image {
            digest: digest.clone(),
            kernel: dir.join(KERNEL),
            initramfs: dir.join(INITRAMFS),
            dir,
            manifest: manifest.clone(),
        })
    }
}
