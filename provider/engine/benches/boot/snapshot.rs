//! Snapshot starts against cold boots of the same image, in the same run: the image booted
//! once for a snapshot (detached NIC, `sdsec.snapshot=1`) and saved, then copies started
//! from it, each resumed with its own key, randomness and clock, until they serve.
//!
//! Each start is timed as `sdsec run --snapshot` makes it: the state opened and verified
//! against its SHA-256 through the descriptor QEMU is then handed (a new process has
//! verified nothing yet, so every start pays it), then the copy started. The verification
//! and the start alone are printed beside it, and given to the summary.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use engine::launch;
use hypervisor::{BootSpec, Hypervisor, Nic, Probe, Restore};
use serde_json::{Value, json};

use crate::{Running, TOKEN, mb, median, ms, spread, status};

/// Times `n` copies of `boot`'s snapshot to serving and prints them against `cold_serving`
/// (the same image booted, QEMU start → serving); the figures, for the summary.
pub fn report(
    label: &str,
    boot: &BootSpec,
    cold_serving: &[f64],
    running: &mut Running,
    state: &Path,
    n: usize,
) -> Value {
    let mut template = boot.clone();
    template.name = "bench-snapshot".into();
    template.cmdline = abi::cmdline::with_snapshot(&template.cmdline);
    template.nic = Nic::Detached;
    template.probe = Probe { http: false, ..Probe::default() };
    let control = launch::control_boot().unwrap();
    let snapshot_key = control.key.clone();
    template.control = Some(control);
    let saved = running.boot(&template);
    let path = state.join("bench-snapshot.state");
    let t = Instant::now();
    running.qemu.save(&saved.id, &path).unwrap();
    let save_ms = ms(t);
    running.stop_all();
    let digest = sdsec_image::input::hash_descriptor(&File::open(&path).unwrap()).unwrap();

    let (mut verify, mut serving, mut run) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let mut copy = boot.clone();
        copy.control = Some(launch::control_boot().unwrap());
        let t = Instant::now();
        let state = File::open(&path).unwrap();
        // What `Snapshots::ensure` does the first time in a process (`hash_open` remembers
        // it after).
        assert_eq!(sdsec_image::input::hash_descriptor(&state).unwrap(), digest);
        verify.push(ms(t));
        copy.restore = Some(Restore { state: Arc::new(state), snapshot_key: snapshot_key.clone(), network: None });
        let started = Instant::now();
        let instance = running.boot(&copy);
        assert_eq!(status(instance.endpoint, "/items", Some(TOKEN)), 200);
        serving.push(ms(started));
        run.push(ms(t));
        assert_eq!(status(instance.endpoint, "/items", None), 401);
        running.stop_all();
    }
    println!("\nsnapshot starts, kernel {label} (same run as the boots above)");
    let bytes = std::fs::metadata(&path).unwrap().len();
    println!("{:<44}{:>20}", "snapshot: size", mb(bytes));
    println!("{:<44}{:>20}", "snapshot: save (paused → on disk)", format!("{save_ms:.0}"));
    println!("{:<44}{:>20}", format!("verify the state, once per process (n={n})"), spread(&verify));
    println!("{:<44}{:>20}", format!("start from snapshot → serving (n={n})"), spread(&serving));
    println!("{:<44}{:>20}", format!("sdsec run --snapshot: both (n={n})"), spread(&run));
    println!("{:<44}{:>20}", "cold boot → serving (above)", spread(cold_serving));
    println!(
        "{:<44}{:>20}  goal ≤ 0.20",
        "  ratio run --snapshot / cold boot",
        format!("{:.2}", median(&run) / median(cold_serving))
    );
    println!(
        "{:<44}{:>20}",
        "  ratio start alone / cold boot",
        format!("{:.2}", median(&serving) / median(cold_serving))
    );
    json!({
        "label": label,
        "bytes": bytes,
        "save_ms": save_ms,
        "verify_ms": verify,
        "start_ms": serving,
        "run_ms": run,
    })
}
