//! The manifest: every input of an image, by content. Its canonical JSON's SHA-256 is the
//! image digest, computed by hashing the inputs without building anything, so the provider
//! knows the digest at plan time. Paths are left out on purpose: the same bytes from
//! another place are the same image.

use serde::{Deserialize, Serialize};

use crate::cmdline::{self, CmdlineError};
use crate::digest::ImageDigest;
use crate::elf::{self, ElfError};
use crate::input::{self, FileRef, InputError};
use crate::layout::{self, LayoutError};
use crate::spec::ImageSpec;

/// Bumped whenever the manifest's meaning or the image layout changes.
pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Elf(#[from] ElfError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Cmdline(#[from] CmdlineError),
    #[error("cannot write the {what} as canonical JSON: {source}")]
    Json { what: &'static str, source: plan::CanonicalError },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// This crate and the compression library, with their versions and settings.
    pub builder: String,
    /// The node template the plan is for.
    pub node: String,
    /// `/etc/sdsec/plan.json`; its sha256 is the plan's digest.
    pub plan: FileRef,
    pub kernel: FileRef,
    pub cmdline: String,
    /// The enforcement runtime, `/init`.
    pub init: FileRef,
    pub application: AppRef,
    /// Sorted by path.
    pub modules: Vec<ModuleRef>,
    pub memory_mb: u64,
    pub vcpus: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRef {
    pub name: String,
    pub sha256: String,
    pub size: u64,
    pub args: Vec<String>,
    pub port: u16,
}

impl AppRef {
    pub fn file(&self) -> FileRef {
        FileRef { sha256: self.sha256.clone(), size: self.size }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleRef {
    /// Absolute path in the image.
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// The builder identity recorded in every manifest: a new version of either part may
/// change the bytes, so it makes a new digest. The layout's revision counts too: a change of
/// modes or paths must never meet a stored image of the same digest laid out the old way.
pub fn builder_id() -> String {
    format!(
        "sdsec-image {} layout {} cpio newc uncompressed",
        env!("CARGO_PKG_VERSION"),
        crate::layout::LAYOUT_REVISION,
    )
}

/// The plan as it is written into the image.
pub fn plan_json(spec: &ImageSpec) -> Result<String, ManifestError> {
    plan::to_canonical_json(&spec.plan).map_err(|source| ManifestError::Json { what: "plan", source })
}

impl Manifest {
    /// Reads and hashes every input, checks the executables are static and the tree holds
    /// nothing forbidden. Builds nothing.
    pub fn from_spec(spec: &ImageSpec) -> Result<Manifest, ManifestError> {
        let app = &spec.application;
        layout::check_app_name(&app.name)?;
        let plan = FileRef::of(plan_json(spec)?.as_bytes());
        let runtime = input::read("runtime", &spec.runtime)?;
        elf::check_static_executable(&spec.runtime, &runtime)?;
        let app_bytes = input::read("application", &app.path)?;
        elf::check_static_executable(&app.path, &app_bytes)?;
        layout::refuse_shell(&app.path, &app_bytes)?;
        let mut modules = Vec::with_capacity(spec.modules.len());
        for module in &spec.modules {
            layout::module_path(&module.image_path)?;
            let file = FileRef::of(&input::read("kernel module", &module.host_path)?);
            modules.push(ModuleRef { path: module.image_path.clone(), sha256: file.sha256, size: file.size });
        }
        modules.sort_by(|a, b| a.path.cmp(&b.path));
        let kernel = input::hash_kernel_file(&spec.kernel)?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            builder: builder_id(),
            node: spec.plan.node.clone(),
            plan,
            kernel,
            cmdline: cmdline::kernel_cmdline(&spec.plan, &app.name, &app.args, spec.port)?,
            init: FileRef::of(&runtime),
            application: AppRef {
                name: app.name.clone(),
                sha256: FileRef::of(&app_bytes).sha256,
                size: app_bytes.len() as u64,
                args: app.args.clone(),
                port: spec.port,
            },
            modules,
            memory_mb: spec.memory_mb,
            vcpus: spec.vcpus,
        };
        // Refuses forbidden names and duplicate module paths now, at plan time.
        layout::tree(&manifest)?;
        Ok(manifest)
    }

    pub fn canonical_json(&self) -> Result<String, ManifestError> {
        plan::to_canonical_json(self).map_err(|source| ManifestError::Json { what: "manifest", source })
    }

    pub fn digest(&self) -> Result<ImageDigest, ManifestError> {
        Ok(ImageDigest::of(self.canonical_json()?.as_bytes()))
    }
}

/// The image digest of a spec, without building: what the provider shows at plan time.
pub fn image_digest(spec: &ImageSpec) -> Result<ImageDigest, ManifestError> {
    Manifest::from_spec(spec)?.digest()
}
