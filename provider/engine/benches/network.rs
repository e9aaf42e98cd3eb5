//! What bridge networking costs, against QEMU's user network measured in the same run:
//!
//! 1. network set-up per instance, no VM: `Network::attach` + `bind` for the 1st, 2nd and
//!    20th instance attached one after the other (each with a flow to the previous node, so
//!    the rule set grows), `release`, and what plan adds (`Network::check`, `reclaim`);
//! 2. boot of the quickstart image through `instance::boot` with `network = "user"` and
//!    `network = "bridge"`: start → ready, and the difference;
//! 3. requests per second of the example API's `GET /items` (with the quickstart token)
//!    through QEMU's user network (127.0.0.1:port, slirp), through the bridge's published
//!    port (127.0.0.1:port, DNAT) and through the bridge directly (guest address:80), from
//!    one closed-loop load generator (K keep-alive connections on threads, a fixed time
//!    after a warm-up), with a host process of the same API as the reference.
//!
//! Needs root and `ip`/`nft` (else it says why and does nothing), and for parts 2 and 3 what
//! `scripts/build.sh` prepares (static runtime and example app, the kernel) and QEMU. Everything
//! happens in a network namespace of its own (`sdsec-bench-<pid>`): the benchmark re-executes
//! itself there, and deletes it at the end (killing whatever still runs in it), also when a
//! part fails. The machine's own network is never touched.
//!
//! `cargo bench -p sdsec-engine --bench network`; SDSEC_BENCH_ROUNDS (set-up rounds, 5),
//! SDSEC_BENCH_BOOTS (boots per mode, 5), SDSEC_BENCH_LOAD_ROUNDS (10), SDSEC_BENCH_WINDOW_MS
//! (measured window per path and round, 2000), SDSEC_BENCH_WARMUP_MS (500),
//! SDSEC_BENCH_CONNECTIONS (4).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use ::network::{BridgeConfig, FlowPolicy, LeaseKey, ModeChoice, Network};
use engine::ProviderConfig;
use engine::host::Host;
use engine::instance::{self, Boot};
use engine::launch::{self, AppSpec};
use hypervisor::Instance;
use sdsec_image::Store;

const POLICY: &str = include_str!("../../../examples/quickstart/policy.yaml");
const RATE_LIMIT: &str = "rate_limit: { requests_per_second: 50, burst: 100, per: source }";
const NO_RATE_LIMIT: &str = "rate_limit: { requests_per_second: 1000000, burst: 1000000, per: source }";
const TOKEN: &str = "quickstart-token";
/// Set in the re-executed benchmark: it runs inside the namespace.
const INNER: &str = "SDSEC_BENCH_NETNS_INNER";
/// How many instances part 1 attaches one after the other.
const INSTANCES: usize = 20;
const USER_PORT: u16 = 18081;
const BRIDGE_PORT: u16 = 18080;
const HOST_PORT: u16 = 18082;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    if std::env::var_os(INNER).is_some() {
        inner();
        return;
    }
    if let Some(reason) = skip_reason() {
        println!("network benchmark skipped: {reason}");
        return;
    }
    let namespace = match Namespace::new() {
        Ok(namespace) => namespace,
        Err(e) => {
            println!("network benchmark skipped: cannot create a network namespace: {e}");
            return;
        }
    };
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("ip")
        .args(["netns", "exec", &namespace.name])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(INNER, "1")
        .env("TMPDIR", namespace.scratch.path())
        .status();
    drop(namespace);
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => {
            eprintln!("the network benchmark failed inside its namespace ({status})");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("cannot run the network benchmark inside its namespace: {e}");
            std::process::exit(1);
        }
    }
}

/// Why the benchmark cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().nth(1));
    if euid != Some("0") {
        return Some("needs root (a network namespace, a bridge, TAP devices, nftables)".into());
    }
    for (tool, package) in [("ip", "iproute2"), ("nft", "nftables")] {
        let found = Command::new(tool).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
        if !found {
            return Some(format!("`{tool}` is not installed (apt-get install {package})"));
        }
    }
    None
}

/// The benchmark's network namespace: deleted when dropped (also on a panic), after killing
/// whatever still runs in it (QEMU processes of a part that failed), with the directory the
/// inner run keeps its state directories in (its TMPDIR), should it not have removed them.
#[derive(Debug)]
struct Namespace {
    name: String,
    scratch: tempfile::TempDir,
}

