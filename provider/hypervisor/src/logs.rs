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
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use abi::event::Event;

use crate::Instance;

/// The console log's cap: the kernel's boot messages take a few KiB, the rest is the
/// application's output.
pub const CONSOLE_CAP: u64 = 4 << 20;
/// The audit log's cap: one event is about 200 bytes, so some 80 000 events per file.
pub const AUDIT_CAP: u64 = 16 << 20;

/// Which of an instance's logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    Console,
    /// The log its runtime's events are in ([`event_log`]).
    Audit,
}

/// One of an instance's logs, wherever its backend keeps it: a file on this host, or a
/// volume on a libvirt daemon's host.
pub trait LogFile: std::fmt::Debug + Send + Sync {
    /// Its length now; 0 when nothing was written yet.
    fn size(&self) -> io::Result<u64>;
    /// Up to `max` bytes from `offset` on.
    fn read_at(&self, offset: u64, max: u64) -> io::Result<Vec<u8>>;
    /// Copies it to its previous file and empties it when it is longer than `cap`; whether
    /// it did.
    fn rotate(&self, cap: u64) -> io::Result<bool>;
    /// The file the last rotation kept.
    fn previous(&self) -> Box<dyn LogFile>;
    /// Where it is kept, for people.
    fn describe(&self) -> String;
}

/// A log in a file on this host.
#[derive(Debug, Clone)]
pub struct LocalLog(pub PathBuf);

impl LogFile for LocalLog {
    fn size(&self) -> io::Result<u64> {
        match fs::metadata(&self.0) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn read_at(&self, offset: u64, max: u64) -> io::Result<Vec<u8>> {
        let mut file = match fs::File::open(&self.0) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(offset))?;
        let mut bytes = Vec::new();
        file.take(max).read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn rotate(&self, cap: u64) -> io::Result<bool> {
        rotate(&self.0, cap)
    }

    fn previous(&self) -> Box<dyn LogFile> {
        Box::new(LocalLog(previous(&self.0)))
    }

    fn describe(&self) -> String {
        self.0.display().to_string()
    }
}

/// The previous file of a rotated log: `<name>.1`.
pub fn previous(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".1");
    path.with_file_name(name)
}

/// Rotates the log at `path` when it is larger than `cap`; whether it did. A missing log
/// is not an error (the instance may not have written it yet).
pub fn rotate(path: &Path, cap: u64) -> io::Result<bool> {
    match fs::metadata(path) {
        Ok(meta) if meta.len() > cap => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    fs::copy(path, previous(path))?;
    OpenOptions::new().write(true).open(path)?.set_len(0)?;
    Ok(true)
}

/// Rotates both logs past their caps. Failing to is not fatal to whatever touches the
/// instance: the logs just grow until the next touch.
pub fn rotate_both(console: &dyn LogFile, audit: &dyn LogFile) {
    let _ = console.rotate(CONSOLE_CAP);
    let _ = audit.rotate(AUDIT_CAP);
}

/// The log `instance`'s runtime writes its events to: its audit log; for an instance
/// booted by an earlier release (no audit channel, its runtime writes events to the
/// console) the console log.
pub fn event_log(instance: &Instance) -> &Path {
    instance.audit_log.as_deref().unwrap_or(&instance.console_log)
}

/// The whole of `log`.
fn read_all(log: &dyn LogFile) -> io::Result<Vec<u8>> {
    log.read_at(0, log.size()?)
}

/// Every event kept in `log`: its previous file's, then its own.
pub fn events(log: &dyn LogFile) -> Vec<Event<'static>> {
    let mut bytes = read_all(&*log.previous()).unwrap_or_default();
    bytes.extend(read_all(log).unwrap_or_default());
    Event::scan(&String::from_utf8_lossy(&bytes)).collect()
}

/// The bytes [`tail`] reads at most per line asked for: console lines are short.
const TAIL_BYTES_PER_LINE: u64 = 1024;

/// The last `lines` lines of the log, with control characters other than newlines
/// dropped (a console may carry escape sequences).
pub fn tail(log: &dyn LogFile, lines: usize) -> String {
    let bytes = log.size().and_then(|len| {
        let want = (lines as u64).saturating_mul(TAIL_BYTES_PER_LINE).max(64 << 10);
        log.read_at(len.saturating_sub(want), want)
    });
    let Ok(bytes) = bytes else { return String::from("(no output)") };
    let text: String = String::from_utf8_lossy(&bytes).chars().filter(|c| *c == '\n' || !c.is_control()).collect();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let tail = all[start..].join("\n");
    if tail.trim().is_empty() { String::from("(no output)") } else { tail }
}

/// What a failed boot shows: the console's last lines, then the audit log's.
pub fn tails(console: &dyn LogFile, audit: &dyn LogFile, lines: usize) -> String {
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
        let events = events(&LocalLog(event_log(&instance).to_owned()));
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(events[0], Event::AuditOpen { .. }), "the rotated file first");
        assert!(!events.contains(&refused), "a line on the console is not an event");
        instance.audit_log = None;
        let earlier = LocalLog(event_log(&instance).to_owned());
        assert_eq!(super::events(&earlier), [refused], "a record of an earlier release reads the console");
        let none = LocalLog(dir.path().join("none"));
        assert!(tails(&LocalLog(console), &none, 5).ends_with("Audit log tail:\n(no output)"));
    }
}
