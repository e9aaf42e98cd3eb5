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

fn write_lines(rx: Receiver<String>, out: Box<dyn Write + Send>, dropped: &AtomicU64) {
    let mut out = std::io::BufWriter::new(out);
    while let Ok(line) = rx.recv() {
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(out, "{}", Event::AuditOverflow { ts: now_rfc3339(), dropped: lost }.to_line());
        }
        if writeln!(out, "{line}").is_err() {
            return;
        }
        // Flush when the queue is empty: batches under load, prompt when idle.
        let mut next = rx.try_recv();
        while let Ok(line) = next {
            if writeln!(out, "{line}").is_err() {
                return;
            }
            next = rx.try_recv();
        }
        if out.flush().is_err() {
            return;
        }
    }
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
