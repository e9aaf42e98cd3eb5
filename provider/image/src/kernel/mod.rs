//! The kernels images boot, in a cache:
//!
//! - **sdsec's own** (the default): built by `sdsec kernel build` from Debian's
//!   `linux-source-6.1` and the configuration fragment in the repository ([`config`]), a
//!   PVH `vmlinux` with everything the image needs built in;
//! - **Debian's cloud kernel** (`debian-cloud`): fetched with `apt-get download` (never
//!   installed on the host), unpacked to the PVH `vmlinux` that QEMU's `microvm` boots
//!   fastest, with the few modules the image needs (virtio over MMIO and virtio
//!   networking, which that kernel builds as modules).
//!
//! ```text
//! <cache>/kernels/sdsec-<key>/kernel.json     what was built, from which source and configuration
//!                             vmlinux, config
//! <cache>/kernels/<release>/kernel.json       what was fetched, from which package
//!                           vmlinux            (or vmlinuz when it could not be unpacked)
//!                           modules/*.ko
//! <cache>/kernels/current                     the Debian release used by `debian-cloud`
//! <cache>/kernels/last-build.log              the output of the last `sdsec kernel build`
//! ```

mod build;
pub mod bzimage;
mod choice;
pub mod config;
mod fetch;
mod process;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use fsutil::{IoError, io};
use serde::{Deserialize, Serialize};

pub use build::{LOG as BUILD_LOG, SOURCE_PACKAGE, missing_prerequisites};
pub use choice::KernelChoice;
pub use config::ConfigError;
pub use fetch::DEFAULT_PACKAGE;

use crate::spec::Module;

/// Modules the image carries when the kernel builds them as modules, in load order.
/// `virtio_console` carries the control channel (a virtio-serial port).
pub const MODULES: &[&str] =
    &["virtio", "virtio_ring", "virtio_mmio", "failover", "net_failover", "virtio_net", "virtio_console"];

/// Bumped when [`MODULES`] grows: a kernel cached before lacks what images now need.
pub const CACHE_LAYOUT: u32 = 2;

const CURRENT: &str = "current";
const RECORD: &str = "kernel.json";

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(
        "Debian's cloud kernel is not cached in {0}; run `sdsec kernel fetch` (or use sdsec's kernel, the default)"
    )]
    NotFetched(PathBuf),
    #[error(
        "sdsec's kernel for this version's configuration is not built in {0}; run `sdsec kernel build` (a few \
         minutes, once), or choose Debian's with kernel = \"debian-cloud\" (`--kernel debian-cloud`)"
    )]
    NotBuilt(PathBuf),
    #[error(
        "building the kernel needs these Debian packages: {0}; install them with `apt-get install -y {0}` \
         (scripts/setup.sh does)"
    )]
    MissingPrerequisites(String),
    #[error("the kernel build failed at `{step}` ({status}); the whole log is {log}; its last lines:\n{last}")]
    BuildFailed { step: String, status: String, log: PathBuf, last: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(
        "the cached kernel {path} is unusable ({reason}); run `sdsec kernel build` (sdsec's kernel) or `sdsec kernel \
         fetch` (Debian's) again"
    )]
    BadRecord { path: PathBuf, reason: String },
    #[error("`{command}` failed: {detail}; {hint}")]
    Command { command: String, detail: String, hint: &'static str },
    #[error("the package {package} holds no {what}; choose a Debian linux-image package for amd64")]
    NotAKernelPackage { package: String, what: &'static str },
    #[error(
        "Debian's {SOURCE_PACKAGE} gave no {what}; check that apt reaches the archive (`apt-get update`) and try again"
    )]
    BadSourcePackage { what: &'static str },
    #[error("neither SDSEC_CACHE_DIR, XDG_CACHE_HOME nor HOME is set, so there is no cache directory; set one of them")]
    NoCacheDir,
}

/// Whose kernel it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelKind {
    /// Debian's cloud kernel (records written before sdsec built its own have no kind).
    #[default]
    DebianCloud,
    /// Built by `sdsec kernel build`.
    Sdsec,
}

impl KernelKind {
    /// The least guest memory, in MiB, with which the kernel boots and serves a protected
    /// application (measured under TCG with the example application; below, the kernel
    /// panics or the runtime is killed for memory).
    pub fn min_memory_mb(self) -> u64 {
        match self {
            KernelKind::Sdsec => 48,
            KernelKind::DebianCloud => 96,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KernelKind::Sdsec => "sdsec",
            KernelKind::DebianCloud => "debian-cloud",
        }
    }
}