impl Namespace {
    fn new() -> Result<Namespace, String> {
        let name = format!("sdsec-bench-{}", std::process::id());
        let scratch = tempfile::Builder::new().prefix("sdsec-bench-").tempdir().map_err(|e| e.to_string())?;
        ip(&["netns", "add", &name])?;
        let namespace = Namespace { name, scratch };
        ip(&["-n", &namespace.name, "link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    fn pids(&self) -> Vec<String> {
        let output = Command::new("ip").args(["netns", "pids", &self.name]).output();
        output
            .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let left = self.pids();
        if !left.is_empty() {
            eprintln!("killing processes left in {}: {}", self.name, left.join(" "));
            for pid in &left {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
            for _ in 0..50 {
                if self.pids().is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("could not delete network namespace {}: {e}", self.name);
        }
    }
}

fn ip(args: &[&str]) -> Result<String, String> {
    let output = Command::new("ip").args(args).output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

// ------------------------------------------------------------------------------ figures

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// median (min–max, n) of `v`, with `decimals`.
fn stats(v: &[f64], decimals: usize, unit: &str) -> String {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let (med, min, max) = (v[v.len() / 2], v[0], v[v.len() - 1]);
    let space = if unit.starts_with(char::is_alphabetic) { " " } else { "" };
    format!("median {med:.decimals$}{space}{unit} (min {min:.decimals$}, max {max:.decimals$}, n={})", v.len())
}

// ------------------------------------------------------------------------- inside the namespace

fn inner() {
    println!("network benchmark, in network namespace {} (all traffic stays in it)", namespace_name());
    println!("{}", machine());
    setup_per_instance();
    if let Some(images) = images() {
        boots(&images);
        throughput(&images);
    }
    println!("\nload average at the end: {}", load_average());
}

fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// The CPU, its cores, the kernel and the load, for the figures' context.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|m| m.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "machine: {}, {cores} cores, Linux {}, load average at the start: {}",
        model.unwrap_or("unknown CPU"),
        kernel.trim(),
        load_average()
    )
}

fn namespace_name() -> String {
    let output = Command::new("ip").args(["netns", "identify", &std::process::id().to_string()]).output();
    output.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
}

fn policy(i: usize) -> FlowPolicy {
    FlowPolicy {
        node: format!("n{i}"),
        tenant: None,
        connects_to: if i == 0 { Vec::new() } else { vec![format!("n{}", i - 1)] },
        egress: Vec::new(),
    }
}

/// How many rules nftables holds in this namespace.
fn nft_rules() -> usize {
    let output = Command::new("nft").args(["-j", "list", "ruleset"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let items = json.get("nftables").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    items.iter().filter(|item| item.get("rule").is_some()).count()
}

/// Part 1: `attach` + `bind` and `release`, as `Host::boot` and `Host::stop` run them, and
/// `check` and `reclaim`, as `Host::check` (plan) runs them; no VM, each TAP left unopened.
fn setup_per_instance() {
    let rounds = setting("SDSEC_BENCH_ROUNDS", 5) as usize;
    let mut attach: Vec<Vec<f64>> = vec![Vec::new(); INSTANCES];
    let mut release: Vec<Vec<f64>> = vec![Vec::new(); INSTANCES];
    let (mut check_empty, mut check_full, mut reclaim_full, mut reclaim_one) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut rules = (0, 0);
    for _ in 0..rounds {
        let state = tempfile::tempdir().unwrap();
        let network = Network::new(state.path(), BridgeConfig::default());
        let t = Instant::now();
        network.check().unwrap();
        check_empty.push(ms(t.elapsed()));
        for (i, times) in attach.iter_mut().enumerate() {
            let t = Instant::now();
            let attached = network.attach(policy(i), 80, Some(19000 + i as u16)).unwrap();
            network.bind(&attached.tap, &format!("i-bench{i:04}")).unwrap();
            times.push(ms(t.elapsed()));
            if i == 0 {
                let t = Instant::now();
                assert!(network.reclaim(&|_| true).unwrap().is_empty());
                reclaim_one.push(ms(t.elapsed()));
                rules.0 = nft_rules();
            }
        }
        rules.1 = nft_rules();
        let t = Instant::now();
        network.check().unwrap();
        check_full.push(ms(t.elapsed()));
        let t = Instant::now();
        assert!(network.reclaim(&|_| true).unwrap().is_empty());
        reclaim_full.push(ms(t.elapsed()));
        // Released last attached first: release[k] runs with INSTANCES - k leases held.
        for (k, i) in (0..INSTANCES).rev().enumerate() {
            let t = Instant::now();
            network.release(LeaseKey::Instance(&format!("i-bench{i:04}"))).unwrap();
            release[k].push(ms(t.elapsed()));
        }
        assert!(network.leases().unwrap().is_empty());
    }
    let last = INSTANCES - 1;
    println!();
    println!(
        "1. network set-up per instance, no VM ({rounds} rounds of {INSTANCES} instances attached one after the other,"
    );
    println!("   each published on a host port, each with a flow to the previous node)");
    let row = |label: String, v: &[f64]| println!("  {label:<58} {}", stats(v, 1, "ms"));
    row("attach + bind, 1st instance (bridge and tables created):".into(), &attach[0]);
    row("attach + bind, 2nd instance (1 lease held):".into(), &attach[1]);
    row(format!("attach + bind, {INSTANCES}th instance ({last} leases held):"), &attach[last]);
    let all: Vec<f64> = attach.iter().flatten().copied().collect();
    row(format!("attach + bind, any of the {INSTANCES}:"), &all);
    println!(
        "  {INSTANCES}th / 1st: {:.2}×, {INSTANCES}th / 2nd: {:.2}×   (nftables rules: {} with 1 lease, {} with {INSTANCES})",
        median(&attach[last]) / median(&attach[0]),
        median(&attach[last]) / median(&attach[1]),
        rules.0,
        rules.1
    );
    row(format!("release with {INSTANCES} leases held:"), &release[0]);
    row("release of the last lease (bridge and tables removed):".into(), &release[last]);
    row("plan's check, no lease yet (Network::check):".into(), &check_empty);
    row(format!("plan's check, {INSTANCES} leases (Network::check):"), &check_full);
    row("plan's reclaim, 1 lease (nothing to drop):".into(), &reclaim_one);
    row(format!("plan's reclaim, {INSTANCES} leases (nothing to drop):"), &reclaim_full);
}

// --------------------------------------------------------------------------------- images

fn static_binary(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/x86_64-unknown-linux-gnu/guest").join(name)
}

/// The quickstart image as `boot.rs` builds it, and the same with the rate limit raised
/// so that load is never refused (the quickstart allows 50 requests/s per source).
struct Images {
    _state: tempfile::TempDir,
    state_dir: PathBuf,
    plan: plan::EnforcementPlan,
    quickstart: sdsec_image::Image,
    unlimited_plan: plan::EnforcementPlan,
    unlimited: sdsec_image::Image,
    app: PathBuf,
}

fn images() -> Option<Images> {
    let (runtime, app) = (static_binary("sdsec-guest"), static_binary("sdsec-example-api"));
    for path in [&runtime, &app] {
        if !path.is_file() {
            println!("\nparts 2 and 3 skipped: {} is missing (run scripts/build.sh first)", path.display());
            return None;
        }
    }
    let qemu = Command::new("qemu-system-x86_64").arg("--version").stdout(Stdio::null()).status();
    if !qemu.is_ok_and(|s| s.success()) {
        println!("\nparts 2 and 3 skipped: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)");
        return None;
    }
    let state = tempfile::tempdir().unwrap();
    let store = Store::open(state.path()).unwrap();
    let build = |text: &str| {
        let source = sectosca::Source::new("quickstart/policy.yaml", text);
        let compilation = sectosca::compile(&source, &Default::default(), &sectosca::Options::default());
        let plan = compilation.plans.get("api").cloned().expect("the quickstart has an `api` node");
        let spec = AppSpec { path: app.clone(), args: vec!["--listen".into(), "0.0.0.0:8080".into()], port: None };
        let spec = launch::image_spec(&plan, &spec, &launch::kernel(&Default::default()).unwrap(), &runtime).unwrap();
        (plan, store.ensure(&spec).unwrap().image)
    };
    let (plan, quickstart) = build(POLICY);
    assert!(POLICY.contains(RATE_LIMIT), "the quickstart's rate limit changed: update RATE_LIMIT");
    let (unlimited_plan, unlimited) = build(&POLICY.replace(RATE_LIMIT, NO_RATE_LIMIT));
    Some(Images { state_dir: state.path().to_owned(), _state: state, plan, quickstart, unlimited_plan, unlimited, app })
}

fn host(state_dir: &Path, choice: ModeChoice) -> Host {
    let mut config = ProviderConfig::new(state_dir.to_owned());
    config.network.choice = choice;
    launch::backend(&config).unwrap()
}

/// A booted instance, stopped (and its lease released) when dropped.
struct Running<'a> {
    host: &'a Host,
    instance: Option<Instance>,
}

impl Running<'_> {
    fn instance(&self) -> &Instance {
        self.instance.as_ref().unwrap()
    }

    /// Stops it now (rather than when dropped).
    fn stop(mut self) {
        let instance = self.instance.take().unwrap();
        self.host.stop(&instance.id, Duration::from_secs(5)).unwrap();
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take()
            && let Err(e) = self.host.stop(&instance.id, Duration::from_secs(5))
        {
            eprintln!("stopping {}: {e}", instance.id);
        }
    }
}

fn boot<'a>(host: &'a Host, image: &sdsec_image::Image, plan: &plan::EnforcementPlan, port: u16) -> Running<'a> {
    let boot = Boot {
        name: "api".into(),
        host_port: Some(port),
        timeout: Duration::from_secs(300),
        metadata: serde_json::Value::Null,
        peers: Vec::new(),
    };
    let instance = instance::boot(host, image, plan, boot).unwrap();
    Running { host, instance: Some(instance) }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Part 2: `instance::boot` (what `sdsec run` and the provider run) under each mode,
/// interleaved so that both see the same machine.
fn boots(images: &Images) {
    let n = setting("SDSEC_BENCH_BOOTS", 5) as usize;
    let user = host(&images.state_dir, ModeChoice::User);
    let bridge = host(&images.state_dir, ModeChoice::Bridge);
    // mode → (instance::boot start → ready, → the ready event on the audit log, QEMU's boot_ms, stop)
    let mut figures: BTreeMap<&str, [Vec<f64>; 4]> = BTreeMap::new();
    let mut accel = String::new();
    for round in 0..n {
        let order = if round % 2 == 0 { ["user", "bridge"] } else { ["bridge", "user"] };
        for mode in order {
            let (host, port) = if mode == "user" { (&user, USER_PORT) } else { (&bridge, BRIDGE_PORT) };
            let (t, since) = (Instant::now(), SystemTime::now());
            let running = boot(host, &images.quickstart, &images.plan, port);
            let wall = ms(t.elapsed());
            // The runtime's ready event is the audit log's last write until a request is
            // refused (an audit event): when the guest was up, before the host's health probe.
            let events = hypervisor::logs::event_log(running.instance());
            let written = std::fs::metadata(events).unwrap().modified().unwrap();
            let console = ms(written.duration_since(since).unwrap_or_default());
            let boot_ms = running.instance().boot_ms as f64;
            accel = running.instance().accel.to_string();
            assert_eq!(status(local(port), "/items", Some(TOKEN)), 200, "{mode}: published port");
            assert_eq!(status(running.instance().endpoint, "/items", None), 401, "{mode}: endpoint");
            let t = Instant::now();
            running.stop();
            let figures = figures.entry(mode).or_default();
            for (k, value) in [wall, console, boot_ms, ms(t.elapsed())].into_iter().enumerate() {
                figures[k].push(value);
            }
        }
    }
    let (u, b) = (&figures["user"], &figures["bridge"]);
    println!();
    println!(
        "2. boot of the quickstart image through instance::boot, QEMU accel {accel} ({n} boots per mode, interleaved)"
    );
    let rows = [
        ("instance::boot start → ready (health 200)", 0),
        ("  start → the runtime's ready event on the audit log", 1),
        ("  QEMU start → health 200 (the instance's boot_ms)", 2),
        ("stop (and, on the bridge, release)", 3),
    ];
    for (label, k) in rows {
        println!("  {label}");
        println!("    user   (QEMU slirp, 127.0.0.1 forwarded):   {}", stats(&u[k], 0, "ms"));
        println!("    bridge (TAP, lease, nftables, DNAT):       {}", stats(&b[k], 0, "ms"));
        // Each round boots both back to back: the paired difference is the steadier figure.
        let differences: Vec<f64> = b[k].iter().zip(&u[k]).map(|(b, u)| b - u).collect();
        println!(
            "    bridge − user: {:+.0} ms paired (per round {}); of the medians {:+.0} ms ({:.3}×)",
            median(&differences),
            stats(&differences, 0, "ms"),
            median(&b[k]) - median(&u[k]),
            median(&b[k]) / median(&u[k])
        );
    }
}

/// One request on a fresh connection: its status.
fn status(endpoint: SocketAddr, path: &str, token: Option<&str>) -> u16 {
    let mut s = TcpStream::connect_timeout(&endpoint, Duration::from_secs(10)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: api\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

// ------------------------------------------------------------------------- load generator

/// What one load test saw in its measured window.
#[derive(Debug, Default)]
struct Load {
    seconds: f64,
    statuses: BTreeMap<u16, u64>,
    /// Connections that failed or broke (each followed by a new connection).
    errors: u64,
    first_error: Option<String>,
    /// Of the requests answered 200, in microseconds.
    latencies_us: Vec<u64>,
}

impl Load {
    fn ok(&self) -> u64 {
        self.statuses.get(&200).copied().unwrap_or(0)
    }
    fn rps(&self) -> f64 {
        self.ok() as f64 / self.seconds
    }
    fn merge(&mut self, other: Load) {
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.latencies_us.extend(other.latencies_us);
    }
}

/// Reads one response: its status, and whether the connection stays open.
fn response(reader: &mut BufReader<TcpStream>, line: &mut String) -> std::io::Result<(u16, bool)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    line.clear();
    if reader.read_line(line)? == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed before a response"));
    }
    let status: u16 = line.get(9..12).and_then(|c| c.parse().ok()).ok_or_else(|| bad("no status line"))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        line.clear();
        if reader.read_line(line)? == 0 {
            return Err(bad("connection closed in the headers"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => length = Some(value.parse::<u64>().map_err(|_| bad("bad Content-Length"))?),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    if chunked {
        loop {
            line.clear();
            reader.read_line(line)?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                loop {
                    line.clear();
                    if reader.read_line(line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            std::io::copy(&mut reader.by_ref().take(size + 2), &mut std::io::sink())?;
        }
    } else if let Some(length) = length {
        let read = std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink())?;
        if read < length {
            return Err(bad("connection closed in the body"));
        }
    } else {
        std::io::copy(reader, &mut std::io::sink())?;
        close = true;
    }
    Ok((status, !close))
}

/// `connections` threads, each with one keep-alive connection to `to`, sending GET `/items`
/// with the token and reading each whole response before the next request, for `warmup`
/// then `duration`; only responses completed within `duration` count.
fn load(to: SocketAddr, connections: usize, warmup: Duration, duration: Duration) -> Load {
    let request = format!("GET /items HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").into_bytes();
    let start = Instant::now() + warmup;
    let end = start + duration;
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let request = request.clone();
            std::thread::spawn(move || {
                let mut seen = Load::default();
                let mut line = String::new();
                let mut connection: Option<BufReader<TcpStream>> = None;
                let fail = |seen: &mut Load, e: String| {
                    if Instant::now() >= start {
                        seen.errors += 1;
                        seen.first_error.get_or_insert(e);
                    }
                };
                while Instant::now() < end {
                    let reader = match connection.as_mut() {
                        Some(reader) => reader,
                        None => match TcpStream::connect_timeout(&to, Duration::from_secs(5)) {
                            Ok(stream) => {
                                stream.set_nodelay(true).unwrap();
                                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                                connection.insert(BufReader::new(stream))
                            }
                            Err(e) => {
                                fail(&mut seen, format!("connect: {e}"));
                                std::thread::sleep(Duration::from_millis(10));
                                continue;
                            }
                        },
                    };
                    let t = Instant::now();
                    let answered = reader.get_mut().write_all(&request).and_then(|()| response(reader, &mut line));
                    let done = Instant::now();
                    match answered {
                        Ok((status, keep)) => {
                            if done >= start && done < end {
                                *seen.statuses.entry(status).or_default() += 1;
                                if status == 200 {
                                    seen.latencies_us.push((done - t).as_micros() as u64);
                                }
                            }
                            if !keep {
                                connection = None;
                            }
                        }
                        Err(e) => {
                            if done < end {
                                fail(&mut seen, e.to_string());
                            }
                            connection = None;
                        }
                    }
                }
                seen
            })
        })
        .collect();
    let mut total = Load { seconds: duration.as_secs_f64(), ..Load::default() };
    for thread in threads {
        total.merge(thread.join().unwrap());
    }
    total
}

fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[k] as f64 / 1000.0
}

/// The example API as a host process (no VM, no runtime): what the load generator reaches
/// on these cores without a guest. Killed when dropped.
struct HostApi(Child);

impl Drop for HostApi {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Part 3: requests per second through each path, from the same generator, interleaved
/// over rounds, with both instances running throughout.
fn throughput(images: &Images) {
    let rounds = setting("SDSEC_BENCH_LOAD_ROUNDS", 10) as usize;
    let window = Duration::from_millis(setting("SDSEC_BENCH_WINDOW_MS", 2000));
    let warmup = Duration::from_millis(setting("SDSEC_BENCH_WARMUP_MS", 500));
    let connections = setting("SDSEC_BENCH_CONNECTIONS", 4) as usize;
    let user_host = host(&images.state_dir, ModeChoice::User);
    let bridge_host = host(&images.state_dir, ModeChoice::Bridge);
    let user = boot(&user_host, &images.unlimited, &images.unlimited_plan, USER_PORT);
    let bridge = boot(&bridge_host, &images.unlimited, &images.unlimited_plan, BRIDGE_PORT);
    let api = HostApi(
        Command::new(&images.app)
            .args(["--listen", &format!("127.0.0.1:{HOST_PORT}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let paths: [(&str, SocketAddr); 4] = [
        ("user network (127.0.0.1 → QEMU slirp)", local(USER_PORT)),
        ("bridge, published port (127.0.0.1 → DNAT)", local(BRIDGE_PORT)),
        ("bridge, guest address directly", bridge.instance().endpoint),
        ("reference: the example API as a host process", local(HOST_PORT)),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(local(HOST_PORT)).is_err() {
        assert!(Instant::now() < deadline, "the example API did not listen on 127.0.0.1:{HOST_PORT}");
        std::thread::sleep(Duration::from_millis(20));
    }
    for (label, to) in paths {
        assert_eq!(status(to, "/items", Some(TOKEN)), 200, "{label} at {to}");
    }
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut all: Vec<Load> = (0..paths.len()).map(|_| Load::default()).collect();
    for round in 0..rounds {
        for k in 0..paths.len() {
            // The guest paths rotate so that none is always measured first.
            let k = if k == paths.len() - 1 { k } else { (k + round) % (paths.len() - 1) };
            let seen = load(paths[k].1, connections, warmup, window);
            rps[k].push(seen.rps());
            all[k].merge(seen);
        }
    }
    drop(api);
    println!();
    println!(
        "3. GET /items with the quickstart token (rate limit raised), {connections} keep-alive connections, \
         {rounds} rounds of one {:.1} s window per path after {:.1} s warm-up, in a rotating order;",
        window.as_secs_f64(),
        warmup.as_secs_f64()
    );
    println!(
        "   both instances running throughout: user {} (127.0.0.1:{USER_PORT}), bridge {} ({}, published on 127.0.0.1:{BRIDGE_PORT})",
        user.instance().id,
        bridge.instance().id,
        bridge.instance().endpoint
    );
    for (k, (label, to)) in paths.iter().enumerate() {
        let seen = &mut all[k];
        seen.latencies_us.sort_unstable();
        let answered: u64 = seen.statuses.values().sum();
        let non_200: Vec<String> =
            seen.statuses.iter().filter(|(s, _)| **s != 200).map(|(s, c)| format!("{c}× {s}")).collect();
        println!("  {label} ({to})");
        println!("    requests/s answered 200: {}", stats(&rps[k], 1, "rps"));
        println!(
            "    latency of a 200: p50 {:.2} ms, p99 {:.2} ms; answered {answered}, 200: {}, other: {}, connection errors: {}{}",
            percentile_ms(&seen.latencies_us, 50.0),
            percentile_ms(&seen.latencies_us, 99.0),
            seen.ok(),
            if non_200.is_empty() { "none".to_owned() } else { non_200.join(", ") },
            seen.errors,
            seen.first_error.as_ref().map(|e| format!(" (first: {e})")).unwrap_or_default(),
        );
    }
    // Paired: each round measures every path within seconds of the others, so the ratio of
    // one round is less exposed to what else the machine runs than a ratio of medians.
    let paired = |a: usize, b: usize| {
        let ratios: Vec<f64> = rps[a].iter().zip(&rps[b]).map(|(x, y)| x / y).collect();
        format!(
            "{:.3}× (ratio of medians {:.3}×; per round {})",
            median(&ratios),
            median(&rps[a]) / median(&rps[b]),
            stats(&ratios, 3, "×")
        )
    };
    println!("  bridge published / user:          {}", paired(1, 0));
    println!("  bridge direct / user:             {}", paired(2, 0));
    println!("  bridge published / bridge direct: {}", paired(1, 2));
    println!("  user / host process:              {}", paired(0, 3));
    drop(bridge);
    drop(user);
}
