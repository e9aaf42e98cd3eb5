//! Watching a guest boot: the runtime's events on the audit log (`audit_open`, `ready`, an
//! init error, the application's exit), and on the console only what is written before the
//! application exists: a kernel panic, and the runtime's init errors until the audit
//! channel has opened.
//!
//! Why the console's init errors can be trusted: the runtime writes `audit_open` before it
//! starts the application, and its write to the virtio port returns once QEMU has taken
//! the line. Each poll reads the console first, then the audit log: a console line read
//! while the audit log still had no `audit_open` was written before the application
//! started.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use abi::control::Provision;
use abi::event::Event;

use crate::control::ControlChannel;
use crate::logs::LogFile;
use crate::{BootSpec, HypervisorError, InstanceId, Result, logs, probe};
use notice::NoticeListener;

/// How often the logs are read while booting, when readiness can only be seen there.
const POLL: Duration = Duration::from_millis(25);
/// ... and when the runtime's ready notice ends the wait at once: the logs then only tell
/// of failures.
const POLL_WITH_NOTICE: Duration = Duration::from_millis(100);
/// How often a boot that takes long rotates the logs past their caps.
const ROTATE_EVERY: Duration = Duration::from_secs(2);
/// Log lines an error carries, of each log.
const TAIL_LINES: usize = 30;
/// Probes closed without an answer in a row, after the runtime said it was ready, that end
/// the wait: the runtime answers every probe it admits.
const DROPPED_PROBES: u32 = 5;

/// What the kernel prints when it gives up (PID 1 died, no root, ...).
const KERNEL_PANIC: &str = "Kernel panic";

/// Bytes of a log read at most per poll: what a guest writes between two polls is far less.
const READ_PER_POLL: u64 = 1 << 20;

/// Follows one log from where it last read; starts again from the top when the log was
/// truncated (rotated) under it.
#[derive(Debug)]
struct Follower<'a> {
    log: &'a dyn LogFile,
    offset: u64,
    partial: String,
}

impl<'a> Follower<'a> {
    fn new(log: &'a dyn LogFile) -> Follower<'a> {
        Follower { log, offset: 0, partial: String::new() }
    }

    /// The whole lines written since the last call.
    fn lines(&mut self) -> Vec<String> {
        let Ok(len) = self.log.size() else { return Vec::new() };
        if len < self.offset {
            self.offset = 0;
            self.partial.clear();
        }
        if len == self.offset {
            return Vec::new();
        }
        let Ok(bytes) = self.log.read_at(self.offset, (len - self.offset).min(READ_PER_POLL)) else {
            return Vec::new();
        };
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let mut lines = Vec::new();
        while let Some(end) = self.partial.find('\n') {
            lines.push(self.partial.drain(..=end).collect());
        }
        lines
    }
}

/// Follows a booting instance's console and audit logs.
#[derive(Debug)]
pub struct Watcher<'a> {
    console: Follower<'a>,
    audit: Follower<'a>,
    audit_open: bool,
    ready: bool,
    failure: Option<String>,
}

