//! `sdsec_unikernel` through its whole life on a real hypervisor: create, requests through
//! the endpoint (refused without a token, served with one, audited), no-op plan, a new
//! principal applied in place over the control channel (same instance, not rebooted), an instance killed by hand and one whose
//! stored image was corrupted (both re-created), import, destroy leaving nothing behind,
//! and bad inputs refused at plan time; `provider::sdsec::policy_digest` agrees with the
//! applied policy. On the embedded QEMU backend and on libvirt, with the first Terraform CLI
//! of the matrix (each step boots a VM), and on QEMU with the oldest supported Terraform.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use abi::event::Event;

use crate::harness::{Cli, Workspace, clis, oldest_cli, policy_tf, provider_dir, provider_tf};

pub(crate) const POLICY: &str = include_str!("../examples/quickstart/policy.yaml");
pub(crate) const TOKEN: &str = "quickstart-token";
/// A second principal, added by the policy change: token "acceptance-token".
pub(crate) const NEW_PRINCIPAL: &str = r#"            - name: ci
              token_sha256: "04493522e221280ef9b4f4dec4d42a835b39e95aa2f28ce41fcd18b21f95058c"
              roles: [reader]
"#;

pub(crate) fn static_app() -> PathBuf {
    let path = provider_dir().parent().unwrap().join("x86_64-unknown-linux-gnu/guest/sdsec-example-api");
    assert!(path.is_file(), "{} is missing: run scripts/build.sh", path.display());
    path
}

fn main_tf(backend: &str, app: &Path, trust: &str) -> String {
    let hypervisor = match backend {
        "libvirt" => "hypervisor  = \"libvirt\"\n  libvirt_uri = \"qemu:///system\"",
        _ => "hypervisor = \"qemu\"",
    };
    provider_tf(&format!("  {hypervisor}\n  trust     = \"{trust}\"\n"))
        + &policy_tf("")
        + &unikernel_tf("api", app)
        + FUNCTION_DIGEST
}

/// A provider-defined function (Terraform 1.8 and later) beside the resources.
const FUNCTION_DIGEST: &str = r#"
output "function_digest" {
  value = provider::sdsec::policy_digest(file("${path.module}/policy.yaml"))
}
"#;

/// `sdsec_unikernel.<name>`: the example API under the policy's `api` plan.
pub(crate) fn unikernel_tf(name: &str, app: &Path) -> String {
    format!(
        r#"
resource "sdsec_unikernel" "{name}" {{
  name        = "{name}"
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = {{
    path = "{}"
    args = ["--listen", "0.0.0.0:8080"]
    port = 8080
  }}
}}
"#,
        app.display()
    )
}

pub(crate) fn status(endpoint: &str, path: &str, token: Option<&str>) -> u16 {
    let out = response(endpoint, path, token);
    out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("bad answer {out:?}"))
}

