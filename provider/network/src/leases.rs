//! The lease file of a state directory, its lock, and the choices made from it: the next
//! free address, the MAC that goes with it, whether the process that took a lease still runs.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::{BridgeConfig, Lease, NetworkError, Owner};

/// The version of `leases.json` this crate writes and reads.
const FORMAT: u32 = 1;

/// `leases.json`: which bridge and subnet the leases are on, where their ports are
/// published, and the leases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Document {
    pub format: u32,
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// Absent in files written before it was recorded: every address then.
    #[serde(default = "unspecified")]
    pub publish_address: Ipv4Addr,
    /// A remote site's owner token, drawn once: the mark on the site's network and the
    /// prefix of its filters' names (see [`crate::site_xml::filter_prefix`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_owner: Option<String>,
    /// A remote site's ports whose guests were cut from the network when it stopped or went
    /// (libvirt reattaches running guests only when its daemon restarts): reported until
    /// their instances are replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub site_detached: Vec<String>,
    pub leases: Vec<Lease>,
}

fn unspecified() -> Ipv4Addr {
    Ipv4Addr::UNSPECIFIED
}

impl Document {
    fn empty(config: &BridgeConfig) -> Document {
        Document {
            format: FORMAT,
            bridge: config.bridge.clone(),
            subnet: config.subnet,
            publish_address: config.publish_address,
            site_owner: None,
            site_detached: Vec::new(),
            leases: Vec::new(),
        }
    }

    /// The settings the leases live on: the recorded ones while leases exist (so they can
    /// still be released after the configuration changed, and a process with other
    /// settings never republishes every instance elsewhere), else `config`'s.
    pub fn effective(&self, config: &BridgeConfig) -> BridgeConfig {
        if self.leases.is_empty() {
            return config.clone();
        }
        BridgeConfig { bridge: self.bridge.clone(), subnet: self.subnet, publish_address: self.publish_address }
    }

    /// Refuses settings other than those leases are held on; the publish address counts
    /// where `with_publish` (the local bridge publishes there, a site does not).
    pub fn refuse_changed(&self, config: &BridgeConfig, with_publish: bool) -> Result<(), NetworkError> {
        if self.leases.is_empty() {
            return Ok(());
        }
        let changed = |setting, recorded: String, requested: String| NetworkError::SettingChanged {
            setting,
            recorded,
            requested,
            holders: self.holders(),
        };
        if self.bridge != config.bridge {
            return Err(changed(crate::Setting::Bridge, self.bridge.clone(), config.bridge.clone()));
        }
        if self.subnet != config.subnet {
            return Err(changed(crate::Setting::Subnet, self.subnet.to_string(), config.subnet.to_string()));
        }
        if with_publish && self.publish_address != config.publish_address {
            let (recorded, requested) = (self.publish_address.to_string(), config.publish_address.to_string());
            return Err(changed(crate::Setting::PublishAddress, recorded, requested));
        }
        Ok(())
    }

    pub fn holders(&self) -> Vec<String> {
        self.leases.iter().map(|lease| lease.owner.to_string()).collect()
    }

    pub fn position(&self, matches: impl Fn(&Lease) -> bool) -> Option<usize> {
        self.leases.iter().position(matches)
    }
}

/// `STATE_DIR/network`: the lease file and the lock beside it.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
    /// What the leases' ports are: names from the file go to commands and the daemon.
    ports: Ports,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ports {
    /// TAP devices of the local bridge: [`crate::config::TAP_PREFIX`] and a random part, 15
    /// bytes at most.
    Taps,
    /// Filters of a remote site: its owner token's prefix and a random part.
    SiteFilters,
}

