//! Protected images on this machine, sdsec's own kernel beside Debian's cloud kernel, every
//! figure with its baseline from the same run (the machine is shared and noisy):
//!
//! 1. boot to serving: QEMU start → ready (the runtime's health path answers through the
//!    runtime) and QEMU start → first `GET /items` served through the runtime with the
//!    quickstart token; the kernels alternate boot by boot; median (min–max) and the ratio
//!    sdsec/debian of the medians (issue 14's goal: ≤ 0.4);
//! 2. image generation: a cold build (fresh store, the kernel copied in), a cold build of a
//!    new image whose kernel is already stored, and the image from the store
//!    (`Store::ensure` of a stored image, i.e. its verification) — first in this process, at
//!    least 2 s after the build (full verification: a new process always pays this), then
//!    again (memoised: files unchanged since verified), each with its ratio to the cold
//!    build (goal: ≤ 1/10);
//! 3. sizes: the kernel file, the initramfs, the image directory (without the kernel, which
//!    the store keeps once per digest);
//! 4. memory (the first kernel of SDSEC_BENCH_KERNELS in full, the others as baselines):
//!    mean PSS (`/proc/<qemu>/smaps_rollup`) and RSS per QEMU with 1, 5 and 20
//!    instances of sdsec's kernel running at once (the quickstart's memory_mb, and 1 and 5 at
//!    the kernel's minimum), and 1 and 5 of Debian's; 1 and 5 of sdsec's with the quickstart
//!    at hardening `baseline` (no `init_on_free=1`, which makes all guest RAM resident; its
//!    guests' memory is offered to KSM), and with those 5, PSS again once KSM has settled
//!    (at least 3 full scans, the last adding under 2% of the pages shared;
//!    `/sys/kernel/mm/ksm/run` restored afterwards). Goal: ≤ 64 MiB PSS per instance with 5
//!    running. Instances boot one after the other, each to ready; one QEMU's PSS is split
//!    by mapping.
//!
//! 5. in a guest ([`in_guest`]): requests/s and latency of one instance of the quickstart
//!    (its rate limit out of reach) through its runtime, against the same instance's
//!    application reached directly through a second forward of its user network, the two
//!    in alternation; the ratio runtime/bare.
//!
//! Quickstart policy and the example API, QEMU `microvm` with its user network (127.0.0.1
//! only), KVM if usable, otherwise TCG. Every instance the benchmark booted is stopped at
//! the end, also when it panics.
//!
//! Needs what `scripts/build.sh` prepares: the static runtime and example app in
//! `target/x86_64-unknown-linux-gnu/guest/` and both kernels in the kernel cache
//! (`sdsec kernel build`, `sdsec kernel fetch`).
//!
//! `cargo bench -p sdsec-engine --bench boot`; SDSEC_BENCH_BOOTS (boots per kernel, 5),
//! SDSEC_BENCH_KERNELS (comma-separated, `sdsec,debian-cloud`; a path works too),
//! SDSEC_BENCH_INSTANCES (sdsec's instance counts, `1,5,20`), SDSEC_BENCH_SETTLE_S (wait
//! before reading memory, 5), SDSEC_BENCH_MEMORY=0 skips part 4, SDSEC_BENCH_SNAPSHOT=0 the snapshot starts ([`snapshot`]),
//! SDSEC_BENCH_GUEST=0 part 5 (SDSEC_BENCH_GUEST_SECONDS per path and round, 3;
//! SDSEC_BENCH_GUEST_ROUNDS, 2; SDSEC_BENCH_GUEST_CONNECTIONS, 8),
//! SDSEC_BENCH_JSON=<path> also writes the figures there as JSON ([`summary`]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod in_guest;
mod memory;
mod snapshot;
mod summary;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engine::launch::{self, AppSpec};
use hypervisor::qemu::Qemu;
use hypervisor::{AccelChoice, BootSpec, Hypervisor, Instance, InstanceId};
use sdsec_image::kernel::{Kernel, KernelChoice};
use sdsec_image::{ImageSpec, Outcome, Store};
use serde_json::json;
use summary::Summary;

const POLICY: &str = include_str!("../../../../examples/quickstart/policy.yaml");
const TOKEN: &str = "quickstart-token";
/// Generous: the 20th instance boots beside 19 others on 2 emulated-CPU cores.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const GRACE: Duration = Duration::from_secs(5);
const COLD_BUILDS: usize = 3;
const STORE_CHECKS: usize = 5;

