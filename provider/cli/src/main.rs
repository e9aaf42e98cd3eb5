//! `sdsec`: work on SecTOSCA policies without Terraform.

mod images;
mod instances;
mod render;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use hypervisor::AccelChoice;
use sdsec_cli::docs;
use sectosca::{Compilation, Source};

#[derive(Debug, Parser)]
#[command(
    name = "sdsec",
    version,
    about = "Software-defined security with protected unikernels: compile SecTOSCA policies, build protected images, boot them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Image store and instance records (the provider's `state_dir`; default: XDG state directory).
    #[arg(long, global = true, env = "SDSEC_STATE_DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    at: instances::Where,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check SecTOSCA documents and report every problem; exit 1 if any has errors.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Input values, `name=value`, applied to every document.
        #[arg(long = "input", short = 'i', value_parser = parse_input)]
        inputs: Vec<(String, String)>,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = DiagnosticFormat::Human)]
        format: DiagnosticFormat,
    },
    /// Review a saved Terraform plan: what changes inside each protected unikernel and pool,
    /// and whether it is applied in place or by a replacement, and why.
    Review {
        /// The plan as `terraform show -json PLANFILE` prints it; `-` for standard input.
        plan: PathBuf,
        /// markdown (a pull-request comment) or json.
        #[arg(long, value_enum, default_value_t = ReviewFormat::Markdown)]
        format: ReviewFormat,
        /// Exit 1 (after printing the review) when a resource is to be any of these:
        /// replace, delete, create, update.
        #[arg(long = "fail-on", value_enum, value_delimiter = ',')]
        fail_on: Vec<sdsec_cli::review::Action>,
    },
    /// Generate a reusable Terraform module from a SecTOSCA topology: the policy, one
    /// sdsec_unikernel per Unikernel node (application path and arguments as variables), an
    /// output per endpoint.
    Module {
        file: PathBuf,
        /// The module's directory (created; files in it are replaced).
        #[arg(long, short = 'o')]
        output: PathBuf,
        /// Input values to check the document with, `name=value` (the module takes its own).
        #[arg(long = "input", short = 'i', value_parser = parse_input)]
        inputs: Vec<(String, String)>,
    },
    /// Compile a SecTOSCA document into enforcement plans.
    Compile {
        file: PathBuf,
        /// Input values, `name=value`.
        #[arg(long = "input", short = 'i', value_parser = parse_input)]
        inputs: Vec<(String, String)>,
        /// json: canonical JSON of the plans by node; summary: a short text for review.
        #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
        format: OutputFormat,
        /// Only this node's plan.
        #[arg(long)]
        node: Option<String>,
    },
    /// Write the JSON Schema of SecTOSCA documents (or of enforcement plans, or the TOSCA profile).
    Schema {
        /// Write to this file instead of standard output.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// The schema of enforcement plans instead of documents.
        #[arg(long, conflicts_with = "draft_07")]
        plan: bool,
        /// The documents' schema in JSON Schema draft-07 (for tools without 2020-12).
        #[arg(long = "draft-07", conflicts_with = "tosca_profile")]
        draft_07: bool,
        /// The sdsec types as a TOSCA 1.3 profile (YAML: node, policy and data types).
        #[arg(long = "tosca-profile", conflicts_with = "plan")]
        tosca_profile: bool,
    },
    /// Build (or reuse) the protected image of a node with an application; print its digest and path.
    Build {
        #[command(flatten)]
        image: images::ImageArgs,
    },
    /// Build if needed, boot on QEMU, wait until the runtime serves; print the endpoint.
    Run {
        #[command(flatten)]
        image: images::ImageArgs,
        /// Forward this port on 127.0.0.1 (default: a free one).
        #[arg(long)]
        host_port: Option<u16>,
        /// auto (KVM only on real hardware virtualisation), kvm or tcg.
        #[arg(long, default_value = "auto")]
        accel: AccelChoice,
        /// Seconds to wait for the instance to serve before stopping it.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Start a copy of the image's snapshot instead of booting it (the snapshot is made
        /// first when there is none): each copy gets its own key, randomness, clock and address.
        #[arg(long)]
        snapshot: bool,
    },
    /// Stop instances and remove what they left.
    Stop {
        ids: Vec<String>,
        /// Every instance in the state directory.
        #[arg(long, conflicts_with_all = ["ids", "orphans"])]
        all: bool,
        /// Every orphan: an instance whose creator (a provider, `sdsec run`) was killed
        /// before it completed the instance.
        #[arg(long, conflicts_with = "ids")]
        orphans: bool,
    },
    /// Print the last lines of an instance's console log (kernel, application), or of its audit log.
    Logs {
        id: String,
        /// The runtime's events (audit.log) instead of the console.
        #[arg(long)]
        audit: bool,
        /// How many lines.
        #[arg(long, short = 'n', default_value_t = 50)]
        lines: usize,
    },
    /// List instances and their states (`creating` while being booted, `orphan` when their creator died first).
    Ps,
    /// List, verify or garbage-collect stored images.
    Images {
        #[command(subcommand)]
        command: Option<images::ImagesCommand>,
    },
    /// Build, fetch and show the kernels images boot.
    Kernel {
        #[command(subcommand)]
        command: Option<images::KernelCommand>,
    },
    /// Regenerate the provider's registry documentation from its schemas and examples.
    Docs {
        /// The docs folder to write.
        #[arg(long, default_value = "docs")]
        dir: PathBuf,
        /// The examples folder to read.
        #[arg(long, default_value = "examples")]
        examples: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DiagnosticFormat {
    /// Source snippets and hints on standard error.
    Human,
    /// The diagnostics as a JSON array on standard output.
    Json,
    /// A SARIF 2.1.0 log on standard output (code scanning: one rule per diagnostic code).
    Sarif,
    /// GitHub Actions workflow commands on standard output (annotations on the lines).
    Github,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReviewFormat {
    Markdown,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    Json,
    Summary,
}

fn parse_input(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}` is not name=value"))
}

/// A failure that is not about the documents' content: exit code 2.
#[derive(Debug)]
struct UsageError(String);

/// Any error ends the command with its message. (UsageError is no `Error` itself, so this
/// does not overlap `From<T> for T`.)
impl<E: std::error::Error> From<E> for UsageError {
    fn from(e: E) -> UsageError {
        UsageError(e.to_string())
    }
}

fn read_source(path: &Path) -> Result<Source, UsageError> {
    let text = std::fs::read_to_string(path).map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
    Ok(Source::new(path.display().to_string(), text))
}

fn compile_file(path: &Path, inputs: &[(String, String)]) -> Result<(Source, Compilation), UsageError> {
    let source = read_source(path)?;
    let inputs: BTreeMap<String, String> = inputs.iter().cloned().collect();
    let loader = sdsec_cli::loader::FileLoader::new(None);
    let compilation = sectosca::compile_with(&source, &inputs, &sectosca::Options::default(), &loader);
    Ok((source, compilation))
}

fn run(cli: Cli) -> Result<ExitCode, UsageError> {
    let state_dir = cli.state_dir.unwrap_or_else(engine::config::default_state_dir);
    match cli.command {
        Command::Build { image } => images::run_build(&state_dir, &image).map(|()| ExitCode::SUCCESS),
        Command::Run { image, host_port, accel, timeout, snapshot } => {
            let config = cli.at.config(&state_dir, accel)?;
            instances::run(&config, &image, host_port, std::time::Duration::from_secs(timeout), snapshot)
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Stop { ids, all, orphans } => {
            let config = cli.at.config(&state_dir, AccelChoice::Tcg)?;
            if orphans {
                return instances::stop_orphans(&config).map(|()| ExitCode::SUCCESS);
            }
            if ids.is_empty() && !all {
                return Err(UsageError("name the instances to stop, or --all, or --orphans".into()));
            }
            instances::stop(&config, &ids, all).map(|()| ExitCode::SUCCESS)
        }
        Command::Logs { id, audit, lines } => {
            instances::logs(&cli.at.config(&state_dir, AccelChoice::Tcg)?, &id, audit, lines)
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Ps => instances::ps(&cli.at.config(&state_dir, AccelChoice::Tcg)?).map(|()| ExitCode::SUCCESS),
        Command::Images { command } => {
            let config = cli.at.config(&state_dir, AccelChoice::Tcg)?;
            let intact = images::run_images(&config, command.unwrap_or(images::ImagesCommand::List))?;
            Ok(if intact { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Kernel { command } => {
            images::run_kernel(command.unwrap_or(images::KernelCommand::Show { kernel: Default::default() }))
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Check { files, inputs, format } => {
            let mut failed = false;
            let mut all = Vec::new();
            let mut checked = Vec::new();
            for file in &files {
                let (source, compilation) = compile_file(file, &inputs)?;
                failed |= compilation.has_errors();
                match format {
                    DiagnosticFormat::Human => {
                        render::diagnostics(&compilation.sources, &compilation.diagnostics);
                        let errors = compilation.errors().count();
                        let warnings = compilation.diagnostics.len() - errors;
                        let nodes = compilation.plans.len();
                        if errors == 0 {
                            eprintln!("{}: ok, {nodes} unikernel plan(s), {warnings} warning(s)", source.name);
                        } else {
                            eprintln!("{}: {errors} error(s), {warnings} warning(s)", source.name);
                        }
                    }
                    DiagnosticFormat::Json => all.extend(compilation.diagnostics),
                    DiagnosticFormat::Github => {
                        let annotations = sdsec_cli::report::github(&compilation.sources, &compilation.diagnostics);
                        if !annotations.is_empty() {
                            print_stdout(annotations.trim_end());
                        }
                    }
                    DiagnosticFormat::Sarif => checked.push((compilation.sources, compilation.diagnostics)),
                }
            }
            match format {
                DiagnosticFormat::Json => print_stdout(&serde_json::to_string_pretty(&all).unwrap_or_default()),
                DiagnosticFormat::Sarif => {
                    let root = std::env::current_dir().unwrap_or_default();
                    let log = sdsec_cli::report::sarif(&checked, &root);
                    print_stdout(&serde_json::to_string_pretty(&log).unwrap_or_default());
                }
                DiagnosticFormat::Human | DiagnosticFormat::Github => {}
            }
            Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Review { plan, format, fail_on } => {
            let text = if plan.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).map_err(|e| UsageError(format!("cannot read stdin: {e}")))?
            } else {
                std::fs::read_to_string(&plan)
                    .map_err(|e| UsageError(format!("cannot read {}: {e}", plan.display())))?
            };
            let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                UsageError(format!(
                    "{} is not JSON ({e}); give the output of `terraform show -json PLANFILE`",
                    plan.display()
                ))
            })?;
            let review = sdsec_cli::review::review(&json).map_err(|e| UsageError(e.to_string()))?;
            match format {
                ReviewFormat::Markdown => print_stdout(sdsec_cli::review::markdown(&review).trim_end()),
                ReviewFormat::Json => print_stdout(&serde_json::to_string_pretty(&review).unwrap_or_default()),
            }
            Ok(if review.has_any(&fail_on) { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Module { file, output, inputs } => {
            let (source, compilation) = compile_file(&file, &inputs)?;
            render::diagnostics(&compilation.sources, &compilation.diagnostics);
            if compilation.has_errors() {
                eprintln!("{}: {} error(s); no module written", source.name, compilation.errors().count());
                return Ok(ExitCode::from(1));
            }
            if compilation.plans.is_empty() {
                return Err(UsageError(format!("{} has no sdsec.nodes.Unikernel node template", source.name)));
            }
            // Compiled again as the module's document, so that its imports are named by their
            // paths in the module (read from beside the topology).
            let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let in_module = sectosca::compile_with(
                &Source::new(sdsec_cli::module::DOCUMENT, source.text.to_string()),
                &inputs.iter().cloned().collect(),
                &sectosca::Options::default(),
                &sdsec_cli::loader::FileLoader::new(Some(dir.to_path_buf())),
            );
            let imported = sdsec_cli::module::imported_files(&source.name, &in_module.sources).map_err(UsageError)?;
            std::fs::create_dir_all(&output)
                .map_err(|e| UsageError(format!("cannot create {}: {e}", output.display())))?;
            let name = file.file_name().map_or_else(|| source.name.to_string(), |n| n.to_string_lossy().into_owned());
            let mut files = sdsec_cli::module::files(&compilation.plans, &name);
            files.push((sdsec_cli::module::DOCUMENT.to_owned(), source.text.to_string()));
            files.extend(imported);
            for (name, text) in files {
                let path = output.join(&name);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| UsageError(format!("cannot create {}: {e}", dir.display())))?;
                }
                fsutil::write_atomically_with_mode(&path, text.as_bytes(), 0o644)?;
                eprintln!("wrote {}", output.join(&name).display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Compile { file, inputs, format, node } => {
            let (source, compilation) = compile_file(&file, &inputs)?;
            render::diagnostics(&compilation.sources, &compilation.diagnostics);
            if compilation.has_errors() {
                eprintln!("{}: {} error(s); no plan written", source.name, compilation.errors().count());
                return Ok(ExitCode::from(1));
            }
            let plans: Vec<&::plan::EnforcementPlan> = match &node {
                Some(n) => match compilation.plans.get(n) {
                    Some(p) => vec![p],
                    None => {
                        let names: Vec<&str> = compilation.plans.keys().map(String::as_str).collect();
                        return Err(UsageError(format!(
                            "no unikernel `{n}` in {}; unikernels: {}",
                            source.name,
                            names.join(", ")
                        )));
                    }
                },
                None => compilation.plans.values().collect(),
            };
            match format {
                OutputFormat::Json => match (&node, plans.as_slice()) {
                    (Some(_), [plan]) => print_stdout(&plan.canonical_json()),
                    _ => print_stdout(&compilation.canonical_json()),
                },
                OutputFormat::Summary => {
                    // With --node, the digest of that node's plan; otherwise of all plans.
                    let digest = match (&node, plans.as_slice()) {
                        (Some(_), [plan]) => plan.digest(),
                        _ => compilation.digest(),
                    };
                    print_stdout(sectosca::summary::summarize(plans).trim_end());
                    print_stdout(&format!("digest: {digest}"));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { output, plan, draft_07, tosca_profile } => {
            let schema = match (plan, draft_07, tosca_profile) {
                (true, _, _) => sectosca::schema::plan_schema(),
                (false, true, _) => sectosca::schema::document_schema_draft07(),
                (false, false, true) => sectosca::profile::tosca_profile(),
                (false, false, false) => sectosca::schema::document_schema(),
            };
            match output {
                Some(path) => fsutil::write_atomically_with_mode(&path, schema.as_bytes(), 0o644)?,
                None => print_stdout(schema.trim_end()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Docs { dir, examples } => {
            let pages = docs::generate(&examples)?;
            docs::write(&dir, &pages)?;
            for page in &pages {
                eprintln!("wrote {}", dir.join(&page.path).display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (e.g. `| head`) is not an error worth a panic.
    let _ = writeln!(out, "{text}");
}

// Compiling allocates many small values; mimalloc makes that markedly cheaper than glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(UsageError(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
