//! Where protected unikernels run. A [`Hypervisor`] boots an image (kernel, initramfs,
//! command line), waits until its enforcement runtime is ready and its health path
//! answers, and later reports on, pauses, resumes and stops it. Instances outlive the
//! process that started them (Terraform starts the provider anew for each command), so
//! each backend keeps a record per instance under the state directory and finds its own
//! instances again from it.
//!
//! Backends: [`qemu::Qemu`] runs `qemu-system-x86_64` itself (no daemon);
//! [`libvirt::Libvirt`] has a libvirt daemon run them (libvirt's client library is loaded
//! when it is first asked for, so a host without libvirt runs the QEMU backend).

pub mod accel;
mod console;
pub mod control;
pub mod creator;
pub mod fabric;
pub mod libvirt;
pub mod logs;
pub mod probe;
pub mod qemu;
mod qmp;
pub mod registry;
pub mod snapshot;
mod socket;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use accel::{Accel, AccelChoice};
pub use control::{ControlBoot, ControlChannel, ControlEndpoint, OpenChannel};
pub use creator::{Creation, Creator};
pub use fabric::{Fabric, NetworkDefinition};
pub use logs::{LogFile, LogKind};
pub use probe::Probe;
pub use registry::InstanceId;
pub use snapshot::Restore;

/// What to boot and how to tell it is ready.
#[derive(Debug, Clone)]
pub struct BootSpec {
    /// A short name shown in process lists and logs (the unikernel's name).
    pub name: String,
    /// The image digest, recorded with the instance.
    pub image_digest: String,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub cmdline: String,
    pub memory_mb: u64,
    pub vcpus: u64,
    /// The size of QEMU's translation cache when the CPU is emulated (TCG), in MiB: the
    /// code it has translated, resident per instance. A microVM's kernel and one
    /// application need little; QEMU's own default grows up to 1 GiB.
    pub tcg_cache_mb: u64,
    /// Whether the host's KSM may merge the guest's memory with other guests' (QEMU
    /// `mem-merge`); off where a guest must not learn, through timing, what others hold.
    pub merge_memory: bool,
    /// The port the enforcement runtime listens on inside the guest.
    pub guest_port: u16,
    /// How the guest's network reaches the host.
    pub nic: Nic,
    /// Answered by the runtime with 200 once the application is up.
    pub health_path: String,
    /// Whether and from where the health path is probed.
    pub probe: Probe,
    /// Boot, ready event and health probe must all happen within this; otherwise the VM
    /// is killed and the error carries the logs' last lines.
    pub ready_timeout: Duration,
    /// Kept with the instance for its owner (e.g. what import needs to rebuild a state).
    pub metadata: serde_json::Value,
    /// A control channel to the runtime, for reconfiguration without a reboot.
    pub control: Option<ControlBoot>,
    /// Start from a snapshot of this image rather than boot it ([`snapshot`]); needs
    /// `control`, whose key the copy takes.
    pub restore: Option<Restore>,
}

/// The guest's network interface, as the host provides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nic {
    /// QEMU's user network: the runtime forwarded from 127.0.0.1:`host_port` (`None` picks
    /// a free port); with `restrict_egress` no connection leaves the guest.
    User { host_port: Option<u16>, restrict_egress: bool },
    /// A TAP device the host has put on its bridge beforehand (the engine's networking owns
    /// it); the runtime is reached at `ip`:`guest_port`, the NIC answers to `mac`.
    Tap { ifname: String, mac: String, ip: Ipv4Addr },
    /// A port on a network the hypervisor's own host keeps ([`Fabric`]: a libvirt network on
    /// a remote daemon's host), filtered there by `filter`; the runtime is reached at
    /// `ip`:`guest_port`, the NIC answers to `mac`.
    Site { network: String, filter: String, mac: String, ip: Ipv4Addr },
    /// A NIC with nothing behind it: an instance booted to be saved as a snapshot, which
    /// never serves. Its saved state then holds no network backend's, so copies start on
    /// either of the others.
    Detached,
}

