//! Snapshots: an instance booted for one (`sdsec.snapshot=1`) is saved once ready, its whole
//! state written as QEMU's migration stream; copies start from that state in a new QEMU
//! instead of booting, and each is made its own over the control channel before it serves
//! ([`abi::control::Resume`]: its own key, fresh kernel randomness, the clock, its address).
//!
//! QEMU is handed the files by descriptor (`getfd`), so its sandbox opens no path; the
//! stream is saved from a paused guest, so a copy starts paused too and runs only once the
//! stream has loaded whole.

use std::fs::File;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use abi::control::{Entropy, Key, Resume, ResumeNetwork};
use serde_json::{Value, json};

use crate::qmp::Qmp;

/// What a boot restores instead of booting the image's kernel.
#[derive(Debug, Clone)]
pub struct Restore {
    /// The saved state: QEMU's migration stream of an instance booted for a snapshot of the
    /// same image, on an emulator of the same [`crate::Hypervisor::snapshot_compat`].
    pub state: PathBuf,
    /// The key that instance was booted with: a copy answers to it until resumed.
    pub snapshot_key: Key,
    /// The copy's own address on the host's bridge; `None` keeps the snapshot's.
    pub network: Option<ResumeNetwork>,
}

/// How a stream is named to QEMU once passed.
const FD_NAME: &str = "sdsec-snapshot";
/// How often a save or load is looked at.
const POLL: Duration = Duration::from_millis(10);
/// How long a copy may take to apply its resume.
pub(crate) const RESUME_TIMEOUT: Duration = Duration::from_secs(15);

fn connect(qmp: &Path) -> Result<Qmp, String> {
    Qmp::connect(qmp, Duration::from_secs(5))
}

/// Pauses the guest behind `qmp` and writes its whole state to `dest`; returns once the
/// stream is complete and on disk. The guest stays paused.
pub(crate) fn save(qmp: &Path, dest: &File, timeout: Duration) -> Result<(), String> {
    let mut qmp = connect(qmp)?;
    qmp.execute("stop", None)?;
    qmp.pass_fd(FD_NAME, dest.as_fd())?;
    qmp.execute("migrate", Some(json!({ "uri": format!("fd:{FD_NAME}") })))?;
    let deadline = Instant::now() + timeout;
    loop {
        let status = qmp.execute("query-migrate", None)?;
        match status.get("status").and_then(Value::as_str) {
            Some("completed") => break,
            Some("failed" | "cancelled") => {
                let why = status.get("error-desc").and_then(Value::as_str).unwrap_or("no reason given");
                return Err(format!("QEMU could not write the snapshot: {why}"));
            }
            _ if Instant::now() >= deadline => return Err(format!("the snapshot was not written within {timeout:?}")),
            _ => std::thread::sleep(POLL),
        }
    }
    dest.sync_all().map_err(|e| format!("cannot flush the snapshot: {e}"))
}

/// The NIC's backend, as the command line names it ([`crate::Nic::qemu_args`]).
pub(crate) const NETDEV: &str = "net0";

/// Loads the stream in `state` into the QEMU behind `qmp` (started with `-incoming defer`)
/// and runs the guest once it is whole, its NIC's link down: a copy serves nobody before it
/// is resumed (its clock, randomness and key are still the snapshot's) and [`link_up`]. `alive`
/// tells whether that QEMU still runs: it exits when the stream does not fit its machine.
pub(crate) fn load(qmp: &Path, state: &Path, timeout: Duration, alive: impl Fn() -> bool) -> Result<(), String> {
    let file = File::open(state).map_err(|e| format!("cannot open the snapshot {}: {e}", state.display()))?;
    let mut qmp = connect(qmp)?;
    qmp.pass_fd(FD_NAME, file.as_fd())?;
    qmp.execute("migrate-incoming", Some(json!({ "uri": format!("fd:{FD_NAME}") })))?;
    let deadline = Instant::now() + timeout;
    loop {
        let status = match qmp.execute("query-status", None) {
            Ok(status) => status,
            Err(_) if !alive() => return Err("QEMU exited while loading the snapshot: it does not fit".into()),
            Err(e) => return Err(e),
        };
        match status.get("status").and_then(Value::as_str) {
            Some("paused") => break,
            Some("running") => return Ok(()),
            _ if Instant::now() >= deadline => return Err(format!("the snapshot did not load within {timeout:?}")),
            _ => std::thread::sleep(POLL),
        }
    }
    qmp.execute("set_link", Some(json!({ "name": NETDEV, "up": false })))?;
    qmp.execute("cont", None).map(|_| ())
}

/// Connects a resumed copy's NIC.
pub(crate) fn link_up(qmp: &Path) -> Result<(), String> {
    connect(qmp)?.execute("set_link", Some(json!({ "name": NETDEV, "up": true }))).map(|_| ())
}

/// Makes the copy behind the control socket its own: `key` from now on, fresh randomness,
/// the host's clock, `restore`'s address.
pub(crate) fn resume(socket: &Path, restore: &Restore, key: &Key) -> Result<(), String> {
    let entropy = Entropy::draw().map_err(|e| format!("cannot draw randomness for the copy: {e}"))?;
    let unix_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let resume = Resume { key: key.clone(), entropy, unix_ns, network: restore.network };
    abi::control::resume(socket, &restore.snapshot_key, resume, RESUME_TIMEOUT).map(|_| ()).map_err(|e| e.to_string())
}
