//! `sdsec build`, `sdsec images` and `sdsec kernel`: protected images and the kernel they boot.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};
use engine::ProviderConfig;
use engine::instance;
use engine::launch::{self, AppSpec};
use sdsec_image::kernel::{self, KernelCache, KernelChoice};
use sdsec_image::{Ensured, ImageDigest, ImageSpec, Manifest, Outcome, Store};

use crate::{UsageError, compile_file, parse_input, print_stdout};

/// What an image is made of: a node of a policy document and an application.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The SecTOSCA document.
    pub policy: PathBuf,
    /// The unikernel node template whose plan the image enforces.
    #[arg(long)]
    pub node: String,
    /// The application: a static executable.
    #[arg(long)]
    pub app: PathBuf,
    /// An argument of the application (repeat for several).
    #[arg(long = "arg", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Where the application listens in the guest (default: the plan's port).
    #[arg(long)]
    pub port: Option<u16>,
    /// Input values of the document, `name=value`.
    #[arg(long = "input", short = 'i', value_parser = parse_input)]
    pub inputs: Vec<(String, String)>,
    /// The kernel to boot: `sdsec` (sdsec's own, built by `sdsec kernel build`), `debian-cloud`
    /// (Debian's cloud kernel, `sdsec kernel fetch`), or the path of a kernel file.
    #[arg(long, default_value = "sdsec", value_parser = parse_kernel)]
    pub kernel: KernelChoice,
}