/// Held while the lock is: dropping it closes the file, which releases the lock.
#[derive(Debug)]
pub(crate) struct Locked {
    _file: File,
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store { dir, ports: Ports::Taps }
    }

    /// The store of a remote site, whose ports are filters named by its owner token.
    pub fn for_site(dir: PathBuf) -> Store {
        Store { dir, ports: Ports::SiteFilters }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn leases_path(&self) -> PathBuf {
        self.dir.join("leases.json")
    }

    /// Whether leases were ever recorded here (nothing to read or reclaim otherwise).
    pub fn exists(&self) -> bool {
        self.leases_path().exists()
    }

    /// Locks the state directory's network: `exclusive` for changes, shared for reads.
    pub fn lock(&self, exclusive: bool) -> Result<Locked, NetworkError> {
        fsutil::create_private_dir(&self.dir)?;
        let path = self.dir.join("lock");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(fsutil::io("open", &path))?;
        let locked = if exclusive { file.lock() } else { file.lock_shared() };
        locked.map_err(fsutil::io("lock", &path))?;
        Ok(Locked { _file: file })
    }

    /// The recorded leases (none when the file does not exist yet). Call with the lock held.
    pub fn load(&self, _locked: &Locked, config: &BridgeConfig) -> Result<Document, NetworkError> {
        let path = self.leases_path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Document::empty(config)),
            Err(e) => return Err(fsutil::io("read", &path)(e).into()),
        };
        let invalid = |reason: String| NetworkError::State { path: path.clone(), reason };
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        match value.get("format").and_then(serde_json::Value::as_u64) {
            Some(format) if format == u64::from(FORMAT) => {}
            Some(format) => return Err(invalid(format!("format {format}; this sdsec reads format {FORMAT}"))),
            None => return Err(invalid("no `format`".into())),
        }
        let document: Document = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        // Names from the file go to `ip link del` or to the daemon: never one not of ours.
        let prefix = match self.ports {
            Ports::Taps => Some(crate::config::TAP_PREFIX.to_owned()),
            Ports::SiteFilters => document.site_owner.as_deref().and_then(crate::site_xml::filter_prefix),
        };
        let max_len = if self.ports == Ports::Taps { 15 } else { 80 };
        for lease in &document.leases {
            let tap_ok = prefix.as_deref().and_then(|prefix| lease.tap.strip_prefix(prefix)).is_some_and(|rest| {
                !rest.is_empty() && lease.tap.len() <= max_len && rest.bytes().all(|b| b.is_ascii_alphanumeric())
            });
            if !tap_ok || !document.subnet.contains(&lease.ip) {
                return Err(invalid(format!(
                    "the lease of {} names port `{}` and address {}, not a port of sdsec's in {}; the file was edited or corrupted",
                    lease.owner, lease.tap, lease.ip, document.subnet
                )));
            }
        }
        Ok(document)
    }

    /// Records `document` atomically. Call with the exclusive lock held.
    pub fn save(&self, _locked: &Locked, document: &Document) -> Result<(), NetworkError> {
        fsutil::write_json_atomically(&self.leases_path(), document)?;
        Ok(())
    }
}

/// The lowest address of `subnet` that is neither network, gateway nor broadcast address
/// and that no lease holds.
pub(crate) fn free_address(subnet: Ipv4Net, leases: &[Lease]) -> Option<Ipv4Addr> {
    let first = u32::from(subnet.network()).checked_add(2)?;
    let broadcast = u32::from(subnet.broadcast());
    (first..broadcast).map(Ipv4Addr::from).find(|ip| leases.iter().all(|lease| lease.ip != *ip))
}

/// A locally administered MAC in QEMU's range with the address's last three bytes, so a
/// guest's MAC and address can be told from one another.
pub(crate) fn mac_for(ip: Ipv4Addr) -> String {
    let octets = mac_octets(ip);
    octets.map(|o| format!("{o:02x}")).join(":")
}

/// The hardware address of the guest at `ip`: QEMU's prefix, then the address's last three
/// bytes.
pub fn mac_octets(ip: Ipv4Addr) -> [u8; 6] {
    let [_, b, c, d] = ip.octets();
    [0x52, 0x54, 0x00, b, c, d]
}