impl Nic {
    /// QEMU's `-netdev` and `-device` arguments for the NIC named `id`: the user network
    /// forwarding `forward`:`host_port` to `guest_port`, the TAP device (created beforehand,
    /// so no scripts), or the device alone.
    pub(crate) fn qemu_args(&self, id: &str, guest_port: u16, forward: (Ipv4Addr, u16)) -> Vec<String> {
        match self {
            Nic::User { restrict_egress, .. } => {
                let (address, host_port) = forward;
                let mut netdev = format!("user,id={id},hostfwd=tcp:{address}:{host_port}-:{guest_port}");
                if *restrict_egress {
                    netdev.push_str(",restrict=on");
                }
                vec!["-netdev".into(), netdev, "-device".into(), format!("virtio-net-device,netdev={id}")]
            }
            Nic::Tap { ifname, mac, .. } => vec![
                "-netdev".into(),
                format!("tap,id={id},ifname={ifname},script=no,downscript=no"),
                "-device".into(),
                format!("virtio-net-device,netdev={id},mac={mac}"),
            ],
            // A site's network is a daemon's; the QEMU backend refuses it before this.
            Nic::Detached | Nic::Site { .. } => vec!["-device".into(), "virtio-net-device".into()],
        }
    }

    /// The host port asked for on QEMU's user network.
    pub(crate) fn user_host_port(&self) -> Option<u16> {
        match self {
            Nic::User { host_port, .. } => *host_port,
            Nic::Tap { .. } | Nic::Site { .. } | Nic::Detached => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    Running,
    Paused,
    /// The hypervisor process is alive but the guest is not running (shut down, crashed).
    Stopped,
    /// No such instance, or its process is gone.
    Gone,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Running => "running",
            InstanceState::Paused => "paused",
            InstanceState::Stopped => "stopped",
            InstanceState::Gone => "gone",
        }
    }
}

/// A booted instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: InstanceId,
    pub name: String,
    pub image_digest: String,
    /// Where the host reaches the runtime: `127.0.0.1:<forwarded port>` on QEMU's user
    /// network, `<guest address>:<runtime port>` on a bridge.
    pub endpoint: SocketAddr,
    pub accel: Accel,
    /// From the hypervisor's start to the first successful health probe.
    pub boot_ms: u64,
    pub console_log: PathBuf,
    /// Where the runtime's events are kept; `None` for instances booted by earlier
    /// releases, whose runtime wrote them to the console ([`logs::event_log`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_log: Option<PathBuf>,
    /// Whether its NIC is on this host's bridge (reached at the guest's own address) rather
    /// than QEMU's user network; `None` in records of earlier releases ([`Instance::guest_ip`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridged: Option<bool>,
    /// The process creating the instance, until creation completes ([`creator`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<Creator>,
    pub memory_mb: u64,
    pub vcpus: u64,
    /// Milliseconds since the Unix epoch when it was booted.
    pub started_at_ms: u64,
    #[serde(default)]
    pub metadata: serde_json::Value,
}

impl Instance {
    /// The record of `spec` booting now as `id` in `dir`, created by this process,
    /// forwarded from `host_port` on QEMU's user network (0 while the port is still to be
    /// picked); `boot_ms` is filled in once it is ready.
    pub(crate) fn starting(id: InstanceId, spec: &BootSpec, accel: Accel, dir: &Path, host_port: u16) -> Instance {
        let endpoint = match &spec.nic {
            Nic::User { .. } | Nic::Detached => SocketAddr::from((Ipv4Addr::LOCALHOST, host_port)),
            Nic::Tap { ip, .. } | Nic::Site { ip, .. } => SocketAddr::from((*ip, spec.guest_port)),
        };
        Instance {
            id,
            name: spec.name.clone(),
            image_digest: spec.image_digest.clone(),
            endpoint,
            accel,
            boot_ms: 0,
            console_log: dir.join(registry::CONSOLE),
            audit_log: Some(dir.join(registry::AUDIT)),
            bridged: Some(matches!(spec.nic, Nic::Tap { .. } | Nic::Site { .. })),
            creator: Some(Creator::this_process()),
            memory_mb: spec.memory_mb,
            vcpus: spec.vcpus,
            started_at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            metadata: spec.metadata.clone(),
        }
    }

