//! Reading the guest's serial console log while it boots: the runtime's ready line, and
//! the lines that tell a boot failed (the runtime's init errors, a kernel panic).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use abi::event::Event;

use crate::{BootSpec, HypervisorError, InstanceId, Result, probe};

/// How often readiness is polled while booting.
const POLL: Duration = Duration::from_millis(25);
/// Console lines an error carries.
const TAIL_LINES: usize = 30;

/// What the kernel prints when it gives up (PID 1 died, no root, ...).
const KERNEL_PANIC: &str = "Kernel panic";

/// Follows the log from where it last read.
#[derive(Debug)]
pub struct Watcher<'a> {
    path: &'a Path,
    offset: u64,
    partial: String,
    ready: bool,
    failure: Option<String>,
}

impl<'a> Watcher<'a> {
    pub fn new(path: &'a Path) -> Watcher<'a> {
        Watcher { path, offset: 0, partial: String::new(), ready: false, failure: None }
    }

    fn poll(&mut self) {
        let Ok(mut file) = File::open(self.path) else { return };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut bytes = Vec::new();
        let Ok(n) = file.read_to_end(&mut bytes) else { return };
        self.offset += n as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            let event = Event::parse(&line);
            self.ready |= matches!(event, Some(Event::Ready { .. }));
            let failed = matches!(event, Some(Event::InitError { .. } | Event::AppExit { .. }));
            if self.failure.is_none() && (failed || line.contains(KERNEL_PANIC)) {
                self.failure = Some(line.trim().to_owned());
            }
        }
    }

    pub fn saw_ready(&mut self) -> bool {
        self.poll();
        self.ready
    }

    pub fn failure(&mut self) -> Option<String> {
        self.poll();
        self.failure.clone()
    }
}

/// Waits, whatever the backend, for the runtime's ready line on the console and then a 200
/// from its health path through the forwarded port; `alive` tells whether the VM still
/// runs. Returns the milliseconds since `started`.
pub fn wait_ready(
    spec: &BootSpec,
    id: &InstanceId,
    console_path: &Path,
    endpoint: SocketAddr,
    started: Instant,
    mut alive: impl FnMut() -> bool,
) -> Result<u64> {
    let deadline = started + spec.ready_timeout;
    let mut console = Watcher::new(console_path);
    let mut last_probe = String::from("no ready line on the console yet");
    let died =
        |what: String| HypervisorError::DiedBooting { id: id.clone(), what, console: tail(console_path, TAIL_LINES) };
    loop {
        if !alive() {
            return Err(died(console.failure().unwrap_or_else(|| "the VM stopped".to_owned())));
        }
        if console.saw_ready() {
            match probe::http_status(endpoint, &spec.health_path, Duration::from_secs(2)) {
                Ok(200) => return Ok(started.elapsed().as_millis() as u64),
                Ok(code) => last_probe = format!("the health path {} answered {code}", spec.health_path),
                Err(e) => last_probe = format!("the health probe failed: {e}"),
            }
        }
        if let Some(failure) = console.failure() {
            return Err(died(failure));
        }
        if Instant::now() >= deadline {
            return Err(HypervisorError::NotReady {
                id: id.clone(),
                seconds: spec.ready_timeout.as_secs(),
                what: last_probe,
                console: tail(console_path, TAIL_LINES),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// The last `lines` lines of the log, with control characters other than newlines
/// dropped (a console may carry escape sequences).
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else { return String::from("(no console output)") };
    let text: String = String::from_utf8_lossy(&bytes).chars().filter(|c| *c == '\n' || !c.is_control()).collect();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let tail = all[start..].join("\n");
    if tail.trim().is_empty() { String::from("(no console output)") } else { tail }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn follows_the_log_across_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let mut file = File::create(&path).unwrap();
        let mut watcher = Watcher::new(&path);
        let ready = Event::Ready { node: "api".into(), listen: "0.0.0.0:80".into(), app: None }.to_line();
        let (head, rest) = ready.split_at(12);
        file.write_all(format!("[    0.1] booting\n{head}").as_bytes()).unwrap();
        assert!(!watcher.saw_ready());
        file.write_all(format!("{rest}\n").as_bytes()).unwrap();
        assert!(watcher.saw_ready());
        assert_eq!(watcher.failure(), None);
        file.write_all(b"{\"event\":\"app_exit\" is not an event\n").unwrap();
        assert_eq!(watcher.failure(), None);
        let failed = Event::InitError { step: "network".into(), error: "no eth0".into() }.to_line();
        file.write_all(format!("\x1b[0m{failed}\n").as_bytes()).unwrap();
        assert!(watcher.failure().unwrap().contains("network"));
        assert!(tail(&path, 1).starts_with("[0m{\"event\":\"init_error\""));
        assert_eq!(tail(&dir.path().join("none"), 5), "(no console output)");
    }

    #[test]
    fn reads_the_lines_runtimes_of_earlier_releases_print() {
        // Literal lines, not `Event::to_line`: instances booted by an earlier release keep
        // running across an upgrade and their consoles must still be understood.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let mut file = File::create(&path).unwrap();
        let mut watcher = Watcher::new(&path);
        file.write_all(b"{\"event\":\"ready\",\"node\":\"api\",\"listen\":\"0.0.0.0:80\",\"app\":\"/app/api\"}\n")
            .unwrap();
        assert!(watcher.saw_ready());
        file.write_all(b"{\"event\":\"app_exit\",\"status\":3}\n").unwrap();
        assert!(watcher.failure().is_some());
    }
}
