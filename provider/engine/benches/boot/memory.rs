//! Part 4: what each QEMU costs in memory with several instances running at once, and what
//! KSM takes back.

use std::path::Path;
use std::time::{Duration, Instant};

use hypervisor::BootSpec;
use serde_json::json;

use crate::summary::Summary;
use crate::{Running, TOKEN, setting, status};

#[derive(Debug)]
pub struct Subject {
    pub label: String,
    pub boot: BootSpec,
    pub min_memory_mb: Option<u64>,
    /// The same policy with hardening `baseline` instead of `strict` (no `init_on_free=1`).
    pub baseline_hardening: Option<BootSpec>,
}

const KSM: &str = "/sys/kernel/mm/ksm";
/// KSM merges a page only once it was unchanged across a scan, so the first scans merge
/// little: the figure is taken once a full scan added less than [`KSM_SETTLED`] of the
/// pages shared, after at least this many scans.
const KSM_SCANS: u64 = 3;
const KSM_SETTLED: f64 = 0.02;
const KSM_WAIT: Duration = Duration::from_secs(60);
const KSM_PAGES_TO_SCAN: &str = "1000";

/// `Pss:` and `Rss:` of one QEMU, in KiB.
fn pss_rss_kib(state: &Path, id: &str) -> (u64, u64) {
    let pid = std::fs::read_to_string(state.join("instances").join(id).join("qemu.pid")).unwrap();
    let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", pid.trim())).unwrap();
    let field = |name: &str| -> u64 {
        let line = rollup.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in smaps_rollup"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("Pss:"), field("Rss:"))
}

/// Where one QEMU's PSS is, in MiB, from `/proc/<pid>/smaps`: the guest's RAM (the
/// anonymous mapping of `memory_mb`), the TCG translation cache (the mapping(s) of its
/// anonymous executable mapping), the kernel file QEMU loaded, and everything else.
fn breakdown(state: &Path, id: &str, spec: &BootSpec) -> String {
    let pid = std::fs::read_to_string(state.join("instances").join(id).join("qemu.pid")).unwrap();
    let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", pid.trim())).unwrap();
    let kernel = spec.kernel.to_string_lossy().into_owned();
    let (mut ram, mut tcg, mut file, mut rest) = (0u64, 0u64, 0u64, 0u64);
    let mut current = (0u64, String::new());
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if let Some((from, to)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let size = u64::from_str_radix(to, 16).unwrap_or(0) - u64::from_str_radix(from, 16).unwrap_or(0);
            let perms = words.next().unwrap_or_default();
            current = match words.nth(3) {
                Some(path) => (size, path.to_owned()),
                // Only QEMU's translation cache is anonymous, writable and executable.
                None if perms.starts_with("rwx") => (size, "rwx".to_owned()),
                None => (size, String::new()),
            };
        } else if first == "Pss:" {
            let kib: u64 = words.next().unwrap_or("0").parse().unwrap_or(0);
            let slot = match &current {
                (_, path) if *path == kernel => &mut file,
                (size, path) if path.is_empty() && *size == spec.memory_mb << 20 => &mut ram,
                (_, path) if path == "rwx" => &mut tcg,
                _ => &mut rest,
            };
            *slot += kib;
        }
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    format!(
        "one QEMU's PSS: guest RAM {:.1}, TCG cache {:.1}, kernel file {:.1}, other {:.1} MiB",
        mib(ram),
        mib(tcg),
        mib(file),
        mib(rest)
    )
}

/// Mean PSS and RSS per running instance, in MiB.
fn mean_mib(running: &Running, state: &Path) -> (f64, f64) {
    let all: Vec<_> = running.ids().iter().map(|id| pss_rss_kib(state, id.as_str())).collect();
    let n = all.len() as f64 * 1024.0;
    (all.iter().map(|m| m.0).sum::<u64>() as f64 / n, all.iter().map(|m| m.1).sum::<u64>() as f64 / n)
}

fn row(label: &str, memory_mb: u64, instances: usize, (pss, rss): (f64, f64), note: &str) {
    println!("{label:<22}{memory_mb:>10}{instances:>11}{pss:>10.1}{rss:>10.1}  {note}");
}

/// Where the series boot and report.
#[derive(Debug)]
struct Bench<'b, 'q> {
    running: &'b mut Running<'q>,
    state: &'b Path,
    summary: &'b mut Summary,
}

/// Boots `spec` one instance after the other, each to ready, and reads memory when
/// `counts` are running (after `settle`); with `ksm_at`, also after KSM at that count.
fn series(b: &mut Bench, kernel: &str, hardening: &str, spec: &BootSpec, counts: &[usize], ksm_at: Option<usize>) {
    let Bench { running, state, summary } = b;
    let label = &format!("{kernel}, {hardening}");
    let memory_mb = spec.memory_mb;
    let settle = Duration::from_secs(setting("SDSEC_BENCH_SETTLE_S", 5));
    for &count in counts {
        let t = Instant::now();
        while running.count() < count {
            let instance = running.boot(spec);
            assert_eq!(status(instance.endpoint, "/items", Some(TOKEN)), 200);
        }
        let booted = t.elapsed();
        std::thread::sleep(settle);
        let goal = if count == 5 { "; goal ≤ 64 MiB PSS" } else { "" };
        let note = format!("booted in {:.0} s{goal}", booted.as_secs_f64());
        let (pss, rss) = mean_mib(running, state);
        row(label, memory_mb, count, (pss, rss), &note);
        let figures = json!({
            "kernel": kernel, "hardening": hardening, "memory_mb": memory_mb, "instances": count,
            "pss_mib": pss, "rss_mib": rss, "booted_s": booted.as_secs_f64(),
        });
        summary.push("memory", figures);
        if count <= 5 {
            println!("{:<43}{}", "", breakdown(state, running.ids()[0].as_str(), spec));
        }
        if ksm_at == Some(count) {
            let mut figures =
                json!({ "kernel": kernel, "hardening": hardening, "memory_mb": memory_mb, "instances": count });
            match with_ksm(|| mean_mib(running, state)) {
                Ok(((pss, rss), ksm)) => {
                    row(label, memory_mb, count, (pss, rss), &ksm.note);
                    figures["pss_mib"] = json!(pss);
                    figures["rss_mib"] = json!(rss);
                    figures["ksm"] =
                        json!({ "full_scans": ksm.scans, "seconds": ksm.seconds, "saved_mib": ksm.saved_mib });
                }
                Err(why) => {
                    println!("{label:<22}{memory_mb:>10}{count:>11}  KSM not measured: {why}");
                    figures["ksm"] = json!({ "error": why });
                }
            }
            summary.push("memory", figures);
        }
    }
    running.stop_all();
}

fn read_ksm(name: &str) -> Result<String, String> {
    let path = format!("{KSM}/{name}");
    std::fs::read_to_string(&path).map(|v| v.trim().to_owned()).map_err(|e| format!("{path}: {e}"))
}

fn write_ksm(name: &str, value: &str) -> Result<(), String> {
    let path = format!("{KSM}/{name}");
    std::fs::write(&path, value).map_err(|e| format!("cannot write {value} to {path}: {e}"))
}

/// Puts KSM's settings back as they were, also when the measurement panics.
struct RestoreKsm(Vec<(&'static str, String)>);

impl Drop for RestoreKsm {
    fn drop(&mut self) {
        for (name, value) in self.0.iter().rev() {
            if let Err(why) = write_ksm(name, value) {
                eprintln!("{why}: restore it by hand");
            }
        }
    }
}

/// What KSM did before the figures were read.
#[derive(Debug)]
struct Ksm {
    scans: u64,
    seconds: f64,
    saved_mib: f64,
    note: String,
}

/// `measure` once KSM has settled (at least [`KSM_SCANS`] full scans, the last of which
/// added less than [`KSM_SETTLED`]; at most [`KSM_WAIT`]), with what it merged. KSM scans [`KSM_PAGES_TO_SCAN`] pages per 20 ms meanwhile (the kernel's default,
/// 100, takes about a minute per scan of 5 guests).
fn with_ksm(measure: impl Fn() -> (f64, f64)) -> Result<((f64, f64), Ksm), String> {
    let number = |name| read_ksm(name)?.parse::<u64>().map_err(|e| format!("{KSM}/{name}: {e}"));
    let run = read_ksm("run").map_err(|e| format!("KSM is not available on this host ({e})"))?;
    let mut restore = RestoreKsm(Vec::new());
    for (name, value) in [("pages_to_scan", KSM_PAGES_TO_SCAN), ("run", "1")] {
        let previous = read_ksm(name)?;
        write_ksm(name, value)?;
        restore.0.push((name, previous));
    }
    let start = number("full_scans")?;
    let t = Instant::now();
    let (mut scans, mut sharing_at_scan) = (0, 0);
    while t.elapsed() < KSM_WAIT {
        let now = number("full_scans")? - start;
        if now > scans {
            let sharing = number("pages_sharing")?;
            let grew = sharing.saturating_sub(sharing_at_scan) as f64;
            (scans, sharing_at_scan) = (now, sharing);
            if scans >= KSM_SCANS && grew <= KSM_SETTLED * sharing as f64 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let figures = measure();
    let (sharing, shared) = (number("pages_sharing")?, number("pages_shared")?);
    drop(restore);
    let (seconds, saved_mib) = (t.elapsed().as_secs_f64(), sharing as f64 * 4096.0 / (1 << 20) as f64);
    let note = format!(
        "with KSM: {scans} full scans in {seconds:.0} s, {saved_mib:.1} MiB saved (pages_sharing {sharing}, pages_shared {shared}); ksm/run back to {run}",
    );
    Ok((figures, Ksm { scans, seconds, saved_mib, note }))
}

pub fn report(subjects: &[Subject], running: &mut Running, state: &Path, summary: &mut Summary) {
    let counts: Vec<usize> = std::env::var("SDSEC_BENCH_INSTANCES")
        .unwrap_or_else(|_| "1,5,20".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let few: Vec<usize> = counts.iter().copied().filter(|&c| c <= 5).collect();
    println!("\nmemory per QEMU: mean over the instances running at once, after the last is ready and a settle time");
    println!("{:<22}{:>10}{:>11}{:>10}{:>10}", "kernel, hardening", "guest MiB", "instances", "PSS MiB", "RSS MiB");
    println!("{}", "-".repeat(63));
    let b = &mut Bench { running, state, summary };
    // The first kernel is the one under test, the others are baselines.
    for (i, s) in subjects.iter().enumerate() {
        if i > 0 {
            series(b, &s.label, "strict", &s.boot, &few, None);
            continue;
        }
        series(b, &s.label, "strict", &s.boot, &counts, None);
        if let Some(min) = s.min_memory_mb {
            series(b, &s.label, "strict", &BootSpec { memory_mb: min, ..s.boot.clone() }, &few, None);
        }
        // KSM only scans memory offered to it: `baseline` guests' (`mem-merge=on`), never
        // `strict` ones'.
        if let Some(baseline) = &s.baseline_hardening {
            series(b, &s.label, "baseline", baseline, &few, Some(5));
        }
    }
}