/// The whole HTTP response to `GET path`.
pub(crate) fn response(endpoint: &str, path: &str, token: Option<&str>) -> String {
    let addr = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: api\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Processes whose command line names the instance (its QEMU, under either backend).
pub(crate) fn processes_of(instance: &str) -> Vec<u32> {
    let procs = std::fs::read_dir("/proc").unwrap().flatten();
    procs
        .filter_map(|p| {
            let pid: u32 = p.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(p.path().join("cmdline")).ok()?;
            let stat = std::fs::read_to_string(p.path().join("stat")).ok()?;
            let zombie = stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            (!zombie && String::from_utf8_lossy(&cmdline).contains(instance)).then_some(pid)
        })
        .collect()
}

/// The instance's audit log (the runtime's events), its rotated previous file first: in the
/// state directory under the QEMU backend; under libvirt a volume of sdsec's default storage
/// pool, on the system daemon (this host's) or on a test's own daemon ([`crate::netns::Libvirtd`],
/// whose /var/lib/libvirt is a directory of this process under the temporary directory).
pub(crate) fn audit_log(state_dir: &Path, instance: &str) -> String {
    let volume = format!("sdsec-{instance}.audit.log");
    let pool = hypervisor::DEFAULT_LIBVIRT_POOL;
    let mut logs = vec![state_dir.join("instances").join(instance).join("audit.log")];
    let system = std::process::Command::new("virsh")
        .args(["-c", "qemu:///system", "vol-path", "--pool", pool, &volume])
        .output();
    if let Some(out) = system.as_ref().ok().filter(|o| o.status.success()) {
        logs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    let own = format!("sdsec-libvirtd-{}-", std::process::id());
    // The pool's directory is where the daemon's definition of it says (a copy of the
    // host's /etc/libvirt may bring an older one): looked for one and two levels down.
    for daemon in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
        if daemon.file_name().to_string_lossy().starts_with(&own) {
            let lib = daemon.path().join("lib");
            for dir in std::fs::read_dir(&lib).into_iter().flatten().flatten() {
                logs.push(dir.path().join(&volume));
                logs.extend(
                    std::fs::read_dir(dir.path()).into_iter().flatten().flatten().map(|d| d.path().join(&volume)),
                );
            }
        }
    }
    for log in &logs {
        if let Ok(text) = std::fs::read_to_string(log) {
            let previous = std::fs::read_to_string(hypervisor::logs::previous(log)).unwrap_or_default();
            return previous + &text;
        }
    }
    panic!("no audit log for {instance}: looked at {logs:?}")
}

/// Destroys what a failed test applied, so no VM outlives it.
pub(crate) struct DestroyOnPanic<'a> {
    pub ws: &'a Workspace,
    pub vars: Vec<String>,
}

impl Drop for DestroyOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut args = vec!["destroy", "-auto-approve", "-no-color"];
            args.extend(self.vars.iter().map(String::as_str));
            let _ = self.ws.run(&args);
        }
    }
}

fn attr(ws: &Workspace, name: &str) -> String {
    ws.attributes("sdsec_unikernel.api")[name].as_str().unwrap_or_default().to_owned()
}

