//! What the tests that boot images through `sdsec` share: the static builds, the command on
//! QEMU's user network, and reading its output.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, dead_code)]

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The static builds beside the host build of this profile.
pub fn static_binary(name: &str) -> PathBuf {
    let sdsec = PathBuf::from(env!("CARGO_BIN_EXE_sdsec"));
    let profile_dir = sdsec.parent().unwrap();
    let path = profile_dir.parent().unwrap().join("x86_64-unknown-linux-gnu/guest").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build.sh first (static runtime, example app, kernel)",
        path.display()
    );
    path
}

/// `sdsec` on QEMU's user network: tests send traffic only to loopback or into network
/// namespaces they create (the acceptance tests cover the bridge, in namespaces).
pub fn sdsec<S: AsRef<OsStr>>(state: &Path, args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sdsec"))
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .env("NO_COLOR", "1")
        .env("SDSEC_NETWORK", "user")
        .output()
        .expect("run sdsec")
}

/// Standard output of a command that must have succeeded.
pub fn ok(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "sdsec failed ({}):\n{stderr}", output.status);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The value of a `name: value` line of `sdsec run`'s output.
pub fn field<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim_start_matches(':').trim()))
        .unwrap_or_else(|| panic!("no `{name}` in:\n{stdout}"))
}

/// The quickstart's policy and its principal's token.
pub const QUICKSTART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/quickstart/policy.yaml");
pub const QUICKSTART_TOKEN: &str = "quickstart-token";

/// The status of `GET /items` at `endpoint`, with `token` as a bearer token if given.
pub fn items_status(endpoint: SocketAddr, token: Option<&str>) -> u16 {
    let mut s = TcpStream::connect(endpoint).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET /items HTTP/1.1\r\nHost: api\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}