    /// The guest's own address on this host's bridge; `None` on QEMU's user network, whose
    /// forward may listen on another host's address (a remote libvirt daemon's). Records of
    /// earlier releases say nothing: a loopback endpoint was the user network.
    pub fn guest_ip(&self) -> Option<Ipv4Addr> {
        match (self.bridged, self.endpoint.ip()) {
            (Some(false), _) => None,
            (_, IpAddr::V4(ip)) if !ip.is_loopback() => Some(ip),
            _ => None,
        }
    }

    /// Where its creation stands: complete, or still creating, or orphaned.
    pub fn creation(&self) -> Creation {
        creator::creation(self.creator.as_ref())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HypervisorError {
    #[error(transparent)]
    Io(#[from] fsutil::IoError),
    #[error(transparent)]
    Random(#[from] fsutil::RandomError),
    #[error("{binary} is not installed or not runnable ({source}); install Debian's qemu-system-x86")]
    QemuMissing { binary: String, source: std::io::Error },
    #[error("QEMU refused to start: {stderr}")]
    QemuFailed { stderr: String },
    #[error("accelerator {0} is not usable here: {1}")]
    Accel(Accel, String),
    #[error("instance {id} did not become ready within {seconds} s ({what}); it was stopped. Console tail:\n{console}")]
    NotReady { id: InstanceId, seconds: u64, what: String, console: String },
    #[error("instance {id} stopped while booting ({what}). Console tail:\n{console}")]
    DiedBooting { id: InstanceId, what: String, console: String },
    #[error(
        "instance {id}: its runtime is ready, but it closed the host's health probe from {from} without an answer {times} times in a row; the node's ingress rules most likely drop connections from {from} (the host's probe address) to the application's port. It was stopped. Console tail:\n{console}"
    )]
    ProbeDropped { id: InstanceId, from: IpAddr, times: u32, console: String },
    #[error("no instance {0}; list instances with `sdsec ps`")]
    NoSuchInstance(InstanceId),
    #[error("instance {id}: QMP {command} failed: {reason}")]
    Qmp { id: InstanceId, command: String, reason: String },
    #[error("no free port on 127.0.0.1: {0}")]
    NoPort(std::io::Error),
    #[error(
        "cannot connect to libvirt at {uri}: {reason}; start libvirtd (scripts/libvirt.sh sets it up) or check libvirt_uri"
    )]
    LibvirtUnreachable { uri: String, reason: String },
    /// libvirt's client library is missing (or too old) on this host.
    #[error("{0}")]
    LibvirtMissing(String),
    #[error("libvirt at {uri} refused to {action}: {reason}")]
    Libvirt { uri: String, action: String, reason: String },
    /// sdsec's storage pool on a libvirt daemon.
    #[error(transparent)]
    Pool(Box<libvirt::pool::PoolError>),
    #[error("instance {0} was booted without a control channel; it can only be replaced")]
    NoControl(InstanceId),
    #[error("instance {id}: cannot draw its random seed from the host's kernel: {reason}")]
    Seed { id: InstanceId, reason: String },
    #[error(
        "instance {id} said it was ready under another control key than the one the host gave it: something else wrote to its control channel first; it was stopped"
    )]
    ForeignKey { id: InstanceId },
    #[error("the instance record {path} is unreadable: {reason}")]
    BadRecord { path: PathBuf, reason: String },
    #[error("the {backend} backend does not support {what}")]
    Unsupported { backend: &'static str, what: String },
    #[error("snapshots are not supported by the {0} backend; use hypervisor = \"qemu\", or warm = \"paused\"")]
    SnapshotUnsupported(&'static str),
    #[error("instance {id}: {reason}")]
    Snapshot { id: InstanceId, reason: String },
    /// QEMU refused the stream itself: the snapshot verifies but does not load on this host
    /// (another CPU or kernel under KVM, another QEMU), and never will.
    #[error("instance {id}: the snapshot does not load on this host: {reason}")]
    SnapshotUnloadable { id: InstanceId, reason: String },
}

pub type Result<T, E = HypervisorError> = std::result::Result<T, E>;

/// A place that runs protected unikernels.
pub trait Hypervisor: Send + Sync + std::fmt::Debug {
    /// Boots `spec` and returns once it is ready, or fails leaving no VM behind.
    fn boot(&self, spec: &BootSpec) -> Result<Instance>;
    /// What the instance is doing; [`InstanceState::Gone`] when it no longer exists.
    fn state(&self, id: &InstanceId) -> Result<InstanceState>;
    /// The record of an instance this backend started.
    fn instance(&self, id: &InstanceId) -> Result<Instance>;
    /// Every instance this backend knows of, with its state.
    fn list(&self) -> Result<Vec<(Instance, InstanceState)>>;
    fn pause(&self, id: &InstanceId) -> Result<()>;
    fn resume(&self, id: &InstanceId) -> Result<()>;
    /// Stops gracefully, then forcefully after `grace`; removes what the instance left.
    /// Stopping an instance that is already gone succeeds.
    fn stop(&self, id: &InstanceId, grace: Duration) -> Result<()>;
    /// One of the instance's logs, where this backend keeps it.
    fn log(&self, id: &InstanceId, kind: LogKind) -> Result<Box<dyn LogFile>>;
    /// The last lines the guest printed on its console.
    fn console_tail(&self, id: &InstanceId, lines: usize) -> String {
        self.log(id, LogKind::Console).map_or_else(|_| String::from("(no output)"), |log| logs::tail(&*log, lines))
    }
    /// Every event the instance's runtime recorded that is still kept, and where; its logs
    /// past their caps are rotated first.
    fn events(&self, id: &InstanceId) -> Result<(Vec<abi::event::Event<'static>>, String)> {
        let audit = self.log(id, LogKind::Audit)?;
        logs::rotate_both(&*self.log(id, LogKind::Console)?, &*audit);
        Ok((logs::events(&*audit), audit.describe()))
    }
    /// What no longer matches its digest among the files the instance's hypervisor boots it
    /// from, where they are not this host's image store (a libvirt daemon's volumes), in
    /// sentences; empty when all match.
    fn boot_files_drift(&self, _id: &InstanceId) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// Replaces what the instance keeps for its owner (e.g. when a pool hands it over).
    fn set_metadata(&self, id: &InstanceId, metadata: serde_json::Value) -> Result<()>;
    /// Records who is creating the instance (a pool member being taken), or with `None`
    /// that its creation completed ([`creator`]).
    fn set_creator(&self, id: &InstanceId, creator: Option<Creator>) -> Result<()>;
    /// Where to reach the instance's runtime.
    fn control(&self, id: &InstanceId) -> Result<ControlEndpoint>;
    /// Pauses instance `id` (booted for a snapshot) and writes its whole state to `dest`, a
    /// new file; the instance stays paused for the caller to stop.
    fn save(&self, id: &InstanceId, dest: &Path) -> Result<()>;
    /// What a snapshot this backend saves is bound to beyond its image (the emulator, its
    /// build, the accelerator): a copy is started only where this is the same.
    fn snapshot_compat(&self) -> Result<String>;
    /// The networks and per-port filters of the hypervisor's own host, where it keeps them
    /// (a libvirt daemon on another host); `None` where the provider's host networks its
    /// instances itself.
    fn fabric(&self) -> Option<&dyn Fabric> {
        None
    }
}

/// A free port on 127.0.0.1 for a forward (another process may take it before QEMU binds
/// it; the backends retry).
pub(crate) fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).map_err(HypervisorError::NoPort)?;
    Ok(listener.local_addr().map_err(HypervisorError::NoPort)?.port())
}

