//! Who is creating an instance. Every boot records its creator (this process: pid and
//! start time) in the instance's record before the VM starts; the creator clears it once
//! the instance is handed to whoever keeps track of it (Terraform's state, a pool's
//! ledger, the user of `sdsec run`). A record whose creator is gone but still names it is
//! an orphan: its creator died mid-creation (SIGKILL, a crash), and nobody else knows of
//! the VM. The provider stops orphans at its next start or plan, `sdsec stop --orphans`
//! on demand.
//!
//! Processes are told apart by pid and start time, so a pid reused since is not mistaken
//! for the creator. Creators must share the host's pid namespace.

use serde::{Deserialize, Serialize};

/// The process creating an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creator {
    pub pid: u32,
    /// Clock ticks after boot (field 22 of /proc/PID/stat); 0 when it could not be read,
    /// in which case only the pid is compared.
    pub start_time: u64,
    /// Milliseconds since the Unix epoch when creation began.
    pub since_ms: u64,
}

/// Where an instance's creation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creation {
    /// Handed over (or booted by a release that did not record creators).
    Complete,
    /// Its creator is still at it.
    Creating,
    /// Its creator is gone and never completed it.
    Orphaned,
}

impl Creation {
    /// How `sdsec ps` shows it beside the instance's state.
    pub fn as_str(self) -> &'static str {
        match self {
            Creation::Complete => "complete",
            Creation::Creating => "creating",
            Creation::Orphaned => "orphan",
        }
    }
}

impl Creator {
    /// This process, as of now.
    pub fn this_process() -> Creator {
        let pid = std::process::id();
        let since_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Creator { pid, start_time: start_time(pid).unwrap_or(0), since_ms }
    }

    /// Whether the creating process still runs (not as a zombie).
    pub fn alive(&self) -> bool {
        match process_facts(self.pid) {
            None | Some((_, true)) => false,
            Some((started, false)) => self.start_time == 0 || started == self.start_time,
        }
    }
}

/// The creation state of a record that names `creator` (`None`: complete).
pub fn creation(creator: Option<&Creator>) -> Creation {
    match creator {
        None => Creation::Complete,
        Some(c) if c.alive() => Creation::Creating,
        Some(_) => Creation::Orphaned,
    }
}

fn start_time(pid: u32) -> Option<u64> {
    process_facts(pid).map(|(started, _)| started)
}

/// Process `pid`'s start time and whether it is a zombie, from /proc/PID/stat.
fn process_facts(pid: u32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces and parentheses:
    // fields are counted after the last `)`, where field 3 (the state) begins.
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let zombie = rest.next()? == "Z";
    Some((rest.nth(22 - 4)?.parse().ok()?, zombie))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_creator_is_creating_and_a_dead_or_recycled_one_leaves_an_orphan() {
        let me = Creator::this_process();
        assert!(me.start_time > 0, "/proc gives this process's start time");
        assert_eq!(creation(Some(&me)), Creation::Creating);
        assert_eq!(creation(None), Creation::Complete);
        let recycled = Creator { start_time: me.start_time + 1, ..me };
        assert_eq!(creation(Some(&recycled)), Creation::Orphaned, "same pid, another process");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let dead = Creator { pid, start_time: start_time(pid).unwrap_or(0), since_ms: 0 };
        child.wait().unwrap();
        assert_eq!(creation(Some(&dead)), Creation::Orphaned, "exited and reaped");
        assert_eq!(Creation::Orphaned.as_str(), "orphan");
    }
}
