//! Protected images end to end on this machine: image generation cold and from the store,
//! image size, and boot to the first enforced response (QEMU start → the runtime's health
//! path answers → first request served through the runtime), with the accelerator used
//! (KVM only on real hardware virtualisation, otherwise TCG), and QEMU's memory.
//!
//! Needs what `scripts/build.sh` prepares (static runtime and example app, the kernel).
//! `cargo bench -p sdsec-engine --bench boot` (SDSEC_BENCH_BOOTS, default 5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engine::launch::{self, AppSpec};
use hypervisor::{AccelChoice, Hypervisor};
use sdsec_image::Store;

const POLICY: &str = include_str!("../../../examples/quickstart/policy.yaml");

fn static_binary(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/x86_64-unknown-linux-gnu/guest");
    let path = root.join(name);
    assert!(path.is_file(), "{} is missing: run scripts/build.sh first", path.display());
    path
}

fn status(endpoint: SocketAddr, path: &str, token: Option<&str>) -> u16 {
    let mut s = TcpStream::connect(endpoint).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: api\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!("median {:.0} ms (min {:.0}, max {:.0}, n={})", v[v.len() / 2], v[0], v[v.len() - 1], v.len())
}

fn rss_kib(state: &Path, id: &str) -> u64 {
    let pid = std::fs::read_to_string(state.join("instances").join(id).join("qemu.pid")).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn main() {
    let boots: usize = std::env::var("SDSEC_BENCH_BOOTS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let source = sectosca::Source::new("quickstart/policy.yaml", POLICY);
    let compilation = sectosca::compile(&source, &Default::default(), &sectosca::Options::default());
    let plan = compilation.plans.get("api").expect("the quickstart has an `api` node");
    let app = AppSpec {
        path: static_binary("sdsec-example-api"),
        args: vec!["--listen".into(), "0.0.0.0:8080".into()],
        port: None,
    };
    let spec =
        launch::image_spec(plan, &app, &launch::kernel(&Default::default()).unwrap(), &static_binary("sdsec-guest"))
            .unwrap();

    let mut cold = Vec::new();
    for _ in 0..3 {
        let state = tempfile::tempdir().unwrap();
        let t = Instant::now();
        Store::open(state.path()).unwrap().ensure(&spec).unwrap();
        cold.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let state = tempfile::tempdir().unwrap();
    let store = Store::open(state.path()).unwrap();
    let image = store.ensure(&spec).unwrap().image;
    let mut warm = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        store.ensure(&spec).unwrap();
        warm.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let initramfs = std::fs::metadata(&image.initramfs).unwrap().len();
    let kernel = std::fs::metadata(&image.kernel).unwrap().len();

    let qemu = hypervisor::qemu::Qemu::new(state.path(), AccelChoice::Auto).unwrap();
    let (mut ready, mut first, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..boots {
        let boot = launch::boot_spec(&image, plan, Duration::from_secs(300));
        let t = Instant::now();
        let instance = qemu.boot(&boot).unwrap();
        assert_eq!(status(instance.endpoint, "/items", Some("quickstart-token")), 200);
        first.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status(instance.endpoint, "/items", None), 401);
        ready.push(instance.boot_ms as f64);
        rss.push(rss_kib(state.path(), instance.id.as_str()) as f64 / 1024.0);
        qemu.stop(&instance.id, Duration::from_secs(5)).unwrap();
    }
    rss.sort_by(f64::total_cmp);

    println!("protected image (quickstart policy, example API {} bytes)", std::fs::metadata(&app.path).unwrap().len());
    println!("  generation, cold:        {}", stats(cold));
    println!("  generation, from store:  {}", stats(warm));
    println!("  size: initramfs {:.2} MB, kernel {:.2} MB", initramfs as f64 / 1e6, kernel as f64 / 1e6);
    println!("boot on QEMU microvm, accel {} ({} boots)", qemu.accel(), boots);
    println!("  QEMU start → ready (health 200 through the runtime): {}", stats(ready));
    println!("  QEMU start → first authenticated 200:                {}", stats(first));
    println!("  QEMU resident memory after ready: median {:.1} MiB", rss[rss.len() / 2]);
}
