//! What an image is made of, as the caller gives it.

use std::path::PathBuf;

use plan::EnforcementPlan;

/// Everything an image is built from. Paths are read when the manifest is computed and
/// again when the image is built; only the bytes count, never the paths.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The node's compiled plan, written to `/etc/sdsec/plan.json`.
    pub plan: EnforcementPlan,
    pub application: Application,
    /// Where the application listens inside the guest.
    pub port: u16,
    pub memory_mb: u64,
    pub vcpus: u64,
    /// The enforcement runtime, which becomes `/init`; a static executable.
    pub runtime: PathBuf,
    /// The kernel to boot (bzImage or PVH vmlinux).
    pub kernel: PathBuf,
    /// Kernel modules the image carries, under `/lib/modules/`.
    pub modules: Vec<Module>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// The file name inside the image: `/app/<name>`.
    pub name: String,
    /// A static executable on the host.
    pub path: PathBuf,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Absolute path inside the image, under `/lib/modules/`.
    pub image_path: String,
    pub host_path: PathBuf,
}

impl ImageSpec {
    /// A spec whose port, memory and vCPUs come from the plan's build settings, with no modules.
    pub fn new(plan: EnforcementPlan, application: Application, runtime: PathBuf, kernel: PathBuf) -> ImageSpec {
        ImageSpec {
            port: plan.build.port,
            memory_mb: plan.build.memory_mb,
            vcpus: plan.build.vcpus,
            plan,
            application,
            runtime,
            kernel,
            modules: Vec::new(),
        }
    }
}
