//! From a node's enforcement plan and an application to an image in the store and a
//! booted, ready instance: the wiring of the image builder, the kernel cache and a
//! hypervisor that `sdsec build`/`sdsec run` and the unikernel resource share.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hypervisor::{AccelChoice, BootSpec, ControlBoot, Hypervisor};
use sdsec_image::kernel::{self, KernelCache, KernelError};
use sdsec_image::{Application, ImageSpec, Module, StoreError};
use sectosca::EnforcementPlan;

/// The enforcement runtime's executable name.
pub const RUNTIME_NAME: &str = "sdsec-guest";
/// Where `cargo build --profile guest --target x86_64-unknown-linux-gnu` puts the static
/// runtime, relative to the cargo target directory.
const STATIC_DIR: &str = "x86_64-unknown-linux-gnu/guest";

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "the enforcement runtime `{RUNTIME_NAME}` was not found as a static executable (looked at {looked}); build it with `scripts/build.sh` (a static build with `--profile guest --target x86_64-unknown-linux-gnu`) or set SDSEC_RUNTIME to its path"
    )]
    NoRuntime { looked: String },
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Manifest(#[from] sdsec_image::ManifestError),
    #[error(transparent)]
    Hypervisor(#[from] hypervisor::HypervisorError),
    #[error("cannot prepare the control channel: {0}")]
    Control(String),
    #[error("the application path {0} has no file name")]
    AppName(PathBuf),
}

/// The application as the user gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    pub path: PathBuf,
    pub args: Vec<String>,
    /// Where it listens in the guest; `None` takes the plan's port.
    pub port: Option<u16>,
}

/// Judged from the file's first bytes, where ELF headers are: the cargo target directory
/// also holds the (dynamic, much larger) host build, and this runs at every plan. The
/// image builder checks the whole file it takes.
fn is_static_executable(path: &Path) -> bool {
    use std::io::Read as _;
    let mut head = Vec::with_capacity(HEADER_BYTES);
    let read = std::fs::File::open(path).and_then(|f| f.take(HEADER_BYTES as u64).read_to_end(&mut head));
    read.is_ok() && sdsec_image::elf::check_static_executable(path, &head).is_ok()
}

const HEADER_BYTES: usize = 64 * 1024;

/// `$SDSEC_RUNTIME`, else a static `sdsec-guest` beside this executable (an installed
/// release), else the static build in the cargo target directory.
pub fn runtime_binary() -> Result<PathBuf, LaunchError> {
    if let Some(path) = std::env::var_os("SDSEC_RUNTIME").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut candidates = Vec::new();
    // target/<profile>/sdsec, or target/<profile>/deps/<test> for tests.
    for dir in exe.ancestors().skip(1).take(3) {
        candidates.push(dir.join(RUNTIME_NAME));
        candidates.push(dir.join(STATIC_DIR).join(RUNTIME_NAME));
    }
    match candidates.iter().find(|c| is_static_executable(c)) {
        Some(found) => Ok(found.clone()),
        None => {
            let looked = candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ");
            Err(LaunchError::NoRuntime { looked })
        }
    }
}

/// The kernel given by path (used as it is, with no modules: it must have virtio-mmio and
/// virtio-net built in), else the cached Debian cloud kernel.
pub fn kernel(path: Option<&Path>) -> Result<(PathBuf, Vec<Module>), LaunchError> {
    if let Some(path) = path {
        return Ok((path.to_owned(), Vec::new()));
    }
    let cache = KernelCache::new(&kernel::default_cache_dir()?);
    let current = cache.current()?;
    Ok((current.image(), current.modules()))
}

