//! What PID 1 keeps once its children run: capabilities are per thread in Linux, so each
//! thread of PID 1 gives up what it does not need, and [`check`] verifies it of every
//! thread from /proc before the instance is declared ready.
//!
//! - the main thread (supervision, signals, power-off): CAP_KILL (the application runs as
//!   another user) and CAP_SYS_BOOT;
//! - the exec supervisor: CAP_SYS_PTRACE (reading the refused program's path from the
//!   application's memory);
//! - every other thread (tokio's, the audit writer, the output relay, the control channel):
//!   none; PID 1 starts the latter from a thread without capabilities
//!   ([`without_capabilities`]).
//!
//! Every thread also sets no_new_privs. PID 1 stays uid 0: the plan and the ports are root's
//! files, and the uid alone gives no capability.

use std::sync::atomic::{AtomicBool, Ordering};

use rustix::thread::{CapabilitySet, CapabilitySets};

/// What the main thread keeps.
pub const SUPERVISION: CapabilitySet = CapabilitySet::KILL.union(CapabilitySet::SYS_BOOT);
/// What the exec supervisor thread keeps.
pub const EXEC_SUPERVISION: CapabilitySet = CapabilitySet::SYS_PTRACE;

/// Set when a thread could not give up its capabilities on its own (see [`drop_quietly`]).
static FAILED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("cannot give up capabilities: {0}")]
    Drop(std::io::Error),
    #[error("a thread of PID 1 could not give up its capabilities")]
    Thread,
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("thread {tid} of PID 1 still holds capabilities {held:#x} beyond {allowed:#x}")]
    Kept { tid: String, held: u64, allowed: u64 },
}

/// Keeps only `keep` on the calling thread: bounding, permitted and effective sets; nothing
/// inheritable or ambient; no_new_privs.
pub fn keep_only(keep: CapabilitySet) -> Result<(), PrivilegeError> {
    let drop = |e: rustix::io::Errno| PrivilegeError::Drop(e.into());
    for bit in 0..64u32 {
        let capability = CapabilitySet::from_bits_retain(1 << bit);
        if keep.contains(capability) {
            continue;
        }
        // Dropping needs CAP_SETPCAP, even for one already gone: a thread started by one that
        // gave it up (tokio's blocking threads) only checks.
        match rustix::thread::capability_is_in_bounding_set(capability) {
            Ok(false) => continue,
            Ok(true) => rustix::thread::remove_capability_from_bounding_set(capability).map_err(drop)?,
            // Past the last capability the kernel knows.
            Err(rustix::io::Errno::INVAL) => break,
            Err(e) => return Err(drop(e)),
        }
    }
    rustix::thread::clear_ambient_capability_set().map_err(drop)?;
    let sets = CapabilitySets { effective: keep, permitted: keep, inheritable: CapabilitySet::empty() };
    rustix::thread::set_capabilities(None, sets).map_err(drop)?;
    rustix::thread::set_no_new_privs(true).map_err(drop)
}

/// [`keep_only`] for threads that cannot report an error: a failure is remembered and
/// [`check`] reports it.
pub fn drop_quietly(keep: CapabilitySet) {
    if keep_only(keep).is_err() {
        FAILED.store(true, Ordering::Relaxed);
    }
}

/// Runs `work` on a thread that holds no capability, so that the threads it starts hold
/// none either (a new thread inherits its creator's sets).
pub fn without_capabilities<T: Send>(work: impl FnOnce() -> T + Send) -> Result<T, PrivilegeError> {
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            keep_only(CapabilitySet::empty())?;
            Ok(work())
        });
        worker.join().unwrap_or(Err(PrivilegeError::Thread))
    })
}

/// Verifies that no thread of this process holds more than `allowed` says for it, given its
/// name and whether it is the main thread.
pub fn check(allowed: impl Fn(&str, bool) -> CapabilitySet) -> Result<(), PrivilegeError> {
    if FAILED.load(Ordering::Relaxed) {
        return Err(PrivilegeError::Thread);
    }
    let tasks = "/proc/self/task";
    let main = std::process::id().to_string();
    let read = |path: String| {
        std::fs::read_to_string(&path).map_err(|source| PrivilegeError::Read { path: path.clone(), source })
    };
    let entries = std::fs::read_dir(tasks).map_err(|source| PrivilegeError::Read { path: tasks.into(), source })?;
    for entry in entries.flatten() {
        let tid = entry.file_name().to_string_lossy().into_owned();
        let status = match read(format!("{tasks}/{tid}/status")) {
            Ok(status) => status,
            // The thread ended meanwhile.
            Err(PrivilegeError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let name = status.lines().find_map(|l| l.strip_prefix("Name:")).unwrap_or_default().trim();
        let allowed = allowed(name, tid == main);
        let held = held(&status);
        if held & !allowed.bits() != 0 {
            return Err(PrivilegeError::Kept { tid: format!("{tid} ({name})"), held, allowed: allowed.bits() });
        }
    }
    Ok(())
}

/// The union of the permitted, effective and bounding sets in a task's status.
fn held(status: &str) -> u64 {
    status
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            matches!(name, "CapPrm" | "CapEff" | "CapBnd" | "CapAmb")
                .then(|| u64::from_str_radix(value.trim(), 16).ok())?
        })
        .fold(0, |all, set| all | set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_set_a_thread_could_use_is_counted() {
        let status = "Name:\tinit\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000020\n\
                      CapEff:\t0000000000000020\nCapBnd:\t0000000000400020\nCapAmb:\t0000000000000000\n";
        assert_eq!(held(status), 0x40_0020);
        assert_eq!(CapabilitySet::KILL.bits(), 0x20);
    }

    #[test]
    fn a_thread_keeps_only_what_it_is_told_and_check_sees_it() {
        // In a thread of its own: capabilities are per thread, the test process is left alone.
        if !rustix::process::geteuid().is_root() {
            return; // giving up the bounding set needs CAP_SETPCAP
        }
        let outcome = std::thread::spawn(|| {
            keep_only(CapabilitySet::empty()).map_err(|e| e.to_string())?;
            let status = std::fs::read_to_string("/proc/thread-self/status").map_err(|e| e.to_string())?;
            Ok::<u64, String>(held(&status))
        })
        .join()
        .unwrap();
        assert_eq!(outcome, Ok(0));
        // Threads started from a thread without capabilities hold none either, and can say
        // so again (as tokio's blocking threads do at their start).
        let inherited = without_capabilities(|| {
            std::thread::spawn(|| {
                keep_only(CapabilitySet::empty()).unwrap();
                std::fs::read_to_string("/proc/thread-self/status").unwrap()
            })
            .join()
            .unwrap()
        });
        assert_eq!(inherited.map(|status| held(&status)).ok(), Some(0));
        // Other threads of the test process still hold what they had (root's, when run as root).
        assert!(check(|_, _| CapabilitySet::from_bits_retain(u64::MAX)).is_ok());
        let main_thread_caps =
            check(|_, main| if main { CapabilitySet::empty() } else { CapabilitySet::from_bits_retain(u64::MAX) });
        assert!(matches!(main_thread_caps, Err(PrivilegeError::Kept { .. })), "{main_thread_caps:?}");
    }
}
