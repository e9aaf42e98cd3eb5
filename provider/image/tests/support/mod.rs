//! Fixtures shared by the store tests and the bench: a static executable compiled once with
//! the installed rustc, a fake kernel with a bzImage header, fake modules and a real plan.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sdsec_image::{Application, ImageSpec, Module};

const PROGRAM: &str = r#"
use std::io::{Read, Write};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listener = std::net::TcpListener::bind(args.get(1).map(String::as_str).unwrap_or("127.0.0.1:8080")).unwrap();
    for stream in listener.incoming().flatten() {
        let mut stream = stream;
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}");
    }
}
"#;

/// A static-pie x86-64 executable (a tiny HTTP server), built once per test process.
pub fn static_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("static-app");
        std::fs::create_dir_all(&dir).unwrap();
        // Built under a name of this process, then renamed: test binaries may run at once.
        let (source, built, out) = (
            dir.join(format!("app-{}.rs", std::process::id())),
            dir.join(format!("app-{}", std::process::id())),
            dir.join("app"),
        );
        std::fs::write(&source, PROGRAM).unwrap();
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
        let status = Command::new(rustc)
            .args(["-O", "-C", "target-feature=+crt-static", "-C", "strip=debuginfo", "--edition", "2021", "-o"])
            .arg(&built)
            .arg(&source)
            .status()
            .expect("rustc runs");
        assert!(status.success(), "rustc could not build a static executable (is libc6-dev installed?)");
        std::fs::rename(&built, &out).unwrap();
        let _ = std::fs::remove_file(&source);
        out
    })
}

/// Writes a copy of the static binary with `marker` appended (trailing bytes leave the ELF
/// valid and make a distinct file).
pub fn static_copy(path: &Path, marker: &str) {
    let mut bytes = std::fs::read(static_binary()).unwrap();
    bytes.extend_from_slice(marker.as_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// A fake bzImage: the `HdrS` boot-protocol magic at 0x202 and `len` bytes of filler.
pub fn fake_kernel(path: &Path, len: usize, seed: u8) {
    let mut bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
    bytes[0x202..0x206].copy_from_slice(b"HdrS");
    std::fs::write(path, bytes).unwrap();
}

/// The plan of `api` in `tests/policies/policy.yaml`, as the compiler gave it (sectosca's
/// golden test keeps `policy.plans.json` current).
pub fn plan() -> plan::EnforcementPlan {
    let plans: std::collections::BTreeMap<String, plan::EnforcementPlan> =
        serde_json::from_str(include_str!("../policies/policy.plans.json")).unwrap();
    plans["api"].clone()
}

/// A spec whose files live in `dir`.
pub fn spec_in(dir: &Path) -> ImageSpec {
    let (app, runtime, kernel) = (dir.join("api"), dir.join("sdsec-guest"), dir.join("vmlinuz"));
    static_copy(&app, "app");
    static_copy(&runtime, "runtime");
    fake_kernel(&kernel, 1 << 20, 1);
    let mut modules = Vec::new();
    for name in ["failover", "net_failover", "virtio_net"] {
        let host = dir.join(format!("{name}.ko"));
        std::fs::write(&host, format!("module {name}")).unwrap();
        let image_path = format!("/lib/modules/6.1.0-test/kernel/drivers/net/{name}.ko");
        modules.push(Module { image_path, host_path: host });
    }
    let args = vec!["0.0.0.0:8080".to_owned(), "two words".to_owned()];
    let mut spec = ImageSpec::new(plan(), Application { name: "api".into(), path: app, args }, runtime, kernel);
    spec.modules = modules;
    spec
}
