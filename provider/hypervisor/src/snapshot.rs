//! Snapshots: an instance booted for one (`sdsec.snapshot=1`) is saved once ready, its whole
//! state written as QEMU's migration stream; copies start from that state in a new QEMU
//! instead of booting, and each is made its own over the control channel before it serves
//! ([`abi::control::Resume`]: its own key, fresh kernel randomness, the clock, its address).
//!
//! QEMU is handed the files by descriptor (`getfd`), so its sandbox opens no path; the
//! stream is saved from a paused guest, so a copy starts paused too and runs only once the
//! stream has loaded whole.

use std::fs::File;
use std::io::{Seek as _, SeekFrom};
use std::os::fd::AsFd as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use abi::control::{Entropy, Key, Resume, ResumeNetwork};
use serde_json::{Value, json};

use crate::qmp::Qmp;
use crate::{HypervisorError, InstanceId};

/// What a boot restores instead of booting the image's kernel.
#[derive(Debug, Clone)]
pub struct Restore {
    /// The saved state, opened once: QEMU's migration stream of an instance booted for a
    /// snapshot of the same image, on an emulator of the same
    /// [`crate::Hypervisor::snapshot_compat`]. QEMU is handed this very descriptor, so what
    /// the caller verified through it is what loads (a path could be swapped in between).
    /// Its offset is shared with QEMU: one copy at a time per opened file.
    pub state: Arc<File>,
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
///
/// Fails with [`HypervisorError::SnapshotUnloadable`] when QEMU refused the stream itself
/// (its load failed, or it exited while loading): that snapshot will never load here. Any
/// other failure (a timeout of a slow host, a lost QMP connection) is
/// [`HypervisorError::Snapshot`], which says nothing of the stream.
pub(crate) fn load(
    id: &InstanceId,
    qmp: &Path,
    state: &File,
    timeout: Duration,
    alive: impl Fn() -> bool,
) -> Result<(), HypervisorError> {
    let fail = |reason: String| HypervisorError::Snapshot { id: id.clone(), reason };
    let refused = |reason: String| HypervisorError::SnapshotUnloadable { id: id.clone(), reason };
    // QEMU reads from the descriptor's offset, which the caller's verification may have moved.
    let mut rewound = state;
    rewound.seek(SeekFrom::Start(0)).map_err(|e| fail(format!("cannot rewind the snapshot's state: {e}")))?;
    let mut qmp = connect(qmp).map_err(fail)?;
    qmp.pass_fd(FD_NAME, state.as_fd()).map_err(fail)?;
    qmp.execute("migrate-incoming", Some(json!({ "uri": format!("fd:{FD_NAME}") }))).map_err(fail)?;
    let deadline = Instant::now() + timeout;
    loop {
        let polled = qmp.execute("query-migrate", None).and_then(|m| Ok((m, qmp.execute("query-status", None)?)));
        let (migration, status) = match polled {
            Ok(polled) => polled,
            Err(_) if gone(&alive) => return Err(refused("QEMU exited while loading the stream".into())),
            Err(e) => return Err(fail(e)),
        };
        match loading(&migration, &status) {
            Loading::Loaded => break,
            Loading::Running => return Ok(()),
            Loading::Refused(why) => return Err(refused(format!("QEMU could not load the stream: {why}"))),
            Loading::Busy if Instant::now() >= deadline => {
                let why = format!(
                    "the snapshot did not load within {timeout:?}; the host may be overloaded: start again, or give a longer timeout (`sdsec run --timeout`, or the resource's `create` timeout in Terraform)"
                );
                return Err(fail(why));
            }
            Loading::Busy => std::thread::sleep(POLL),
        }
    }
    qmp.execute("set_link", Some(json!({ "name": NETDEV, "up": false }))).map_err(fail)?;
    qmp.execute("cont", None).map(|_| ()).map_err(fail)
}

/// Whether a QEMU whose QMP connection failed is exiting: it closes the socket a moment
/// before its process is gone.
fn gone(alive: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
    true
}

/// Where an incoming migration stands, from `query-migrate` and `query-status`.
#[derive(Debug, PartialEq, Eq)]
enum Loading {
    /// Whole, the guest paused as it was saved.
    Loaded,
    Running,
    /// QEMU gave up on the stream, for this reason.
    Refused(String),
    Busy,
}

fn loading(migration: &Value, status: &Value) -> Loading {
    if migration.get("status").and_then(Value::as_str) == Some("failed") {
        let why = migration.get("error-desc").and_then(Value::as_str).unwrap_or("no reason given");
        return Loading::Refused(why.to_owned());
    }
    match status.get("status").and_then(Value::as_str) {
        Some("paused") => Loading::Loaded,
        Some("running") => Loading::Running,
        _ => Loading::Busy,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_incoming_migration_is_the_stream_refused_and_anything_else_is_not() {
        let status = |s: &str| json!({ "status": s, "running": false });
        let failed = json!({ "status": "failed", "error-desc": "load of migration failed: Invalid argument" });
        assert_eq!(
            loading(&failed, &status("inmigrate")),
            Loading::Refused("load of migration failed: Invalid argument".into())
        );
        assert_eq!(
            loading(&json!({ "status": "failed" }), &status("paused")),
            Loading::Refused("no reason given".into())
        );
        assert_eq!(loading(&json!({ "status": "active" }), &status("inmigrate")), Loading::Busy);
        assert_eq!(loading(&json!({}), &status("inmigrate")), Loading::Busy);
        assert_eq!(loading(&json!({ "status": "completed" }), &status("paused")), Loading::Loaded);
        assert_eq!(loading(&json!({}), &status("running")), Loading::Running);
    }
}
