//! Powering the VM off: what init does instead of exiting, since the kernel panics when
//! PID 1 exits.

use std::io::Write;
use std::time::Duration;

use rustix::system::{RebootCommand, reboot};

/// Flushes the console and stops the machine. Never returns.
///
/// A power-off needs a firmware path (ACPI); without one the kernel halts and the VM
/// would hang, so a restart is used then: the VM runs with `reboot=t` and QEMU with
/// `-no-reboot`, which turns a restart into QEMU exiting. Either call failing (EPERM in a
/// container) falls back to the other, and then to sleeping forever rather than exiting.
pub fn power_off() -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    drain_console();
    rustix::fs::sync();
    let first = if std::path::Path::new("/sys/firmware/acpi").exists() {
        [RebootCommand::PowerOff, RebootCommand::Restart]
    } else {
        [RebootCommand::Restart, RebootCommand::PowerOff]
    };
    for command in first {
        let _ = reboot(command);
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Waits (a second at most) for the serial port to send what is queued, so the last
/// lines reach the host before the machine stops.
fn drain_console() {
    let (done, wait) = std::sync::mpsc::channel();
    let drained = std::thread::Builder::new().spawn(move || {
        let _ = rustix::termios::tcdrain(std::io::stdout());
        let _ = done.send(());
    });
    if drained.is_ok() {
        let _ = wait.recv_timeout(Duration::from_secs(1));
    }
}
