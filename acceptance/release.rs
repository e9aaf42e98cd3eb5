//! The release as a user installs it. `scripts/release.sh` packs dist/ (signed with a
//! throwaway key); `terraform init` installs the zip from a filesystem mirror, with no
//! `dev_overrides`, and the lock file pins the zip's hash; an apply then boots a protected
//! unikernel with nothing but what the zip holds (its runtime and kernel, an empty kernel
//! cache) on a host where libvirt's client library cannot be loaded, and a configuration
//! naming libvirt says what to install. A zip changed behind the lock file is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::harness::{Cli, clis, policy_tf};
use crate::unikernel::{POLICY, TOKEN, processes_of, static_app, status, unikernel_tf};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const SIGNER: &str = "release-test@sdsec.invalid";

#[test]
fn the_release_zip_installs_from_a_mirror_and_runs_with_nothing_else() {
    let cli = &clis()[0];
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("acceptance/release");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let name = format!("terraform-provider-sdsec_{VERSION}");

    // Packed and signed as a release is.
    let gnupg = base.join("gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    // RSA: the only kind (with DSA) the Terraform registry takes.
    let key = ["--batch", "--passphrase", "", "--quick-gen-key", SIGNER, "rsa3072", "sign", "never"];
    ok(Command::new("gpg").args(key).env("GNUPGHOME", &gnupg).output().unwrap(), "gpg --quick-gen-key");
    let dist = base.join("dist");
    let release = Command::new(repo().join("scripts/release.sh"))
        .args(["--no-build", "--out"])
        .arg(&dist)
        .env("SDSEC_SIGNING_KEY", SIGNER)
        .env("GNUPGHOME", &gnupg)
        .output()
        .unwrap();
    ok(release, "scripts/release.sh");
    let zip = dist.join(format!("{name}_linux_amd64.zip"));
    let sums = std::fs::read_to_string(dist.join(format!("{name}_SHA256SUMS"))).unwrap();
    let zip_sum = hex(&Sha256::digest(std::fs::read(&zip).unwrap()));
    assert!(sums.contains(&format!("{zip_sum}  {name}_linux_amd64.zip")), "{sums}");
    assert!(sums.contains(&format!("  {name}_manifest.json")), "{sums}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dist.join(format!("{name}_manifest.json"))).unwrap()).unwrap();
    assert_eq!(manifest["metadata"]["protocol_versions"], serde_json::json!(["6.0"]));
    let verify = Command::new("gpg")
        .args(["--batch", "--verify"])
        .arg(dist.join(format!("{name}_SHA256SUMS.sig")))
        .arg(dist.join(format!("{name}_SHA256SUMS")))
        .env("GNUPGHOME", &gnupg)
        .output()
        .unwrap();
    ok(verify, "gpg --verify of the SHA256SUMS signature");

    // A filesystem mirror in the packed layout, and nothing else to install from.
    let mirror = base.join("mirror");
    let at = mirror.join("registry.terraform.io/sdsec/sdsec");
    std::fs::create_dir_all(&at).unwrap();
    std::fs::copy(&zip, at.join(zip.file_name().unwrap())).unwrap();
    let user = User::new(cli, &base, &mirror, &gnupg);

    let work = base.join("qemu");
    user.write(&work, "qemu", &static_app());
    user.run(&work, &["init", "-input=false"]).success();
    let installed = work.join(format!(".terraform/providers/registry.terraform.io/sdsec/sdsec/{VERSION}/linux_amd64"));
    for file in [format!("terraform-provider-sdsec_v{VERSION}"), "sdsec".into(), "sdsec-guest".into()] {
        assert!(installed.join(&file).is_file(), "{file} is not in the installed provider");
    }
    for file in ["kernel.json", "vmlinux", "config", "COPYING", "SOURCE.md", "source/sdsec.config"] {
        assert!(installed.join("kernels/sdsec").join(file).is_file(), "kernels/sdsec/{file} is not installed");
    }
    let lock = std::fs::read_to_string(work.join(".terraform.lock.hcl")).unwrap();
    let pinned = lock.lines().any(|l| {
        let l: String = l.split_whitespace().collect();
        l == format!("version=\"{VERSION}\"")
    });
    assert!(pinned, "the lock file pins version {VERSION}:\n{lock}");
    let h1 = hash1(&installed);
    assert!(lock.contains(&h1), "the lock file pins the zip's {h1}:\n{lock}");

    // The bundled CLI finds the bundled kernel, as the provider does.
    let show = Command::new(installed.join("sdsec"))
        .args(["kernel", "show"])
        .env("SDSEC_CACHE_DIR", &user.empty_cache)
        .output()
        .unwrap();
    let show = ok(show, "the bundled `sdsec kernel show`");
    assert!(show.contains(&installed.join("kernels").display().to_string()), "{show}");

    user.run(&work, &["apply", "-auto-approve", "-input=false"]).success();
    let endpoint = user.output(&work, "endpoint");
    assert_eq!(status(&endpoint, "/items", None), 401, "the policy refuses a request without a token");
    assert_eq!(status(&endpoint, "/items", Some(TOKEN)), 200, "and serves one with its token");
    let instance = user.output(&work, "instance_id");
    assert!(!processes_of(&instance).is_empty(), "the instance runs");

    // libvirt named: the library's absence is said when it is used, with what to install.
    let libvirt = base.join("libvirt");
    user.write(&libvirt, "libvirt", &static_app());
    user.run(&libvirt, &["init", "-input=false"]).success();
    user.run(&libvirt, &["apply", "-auto-approve", "-input=false"]).failure_with("apt-get install libvirt0");
    if libvirt.join("terraform.tfstate").exists() {
        let listed = user.run(&libvirt, &["state", "list"]).success();
        assert!(listed.stdout.trim().is_empty(), "nothing half-created: {}", listed.stdout);
    }

    user.run(&work, &["destroy", "-auto-approve", "-input=false"]).success();
    assert!(processes_of(&instance).is_empty(), "destroy leaves no QEMU behind");

    // A zip that no longer matches the lock file is refused at install.
    let changed = Command::new("python3")
        .args(["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1], 'a').writestr('extra.txt', 'changed')"])
        .arg(at.join(zip.file_name().unwrap()))
        .output()
        .unwrap();
    ok(changed, "append to the mirrored zip");
    std::fs::remove_dir_all(work.join(".terraform")).unwrap();
    user.run(&work, &["init", "-input=false"]).failure_with("checksum");
}

/// Terraform run as a user of the release: installing from `mirror` only, with an empty
/// kernel cache, and (where libvirt's library is installed) with that library hidden.
/// Dropped during a failure, it destroys what its workspaces created; it always stops the
/// gpg agent of the test's key ring.
struct User {
    cli: Cli,
    config: PathBuf,
    empty_cache: PathBuf,
    /// libvirt's client library, bound over by an empty file in Terraform's mount namespace.
    masked: Option<PathBuf>,
    gnupg: PathBuf,
    workspaces: std::cell::RefCell<Vec<PathBuf>>,
}

impl Drop for User {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for dir in self.workspaces.take() {
                let _ = self.run(&dir, &["destroy", "-auto-approve", "-input=false"]);
            }
        }
        let _ = Command::new("gpgconf").args(["--kill", "gpg-agent"]).env("GNUPGHOME", &self.gnupg).output();
    }
}

