//! Where init's events go: the audit port ([`abi::event::AUDIT_PORT_NAME`]) once it is open,
//! the console before that and on hosts without the port.
//!
//! Each line is written with one write(2) call, so lines of PID 1, the audit writer thread
//! and the proxy process never interleave within a line. The port's device node is root's
//! (0600): the application, another user, can neither open it nor inherit it (it is
//! opened close-on-exec).

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use abi::event::{AUDIT_PORT_NAME, Event};

use super::port;

/// The port appears once the virtio console driver has probed the device; under TCG that
/// can take a moment.
const PORT_WAIT: Duration = Duration::from_secs(10);

static AUDIT: OnceLock<File> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error(
        "no virtio-serial port named {AUDIT_PORT_NAME} (an older host, or libvirt without it): events go to the \
         console, which the application's output shares"
    )]
    NoPort,
    #[error("cannot open the audit port {path}: {source}; events go to the console")]
    Open { path: String, source: std::io::Error },
}

/// Opens the audit port and writes [`Event::AuditOpen`] as its first line. On error,
/// events keep going to the console.
pub fn open_audit_port() -> Result<(), EventsError> {
    let path = port::Places::system()
        .find_or_give_up(AUDIT_PORT_NAME, Instant::now() + PORT_WAIT)
        .ok_or(EventsError::NoPort)?;
    let file = File::options()
        .write(true)
        .open(&path)
        .map_err(|source| EventsError::Open { path: path.display().to_string(), source })?;
    let file = AUDIT.get_or_init(|| file);
    write_line(file, &Event::AuditOpen { runtime: env!("CARGO_PKG_VERSION").into() }.to_line());
    Ok(())
}

/// Whether events go to the audit port.
pub fn on_audit_port() -> bool {
    AUDIT.get().is_some()
}

/// Writes one event now, where events go.
pub fn write(event: &Event<'_>) {
    let line = event.to_line();
    match AUDIT.get() {
        Some(file) => write_line(file, &line),
        None => write_line(std::io::stdout().lock(), &line),
    }
}

fn write_line(mut out: impl std::io::Write, line: &str) {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let _ = out.write_all(&bytes);
    let _ = out.flush();
}

/// A writer for [`crate::audit::AuditLog`]: the audit port, or stdout (the console).
pub fn writer() -> std::io::Result<Box<dyn std::io::Write + Send>> {
    Ok(match AUDIT.get() {
        Some(file) => Box::new(file.try_clone()?),
        None => Box::new(std::io::stdout()),
    })
}

/// The descriptor events go to, to hand to another process.
pub fn descriptor() -> BorrowedFd<'static> {
    match AUDIT.get() {
        Some(file) => file.as_fd(),
        None => rustix::stdio::stdout(),
    }
}