/// Keeps only letters, digits, `-`, `_` and `.`: the name goes into QEMU's option syntax
/// and libvirt's XML.
pub(crate) fn plain_name(name: &str) -> String {
    let name: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).take(32).collect();
    if name.is_empty() { "unikernel".into() } else { name }
}

/// Tries when a free port picked for the forward is taken before QEMU binds it.
pub(crate) const PORT_TRIES: usize = 3;

/// A boot spec for unit tests of the backends' command lines and domain definitions.
#[cfg(test)]
pub(crate) fn sample_spec() -> BootSpec {
    BootSpec {
        name: "api".into(),
        image_digest: "sha256:00".into(),
        kernel: "/k/vmlinux".into(),
        initramfs: "/i/initramfs.cpio".into(),
        cmdline: "console=ttyS0 quiet".into(),
        memory_mb: 128,
        vcpus: 1,
        tcg_cache_mb: 16,
        merge_memory: true,
        guest_port: 80,
        nic: Nic::User { host_port: None, restrict_egress: true },
        health_path: "/healthz".into(),
        probe: Probe::default(),
        ready_timeout: Duration::from_secs(60),
        metadata: serde_json::Value::Null,
        control: None,
        restore: None,
    }
}

/// An instance record for unit tests.
#[cfg(test)]
pub(crate) fn sample_instance() -> Instance {
    let dir = Path::new("/s");
    let id: InstanceId = "i-0123456789abcdef".parse().unwrap_or_else(|e| panic!("{e}"));
    let mut instance = Instance::starting(id, &sample_spec(), Accel::Tcg, dir, 18080);
    instance.creator = None;
    instance
}

