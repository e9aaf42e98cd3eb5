//! The QEMU process of an instance, found again by pid after the process that started it
//! has gone. A pid is only trusted when `/proc/<pid>/cmdline` names the instance, so a
//! recycled pid is never signalled.

use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use super::args::process_name;
use crate::registry::PIDFILE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QemuProcess {
    pub pid: i32,
}

impl QemuProcess {
    /// The live QEMU of instance `id` in `dir`, if any. Found by its pid file, or, before
    /// QEMU has written one (its creator was killed as it started it), by its name among
    /// the running processes: an instance is never taken for gone while its QEMU runs.
    pub fn find(dir: &Path, id: &str) -> Option<QemuProcess> {
        let recorded = std::fs::read_to_string(dir.join(PIDFILE)).ok().and_then(|pid| pid.trim().parse().ok());
        match recorded {
            Some(pid) => Some(QemuProcess { pid }).filter(|p| p.is_ours(id)),
            None => Self::search(id),
        }
    }

    fn search(id: &str) -> Option<QemuProcess> {
        let pids = std::fs::read_dir("/proc").ok()?.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok());
        pids.map(|pid| QemuProcess { pid }).find(|p| p.is_ours(id))
    }

    fn is_ours(&self, id: &str) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", self.pid)) else { return false };
        let name = process_name(id);
        let named = cmdline.split(|b| *b == 0).any(|arg| arg.ends_with(format!("process={name}").as_bytes()));
        named && self.alive()
    }

    /// Running and not a zombie waiting to be reaped.
    pub fn alive(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            // The state follows the command name, which is in parentheses and may hold spaces.
            Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
            Err(_) => false,
        }
    }

    pub fn signal(&self, signal: Signal) {
        // Gone already is fine: that is what the caller wants.
        if let Some(pid) = Pid::from_raw(self.pid) {
            let _ = kill_process(pid, signal);
        }
    }

    /// Waits until the process is gone; false if it is still there after `timeout`.
    pub fn wait_gone(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.alive() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// SIGTERM, then SIGKILL if it lingers.
    pub fn kill(&self) {
        self.signal(Signal::TERM);
        if !self.wait_gone(Duration::from_secs(2)) {
            self.signal(Signal::KILL);
            self.wait_gone(Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A QEMU whose creator was killed before it wrote its pid file is still found, and a
    /// pid file naming another process is not trusted.
    #[test]
    fn found_by_name_without_a_pid_file_and_never_by_a_foreign_pid() {
        let dir = tempfile::tempdir().unwrap();
        let id = format!("i-test{}", std::process::id());
        let name = format!("guest=x,process={}", process_name(&id));
        // Two commands, so that the shell (whose arguments carry the name) is not replaced by sleep.
        let mut child = std::process::Command::new("sh").args(["-c", "sleep 30; :", &name]).spawn().unwrap();
        // Until the child has executed the shell, its command line is still this test's.
        let deadline = Instant::now() + Duration::from_secs(10);
        let found = loop {
            let found = QemuProcess::find(dir.path(), &id);
            if found.is_some() || Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(found.map(|p| p.pid), Some(child.id() as i32));
        std::fs::write(dir.path().join(PIDFILE), format!("{}\n", std::process::id())).unwrap();
        assert_eq!(QemuProcess::find(dir.path(), &id), None, "the pid file names a process that is not the instance's");
        child.kill().unwrap();
        child.wait().unwrap();
        std::fs::remove_file(dir.path().join(PIDFILE)).unwrap();
        assert_eq!(QemuProcess::find(dir.path(), &id), None);
    }
}
