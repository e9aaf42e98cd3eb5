//! Finding a virtio-serial port by name. The host names its ports (`sdsec.control`,
//! `sdsec.audit`); the guest sees them in `/sys/class/virtio-ports/*/name` and opens the
//! `/dev` node of the same name.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PORTS: &str = "/sys/class/virtio-ports";
/// The virtio console driver's bound devices: empty when the VM has no virtio-serial device.
const CONSOLE_DEVICES: &str = "/sys/bus/virtio/drivers/virtio_console";
/// The host announces all its ports together: once one is there, a missing one is not coming.
const SIBLING_GRACE: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_millis(20);

/// The device node of the port `name`, if it is there now.
fn lookup(name: &str) -> Option<PathBuf> {
    std::fs::read_dir(PORTS).ok()?.flatten().find_map(|entry| {
        let found = std::fs::read_to_string(entry.path().join("name")).ok()?;
        let node = Path::new("/dev").join(entry.file_name());
        (found.trim() == name && node.exists()).then_some(node)
    })
}

fn any_port() -> bool {
    std::fs::read_dir(PORTS).is_ok_and(|mut entries| entries.next().is_some())
}

fn any_console_device() -> bool {
    std::fs::read_dir(CONSOLE_DEVICES)
        .is_ok_and(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("virtio")))
}

/// Waits for the port `name` until `deadline`.
pub fn find(name: &str, deadline: Instant) -> Option<PathBuf> {
    loop {
        let found = lookup(name);
        if found.is_some() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits for the port `name`, but gives up early where it cannot come: no virtio-serial
/// device at all, or the host's other ports appeared without it (an older host).
pub fn find_or_give_up(name: &str, deadline: Instant) -> Option<PathBuf> {
    if !any_console_device() {
        return None;
    }
    let mut siblings_seen: Option<Instant> = None;
    loop {
        if let Some(node) = lookup(name) {
            return Some(node);
        }
        let now = Instant::now();
        if any_port() {
            let since = *siblings_seen.get_or_insert(now);
            if now.saturating_duration_since(since) >= SIBLING_GRACE {
                return None;
            }
        }
        if now >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}