impl<'a> Watcher<'a> {
    pub fn new(console: &'a dyn LogFile, audit: &'a dyn LogFile) -> Watcher<'a> {
        Watcher {
            console: Follower::new(console),
            audit: Follower::new(audit),
            audit_open: false,
            ready: false,
            failure: None,
        }
    }

    fn poll(&mut self) {
        // The console first: see the module's doc.
        let console = self.console.lines();
        for line in self.audit.lines() {
            let event = Event::parse(&line);
            self.audit_open |= matches!(event, Some(Event::AuditOpen { .. }));
            self.ready |= matches!(event, Some(Event::Ready { .. }));
            if matches!(event, Some(Event::InitError { .. } | Event::AppExit { .. })) {
                self.failure.get_or_insert_with(|| line.trim().to_owned());
            }
        }
        for line in console {
            let init_error = !self.audit_open && matches!(Event::parse(&line), Some(Event::InitError { .. }));
            if init_error || line.contains(KERNEL_PANIC) {
                self.failure.get_or_insert_with(|| line.trim().to_owned());
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

/// Where a booting instance keeps its logs, and its control channel.
#[derive(Debug)]
pub struct BootChannels<'a> {
    pub console: &'a dyn LogFile,
    pub audit: &'a dyn LogFile,
    pub control: Option<ControlChannel>,
}

/// Waits, whatever the backend, for the runtime's ready notice on the control channel (or
/// its ready event on the audit log, where no notice comes), and then a 200 from its
/// health path through `endpoint` (unless the spec's probe says the ingress rules refuse
/// it); `alive` tells whether the VM still runs. A copy of a snapshot is ready once its
/// resume was answered. Returns the milliseconds since `started`.
pub fn wait_ready(
    spec: &BootSpec,
    id: &InstanceId,
    logs: BootChannels<'_>,
    endpoint: SocketAddr,
    started: Instant,
    mut alive: impl FnMut() -> bool,
) -> Result<u64> {
    let deadline = started + spec.ready_timeout;
    let mut watcher = Watcher::new(logs.console, logs.audit);
    let resumed = spec.restore.is_some() && spec.control.is_some();
    let mut notice = match (logs.control, &spec.control) {
        (Some(channel), Some(control)) if !resumed => {
            // Init waits for this before anything else: see [`crate::control::personalise`].
            let provision = Provision::draw(control.key.clone())
                .map_err(|e| HypervisorError::Seed { id: id.clone(), reason: e.to_string() })?;
            Some(NoticeListener::new(channel, control.key.clone(), provision))
        }
        _ => None,
    };
    let mut notified = false;
    let mut last_probe = String::from("no ready event on the audit channel yet");
    let mut dropped = 0;
    let tails = || logs::tails(logs.console, logs.audit, TAIL_LINES);
    let died = |what: String| HypervisorError::DiedBooting { id: id.clone(), what, console: tails() };
    let mut last_rotation = Instant::now();
    loop {
        // Each look at a log may cost a round trip to a daemon elsewhere: rotated seldom.
        if last_rotation.elapsed() >= ROTATE_EVERY {
            logs::rotate_both(logs.console, logs.audit);
            last_rotation = Instant::now();
        }
        if !alive() {
            return Err(died(watcher.failure().unwrap_or_else(|| "the VM stopped".to_owned())));
        }
        // Told once: the channel is given up for the instance's other clients.
        if notice.as_mut().is_some_and(|n| n.wait(Duration::ZERO)) {
            notice = None;
            notified = true;
        }
        if notice.as_ref().is_some_and(NoticeListener::forged) {
            return Err(HypervisorError::ForeignKey { id: id.clone() });
        }
        // A guest given its key by the listener is ready by its notice under that key only.
        let audit_ready = notice.is_none() && watcher.saw_ready();
        if resumed || notified || audit_ready {
            if !spec.probe.http {
                return Ok(started.elapsed().as_millis() as u64);
            }
            let answer = probe::http_status(endpoint, &spec.health_path, Duration::from_secs(2));
            dropped = if answer.as_ref().is_err_and(probe::ProbeError::dropped) { dropped + 1 } else { 0 };
            match answer {
                Ok(200) => return Ok(started.elapsed().as_millis() as u64),
                Ok(code) => last_probe = format!("the health path {} answered {code}", spec.health_path),
                Err(e) => last_probe = format!("the health probe failed: {e}"),
            }
            if dropped >= DROPPED_PROBES {
                return Err(HypervisorError::ProbeDropped {
                    id: id.clone(),
                    from: spec.probe.source,
                    times: dropped,
                    console: tails(),
                });
            }
        }
        if let Some(failure) = watcher.failure() {
            return Err(died(failure));
        }
        if Instant::now() >= deadline {
            return Err(HypervisorError::NotReady {
                id: id.clone(),
                seconds: spec.ready_timeout.as_secs(),
                what: last_probe,
                console: tails(),
            });
        }
        match &mut notice {
            Some(listener) if listener.connected() => _ = listener.wait(POLL_WITH_NOTICE),
            Some(listener) => _ = listener.wait(POLL),
            None => std::thread::sleep(POLL),
        }
    }
}

mod notice;
#[cfg(test)]
mod tests;
