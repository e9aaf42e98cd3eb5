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
    /// The live QEMU of instance `id` in `dir`, if any, by its pid file.
    pub fn find(dir: &Path, id: &str) -> Option<QemuProcess> {
        let pid: i32 = std::fs::read_to_string(dir.join(PIDFILE)).ok()?.trim().parse().ok()?;
        Some(QemuProcess { pid }).filter(|p| p.is_ours(id))
    }

    /// Like [`QemuProcess::find`], and for an instance still being created also before QEMU
    /// has written its pid file (its creator was killed while QEMU started): among this
    /// user's processes, the one named for the instance that writes its pid file in `dir`.
    /// An instance is never taken for gone while its QEMU runs.
    pub fn find_creating(dir: &Path, id: &str) -> Option<QemuProcess> {
        let pidfile = dir.join(PIDFILE);
        if pidfile.exists() {
            return Self::find(dir, id);
        }
        let writes_pidfile = |args: &[&[u8]]| {
            args.windows(2).any(|w| w[0] == b"-pidfile" && w[1] == pidfile.as_os_str().as_encoded_bytes())
        };
        let uid = rustix::process::getuid().as_raw();
        let pids = std::fs::read_dir("/proc").ok()?.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok());
        pids.map(|pid| QemuProcess { pid }).find(|p| {
            p.owner() == Some(uid) && p.args_match(|args| named(args, id) && writes_pidfile(args)) && p.alive()
        })
    }

    /// The real uid the process runs as.
    fn owner(&self) -> Option<u32> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.parse().ok()
    }

    /// Whether its command line, read once, satisfies `test`.
    fn args_match(&self, test: impl FnOnce(&[&[u8]]) -> bool) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", self.pid)) else { return false };
        test(&cmdline.split(|b| *b == 0).collect::<Vec<_>>())
    }

    fn is_ours(&self, id: &str) -> bool {
        self.args_match(|args| named(args, id)) && self.alive()
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

/// Whether QEMU's arguments name it for instance `id` (`-name ...,process=<name>`).
fn named(args: &[&[u8]], id: &str) -> bool {
    let name = format!("process={}", process_name(id));
    args.iter().any(|arg| arg.ends_with(name.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A QEMU whose creator was killed before it wrote its pid file is still found, by its
    /// name and pid file among this user's processes; a process merely named like it is
    /// not, nor is one a pid file names that is not the instance's.
    #[test]
    fn found_while_creating_without_a_pid_file_and_never_by_a_name_alone() {
        let dir = tempfile::tempdir().unwrap();
        let id = format!("i-test{}", std::process::id());
        let name = format!("guest=x,process={}", process_name(&id));
        let pidfile = dir.path().join(PIDFILE);
        let pidfile = pidfile.to_str().unwrap();
        // Two commands, so that the shell (whose arguments carry the name) is not replaced by sleep.
        let spawn = |args: &[&str]| std::process::Command::new("sh").args(args).spawn().unwrap();
        let mut named_only = spawn(&["-c", "sleep 30; :", &name]);
        let mut qemu_like = spawn(&["-c", "sleep 30; :", &name, "-pidfile", pidfile]);
        // Until a child has executed the shell, its command line is still this test's.
        let deadline = Instant::now() + Duration::from_secs(10);
        let found = loop {
            let found = QemuProcess::find_creating(dir.path(), &id);
            if found.is_some() || Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(found.map(|p| p.pid), Some(qemu_like.id() as i32));
        assert_eq!(QemuProcess::find(dir.path(), &id), None, "without a pid file, only while creating");
        std::fs::write(dir.path().join(PIDFILE), format!("{}\n", std::process::id())).unwrap();
        assert_eq!(QemuProcess::find_creating(dir.path(), &id), None, "the pid file names another process");
        for child in [&mut named_only, &mut qemu_like] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}