fn static_binary(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/x86_64-unknown-linux-gnu/guest");
    let path = root.join(name);
    assert!(path.is_file(), "{} is missing: run scripts/build.sh first", path.display());
    path
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn status(endpoint: SocketAddr, path: &str, token: Option<&str>) -> u16 {
    let mut s = TcpStream::connect(endpoint).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: api\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `median (min–max)`.
fn spread(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.len() == 1 { format!("{:.0}", v[0]) } else { format!("{:.0} ({:.0}–{:.0})", median(v), min, max) }
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn dir_bytes(dir: &Path) -> u64 {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    entries
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some(if meta.is_dir() { dir_bytes(&e.path()) } else { meta.len() })
        })
        .sum()
}

/// The instances the benchmark booted and has not stopped yet: all stopped through the
/// hypervisor on drop, also when a part panics.
#[derive(Debug)]
pub struct Running<'q> {
    qemu: &'q Qemu,
    ids: Vec<InstanceId>,
}

impl<'q> Running<'q> {
    fn new(qemu: &'q Qemu) -> Self {
        Running { qemu, ids: Vec::new() }
    }

    /// Boots `spec` to ready and checks that it serves with the token.
    pub fn boot(&mut self, spec: &BootSpec) -> Instance {
        self.try_boot(spec).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Running::boot`], for a part that reports its failure rather than end the benchmark.
    pub fn try_boot(&mut self, spec: &BootSpec) -> Result<Instance, String> {
        let instance = self.qemu.boot(spec).map_err(|e| format!("boot of {} failed: {e}", spec.name))?;
        self.ids.push(instance.id.clone());
        Ok(instance)
    }

    pub fn count(&self) -> usize {
        self.ids.len()
    }

    pub fn ids(&self) -> &[InstanceId] {
        &self.ids
    }

    pub fn stop_all(&mut self) {
        for id in self.ids.drain(..) {
            self.qemu.stop(&id, GRACE).unwrap_or_else(|e| eprintln!("cannot stop {id}: {e}"));
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// One kernel under test.
struct Subject {
    label: String,
    kernel: Kernel,
    spec: ImageSpec,
    boot: Option<BootSpec>,
    cold: Vec<f64>,
    cold_kernel_stored: Vec<f64>,
    verified: Vec<f64>,
    memoised: Vec<f64>,
    ready: Vec<f64>,
    serving: Vec<f64>,
    sizes: [u64; 3],
}

fn subjects(plan: &plan::EnforcementPlan, app: &AppSpec, runtime: &Path) -> Vec<Subject> {
    let names = std::env::var("SDSEC_BENCH_KERNELS").unwrap_or_else(|_| "sdsec,debian-cloud".into());
    let names = names.split(',').map(str::trim).filter(|n| !n.is_empty());
    names
        .map(|label| {
            let kernel = launch::kernel(&KernelChoice::parse(label)).unwrap_or_else(|e| {
                panic!("kernel {label}: {e}\n(`sdsec kernel build` / `sdsec kernel fetch`, or pick kernels with SDSEC_BENCH_KERNELS=debian-cloud)")
            });
            let spec = launch::image_spec(plan, app, &kernel, runtime).unwrap();
            Subject {
                label: label.to_owned(),
                kernel,
                spec,
                boot: None,
                cold: Vec::new(),
                cold_kernel_stored: Vec::new(),
                verified: Vec::new(),
                memoised: Vec::new(),
                ready: Vec::new(),
                serving: Vec::new(),
                sizes: [0; 3],
            }
        })
        .collect()
}

/// Part 2 and 3 for one kernel; leaves its image in the store under `state`.
fn generation(s: &mut Subject, state: &Path, plan: &plan::EnforcementPlan) {
    let extra: Vec<_> = (1..COLD_BUILDS).map(|_| tempfile::tempdir().unwrap()).collect();
    let stores: Vec<Store> =
        std::iter::once(state).chain(extra.iter().map(|d| d.path())).map(|dir| Store::open(dir).unwrap()).collect();
    let mut image = None;
    for store in &stores {
        let t = Instant::now();
        let ensured = store.ensure(&s.spec).unwrap();
        s.cold.push(ms(t));
        assert_eq!(ensured.outcome, Outcome::Built);
        image.get_or_insert(ensured.image);
    }
    // A policy change: a new image, the same kernel (already in the store).
    for (i, store) in stores.iter().enumerate() {
        let mut spec = s.spec.clone();
        spec.application.args.push(format!("--bench-variant={i}"));
        let t = Instant::now();
        assert_eq!(store.ensure(&spec).unwrap().outcome, Outcome::Built);
        s.cold_kernel_stored.push(ms(t));
    }
    // Verification is memoised only for files unchanged for 2 s.
    std::thread::sleep(Duration::from_millis(2100));
    for store in &stores {
        let t = Instant::now();
        assert_eq!(store.ensure(&s.spec).unwrap().outcome, Outcome::Reused);
        s.verified.push(ms(t));
    }
    for _ in 0..STORE_CHECKS {
        let t = Instant::now();
        assert_eq!(stores[0].ensure(&s.spec).unwrap().outcome, Outcome::Reused);
        s.memoised.push(ms(t));
    }
    let image = image.unwrap();
    s.sizes = [
        std::fs::metadata(&image.kernel).unwrap().len(),
        std::fs::metadata(&image.initramfs).unwrap().len(),
        dir_bytes(&image.dir),
    ];
    s.boot = Some(launch::boot_spec(&image, plan, READY_TIMEOUT));
}

/// The quickstart with `policy` instead of its own, built into the store under `state` with
/// `kernel`: how to boot it.
fn variant(policy: String, app: &AppSpec, kernel: &Kernel, state: &Path) -> Result<BootSpec, String> {
    let source = sectosca::Source::new("quickstart/policy.yaml", policy);
    let compilation = sectosca::compile(&source, &Default::default(), &sectosca::Options::default());
    let plan = compilation.plans.get("api").ok_or("the variant of the quickstart has no `api` node")?;
    let spec = launch::image_spec(plan, app, kernel, &static_binary("sdsec-guest")).map_err(|e| e.to_string())?;
    let store = Store::open(state).map_err(|e| e.to_string())?;
    let image = store.ensure(&spec).map_err(|e| e.to_string())?.image;
    Ok(launch::boot_spec(&image, plan, READY_TIMEOUT))
}

/// Part 1: the kernels alternate boot by boot.
fn boots(subjects: &mut [Subject], running: &mut Running, n: usize) {
    for _ in 0..n {
        for s in subjects.iter_mut() {
            let t = Instant::now();
            let instance = running.boot(s.boot.as_ref().unwrap());
            assert_eq!(status(instance.endpoint, "/items", Some(TOKEN)), 200);
            s.serving.push(ms(t));
            s.ready.push(instance.boot_ms as f64);
            assert_eq!(status(instance.endpoint, "/items", None), 401);
            running.stop_all();
        }
    }
}

/// Prints one row: a cell per kernel, then sdsec/debian when both ran, then the goal.
fn row(subjects: &[Subject], what: &str, cell: impl Fn(&Subject) -> String, ratio: Option<(f64, f64)>, goal: &str) {
    let mut line = format!("{what:<44}");
    for s in subjects {
        line.push_str(&format!("{:>20}", cell(s)));
    }
    if subjects.len() == 2 {
        let r = ratio.map(|(a, b)| format!("{:.2}", a / b)).unwrap_or_default();
        line.push_str(&format!("{r:>20}"));
    }
    println!("{line}  {goal}");
}

fn pair(subjects: &[Subject], f: impl Fn(&Subject) -> f64) -> Option<(f64, f64)> {
    (subjects.len() == 2).then(|| (f(&subjects[0]), f(&subjects[1])))
}

/// Parts 1 to 3 of one kernel, for the summary.
fn figures(s: &Subject) -> serde_json::Value {
    let boot = s.boot.as_ref().unwrap();
    json!({
        "label": s.label,
        "ready_ms": s.ready,
        "serving_ms": s.serving,
        "cold_build_ms": s.cold,
        "cold_build_kernel_stored_ms": s.cold_kernel_stored,
        "store_verified_ms": s.verified,
        "store_memoised_ms": s.memoised,
        "kernel_bytes": s.sizes[0],
        "initramfs_bytes": s.sizes[1],
        "image_dir_bytes": s.sizes[2],
        "memory_mb": boot.memory_mb,
        "min_memory_mb": s.kernel.min_memory_mb(),
        "tcg_cache_mb": boot.tcg_cache_mb,
    })
}

fn main() {
    let n = setting("SDSEC_BENCH_BOOTS", 5) as usize;
    let source = sectosca::Source::new("quickstart/policy.yaml", POLICY);
    let compilation = sectosca::compile(&source, &Default::default(), &sectosca::Options::default());
    let plan = compilation.plans.get("api").expect("the quickstart has an `api` node");
    let app = AppSpec {
        path: static_binary("sdsec-example-api"),
        args: vec!["--listen".into(), "0.0.0.0:8080".into()],
        port: None,
    };
    let mut subjects = subjects(plan, &app, &static_binary("sdsec-guest"));
    let mut summary = Summary::from_env();

    let state = tempfile::tempdir().unwrap();
    for s in &mut subjects {
        generation(s, state.path(), plan);
    }
    let qemu = Qemu::new(state.path(), AccelChoice::Auto).unwrap();
    let mut running = Running::new(&qemu);
    boots(&mut subjects, &mut running, n);
    summary.set("accel", json!(qemu.accel().to_string()));
    summary.set("cpus", json!(std::thread::available_parallelism().map_or(0, |p| p.get())));
    summary.set("app_bytes", json!(std::fs::metadata(&app.path).unwrap().len()));
    summary.set("boots", json!(n));
    summary.set("kernels", subjects.iter().map(figures).collect());

    println!(
        "\nsdsec boot benchmark: quickstart policy, example API ({}), QEMU microvm, accel {}, {} CPUs",
        mb(std::fs::metadata(&app.path).unwrap().len()),
        qemu.accel(),
        std::thread::available_parallelism().map_or(0, |p| p.get()),
    );
    let mut header = format!("{:<44}", "ms unless said: median (min–max)");
    for s in &subjects {
        header.push_str(&format!("{:>20}", s.label));
    }
    if subjects.len() == 2 {
        header.push_str(&format!("{:>20}", format!("{}/{}", subjects[0].label, subjects[1].label)));
    }
    println!("{header}  goal");
    println!("{}", "-".repeat(header.chars().count() + 8));
    let boots_goal = "≤ 0.40";
    row(
        &subjects,
        &format!("boot: QEMU start → ready (n={n})"),
        |s| spread(&s.ready),
        pair(&subjects, |s| median(&s.ready)),
        "",
    );
    row(
        &subjects,
        &format!("boot: QEMU start → serving (n={n})"),
        |s| spread(&s.serving),
        pair(&subjects, |s| median(&s.serving)),
        boots_goal,
    );
    row(
        &subjects,
        &format!("image: cold build (n={COLD_BUILDS})"),
        |s| spread(&s.cold),
        pair(&subjects, |s| median(&s.cold)),
        "",
    );
    row(
        &subjects,
        "image: cold build, kernel already stored",
        |s| spread(&s.cold_kernel_stored),
        pair(&subjects, |s| median(&s.cold_kernel_stored)),
        "",
    );
    row(
        &subjects,
        "image from store: first check, ≥2 s after",
        |s| spread(&s.verified),
        pair(&subjects, |s| median(&s.verified)),
        "",
    );
    row(
        &subjects,
        "  ratio to cold build",
        |s| format!("{:.3}", median(&s.verified) / median(&s.cold)),
        None,
        "≤ 0.10",
    );
    row(
        &subjects,
        &format!("image from store: again, memoised (n={STORE_CHECKS})"),
        |s| spread(&s.memoised),
        pair(&subjects, |s| median(&s.memoised)),
        "",
    );
    row(
        &subjects,
        "  ratio to cold build",
        |s| format!("{:.4}", median(&s.memoised) / median(&s.cold)),
        None,
        "≤ 0.10",
    );
    for (i, what) in
        ["size: kernel file", "size: initramfs", "size: image directory (no kernel)"].into_iter().enumerate()
    {
        row(&subjects, what, |s| mb(s.sizes[i]), pair(&subjects, |s| s.sizes[i] as f64), "");
    }
    row(
        &subjects,
        "guest memory_mb (policy) / kernel minimum",
        |s| {
            format!(
                "{} / {}",
                s.boot.as_ref().unwrap().memory_mb,
                s.kernel.min_memory_mb().map_or("?".into(), |m| m.to_string())
            )
        },
        None,
        "",
    );
    row(&subjects, "QEMU TCG translation cache, MiB", |s| s.boot.as_ref().unwrap().tcg_cache_mb.to_string(), None, "");

    if setting("SDSEC_BENCH_SNAPSHOT", 1) != 0 {
        let first = &subjects[0];
        let figures =
            snapshot::report(&first.label, first.boot.as_ref().unwrap(), &first.serving, &mut running, state.path(), n);
        summary.set("snapshot", figures);
    }

    if setting("SDSEC_BENCH_GUEST", 1) != 0 {
        let first = &subjects[0];
        let boot = in_guest::policy().and_then(|p| variant(p, &app, &first.kernel, state.path()));
        summary.set("in_guest", in_guest::report(&first.label, boot, &mut running, state.path()));
    }

    if setting("SDSEC_BENCH_MEMORY", 1) != 0 {
        // What `strict` hardening costs in memory: the quickstart at `baseline`, first kernel.
        assert!(POLICY.contains("level: strict"), "the quickstart's hardening is no longer strict");
        let baseline = POLICY.replace("level: strict", "level: baseline");
        let baseline = variant(baseline, &app, &subjects[0].kernel, state.path()).unwrap();
        let mut runs: Vec<memory::Subject> = subjects
            .iter()
            .map(|s| memory::Subject {
                label: s.label.clone(),
                boot: s.boot.clone().unwrap(),
                min_memory_mb: s.kernel.min_memory_mb(),
                baseline_hardening: None,
            })
            .collect();
        runs[0].baseline_hardening = Some(baseline);
        memory::report(&runs, &mut running, state.path(), &mut summary);
    }
}
