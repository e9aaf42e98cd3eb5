//! Network namespaces for tests that change the host's network: every test runs in a
//! namespace of its own (its bridge, routes, nftables and sysctls are that namespace's), so
//! the machine's own network is never touched and tests run in parallel.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Output, Stdio};

/// Set in the re-executed test binary: the test body runs here, inside the namespace.
const INNER: &str = "SDSEC_NETNS_INNER";

/// Runs `body` inside a fresh network namespace: the test binary re-executes itself there
/// with only `test` selected. Skips (saying why) when not root or `ip`/`nft` are missing.
pub fn isolated(test: &str, body: impl FnOnce()) {
    if std::env::var_os(INNER).is_some() {
        body();
        return;
    }
    if let Some(reason) = skip_reason() {
        eprintln!("skipping {test}: {reason}");
        return;
    }
    let namespace = Namespace::new("t");
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("ip")
        .args(["netns", "exec", &namespace.name])
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--include-ignored", "--test-threads=1"])
        .env(INNER, "1")
        .status()
        .unwrap();
    assert!(status.success(), "{test} failed inside network namespace {} ({status})", namespace.name);
}

fn skip_reason() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().nth(1));
    if euid != Some("0") {
        return Some("needs root (network namespaces, bridges, nftables)".into());
    }
    for (tool, package) in [("ip", "iproute2"), ("nft", "nftables"), ("python3", "python3")] {
        let found = Command::new(tool).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
        if !found {
            return Some(format!("`{tool}` is not installed (apt-get install {package})"));
        }
    }
    None
}

/// A network namespace, deleted when dropped (also when the test fails).
#[derive(Debug)]
pub struct Namespace {
    pub name: String,
}

impl Namespace {
    /// A new namespace with its loopback up (`ip netns add` leaves it down).
    pub fn new(role: &str) -> Namespace {
        let name = fsutil::random_id(&format!("sdsec-n{role}-"), 4).unwrap();
        ip(&["netns", "add", &name]);
        let namespace = Namespace { name };
        namespace.ip(&["link", "set", "lo", "up"]);
        namespace
    }

    /// `ip ARGS…` inside the namespace; panics with its stderr when it fails.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `program ARGS…` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// `ip ARGS…` in the current namespace; panics with its stderr when it fails.
pub fn ip(args: &[&str]) -> String {
    checked(Command::new("ip").args(args).output().unwrap(), &format!("ip {}", args.join(" ")))
}

/// `nft ARGS…` in the current namespace; `None` when it fails (e.g. no such table).
pub fn nft(args: &[&str]) -> Option<String> {
    let output = Command::new("nft").args(args).output().unwrap();
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `nft -j --check -f -` of `batch`: the error nft gives, if any.
pub fn nft_check(batch: &serde_json::Value) -> Result<(), String> {
    use std::io::Write as _;
    let mut child = Command::new("nft")
        .args(["-j", "--check", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&serde_json::to_vec(batch).unwrap()).unwrap();
    let output = child.wait_with_output().unwrap();
    if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).into_owned()) }
}

fn checked(output: Output, what: &str) -> String {
    assert!(output.status.success(), "{what}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `ip -j -d link show dev NAME` as JSON, `None` when there is no such device.
pub fn link(name: &str) -> Option<serde_json::Value> {
    let output = Command::new("ip").args(["-j", "-d", "link", "show", "dev", name]).output().unwrap();
    if !output.status.success() {
        return None;
    }
    let links: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    links.get(0).cloned()
}

/// A TCP server in a namespace that answers each connection with the client's address,
/// killed when dropped.
#[derive(Debug)]
pub struct PeerEcho {
    child: Child,
}

const ECHO: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16)
print("ready", flush=True)
while True:
    c, a = s.accept(); c.sendall(a[0].encode()); c.close()
"#;

const CLIENT: &str = r#"
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
    print(c.recv(64).decode())
except OSError as e:
    print("blocked:", e)
"#;

impl PeerEcho {
    pub fn start(namespace: &Namespace, port: u16) -> PeerEcho {
        let mut child =
            namespace.command("python3").args(["-c", ECHO, &port.to_string()]).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "echo server on port {port} in {}", namespace.name);
        PeerEcho { child }
    }
}

impl Drop for PeerEcho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a PeerEcho at `host:port` answers to a client in `namespace` (the current one when
/// `None`): the address it saw, or `blocked: …` when the connection failed.
pub fn ask(namespace: Option<&Namespace>, host: &str, port: u16) -> String {
    let mut command = match namespace {
        Some(namespace) => namespace.command("python3"),
        None => Command::new("python3"),
    };
    let output = command.args(["-c", CLIENT, host, &port.to_string()]).output().unwrap();
    let answer = checked(output, "python3 client").trim().to_owned();
    let from = namespace.map_or("the host", |namespace| namespace.name.as_str());
    eprintln!("{host}:{port} from {from}: {answer}");
    answer
}