impl User {
    fn new(cli: &Cli, base: &Path, mirror: &Path, gnupg: &Path) -> User {
        let config = base.join("cli.tfrc");
        let tfrc = format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"registry.terraform.io/sdsec/sdsec\"]\n  }}\n}}\n",
            mirror.display()
        );
        std::fs::write(&config, tfrc).unwrap();
        let empty_cache = base.join("empty-cache");
        std::fs::create_dir_all(&empty_cache).unwrap();
        let masked = libvirt_library();
        if masked.is_none() {
            // Not masked, the libvirt step would reach the real daemon.
            assert!(
                !Path::new("/usr/lib/x86_64-linux-gnu/libvirt.so.0").exists(),
                "libvirt.so.0 is installed but `ldconfig -p` does not list it: cannot hide it"
            );
        }
        let workspaces = std::cell::RefCell::new(Vec::new());
        User { cli: cli.clone(), config, empty_cache, masked, gnupg: gnupg.to_owned(), workspaces }
    }

    /// A configuration of the provider as published, a policy and a unikernel on `hypervisor`.
    fn write(&self, dir: &Path, hypervisor: &str, app: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        self.workspaces.borrow_mut().push(dir.to_owned());
        let libvirt = if hypervisor == "libvirt" { "\n  libvirt_uri = \"qemu:///system\"" } else { "" };
        let main = format!(
            r#"terraform {{
  required_providers {{
    sdsec = {{
      source  = "sdsec/sdsec"
      version = "{VERSION}"
    }}
  }}
}}