fn lifecycle(backend: &str, cli: &Cli) {
    let ws = Workspace::new(cli, &format!("unikernel-{backend}"));
    let state_dir = ws.dir.join("sdsec-state");
    let app = static_app();
    let _cleanup = DestroyOnPanic { ws: &ws, vars: Vec::new() };

    // Bad inputs, refused at plan time.
    ws.write("policy.yaml", POLICY);
    ws.write("main.tf", &main_tf(backend, Path::new("/bin/true"), "shared"));
    ws.run(&["plan", "-no-color"]).failure().contains("static");
    ws.write("main.tf", &main_tf(backend, Path::new("/nonexistent/api"), "shared"));
    ws.run(&["plan", "-no-color"]).failure().contains("/nonexistent/api");
    let isolated = POLICY.replace(
        "  policies:\n",
        "  policies:\n    - iso: { type: sdsec.policies.Isolation, targets: [api], properties: { min_trust: trusted } }\n",
    );
    ws.write("policy.yaml", &isolated);
    ws.write("main.tf", &main_tf(backend, &app, "shared"));
    ws.run(&["plan", "-no-color"])
        .failure()
        .contains("Placement requirement not met")
        .contains("at least as `trusted`");
    ws.write("policy.yaml", POLICY);
    ws.write("main.tf", &main_tf(backend, &app, "shared").replace("enforcement[\"api\"]", "enforcement[\"nope\"]"));
    ws.run(&["plan", "-no-color"]).failure().contains("Invalid index");
    if backend == "libvirt" {
        let unreachable =
            main_tf(backend, &app, "shared").replace("qemu:///system", "qemu+unix:///system?socket=/nonexistent");
        ws.write("main.tf", &unreachable);
        ws.run(&["plan", "-no-color"]).failure().contains("cannot connect to libvirt").contains("/nonexistent");
    }
    ws.write("main.tf", &main_tf(backend, &app, "shared"));

    // Create, and the policy is enforced through the endpoint.
    ws.write("policy.yaml", POLICY);
    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    let (first, endpoint) = (attr(&ws, "instance_id"), attr(&ws, "endpoint"));
    assert_eq!(attr(&ws, "state"), "running");
    assert_eq!(status(&endpoint, "/items", None), 401);
    assert_eq!(status(&endpoint, "/items", Some(TOKEN)), 200);
    assert!(Event::scan(&audit_log(&state_dir, &first)).any(|e| matches!(e, Event::AuthnFailure(_))));
    let function_digest = ws.run(&["output", "-raw", "function_digest"]).success().stdout();
    assert_eq!(function_digest, ws.attributes("sdsec_security_policy.api")["digest"].as_str().unwrap());
    ws.run(&["plan", "-detailed-exitcode", "-no-color"]).exit_code(0);

    // A new principal: a runtime change, applied in place over the control channel.
    let changed = POLICY.replace(
        "              roles: [deployer, reader]\n",
        &format!("              roles: [deployer, reader]\n{NEW_PRINCIPAL}"),
    );
    assert_ne!(changed, POLICY);
    ws.write("policy.yaml", &changed);
    let before = attr(&ws, "enforcement_digest");
    ws.run(&["plan", "-no-color"]).success().contains("updated in-place").lacks("forces replacement");
    // `sdsec review` of the saved plan says so, and names the principal.
    let (code, review) = review_plan(&ws, &["--fail-on", "replace,delete"]);
    assert_eq!(code, Some(0), "{review}");
    assert!(review.contains("### `sdsec_unikernel.api`: update in place"), "{review}");
    assert!(review.contains("- **Principals**: + `ci` (roles: reader)"), "{review}");
    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    let second = attr(&ws, "instance_id");
    assert_eq!(second, first, "updated in place, not replaced");
    assert_ne!(attr(&ws, "enforcement_digest"), before);
    assert_eq!(status(&endpoint, "/items", Some("acceptance-token")), 200, "the new principal is accepted");
    assert_eq!(status(&endpoint, "/items", Some(TOKEN)), 200);
    let log = audit_log(&state_dir, &first);
    let ready = Event::scan(&log).filter(|e| matches!(e, Event::Ready { .. })).count();
    assert_eq!(ready, 1, "not rebooted: {log}");
    assert!(Event::scan(&log).any(|e| matches!(e, Event::Reconfigured { .. })), "{log}");
    ws.run(&["plan", "-detailed-exitcode", "-no-color"]).exit_code(0);

    // Killed by hand: refresh drops it, the next apply creates it again.
    for pid in processes_of(&second) {
        let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    std::thread::sleep(Duration::from_millis(500));
    ws.run(&["plan", "-detailed-exitcode", "-no-color"]).exit_code(2).contains("will be created");
    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    let third = attr(&ws, "instance_id");
    assert_eq!(status(&attr(&ws, "endpoint"), "/items", Some(TOKEN)), 200);

    // A corrupted image in the store: reported, and the instance replaced.
    let digest = attr(&ws, "image_digest");
    let initramfs = state_dir.join("images").join(digest.trim_start_matches("sha256:")).join("initramfs.cpio");
    let mut bytes = std::fs::read(&initramfs).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&initramfs, bytes).unwrap();
    ws.run(&["plan", "-no-color"]).success().contains("failed verification").contains("forces replacement");
    let (code, review) = review_plan(&ws, &["--fail-on", "replace"]);
    assert_eq!(code, Some(1), "a replacement fails the gate: {review}");
    assert!(review.contains("`sdsec_unikernel.api`: **replace**"), "{review}");
    assert!(review.contains("Why: its image failed verification"), "{review}");
    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    let fourth = attr(&ws, "instance_id");
    assert_ne!(fourth, third);
    assert_eq!(attr(&ws, "image_status"), "verified");

    // Import by instance id: the next plan is empty.
    ws.run(&["state", "rm", "sdsec_unikernel.api"]).success();
    ws.run(&["import", "-no-color", "sdsec_unikernel.api", &fourth]).success();
    ws.run(&["plan", "-detailed-exitcode", "-no-color"]).exit_code(0);

    // Destroy leaves no process, no domain and no instance files.
    ws.run(&["destroy", "-auto-approve", "-no-color"]).success();
    for id in [&first, &third, &fourth] {
        assert!(processes_of(id).is_empty(), "{id} still runs after destroy");
    }
    for dir in [state_dir.join("instances"), state_dir.join("libvirt/instances")] {
        let left: Vec<_> = std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

fn newest() -> Cli {
    clis().into_iter().next().expect("a Terraform CLI")
}

#[test]
fn unikernel_lifecycle_on_qemu() {
    lifecycle("qemu", &newest());
}

#[test]
fn unikernel_lifecycle_on_libvirt() {
    lifecycle("libvirt", &newest());
}

/// The same lifecycle under the oldest Terraform the provider supports (1.8, installed by
/// scripts/setup.sh): its plugin protocol, plan rendering, `-detailed-exitcode`, import, plan
/// JSON for `sdsec review` and provider-defined functions. Fails under CI when it is missing.
#[test]
fn unikernel_lifecycle_on_qemu_with_the_oldest_terraform() {
    if let Some(cli) = oldest_cli() {
        lifecycle("qemu", &cli);
    }
}

/// examples/multi-site: one module on two sites, QEMU here and, for the Lyon host, a libvirt
/// daemon that shares nothing with this one ([`crate::remote_host`]: its own network,
/// mount and PID namespaces, reached over TLS at its own address). Placement is checked per
/// provider at plan time; both sites serve after apply; destroy removes both, and leaves no
/// domain and no log volume on the remote daemon.
#[test]
fn multi_site_example_applies_on_both_sites() {
    let cli = clis().into_iter().next().expect("a Terraform CLI");
    let ws = Workspace::new(&cli, "multi-site");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/multi-site");
    for file in ["main.tf", "policy.yaml", "modules/api/main.tf"] {
        // On the user network: tests send traffic only to loopback or into namespaces they
        // create (the networking tests cover the bridge).
        let text = std::fs::read_to_string(example.join(file)).unwrap();
        // Each site's API also fetches its first peer's health (the example API's `--fetch`),
        // so the test sees the flow across the sites.
        let fetch = "concat([\"--listen\", \"0.0.0.0:8080\"], flatten([for url in values(var.peers) : [\"--fetch\", \"${url}/health\"]]))";
        let text = text.replace("args = [\"--listen\", \"0.0.0.0:8080\"]", &format!("args = {fetch}"));
        ws.write(file, &text.replace("default     = \"auto\"", "default     = \"user\""));
    }
    assert!(std::fs::read_to_string(ws.dir.join("modules/api/main.tf")).unwrap().contains("--fetch"));
    let written = std::fs::read_to_string(ws.dir.join("main.tf")).unwrap();
    assert!(written.contains("default     = \"user\""), "the example's `network` variable moved: {written}");
    let app = format!("app_path={}", static_app().display());
    let lyon = crate::remote_host::RemoteHost::start(50);
    let uri = format!("lyon_libvirt_uri={}", lyon.uri);
    let vars = ["-var", &app, "-var", &uri];
    let _cleanup = DestroyOnPanic { ws: &ws, vars: vars.iter().map(|v| v.to_string()).collect() };
    // Local modules only: `get` installs them without touching providers.
    ws.run(&["get", "-no-color"]).success();

    // The Lyon node on the Paris provider: refused before anything runs.
    let main = std::fs::read_to_string(ws.dir.join("main.tf")).unwrap();
    ws.write("main.tf", &main.replace("node      = \"api-lyon\"", "node      = \"api-paris\""));
    ws.run(&[&["plan", "-no-color"][..], &vars].concat())
        .failure()
        .contains("Placement requirement not met")
        .contains("at site `paris`, but this provider's hypervisor is at site `lyon`");

    ws.write("main.tf", &main);
    ws.run(&[&["apply", "-auto-approve", "-no-color"][..], &vars].concat()).success();
    let outputs = ws.run(&["output", "-json", "endpoints"]).success().stdout();
    let endpoints: serde_json::Value = serde_json::from_str(&outputs).unwrap();
    for site in ["paris", "lyon"] {
        let endpoint = endpoints[site].as_str().unwrap();
        assert_eq!(status(endpoint, "/items", None), 401, "{site}");
        assert_eq!(status(endpoint, "/items", Some(TOKEN)), 200, "{site}");
    }
    // Paris's node connects_to Lyon's, whose endpoint is Paris's peer: the flow works
    // across the sites, and Lyon's own policy still decides (Paris's API sends no token: 401
    // from Lyon's runtime, where a refused connection would be a 502).
    let fetched = response(endpoints["paris"].as_str().unwrap(), "/fetch", Some(TOKEN));
    assert!(fetched.contains("\"upstream_status\":401"), "Paris → Lyon: {fetched}");
    // The Lyon daemon's copy of what it boots, changed behind sdsec's back: the next plan
    // says so and replaces the instance, which boots from a copy uploaded again.
    let volumes = lyon.var_lib.join("sdsec-pools").join(hypervisor::DEFAULT_LIBVIRT_POOL);
    for volume in std::fs::read_dir(&volumes).unwrap().flatten() {
        if volume.file_name().to_string_lossy().starts_with("sha256-") {
            let mut bytes = std::fs::read(volume.path()).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x20;
            std::fs::write(volume.path(), bytes).unwrap();
        }
    }
    ws.run(&[&["plan", "-no-color"][..], &vars].concat())
        .success()
        .contains("no longer matches its digest")
        .contains("forces replacement");
    ws.run(&[&["apply", "-auto-approve", "-no-color"][..], &vars].concat()).success();
    let outputs = ws.run(&["output", "-json", "endpoints"]).success().stdout();
    let endpoints: serde_json::Value = serde_json::from_str(&outputs).unwrap();
    assert_eq!(status(endpoints["lyon"].as_str().unwrap(), "/items", Some(TOKEN)), 200);
    ws.run(&[&["plan", "-detailed-exitcode", "-no-color"][..], &vars].concat()).exit_code(0);

    let lyon_endpoint = endpoints["lyon"].as_str().unwrap();
    assert!(lyon_endpoint.contains(lyon.uri.split('/').nth(2).unwrap()), "at the Lyon host's address: {lyon_endpoint}");
    ws.run(&[&["destroy", "-auto-approve", "-no-color"][..], &vars].concat()).success();
    for state in ["state-paris/instances", "state-lyon/libvirt/instances"] {
        let left: Vec<_> =
            std::fs::read_dir(ws.dir.join(state)).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
    let virsh = |args: &[&str]| {
        let out = std::process::Command::new("virsh").args(["-c", &lyon.uri]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(virsh(&["list", "--all", "--name"]).trim().is_empty(), "a domain is left on the Lyon host");
    let volumes = virsh(&["vol-list", hypervisor::DEFAULT_LIBVIRT_POOL]);
    assert!(!volumes.contains(".log"), "logs left on the Lyon host: {volumes}");
}

/// `sdsec review` (with `args`) of the workspace's plan, saved and shown as JSON by the
/// Terraform CLI: its exit code and Markdown.
fn review_plan(ws: &Workspace, args: &[&str]) -> (Option<i32>, String) {
    ws.run(&["plan", "-out=review.tfplan", "-no-color"]).success();
    let json = ws.run(&["show", "-json", "review.tfplan"]).success().stdout();
    let path = ws.dir.join("review.json");
    std::fs::write(&path, json).unwrap();
    let sdsec = provider_dir().join("sdsec");
    let out = std::process::Command::new(&sdsec).arg("review").arg(&path).args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}