/// What `kernel.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelRecord {
    #[serde(default)]
    pub kind: KernelKind,
    /// The configuration it was built with ([`config::config_digest`]), for sdsec's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
    /// The Debian package it came from, and that package's version.
    pub package: String,
    pub package_version: String,
    /// `uname -r` of the kernel.
    pub release: String,
    /// `vmlinux` (PVH ELF) or `vmlinuz` (bzImage).
    pub image: String,
    /// File names under `modules/`, in load order.
    pub modules: Vec<String>,
    /// [`CACHE_LAYOUT`] of the sdsec that cached it (records without one are layout 1).
    #[serde(default = "first_layout")]
    pub layout: u32,
}

fn first_layout() -> u32 {
    1
}

/// A kernel ready to be put in images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    pub record: KernelRecord,
    pub dir: PathBuf,
    /// Given by path rather than taken from the cache.
    pub given: bool,
}

impl Kernel {
    /// A kernel given by path, used as it is, with no modules: it must have virtio-mmio and
    /// virtio-net built in.
    pub fn at_path(path: &Path) -> Kernel {
        let dir = path.parent().unwrap_or(Path::new("/")).to_owned();
        let image = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let record = KernelRecord {
            kind: KernelKind::DebianCloud,
            config_digest: None,
            package: String::new(),
            package_version: String::new(),
            release: String::new(),
            image,
            modules: Vec::new(),
            layout: CACHE_LAYOUT,
        };
        Kernel { record, dir, given: true }
    }

    /// The least guest memory the kernel serves with; unknown for a kernel given by path.
    pub fn min_memory_mb(&self) -> Option<u64> {
        (!self.given).then(|| self.record.kind.min_memory_mb())
    }

    pub fn image(&self) -> PathBuf {
        self.dir.join(&self.record.image)
    }

    /// The modules as the image carries them: `/lib/modules/<name>`.
    pub fn modules(&self) -> Vec<Module> {
        let dir = self.dir.join("modules");
        self.record
            .modules
            .iter()
            .map(|name| Module { image_path: format!("/{}", abi::paths::module(name)), host_path: dir.join(name) })
            .collect()
    }
}

/// The kernel cache: `<root>/<release>/`.
#[derive(Debug, Clone)]
pub struct KernelCache {
    root: PathBuf,
}

/// `$SDSEC_CACHE_DIR`, else `$XDG_CACHE_HOME/sdsec`, else `~/.cache/sdsec`.
pub fn default_cache_dir() -> Result<PathBuf, KernelError> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("SDSEC_CACHE_DIR") {
        return Ok(dir);
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return Ok(dir.join("sdsec"));
    }
    var("HOME").map(|home| home.join(".cache").join("sdsec")).ok_or(KernelError::NoCacheDir)
}

impl KernelCache {
    pub fn new(cache_dir: &Path) -> KernelCache {
        KernelCache { root: cache_dir.join("kernels") }
    }

    /// The kernels a release ships beside its executables (`kernels/` in the directory of
    /// the running one: where `terraform init` unpacks the provider's zip), if there are any.
    pub fn bundled() -> Option<KernelCache> {
        let exe = std::env::current_exe().ok()?;
        let root = exe.parent()?.join("kernels");
        root.is_dir().then_some(KernelCache { root })
    }

