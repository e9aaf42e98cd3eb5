//! Audit events: one JSON line each, written by a thread of its own.
//!
//! In the guest stdout is the serial console, which is slow; request handlers therefore only
//! queue lines, and a bounded queue keeps a flood from growing memory. Lines that do not
//! fit are counted and the count is written as soon as there is room, so a gap in the log
//! is always visible. The lines are [`abi::event`]s, which the host reads back; they hold
//! no credentials: the path is written without its query (tokens travel there) and the
//! principal is a name from the plan.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{SystemTime, UNIX_EPOCH};

use abi::event::{Access, AccessKind, Event};
use plan::AuditEvent;

const QUEUE: usize = 8192;

/// Where lines go; cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    queue: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl AuditLog {
    /// Starts the writer thread; it ends when every `AuditLog` clone is gone.
    pub fn spawn(out: Box<dyn Write + Send>) -> std::io::Result<Self> {
        let (queue, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&dropped);
        std::thread::Builder::new().name("audit".into()).spawn(move || write_lines(rx, out, &counter))?;
        Ok(Self { queue, dropped })
    }

    /// Queues `event`, whatever the plan says (the runtime's own events).
    pub fn emit(&self, event: &Event<'_>) {
        self.line(event.to_line());
    }

    fn line(&self, line: String) {
        match self.queue.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The writer is gone (stdout closed): nothing left to report to.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Queues the per-request event of `kind` if the plan records that kind.
    pub fn record(&self, enabled: &[AuditEvent], kind: AuditEvent, access: Access<'_>) {
        if enabled.contains(&kind) {
            self.emit(&Event::access(access_kind(kind), access));
        }
    }
}

/// The event a plan's audit setting names.
fn access_kind(kind: AuditEvent) -> AccessKind {
    match kind {
        AuditEvent::AuthnFailure => AccessKind::AuthnFailure,
        AuditEvent::AuthzDeny => AccessKind::AuthzDeny,
        AuditEvent::FirewallDrop => AccessKind::FirewallDrop,
        AuditEvent::Request => AccessKind::Request,
    }
}

/// Lines are written in batches of whole lines, each with one `write` call: another writer
/// of the same channel (PID 1, the proxy process) never cuts into a line. A virtio-serial
/// port takes up to 32 KiB per call; batches stay below that.
const BATCH: usize = 16 * 1024;

fn write_lines(rx: Receiver<String>, mut out: Box<dyn Write + Send>, dropped: &AtomicU64) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Ok(line) = rx.recv() {
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            push_line(&mut batch, &Event::AuditOverflow { ts: now_rfc3339(), dropped: lost }.to_line());
        }
        push_line(&mut batch, &line);
        // Drain what is queued: batches under load, prompt when idle.
        while batch.len() < BATCH {
            let Ok(line) = rx.try_recv() else { break };
            if batch.len() + line.len() >= BATCH && flush_batch(&mut out, &mut batch).is_err() {
                return;
            }
            push_line(&mut batch, &line);
        }
        if flush_batch(&mut out, &mut batch).is_err() {
            return;
        }
    }
}

fn push_line(batch: &mut Vec<u8>, line: &str) {
    batch.extend_from_slice(line.as_bytes());
    batch.push(b'\n');
}

fn flush_batch(out: &mut Box<dyn Write + Send>, batch: &mut Vec<u8>) -> std::io::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let written = out.write_all(batch).and_then(|()| out.flush());
    batch.clear();
    written
}

/// The current UTC time as RFC 3339 with milliseconds, without a date library.
pub fn now_rfc3339() -> String {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps each `write` call apart.
    #[derive(Debug, Clone, Default)]
    struct Calls(Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

    impl Write for Calls {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_write_holds_whole_lines_only() {
        // Another process writes to the same channel between two of our writes: a line cut
        // across two writes could be split by its line.
        let calls = Calls::default();
        let audit = AuditLog::spawn(Box::new(calls.clone())).unwrap();
        let reason = "r".repeat(700);
        for i in 0..2000 {
            audit.emit(&Event::InitWarning { step: "test".into(), error: format!("{i} {reason}") });
        }
        drop(audit);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while total_lines(&calls.0.lock().unwrap()) < 2000 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let calls = calls.0.lock().unwrap();
        assert_eq!(total_lines(&calls), 2000);
        for call in calls.iter() {
            assert!(call.ends_with(b"\n") && call.len() <= BATCH + 1024, "a write of {} bytes", call.len());
            for line in call.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                assert!(Event::parse(std::str::from_utf8(line).unwrap()).is_some());
            }
        }
    }

    fn total_lines(calls: &[Vec<u8>]) -> usize {
        calls.iter().map(|c| c.iter().filter(|b| **b == b'\n').count()).sum()
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
    }

    #[test]
    fn each_audit_setting_writes_the_event_it_names() {
        // A policy's `audit.events` and the console's `event` tag are the same words: the
        // plan names the first, the contract the second, and this ties them.
        for &kind in AuditEvent::ALL {
            let access = Access {
                ts: "t".into(),
                src: "10.0.2.2:1".parse().unwrap(),
                method: None,
                path: None,
                principal: None,
                status: None,
                reason: None,
            };
            let line = Event::access(access_kind(kind), access).to_line();
            let tag: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(tag["event"], kind.as_str(), "{line}");
        }
    }
}
