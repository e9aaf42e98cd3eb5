//! Finding a virtio-serial port by name. The host names its ports (`sdsec.control`,
//! `sdsec.audit`); the guest sees them in `/sys/class/virtio-ports/*/name` and opens the
//! `/dev` node of the same name.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The host announces all its ports together: once one is there, a missing one is not coming.
const SIBLING_GRACE: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_millis(20);

/// Where the kernel shows ports and devices (another root in tests).
#[derive(Debug, Clone)]
pub struct Places {
    /// One directory per port, each with a `name` file.
    pub ports: PathBuf,
    /// The virtio console driver's bound devices: none when the VM has no virtio-serial device.
    pub console_devices: PathBuf,
    /// Where the ports' device nodes are.
    pub dev: PathBuf,
}

impl Places {
    pub fn system() -> Self {
        Self {
            ports: "/sys/class/virtio-ports".into(),
            console_devices: "/sys/bus/virtio/drivers/virtio_console".into(),
            dev: "/dev".into(),
        }
    }

    /// The device node of the port `name`, if it is there now.
    fn lookup(&self, name: &str) -> Option<PathBuf> {
        std::fs::read_dir(&self.ports).ok()?.flatten().find_map(|entry| {
            let found = std::fs::read_to_string(entry.path().join("name")).ok()?;
            let node = self.dev.join(entry.file_name());
            (found.trim() == name && node.exists()).then_some(node)
        })
    }

    fn any_port(&self) -> bool {
        std::fs::read_dir(&self.ports).is_ok_and(|mut entries| entries.next().is_some())
    }

    fn any_console_device(&self) -> bool {
        std::fs::read_dir(&self.console_devices)
            .is_ok_and(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("virtio")))
    }

    /// Waits for the port `name`, but gives up early where it cannot come: no virtio-serial
    /// device at all, or the host's other ports appeared without it (an older host).
    pub fn find_or_give_up(&self, name: &str, deadline: Instant) -> Option<PathBuf> {
        if !self.any_console_device() {
            return None;
        }
        let mut siblings_seen: Option<Instant> = None;
        loop {
            if let Some(node) = self.lookup(name) {
                return Some(node);
            }
            let now = Instant::now();
            if self.any_port() {
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
}

/// Waits for the port `name` until `deadline`.
pub fn find(name: &str, deadline: Instant) -> Option<PathBuf> {
    let places = Places::system();
    loop {
        let found = places.lookup(name);
        if found.is_some() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn places(root: &Path) -> Places {
        let places = Places { ports: root.join("ports"), console_devices: root.join("driver"), dev: root.join("dev") };
        for dir in [&places.ports, &places.console_devices, &places.dev] {
            std::fs::create_dir_all(dir).unwrap();
        }
        places
    }

    fn add_port(places: &Places, node: &str, name: &str) {
        std::fs::create_dir_all(places.ports.join(node)).unwrap();
        std::fs::write(places.ports.join(node).join("name"), format!("{name}\n")).unwrap();
        std::fs::write(places.dev.join(node), "").unwrap();
    }

    #[test]
    fn the_port_is_found_by_name_and_missing_ones_do_not_hold_the_boot() {
        let root = tempfile::tempdir().unwrap();
        let places = places(root.path());
        let far = Instant::now() + Duration::from_secs(30);
        // No virtio-serial device: nothing is coming, no wait.
        let started = Instant::now();
        assert_eq!(places.find_or_give_up("sdsec.audit", far), None);
        assert!(started.elapsed() < SIBLING_GRACE);

        std::fs::create_dir(places.console_devices.join("virtio1")).unwrap();
        add_port(&places, "vport1p1", "sdsec.control");
        // An older host: the control port without the audit port; given up after the grace.
        let started = Instant::now();
        assert_eq!(places.find_or_give_up("sdsec.audit", far), None);
        assert!(started.elapsed() >= SIBLING_GRACE && started.elapsed() < Duration::from_secs(5));

        add_port(&places, "vport1p2", "sdsec.audit");
        assert_eq!(places.find_or_give_up("sdsec.audit", far), Some(places.dev.join("vport1p2")));
    }
}