    /// The kernel `choice` names from this cache; sdsec's kernel, when this cache has no
    /// build of this version's configuration, from those a release ships ([`Self::bundled`]).
    pub fn resolve_or_bundled(&self, choice: &KernelChoice) -> Result<Kernel, KernelError> {
        match self.resolve(choice) {
            // Not built here, or the cache unreadable: a release's own build serves.
            Err(e @ (KernelError::NotBuilt(_) | KernelError::Io(_))) if *choice == KernelChoice::Sdsec => {
                KernelCache::bundled().and_then(|b| b.sdsec().ok()).ok_or(e)
            }
            outcome => outcome,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The kernel `choice` names: for sdsec's, one built with this version's configuration.
    pub fn resolve(&self, choice: &KernelChoice) -> Result<Kernel, KernelError> {
        match choice {
            KernelChoice::Sdsec => self.sdsec(),
            KernelChoice::DebianCloud => self.current(),
            KernelChoice::Path(path) => Ok(Kernel::at_path(path)),
        }
    }

    /// sdsec's kernel built with this version's configuration (the newest such build when
    /// several source versions were built).
    pub fn sdsec(&self) -> Result<Kernel, KernelError> {
        let wanted = config::config_digest(config::FRAGMENT);
        // A kernel cached by an older sdsec (unloadable) is no candidate, and no obstacle.
        let mut built: Vec<Kernel> = self
            .names()?
            .iter()
            .filter_map(|name| self.load(name).ok())
            .filter(|k| k.record.kind == KernelKind::Sdsec && k.record.config_digest.as_deref() == Some(&wanted))
            .collect();
        built.sort_by_key(|k| fs::metadata(k.dir.join(RECORD)).and_then(|m| m.modified()).ok());
        built.pop().ok_or_else(|| KernelError::NotBuilt(self.root.clone()))
    }

    /// Builds sdsec's kernel with `jobs` parallel compilations (unless this configuration
    /// is built already from the source version apt offers). `progress` is told each step.
    pub fn build(&self, jobs: usize, progress: &mut dyn FnMut(&str)) -> Result<Kernel, KernelError> {
        fs::create_dir_all(&self.root).map_err(io("create", &self.root))?;
        let _lock = build::lock(&self.root)?;
        let version = match build::candidate_version() {
            Ok(version) => version,
            // Without apt, a build of this configuration already cached serves.
            Err(e) => return self.sdsec().map_err(|_| e),
        };
        let name = config::build_key(config::FRAGMENT, &version);
        // A damaged build (a file removed) is built again.
        if let Ok(kernel) = self.load(&name) {
            progress(&format!("{name} is already built from {SOURCE_PACKAGE} {version}"));
            return Ok(kernel);
        }
        build::build_into(&self.root, &name, &version, jobs.max(1), progress)?;
        self.load(&name)
    }

    /// Debian's cloud kernel fetched last.
    pub fn current(&self) -> Result<Kernel, KernelError> {
        let pointer = self.root.join(CURRENT);
        let release = match fs::read_to_string(&pointer) {
            Ok(text) => text.trim().to_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(KernelError::NotFetched(self.root.clone())),
            Err(e) => return Err(io("read", &pointer)(e).into()),
        };
        self.load(&release)
    }

    /// Every cached kernel, by release.
    /// Every usable cached kernel (one cached by an older sdsec, or damaged, is left out).
    pub fn list(&self) -> Result<Vec<Kernel>, KernelError> {
        Ok(self.names()?.iter().filter_map(|name| self.load(name).ok()).collect())
    }

    /// The names of the cache's kernel directories, sorted.
    fn names(&self) -> Result<Vec<String>, KernelError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &self.root)(e).into()),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().join(RECORD).is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }

    fn load(&self, release: &str) -> Result<Kernel, KernelError> {
        let dir = self.root.join(release);
        let path = dir.join(RECORD);
        let text = fs::read_to_string(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => KernelError::NotFetched(self.root.clone()),
            _ => io("read", &path)(e).into(),
        })?;
        let record: KernelRecord = serde_json::from_str(&text)
            .map_err(|e| KernelError::BadRecord { path: path.clone(), reason: e.to_string() })?;
        if record.layout < CACHE_LAYOUT {
            return Err(KernelError::BadRecord {
                path,
                reason: "it was cached by an older sdsec and lacks modules images now carry (virtio_console for the \
                         control channel)"
                    .into(),
            });
        }
        let kernel = Kernel { record, dir, given: false };
        for file in std::iter::once(kernel.image()).chain(kernel.modules().into_iter().map(|m| m.host_path)) {
            if !file.is_file() {
                return Err(KernelError::BadRecord { path, reason: format!("{} is missing", file.display()) });
            }
        }
        Ok(kernel)
    }

    /// Downloads `package` (a Debian kernel package or a meta package such as
    /// [`DEFAULT_PACKAGE`]), unpacks it into the cache and makes it current. `progress` is
    /// told each step.
    pub fn fetch(&self, package: &str, progress: &mut dyn FnMut(&str)) -> Result<Kernel, KernelError> {
        fs::create_dir_all(&self.root).map_err(io("create", &self.root))?;
        let release = fetch::fetch_into(&self.root, package, progress)?;
        let pointer = self.root.join(CURRENT);
        fsutil::write_atomically_with_mode(&pointer, format!("{release}\n").as_bytes(), 0o644)?;
        self.load(&release)
    }
}
