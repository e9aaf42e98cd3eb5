//! The content-addressed image store under the state directory:
//!
//! ```text
//! <state_dir>/images/<digest hex>/manifest.json       canonical manifest, hashes to the digest
//!                                 initramfs.cpio
//!                                 SHA256SUMS          `sha256sum -c` format
//! <state_dir>/images/kernels/<sha256 hex>             a kernel, once, for every image naming it
//! <state_dir>/images/.tmp-<hex>-<pid>-<n>/            an image being built (or a crash's leftover)
//! <state_dir>/images/.locks/<hex>.lock                one lock per digest
//! <state_dir>/images/.locks/kernel-<sha256 hex>.lock  one lock per kernel
//! ```
//!
//! An image is built in a temporary directory on the same file system, synced, and renamed
//! into place, so a reader sees a whole image or none. Every access holds the digest's
//! lock, so concurrent builds of one digest build once and nothing reads an image that is
//! being replaced. Images are verified before they are handed out; a verification is not
//! repeated within a process while the image's files are unchanged ([`crate::memo`]).

mod gc;
mod kernels;
mod lock;
mod verify;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use fsutil::{IoError, io};
pub use kernels::KERNELS;
use lock::DigestLock;
pub use lock::LockError;
use verify::VerifyError;
pub use verify::{INITRAMFS, MANIFEST, SUMS};

use crate::digest::ImageDigest;
use crate::initramfs::{self, InitramfsError};
use crate::input::{FileRef, InputError};
use crate::manifest::{Manifest, ManifestError};
use crate::memo;
use crate::spec::ImageSpec;
use kernels::KernelCheck;

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
    #[error(
        "image {0} was stored by an older sdsec (with a copy of its kernel inside); it is not booted: the next apply \
         or `sdsec build` builds the image again, and `sdsec images gc` removes the old one"
    )]
    Outdated(ImageDigest),
}

/// What an image of store layout 2 and before held: its own copy of the kernel.
const OLD_KERNEL_COPY: &str = "kernel";
/// What an image of store layout 3 and before held: its initramfs compressed with zstd.
const OLD_COMPRESSED_INITRAMFS: &str = "initramfs.cpio.zst";

/// A verified image in the store.
#[derive(Debug, Clone)]
pub struct Image {
    pub digest: ImageDigest,
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The stored kernel (shared with other images).
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
    /// Stored kernels no image names any more.
    pub kernels_removed: usize,
}

#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    kernels: PathBuf,
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
        Ok(Store {
            kernels: root.join(KERNELS),
            root,
            locks,
            builds: AtomicU64::new(0),
            temp_serial: AtomicU64::new(0),
        })
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
        // Kernel, then image: the order every holder of both takes. Held through the build,
        // so that gc does not take the kernel of an image not yet in place.
        let _kernel_lock = self.lock_kernel(&manifest.kernel)?;
        let _lock = DigestLock::acquire(&self.locks, digest.hex())?;
        let outcome = match self.verify_locked(&digest) {
            Ok(image) => return Ok(Ensured { image, outcome: Outcome::Reused }),
            Err(StoreError::NotFound(_)) => Outcome::Built,
            Err(StoreError::Outdated(_)) => {
                self.discard_locked(&digest)?;
                Outcome::Built
            }
            Err(StoreError::Tampered { reason, .. }) => {
                self.discard_locked(&digest)?;
                Outcome::Rebuilt { reason }
            }
            Err(e) => return Err(e),
        };
        let kernel = self.ensure_kernel_locked(&spec.kernel, &manifest.kernel)?;
        let image = self.build_locked(spec, manifest, &digest, kernel)?;
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
        if dir.join(OLD_KERNEL_COPY).exists() || dir.join(OLD_COMPRESSED_INITRAMFS).exists() {
            return Err(StoreError::Outdated(digest.clone()));
        }
        let tampered = |reason| StoreError::Tampered { digest: digest.clone(), dir: dir.clone(), reason };
        let files = [MANIFEST, INITRAMFS, SUMS].map(|name| dir.join(name));
        let manifest = if memo::is_verified(&dir, digest.hex(), &files) {
            let path = dir.join(MANIFEST);
            let bytes = fs::read(&path).map_err(io("read", &path))?;
            serde_json::from_slice(&bytes).map_err(|e| tampered(format!("{MANIFEST} is unreadable: {e}")))?
        } else {
            let before = memo::stamps(&files);
            let manifest = match verify::verify_dir(&dir, digest) {
                Ok(manifest) => manifest,
                Err(VerifyError::Tampered(reason)) => return Err(tampered(reason)),
                Err(VerifyError::Io { path, source }) => return Err(io("read", &path)(source).into()),
            };
            memo::record_verified(&dir, digest.hex(), &files, before);
            manifest
        };
        let kernel = match self.check_kernel(&manifest.kernel)? {
            KernelCheck::Intact(path) => path,
            KernelCheck::Missing => {
                return Err(tampered(format!("its kernel {} is missing from the store", manifest.kernel.sha256)));
            }
            KernelCheck::Tampered(reason) => return Err(tampered(reason)),
        };
        Ok(Image { digest: digest.clone(), kernel, initramfs: dir.join(INITRAMFS), dir, manifest })
    }

    fn temp_dir(&self, digest: &ImageDigest) -> PathBuf {
        let n = self.temp_serial.fetch_add(1, Ordering::Relaxed);
        self.root.join(format!("{TEMP_PREFIX}{}-{}-{n}", digest.hex(), std::process::id()))
    }

    /// Renames the image out of place first, so that a crash while deleting leaves a
    /// temporary directory for gc, never a partial image under its digest.
    fn discard_locked(&self, digest: &ImageDigest) -> Result<(), StoreError> {
        let dir = self.path(digest);
        memo::forget(&dir);
        let trash = self.temp_dir(digest);
        fs::rename(&dir, &trash).map_err(io("move aside", &dir))?;
        Ok(fs::remove_dir_all(&trash).map_err(io("remove", &trash))?)
    }

    fn build_locked(
        &self,
        spec: &ImageSpec,
        manifest: &Manifest,
        digest: &ImageDigest,
        kernel: PathBuf,
    ) -> Result<Image, StoreError> {
        let tmp = self.temp_dir(digest);
        fs::create_dir(&tmp).map_err(io("create", &tmp))?;
        let mut guard = TempDir(Some(tmp.clone()));

        let initramfs = initramfs::archive(spec, manifest)?;
        write_synced(&tmp.join(INITRAMFS), &initramfs)?;
        let manifest_json = manifest.canonical_json()?;
        write_synced(&tmp.join(MANIFEST), manifest_json.as_bytes())?;
        let (initramfs_file, manifest_file) = (FileRef::of(&initramfs), FileRef::of(manifest_json.as_bytes()));
        let sums = [(INITRAMFS, &initramfs_file), (MANIFEST, &manifest_file)].into_iter().collect();
        write_synced(&tmp.join(SUMS), verify::sums_text(&sums).as_bytes())?;
        sync_dir(&tmp)?;

        let dir = self.path(digest);
        fs::rename(&tmp, &dir).map_err(io("move into place", &dir))?;
        guard.0 = None;
        sync_dir(&self.root)?;
        self.builds.fetch_add(1, Ordering::Relaxed);
        Ok(Image { digest: digest.clone(), kernel, initramfs: dir.join(INITRAMFS), dir, manifest: manifest.clone() })
    }
}