provider "sdsec" {{
  state_dir  = "${{path.module}}/sdsec-state"
  network    = "user"
  hypervisor = "{hypervisor}"{libvirt}
}}

output "endpoint" {{
  value = sdsec_unikernel.api.endpoint
}}

output "instance_id" {{
  value = sdsec_unikernel.api.instance_id
}}
"#
        );
        std::fs::write(dir.join("main.tf"), main + &policy_tf("") + &unikernel_tf("api", app)).unwrap();
        std::fs::write(dir.join("policy.yaml"), POLICY).unwrap();
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Ran {
        let mut command = match &self.masked {
            Some(library) => {
                let mut command = Command::new("unshare");
                command
                    .args([
                        "--mount",
                        "--propagation",
                        "private",
                        "sh",
                        "-c",
                        "mount --bind /dev/null \"$0\" && exec \"$@\"",
                    ])
                    .arg(library)
                    .arg(&self.cli.path);
                command
            }
            None => Command::new(&self.cli.path),
        };
        let output = command
            .args(args)
            .current_dir(dir)
            .env("TF_CLI_CONFIG_FILE", &self.config)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("NO_COLOR", "1")
            .env("SDSEC_CACHE_DIR", &self.empty_cache)
            .env_remove("SDSEC_RUNTIME")
            .env_remove("TF_PLUGIN_CACHE_DIR")
            .env_remove("TF_CLI_ARGS")
            .env_remove("TF_CLI_ARGS_init")
            .env_remove("TF_CLI_ARGS_apply")
            .env_remove("TF_LOG")
            .output()
            .unwrap();
        Ran {
            what: format!("{} {}", self.cli.name, args.join(" ")),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn output(&self, dir: &Path, name: &str) -> String {
        self.run(dir, &["output", "-raw", name]).success().stdout
    }
}

#[derive(Debug)]
struct Ran {
    what: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn success(self) -> Ran {
        assert_eq!(self.code, Some(0), "{} failed:\n{}\n{}", self.what, self.stdout, self.stderr);
        self
    }

    fn failure_with(self, needle: &str) {
        assert_ne!(self.code, Some(0), "{} should have failed:\n{}", self.what, self.stdout);
        let all = format!("{}{}", self.stdout, self.stderr).split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(all.contains(needle), "{} should say {needle:?}:\n{}\n{}", self.what, self.stdout, self.stderr);
    }
}

/// Where the dynamic linker finds `libvirt.so.0`, if it is installed.
fn libvirt_library() -> Option<PathBuf> {
    let out = Command::new("ldconfig").arg("-p").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().find(|l| l.trim_start().starts_with("libvirt.so.0 ") && l.contains("x86-64"))?;
    line.rsplit("=> ").next().map(|p| PathBuf::from(p.trim()))
}

/// Terraform's `h1:` hash of a provider package: the SHA-256 of the sorted lines
/// "<sha256 hex>  <path>\n", one per file, base64-encoded.
fn hash1(dir: &Path) -> String {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                files.push((name, hex(&Sha256::digest(std::fs::read(&path).unwrap()))));
            }
        }
    }
    files.sort();
    let summary: String = files.iter().map(|(name, sum)| format!("{sum}  {name}\n")).collect();
    format!("h1:{}", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(summary.as_bytes())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ok(output: Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{what} failed: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}