fn parse_kernel(text: &str) -> Result<KernelChoice, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("cannot read the working directory: {e}"))?;
    Ok(KernelChoice::parse(text).absolute(&cwd))
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// List the stored images (the default).
    List,
    /// Check stored images against their digests; exit 1 if any is tampered.
    Verify { digests: Vec<String> },
    /// Remove images no running instance or pool uses (and those given with --keep stay).
    Gc {
        #[arg(long)]
        keep: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// Build sdsec's own kernel (the default for images) from Debian's linux-source-6.1 and
    /// sdsec's configuration, into the cache; nothing is installed on the host. Reuses the
    /// cached build of the same configuration and source version.
    Build {
        /// Parallel compilations (default: one per CPU).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Download Debian's cloud kernel with apt-get (not installed on the host) into the cache.
    Fetch {
        #[arg(long, default_value = kernel::DEFAULT_PACKAGE)]
        package: String,
    },
    /// Show the kernel images are built with: `sdsec` (the default) or `debian-cloud`.
    Show {
        #[arg(long, default_value = "sdsec", value_parser = parse_kernel)]
        kernel: KernelChoice,
    },
    /// Print sdsec's kernel configuration fragment (what `sdsec kernel build` applies).
    Config,
    /// List every cached kernel.
    List,
}

/// Compiles the document and builds (or reuses) the node's image, as the provider does.
pub fn build(state_dir: &Path, image: &ImageArgs) -> Result<(ImageSpec, Ensured), UsageError> {
    let spec = spec(image)?;
    let manifest = Manifest::from_spec(&spec)?;
    let ensured = instance::build(state_dir, &spec, &manifest)?;
    Ok((spec, ensured))
}

fn spec(image: &ImageArgs) -> Result<ImageSpec, UsageError> {
    let (source, compilation) = compile_file(&image.policy, &image.inputs)?;
    crate::render::diagnostics(&compilation.sources, &compilation.diagnostics);
    if compilation.has_errors() {
        return Err(UsageError(format!("{}: {} error(s); no image built", source.name, compilation.errors().count())));
    }
    let plan = compilation.plans.get(&image.node).ok_or_else(|| {
        let names: Vec<&str> = compilation.plans.keys().map(String::as_str).collect();
        UsageError(format!("no unikernel `{}` in {}; unikernels: {}", image.node, source.name, names.join(", ")))
    })?;
    let app = AppSpec { path: image.app.clone(), args: image.args.clone(), port: image.port };
    let runtime = launch::runtime_binary()?;
    let kernel = launch::kernel(&image.kernel)?;
    launch::check_kernel_floor(&kernel, plan.build.memory_mb, launch::Sizing::default())?;
    Ok(launch::image_spec(plan, &app, &kernel, &runtime)?)
}

pub fn run_build(state_dir: &Path, image: &ImageArgs) -> Result<(), UsageError> {
    let started = Instant::now();
    let (_, ensured) = build(state_dir, image)?;
    let what = match &ensured.outcome {
        Outcome::Reused => "reused".to_owned(),
        Outcome::Built => "built".to_owned(),
        Outcome::Rebuilt { reason } => format!("rebuilt (the stored copy was damaged: {reason})"),
    };
    let image = &ensured.image;
    let size = std::fs::metadata(&image.initramfs).map(|m| m.len()).unwrap_or(0);
    eprintln!("{what} in {} ms", started.elapsed().as_millis());
    print_stdout(&format!("digest:    {}", image.digest));
    print_stdout(&format!("path:      {}", image.dir.display()));
    print_stdout(&format!("initramfs: {size} bytes"));
    print_stdout(&format!("cmdline:   {}", image.cmdline()));
    Ok(())
}

fn digests(texts: &[String]) -> Result<Vec<ImageDigest>, UsageError> {
    Ok(texts.iter().map(|t| ImageDigest::parse(t)).collect::<Result<_, _>>()?)
}

/// Returns whether every checked image was intact.
pub fn run_images(config: &ProviderConfig, command: ImagesCommand) -> Result<bool, UsageError> {
    let store = Store::open(&config.state_dir)?;
    match command {
        ImagesCommand::List => {
            for image in store.list()? {
                print_stdout(&format!("{}  {:>10} bytes", image.digest, image.bytes));
            }
            Ok(true)
        }
        ImagesCommand::Verify { digests: given } => {
            let mut wanted = digests(&given)?;
            if wanted.is_empty() {
                wanted = store.list()?.into_iter().map(|i| i.digest).collect();
            }
            let mut intact = true;
            for digest in wanted {
                match store.verify(&digest) {
                    Ok(_) => print_stdout(&format!("{digest}  ok")),
                    Err(e) => {
                        intact = false;
                        print_stdout(&format!("{digest}  FAILED: {e}"));
                    }
                }
            }
            Ok(intact)
        }
        ImagesCommand::Gc { keep } => {
            let report = engine::gc::collect(config, &digests(&keep)?)?;
            for digest in &report.removed {
                print_stdout(&format!("removed {digest}"));
            }
            for digest in &report.busy {
                print_stdout(&format!("busy, kept {digest}"));
            }
            eprintln!(
                "{} image(s) removed, {} busy, {} interrupted build(s) cleaned, {} kernel(s) no image uses removed",
                report.removed.len(),
                report.busy.len(),
                report.temp_dirs_removed,
                report.kernels_removed
            );
            Ok(true)
        }
    }
}

pub fn run_kernel(command: KernelCommand) -> Result<(), UsageError> {
    let cache = KernelCache::new(&kernel::default_cache_dir()?);
    let show = |k: &kernel::Kernel| {
        print_stdout(&format!("kernel:   {}", if k.given { "given by path" } else { k.record.kind.name() }));
        print_stdout(&format!("release:  {}", k.record.release));
        print_stdout(&format!("package:  {} {}", k.record.package, k.record.package_version));
        print_stdout(&format!("image:    {}", k.image().display()));
        print_stdout(&format!("modules:  {}", k.record.modules.join(" ")));
        if let Some(floor) = k.min_memory_mb() {
            print_stdout(&format!("memory:   {floor} MiB at least"));
        }
    };
    match command {
        KernelCommand::Build { jobs } => {
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
            let started = Instant::now();
            let kernel = cache.build(jobs, &mut |step| eprintln!("{step}"))?;
            eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
            show(&kernel);
        }
        KernelCommand::Config => print_stdout(kernel::config::FRAGMENT.trim_end()),
        KernelCommand::Fetch { package } => {
            let started = Instant::now();
            let kernel = cache.fetch(&package, &mut |step| eprintln!("{step}"))?;
            eprintln!("fetched in {} ms", started.elapsed().as_millis());
            show(&kernel);
        }
        KernelCommand::Show { kernel } => show(&cache.resolve_or_bundled(&kernel)?),
        KernelCommand::List => {
            for kernel in cache.list()? {
                let kind = kernel.record.kind.name();
                print_stdout(&format!("{kind:<13} {:<24} {}", kernel.record.release, kernel.image().display()));
            }
        }
    }
    Ok(())
}
