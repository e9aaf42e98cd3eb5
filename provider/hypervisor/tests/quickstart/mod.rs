//! The quickstart's `api` image, built with the `sdsec` CLI, and what boots it; shared by
//! the libvirt tests and the sites bench. Needs the image's parts built (scripts/build.sh):
//! the guest runtime, the example API and the CLI.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hypervisor::BootSpec;

fn target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

fn built(path: PathBuf) -> PathBuf {
    assert!(path.is_file(), "{} is missing: build it first (scripts/build.sh)", path.display());
    path
}

/// The newer of the release and debug CLI: a stale one may lack `build`.
fn cli() -> PathBuf {
    let newest = ["release/sdsec", "debug/sdsec"]
        .into_iter()
        .map(|p| target().join(p))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max();
    built(newest.map_or_else(|| target().join("debug/sdsec"), |(_, p)| p))
}

fn policy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/policy.yaml")
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the quickstart's `api` image into `state` with the CLI and returns what boots it.
pub fn quickstart_spec(state: &Path) -> BootSpec {
    let guest = target().join("x86_64-unknown-linux-gnu/guest");
    built(guest.join("sdsec-guest"));
    let app = built(guest.join("sdsec-example-api"));
    let out = run(Command::new(cli())
        .arg("--state-dir")
        .arg(state)
        .arg("build")
        .arg(policy())
        .args(["--node", "api"])
        .arg("--app")
        .arg(app)
        .args(["--arg", "--listen", "--arg", "0.0.0.0:8080"]));
    let field = |name: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no `{name}` in the output of sdsec build:\n{out}"))
    };
    let (digest, dir) = (field("digest:"), PathBuf::from(field("path:")));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let plan: serde_json::Value =
        serde_json::from_str(&run(Command::new(cli()).arg("compile").arg(policy()).args(["--node", "api"]))).unwrap();
    BootSpec {
        name: "api".into(),
        image_digest: digest,
        // Stored once per digest beside the images, under the digest the manifest names.
        kernel: state
            .join("images/kernels")
            .join(manifest["kernel"]["sha256"].as_str().unwrap().trim_start_matches("sha256:")),
        initramfs: dir.join("initramfs.cpio"),
        cmdline: manifest["cmdline"].as_str().unwrap().to_owned(),
        memory_mb: 128,
        vcpus: 1,
        tcg_cache_mb: 16,
        merge_memory: true,
        guest_port: abi::net::runtime_port(manifest["application"]["port"].as_u64().unwrap() as u16),
        health_path: plan["runtime"]["firewall"]["http"]["health_path"].as_str().unwrap().to_owned(),
        nic: hypervisor::Nic::User { host_port: None, restrict_egress: true },
        probe: hypervisor::Probe::default(),
        ready_timeout: Duration::from_secs(90),
        metadata: serde_json::json!({"resource": "sdsec_unikernel.api"}),
        control: Some(hypervisor::ControlBoot { key: abi::control::Key::generate().unwrap() }),
        restore: None,
    }
}

/// The status of `GET path`, with a bearer token when given.
pub fn status(addr: SocketAddr, path: &str, token: Option<&str>) -> u16 {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.get(9..12).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("not HTTP: {answer:?}"))
}
