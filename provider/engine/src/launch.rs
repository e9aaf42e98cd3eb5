//! From a node's enforcement plan and an application to an image in the store and a
//! booted, ready instance: the wiring of the image builder, the kernel cache and a
//! hypervisor that `sdsec build`/`sdsec run` and the unikernel resource share.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hypervisor::{BootSpec, ControlBoot, Hypervisor};
use plan::EnforcementPlan;
use sdsec_image::kernel::{self, Kernel, KernelCache, KernelChoice, KernelError};
use sdsec_image::{Application, ImageSpec, Manifest, ManifestError, StoreError};

use crate::Input;
use crate::config::{self, ProviderConfig};
use crate::host::Host;

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
    /// An input of the image is unusable (unreadable, not static, a forbidden name…).
    #[error("{source}")]
    Manifest { input: Input, source: ManifestError },
    #[error("{name} = {value} is out of range: it must be between {} and {}", range.start(), range.end())]
    OutOfRange { input: Input, name: &'static str, value: u64, range: RangeInclusive<u64> },
    #[error(
        "{}memory_mb = {value} is below what the {kernel} kernel boots with: give it at least {floor} MiB{}",
        if *input == Input::Enforcement { "the policy's " } else { "" },
        if *kernel == "sdsec" { "" } else { " (sdsec's own kernel, the default, needs less)" }
    )]
    BelowKernelFloor { input: Input, value: u64, floor: u64, kernel: &'static str },
    #[error(transparent)]
    Hypervisor(#[from] hypervisor::HypervisorError),
    #[error("cannot prepare the control channel: {0}")]
    Control(String),
    #[error("the application path {0} has no file name")]
    AppName(PathBuf),
}

impl LaunchError {
    /// The input at fault, `None` for the host's own failures (store, hypervisor).
    pub fn input(&self) -> Option<Input> {
        match self {
            LaunchError::NoRuntime { .. } => Some(Input::Runtime),
            LaunchError::Kernel(_) => Some(Input::Kernel),
            LaunchError::AppName(_) => Some(Input::Application),
            LaunchError::Manifest { input, .. }
            | LaunchError::OutOfRange { input, .. }
            | LaunchError::BelowKernelFloor { input, .. } => Some(*input),
            LaunchError::Store(_) | LaunchError::Hypervisor(_) | LaunchError::Control(_) => None,
        }
    }
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

/// The kernel `choice` names: from the cache (sdsec's also from a release's own kernels),
/// or given by path (used as it is, with no modules: it must have virtio-mmio and virtio-net
/// built in).
pub fn kernel(choice: &KernelChoice) -> Result<Kernel, LaunchError> {
    if let KernelChoice::Path(path) = choice {
        return Ok(Kernel::at_path(path));
    }
    match kernel::default_cache_dir() {
        Ok(dir) => Ok(KernelCache::new(&dir).resolve_or_bundled(choice)?),
        // No cache directory (neither HOME nor XDG_CACHE_HOME): a release's own kernel serves.
        Err(e) => Ok(KernelCache::bundled().ok_or(e)?.resolve(choice)?),
    }
}

/// The image spec of `plan` with `app` and the `runtime` as `/init`; the app's file name
/// becomes `/app/<name>`.
pub fn image_spec(
    plan: &EnforcementPlan,
    app: &AppSpec,
    kernel: &Kernel,
    runtime: &Path,
) -> Result<ImageSpec, LaunchError> {
    let name =
        app.path.file_name().and_then(|n| n.to_str()).ok_or_else(|| LaunchError::AppName(app.path.clone()))?.to_owned();
    let application = Application { name, path: app.path.clone(), args: app.args.clone() };
    let mut spec = ImageSpec::new(plan.clone(), application, runtime.to_owned(), kernel.image());
    spec.modules = kernel.modules();
    if let Some(port) = app.port {
        spec.port = port;
    }
    Ok(spec)
}

/// Guest memory a unikernel may ask for, in MiB, whatever the kernel; each cached kernel has
/// its own floor ([`check_kernel_floor`]).
pub const MEMORY_MB: RangeInclusive<u64> = 32..=65536;
/// Virtual CPUs a unikernel may ask for.
pub const VCPUS: RangeInclusive<u64> = 1..=64;

/// Guest sizing given beside the plan; `None` keeps the plan's `build` values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizing {
    pub memory_mb: Option<u64>,
    pub vcpus: Option<u64>,
}

impl Sizing {
    /// Fails on the first value outside [`MEMORY_MB`] or [`VCPUS`].
    pub fn check(&self) -> Result<(), LaunchError> {
        let fields =
            [(Input::MemoryMb, "memory_mb", self.memory_mb, MEMORY_MB), (Input::Vcpus, "vcpus", self.vcpus, VCPUS)];
        for (input, name, value, range) in fields {
            if let Some(value) = value.filter(|v| !range.contains(v)) {
                return Err(LaunchError::OutOfRange { input, name, value, range });
            }
        }
        Ok(())
    }
}

/// Refuses less memory than `kernel` boots with, naming the attribute when the size was
/// given beside the plan and the policy otherwise.
pub fn check_kernel_floor(kernel: &Kernel, memory_mb: u64, sizing: Sizing) -> Result<(), LaunchError> {
    match kernel.min_memory_mb() {
        Some(floor) if memory_mb < floor => Err(LaunchError::BelowKernelFloor {
            input: if sizing.memory_mb.is_some() { Input::MemoryMb } else { Input::Enforcement },
            value: memory_mb,
            floor,
            kernel: kernel.record.kind.name(),
        }),
        _ => Ok(()),
    }
}

/// The spec and manifest (inputs hashed, nothing built) of `plan`'s image with `app`, with
/// the kernel and runtime `config` names: what plan time needs for the image digest. Errors
/// say which input is at fault.
pub fn manifest(
    plan: &EnforcementPlan,
    app: &AppSpec,
    config: &ProviderConfig,
    sizing: Sizing,
) -> Result<(ImageSpec, Manifest), LaunchError> {
    sizing.check()?;
    let runtime = match &config.runtime {
        Some(runtime) => runtime.clone(),
        None => runtime_binary()?,
    };
    let kernel = kernel(&config.kernel)?;
    let mut spec = image_spec(plan, app, &kernel, &runtime)?;
    spec.memory_mb = sizing.memory_mb.unwrap_or(spec.memory_mb);
    spec.vcpus = sizing.vcpus.unwrap_or(spec.vcpus);
    // The policy's own size too: SecTOSCA accepts less than any kernel boots with.
    if sizing.memory_mb.is_none() && !MEMORY_MB.contains(&spec.memory_mb) {
        let (name, value, range) = ("the policy's memory_mb", spec.memory_mb, MEMORY_MB);
        return Err(LaunchError::OutOfRange { input: Input::Enforcement, name, value, range });
    }
    check_kernel_floor(&kernel, spec.memory_mb, sizing)?;
    let manifest = Manifest::from_spec(&spec)
        .map_err(|source| LaunchError::Manifest { input: at_fault(&spec, &source), source })?;
    Ok((spec, manifest))
}

/// Which input of `spec` a manifest error is about, told by the error's kind and the path
/// it names.
fn at_fault(spec: &ImageSpec, error: &ManifestError) -> Input {
    use sdsec_image::cmdline::CmdlineError;
    use sdsec_image::elf::ElfError;
    use sdsec_image::input::InputError;
    use sdsec_image::layout::LayoutError;
    let by_path = |path: &Path| {
        if path == spec.application.path {
            Input::Application
        } else if path == spec.runtime {
            Input::Runtime
        } else {
            // The kernel or one of its modules.
            Input::Kernel
        }
    };
    match error {
        ManifestError::Input(InputError::Read { path, .. } | InputError::Changed { path, .. })
        | ManifestError::Elf(ElfError::NotStatic { path, .. }) => by_path(path),
        ManifestError::Input(InputError::NotKernel(_))
        | ManifestError::Layout(LayoutError::BadModulePath(_) | LayoutError::DuplicateModule(_)) => Input::Kernel,
        ManifestError::Layout(LayoutError::Forbidden { path, .. })
            if path.trim_start_matches('/').starts_with(abi::paths::MODULES) =>
        {
            Input::Kernel
        }
        // The application's name, port or arguments (which can make the line too long).
        ManifestError::Layout(_)
        | ManifestError::Cmdline(
            CmdlineError::TooLong(_) | CmdlineError::Bad { .. } | CmdlineError::Twice(_) | CmdlineError::Missing(_),
        ) => Input::Application,
        // The plan's kernel parameters.
        ManifestError::Cmdline(CmdlineError::BadItem(_) | CmdlineError::Reserved(_)) | ManifestError::Json { .. } => {
            Input::Enforcement
        }
    }
}

/// QEMU's translation cache for the kernel at `path`, of `bytes`: what it translates is
/// mostly the kernel's code, so a minimal kernel (sdsec's: an 18 MB vmlinux) is served by
/// 16 MiB without a slowdown, while a general-purpose one (Debian's: 53 MB) slows down with
/// less than 48 MiB. A compressed kernel (bzImage) says nothing by its size: 48.
pub fn tcg_cache_mb(path: &Path, bytes: u64) -> u64 {
    use std::io::Read as _;
    let mut magic = [0u8; 4];
    let elf = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == *b"\x7fELF";
    if elf && bytes <= 24 << 20 { 16 } else { 48 }
}

/// Whether the instance's memory may be merged with other instances' by the host's KSM:
/// not under `strict` hardening nor for a plan that restricts tenants or wants a host of its
/// own, where whether another guest holds a page must not be learnable from timing.
pub fn merge_memory(plan: &EnforcementPlan) -> bool {
    let isolated = plan.placement.tenants.is_some() || plan.placement.dedicated_host;
    plan.build.hardening.level == plan::HardeningLevel::Baseline && !isolated
}

/// How to boot a stored image: the runtime's port and its health path; the network is
/// the host's to attach ([`crate::host::Host::boot`]).
pub fn boot_spec(image: &sdsec_image::Image, plan: &EnforcementPlan, timeout: Duration) -> BootSpec {
    let manifest = &image.manifest;
    BootSpec {
        name: plan.node.clone(),
        image_digest: image.digest.to_string(),
        kernel: image.kernel.clone(),
        initramfs: image.initramfs.clone(),
        cmdline: manifest.cmdline.clone(),
        memory_mb: manifest.memory_mb,
        tcg_cache_mb: tcg_cache_mb(&image.kernel, manifest.kernel.size),
        merge_memory: merge_memory(plan),
        vcpus: manifest.vcpus,
        guest_port: abi::net::runtime_port(manifest.application.port),
        nic: hypervisor::Nic::User { host_port: None, restrict_egress: true },
        health_path: plan.runtime.firewall.http.health_path.clone(),
        // The host decides once it knows the network ([`crate::host::Host::boot`]).
        probe: hypervisor::Probe::default(),
        ready_timeout: timeout,
        metadata: serde_json::Value::Null,
        control: None,
        restore: None,
    }
}

/// A fresh key for an instance's control channel; the backend hands it to the guest, with a
/// seed for its kernel's random number generator, first thing on the channel.
pub fn control_boot() -> Result<ControlBoot, LaunchError> {
    let key = abi::control::Key::generate().map_err(|e| LaunchError::Control(e.to_string()))?;
    Ok(ControlBoot { key })
}

/// The libvirt connection used when the configuration names none.
pub const DEFAULT_LIBVIRT_URI: &str = "qemu:///system";

/// The host the configuration names: the embedded QEMU backend or a libvirt daemon, with
/// the network its instances are attached to.
pub fn backend(config: &ProviderConfig) -> Result<Host, LaunchError> {
    Ok(Host::new(hypervisor(config)?, config))
}

/// The hypervisor the configuration names: the embedded QEMU backend, or a libvirt daemon.
fn hypervisor(config: &ProviderConfig) -> Result<Box<dyn Hypervisor>, LaunchError> {
    let (state_dir, accel) = (&config.state_dir, config.accel);
    Ok(match config.hypervisor {
        config::Hypervisor::Qemu => Box::new(hypervisor::qemu::Qemu::new(state_dir, accel)?),
        config::Hypervisor::Libvirt => {
            let uri = config.libvirt_uri.as_deref().unwrap_or(DEFAULT_LIBVIRT_URI);
            let pool = config.libvirt_pool.as_deref().unwrap_or(hypervisor::DEFAULT_LIBVIRT_POOL);
            Box::new(hypervisor::libvirt::Libvirt::new(state_dir, uri, accel)?.with_pool(pool))
        }
    })
}

#[cfg(test)]
mod tests {
    use sdsec_image::input::InputError;
    use sdsec_image::layout::LayoutError;

    use super::*;
    use crate::EngineError;

    fn spec() -> ImageSpec {
        let doc = "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    api: { type: sdsec.nodes.Unikernel }\n";
        let plan = sectosca::compile_str("t", doc).plans["api"].clone();
        let app = AppSpec { path: "/build/api".into(), args: Vec::new(), port: None };
        image_spec(&plan, &app, &Kernel::at_path(Path::new("/boot/vmlinux")), Path::new("/build/sdsec-guest")).unwrap()
    }

    fn unreadable(what: &'static str, path: &str) -> ManifestError {
        ManifestError::Input(InputError::Read { what, path: path.into(), source: std::io::ErrorKind::NotFound.into() })
    }

    #[test]
    fn manifest_errors_name_the_input_at_fault() {
        let spec = spec();
        assert_eq!(at_fault(&spec, &unreadable("application", "/build/api")), Input::Application);
        assert_eq!(at_fault(&spec, &unreadable("runtime", "/build/sdsec-guest")), Input::Runtime);
        assert_eq!(at_fault(&spec, &unreadable("kernel", "/boot/vmlinux")), Input::Kernel);
        let bad_name = ManifestError::Layout(LayoutError::BadAppName("..".into()));
        assert_eq!(at_fault(&spec, &bad_name), Input::Application);
        let error = LaunchError::Manifest { input: at_fault(&spec, &bad_name), source: bad_name };
        assert_eq!(EngineError::from(error).input(), Some(Input::Application));
    }

    #[test]
    fn sizing_out_of_range_names_memory_or_vcpus() {
        assert!(Sizing::default().check().is_ok());
        assert!(Sizing { memory_mb: Some(256), vcpus: Some(2) }.check().is_ok());
        let small = Sizing { memory_mb: Some(16), vcpus: None }.check().unwrap_err();
        assert_eq!(small.input(), Some(Input::MemoryMb));
        assert!(small.to_string().starts_with("memory_mb = 16 is out of range"), "{small}");
        assert_eq!(Sizing { memory_mb: None, vcpus: Some(0) }.check().unwrap_err().input(), Some(Input::Vcpus));
    }

    #[test]
    fn an_application_path_without_a_file_name_is_the_applications_fault() {
        let plan = spec().plan;
        let app = AppSpec { path: "/".into(), args: Vec::new(), port: None };
        let err = image_spec(&plan, &app, &Kernel::at_path(Path::new("/boot/vmlinux")), Path::new("/r")).unwrap_err();
        assert_eq!(err.input(), Some(Input::Application));
    }
}