/// The owner a new lease gets: this process, as of now.
pub(crate) fn creating_owner() -> Owner {
    let pid = std::process::id();
    let since_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Owner::Creating { pid, start_time: start_time(pid).unwrap_or(0), since_ms }
}

/// When process `pid` started (clock ticks after boot, field 22 of /proc/PID/stat), or
/// `None` when there is no such process.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces and parentheses:
    // count fields after the last `)`, where field 3 begins.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Whether the process that took a lease runs still: same pid and same start time (a pid
/// alone may have been reused by another process since).
pub(crate) fn owner_alive(owner: &Owner, instance_alive: &dyn Fn(&str) -> bool) -> bool {
    match owner {
        Owner::Creating { pid, start_time: recorded, .. } => start_time(*pid) == Some(*recorded),
        Owner::Instance(id) => instance_alive(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FlowPolicy;

    fn lease(ip: [u8; 4]) -> Lease {
        let ip = Ipv4Addr::from(ip);
        Lease {
            ip,
            tap: format!("sdt-{}", ip.octets()[3]),
            mac: mac_for(ip),
            runtime_port: 8080,
            host_port: None,
            owner: Owner::Instance("i-1".into()),
            policy: FlowPolicy::default(),
        }
    }

    #[test]
    fn addresses_are_the_lowest_free_host_after_the_gateway() {
        let subnet: Ipv4Net = "10.213.0.0/29".parse().unwrap();
        assert_eq!(free_address(subnet, &[]), Some(Ipv4Addr::new(10, 213, 0, 2)));
        let held = [lease([10, 213, 0, 2]), lease([10, 213, 0, 4])];
        assert_eq!(free_address(subnet, &held), Some(Ipv4Addr::new(10, 213, 0, 3)));
        let full: Vec<Lease> = (2..=6).map(|d| lease([10, 213, 0, d])).collect();
        assert_eq!(free_address(subnet, &full), None, "the broadcast address .7 is never leased");
    }

    #[test]
    fn macs_carry_the_address() {
        assert_eq!(mac_for(Ipv4Addr::new(10, 213, 1, 200)), "52:54:00:d5:01:c8");
    }

    #[test]
    fn this_process_is_alive_and_a_recycled_pid_is_not() {
        let owner = creating_owner();
        assert!(owner_alive(&owner, &|_| false));
        let Owner::Creating { pid, start_time, since_ms } = owner else { unreachable!() };
        let recycled = Owner::Creating { pid, start_time: start_time + 1, since_ms };
        assert!(!owner_alive(&recycled, &|_| true));
        assert!(owner_alive(&Owner::Instance("i-1".into()), &|id| id == "i-1"));
    }

    #[test]
    fn documents_round_trip_and_other_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("network"));
        let config = BridgeConfig::default();
        let locked = store.lock(true).unwrap();
        assert!(store.load(&locked, &config).unwrap().leases.is_empty());
        let mut document = Document::empty(&config);
        document.leases.push(lease([10, 213, 0, 2]));
        store.save(&locked, &document).unwrap();
        assert_eq!(store.load(&locked, &config).unwrap(), document);
        std::fs::write(store.leases_path(), br#"{"format": 2}"#).unwrap();
        let err = store.load(&locked, &config).unwrap_err();
        assert!(err.to_string().contains("format 2; this sdsec reads format 1"), "{err}");
        for (tap, ip) in [("eth0", [10, 213, 0, 2]), ("sdt-a b", [10, 213, 0, 2]), ("sdt-2", [192, 0, 2, 2])] {
            let mut edited = lease(ip);
            edited.tap = tap.to_owned();
            document.leases = vec![edited];
            store.save(&locked, &document).unwrap();
            let err = store.load(&locked, &config).unwrap_err();
            assert!(err.to_string().contains("edited or corrupted"), "{tap} {ip:?}: {err}");
        }
    }
}