/// The image spec of `plan` with `app` and the `runtime` as `/init`; the app's file name
/// becomes `/app/<name>`.
pub fn image_spec(
    plan: &EnforcementPlan,
    app: &AppSpec,
    kernel_path: Option<&Path>,
    runtime: &Path,
) -> Result<ImageSpec, LaunchError> {
    let name =
        app.path.file_name().and_then(|n| n.to_str()).ok_or_else(|| LaunchError::AppName(app.path.clone()))?.to_owned();
    let (kernel, modules) = kernel(kernel_path)?;
    let application = Application { name, path: app.path.clone(), args: app.args.clone() };
    let mut spec = ImageSpec::new(plan.clone(), application, runtime.to_owned(), kernel);
    spec.modules = modules;
    if let Some(port) = app.port {
        spec.port = port;
    }
    Ok(spec)
}

/// How to boot a stored image: the runtime's port, its health path, and no traffic out
/// of the guest unless the plan names flows to other nodes.
pub fn boot_spec(
    image: &sdsec_image::Image,
    plan: &EnforcementPlan,
    host_port: Option<u16>,
    timeout: Duration,
) -> BootSpec {
    let manifest = &image.manifest;
    BootSpec {
        name: plan.node.clone(),
        image_digest: image.digest.to_string(),
        kernel: image.kernel.clone(),
        initramfs: image.initramfs.clone(),
        cmdline: manifest.cmdline.clone(),
        memory_mb: manifest.memory_mb,
        vcpus: manifest.vcpus,
        guest_port: sdsec_image::cmdline::pep_port(manifest.application.port),
        host_port,
        health_path: plan.runtime.firewall.http.health_path.clone(),
        restrict_egress: plan.runtime.flows.connects_to.is_empty(),
        ready_timeout: timeout,
        metadata: serde_json::Value::Null,
        control: None,
    }
}

/// A fresh key for an instance's control channel and the initramfs overlay that hands it
/// to the runtime (readable by root only; init removes it once read).
pub fn control_boot() -> Result<ControlBoot, LaunchError> {
    let key = control::Key::generate().map_err(|e| LaunchError::Control(e.to_string()))?;
    let entry = sdsec_image::cpio::Entry::file(control::GUEST_KEY_PATH, 0o400, key.to_hex().into_bytes());
    let overlay = sdsec_image::cpio::write(vec![entry]).map_err(|e| LaunchError::Control(e.to_string()))?;
    Ok(ControlBoot { key, overlay })
}

/// The libvirt connection used when the configuration names none.
pub const DEFAULT_LIBVIRT_URI: &str = "qemu:///system";

/// The hypervisor the provider configuration names.
pub fn backend(config: &crate::config::ProviderConfig) -> Result<Box<dyn Hypervisor>, LaunchError> {
    let accel = match config.accel {
        crate::config::Accel::Auto => AccelChoice::Auto,
        crate::config::Accel::Kvm => AccelChoice::Kvm,
        crate::config::Accel::Tcg => AccelChoice::Tcg,
    };
    let uri = match config.hypervisor {
        crate::config::Hypervisor::Qemu => None,
        crate::config::Hypervisor::Libvirt => Some(config.libvirt_uri.as_deref().unwrap_or(DEFAULT_LIBVIRT_URI)),
    };
    backend_at(&config.state_dir, uri, accel)
}

/// The embedded QEMU backend, or libvirt at `libvirt_uri` when one is given.
pub fn backend_at(
    state_dir: &Path,
    libvirt_uri: Option<&str>,
    accel: AccelChoice,
) -> Result<Box<dyn Hypervisor>, LaunchError> {
    match libvirt_uri {
        None => Ok(Box::new(qemu(state_dir, accel)?)),
        Some(uri) => Ok(Box::new(hypervisor::libvirt::Libvirt::new(state_dir, uri, accel)?)),
    }
}

/// The embedded QEMU backend for `state_dir`.
pub fn qemu(state_dir: &Path, accel: AccelChoice) -> Result<hypervisor::qemu::Qemu, LaunchError> {
    Ok(hypervisor::qemu::Qemu::new(state_dir, accel)?)
}