/// The libvirt daemon's storage pool sdsec uses when none is named.
pub const DEFAULT_LIBVIRT_POOL: &str = "sdsec";

/// Whether `name` is a storage pool name sdsec's libvirt backend takes: letters, digits,
/// `-` and `_` (it is written into the pool's XML and its directory's path).
pub fn libvirt_pool_name_ok(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The host of the libvirt daemon at `uri` when it is another than this one (a host part,
/// or a network transport such as `+ssh`, `+tcp`, `+tls`: `localhost` when it names none);
/// `None` for a daemon on this host.
pub fn libvirt_remote_host(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://").unwrap_or((uri, ""));
    let transport = scheme.split_once('+').map_or("", |(_, t)| t);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    match (host.is_empty(), transport) {
        (true, "" | "unix") => None,
        (true, _) => Some("localhost".to_owned()),
        (false, _) => Some(host.to_owned()),
    }
}

#[cfg(test)]
mod uri_tests {
    use super::libvirt_remote_host as host;

    #[test]
    fn a_daemon_is_remote_by_its_host_or_its_transport() {
        for local in ["qemu:///system", "qemu+unix:///system?socket=/run/x/libvirt-sock", "qemu:///session"] {
            assert_eq!(host(local), None, "{local}");
        }
        assert_eq!(host("qemu+ssh://root@host.example:2222/system").as_deref(), Some("host.example"));
        assert_eq!(host("qemu+tls://10.0.0.2/system?pkipath=/p").as_deref(), Some("10.0.0.2"));
        assert_eq!(host("qemu+tcp://[fd00::2]:16509/system").as_deref(), Some("fd00::2"));
        assert_eq!(host("qemu+ssh:///system").as_deref(), Some("localhost"));
    }

    #[test]
    fn a_forward_on_a_remote_hosts_address_is_not_a_bridge() {
        let mut instance = crate::sample_instance();
        instance.endpoint = "10.1.2.3:20001".parse().unwrap();
        instance.bridged = Some(false);
        assert_eq!(instance.guest_ip(), None, "the user network, forwarded from the daemon host's address");
        instance.bridged = Some(true);
        assert_eq!(instance.guest_ip(), Some("10.1.2.3".parse().unwrap()));
        instance.bridged = None;
        assert_eq!(instance.guest_ip(), Some("10.1.2.3".parse().unwrap()), "an earlier release's bridge record");
        instance.endpoint = "127.0.0.1:18080".parse().unwrap();
        assert_eq!(instance.guest_ip(), None);
    }
}
