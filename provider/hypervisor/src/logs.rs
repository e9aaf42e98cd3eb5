//! An instance's two logs, kept in its directory: `console.log` (the serial console: the
//! kernel's messages and the application's output) and `audit.log` (the runtime's events,
//! from the virtio-serial port [`abi::event::AUDIT_PORT_NAME`] that only the runtime opens).
//! Events are read from the audit log only: the application writes to the console and could
//! forge them there.
//!
//! Both are bounded. QEMU appends to them (`append=on`), and whatever touches an instance
//! (the boot wait, refresh, `sdsec ps`) rotates a log past its cap: copied to `<name>.1`
//! (the one previous file kept) and truncated, so QEMU's next write lands at its start.
//! Between two touches a log grows by what the guest writes; the runtime bounds the rate
//! of the application's output on the console. Lines written between the copy and the
//! truncation are lost.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use abi::event::Event;

use crate::Instance;

/// The console log's cap: the kernel's boot messages take a few KiB, the rest is the
/// application's output.
pub const CONSOLE_CAP: u64 = 4 << 20;
/// The audit log's cap: one event is about 200 bytes, so some 80 000 events per file.
pub const AUDIT_CAP: u64 = 16 << 20;

/// The previous file of a rotated log: `<name>.1`.
pub fn previous(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".1");
    path.with_file_name(name)
}

/// Rotates the log at `path` when it is larger than `cap`; whether it did. A missing log
/// is not an error (the instance may not have written it yet).
pub fn rotate(path: &Path, cap: u64) -> std::io::Result<bool> {
    match fs::metadata(path) {
        Ok(meta) if meta.len() > cap => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    fs::copy(path, previous(path))?;
    OpenOptions::new().write(true).open(path)?.set_len(0)?;
    Ok(true)
}

/// Rotates both logs of `instance` that are past their caps. Failing to is not fatal to
/// whatever touches the instance: the logs just grow until the next touch.
pub fn rotate_instance(instance: &Instance) {
    let _ = rotate(&instance.console_log, CONSOLE_CAP);
    if let Some(audit) = &instance.audit_log {
        let _ = rotate(audit, AUDIT_CAP);
    }
}

/// The log `instance`'s runtime writes its events to: its audit log; for an instance
/// booted by an earlier release (no audit channel, its runtime writes events to the
/// console) the console log.
pub fn event_log(instance: &Instance) -> &Path {
    instance.audit_log.as_deref().unwrap_or(&instance.console_log)
}

/// Every event kept of `instance`: the previous file's, then the current one's.
pub fn events(instance: &Instance) -> Vec<Event<'static>> {
    let log = event_log(instance);
    let mut text = fs::read_to_string(previous(log)).unwrap_or_default();
    text.push_str(&fs::read_to_string(log).unwrap_or_default());
    Event::scan(&text).collect()
}

/// The last `lines` lines of the log, with control characters other than newlines
/// dropped (a console may carry escape sequences).
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(bytes) = fs::read(path) else { return String::from("(no output)") };
    let text: String = String::from_utf8_lossy(&bytes).chars().filter(|c| *c == '\n' || !c.is_control()).collect();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let tail = all[start..].join("\n");
    if tail.trim().is_empty() { String::from("(no output)") } else { tail }
}

/// What a failed boot shows: the console's last lines, then the audit log's.
pub fn tails(console: &Path, audit: &Path, lines: usize) -> String {
    format!("{}\nAudit log tail:\n{}", tail(console, lines), tail(audit, lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn a_log_past_its_cap_is_kept_once_and_written_again_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        assert!(!rotate(&path, 10).unwrap(), "no log yet");
        // As QEMU writes with append=on.
        let mut writer = OpenOptions::new().create(true).append(true).open(&path).unwrap();
        writer.write_all(b"0123456789").unwrap();
        assert!(!rotate(&path, 10).unwrap(), "at the cap is not past it");
        writer.write_all(b"abc\n").unwrap();
        assert!(rotate(&path, 10).unwrap());
        assert_eq!(fs::read(previous(&path)).unwrap(), b"0123456789abc\n");
        writer.write_all(b"next\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"next\n", "appends land at the start of the truncated file");
        writer.write_all(b"0123456789").unwrap();
        assert!(rotate(&path, 10).unwrap());
        assert_eq!(fs::read(previous(&path)).unwrap(), b"next\n0123456789", "one previous file only");
        assert_eq!(previous(&path), dir.path().join("console.log.1"));
    }

    #[test]
    fn events_come_from_the_audit_log_and_from_the_console_only_for_earlier_instances() {
        let dir = tempfile::tempdir().unwrap();
        let console = dir.path().join("console.log");
        let audit = dir.path().join("audit.log");
        let refused = Event::ControlRefused { reason: abi::event::Refusal::BadMac, seq: 1 };
        let forged = format!("{}\n", refused.to_line());
        fs::write(&console, &forged).unwrap();
        let open = Event::AuditOpen { runtime: "1".into() }.to_line();
        fs::write(previous(&audit), format!("{open}\n")).unwrap();
        fs::write(&audit, format!("{}\n", Event::Reconfigured { digest: "sha256:00".into() }.to_line())).unwrap();
        let mut instance = crate::sample_instance();
        instance.console_log = console.clone();
        instance.audit_log = Some(audit);
        let events = events(&instance);
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(events[0], Event::AuditOpen { .. }), "the rotated file first");
        assert!(!events.contains(&refused), "a line on the console is not an event");
        instance.audit_log = None;
        assert_eq!(super::events(&instance), [refused], "a record of an earlier release reads the console");
        assert!(tails(&console, &dir.path().join("none"), 5).ends_with("Audit log tail:\n(no output)"));
    }
}
