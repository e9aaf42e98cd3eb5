//! The libvirt backend: a libvirt daemon (local or behind a remote URI) runs the same
//! `microvm` guest as the QEMU backend.
//!
//! Domains are transient (`virDomainCreateXML`): the daemon keeps them running after the
//! provider exits, and when one stops it leaves no definition behind to clean up. The
//! domain is the instance's record: sdsec's element in its `<metadata>` holds the whole
//! [`Instance`], so `list` needs nothing but the connection. The logs and the control
//! channel live under `<state_dir>/libvirt/instances/<id>/`, apart from the QEMU backend's
//! instances, with a copy of the record kept there until the domain exists: a creator
//! killed before it created the domain leaves a directory that `list` shows (an orphan once
//! its creator is gone) and `stop` removes.
//!
//! Nothing assumes the provider can read a path on the daemon's host, which may be another:
//! kernel and initramfs travel to sdsec's storage pool there ([`pool`]); the console and
//! audit logs are volumes of that pool, read back over the connection ([`volume_log`]); the
//! control channel is opened over the connection too ([`channel`]); the instance's key stays
//! in the provider's state directory. QEMU's user network forwards from the daemon host's
//! address the URI names (127.0.0.1 for a daemon on this host).

mod channel;
mod daemon;
mod fabric;
pub mod pool;
mod volume_log;
mod volume_name;
mod xml;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use virt::{Connect, Domain, DomainState, ErrorNumber, sys};

use crate::accel::{Accel, AccelChoice, HostFacts};
use crate::console::{self, BootChannels};
use crate::control::ControlChannel;
use crate::logs::{LocalLog, LogFile, LogKind};
use crate::registry::Registry;
use crate::{
    BootSpec, ControlEndpoint, Creator, Hypervisor, HypervisorError, Instance, InstanceId, InstanceState, Nic,
    PORT_TRIES, Result, control, free_port, logs, plain_name,
};
use channel::DomainChannel;
use volume_log::VolumeLog;

pub use pool::ImagePool;
pub use xml::NAMESPACE;

/// Seconds between keepalives, and how many may go unanswered before the connection is
/// taken for dead: a daemon that vanished fails calls within about 20 s.
const KEEPALIVE_INTERVAL: i32 = 5;
const KEEPALIVE_COUNT: u32 = 3;

#[derive(Debug)]
pub struct Libvirt {
    conn: Connect,
    uri: String,
    registry: Registry,
    accel: Accel,
    cpu_khz: Option<u64>,
    /// The name of sdsec's storage pool on the daemon ([`pool`]), and the pool once opened.
    pool_name: String,
    pool: Mutex<Option<ImagePool>>,
    /// The daemon host's address, when it is another host: forwards listen there.
    remote: Option<Ipv4Addr>,
    /// What the daemon's DAC driver runs QEMU as (`+uid:+gid`).
    dac_label: Option<String>,
}

impl Libvirt {
    /// Connects to the daemon at `uri`; instances' console logs go under `state_dir`.
    pub fn new(state_dir: &Path, uri: &str, choice: AccelChoice) -> Result<Libvirt> {
        // libvirt prints every error on stderr by default, also those handled here (a
        // lookup of a domain that is gone); they reach the caller as values instead.
        virt::error::silence_default_handler();
        let facts = HostFacts::read();
        let accel = facts.choose(choice).map_err(|why| HypervisorError::Accel(Accel::Kvm, why))?;
        let unreachable = |reason: String| HypervisorError::LibvirtUnreachable { uri: uri.to_owned(), reason };
        if uri.split("://").next().is_some_and(|scheme| scheme.ends_with("+tcp")) {
            return Err(unreachable(
                "qemu+tcp:// would carry each instance's control key unencrypted; use qemu+tls:// or qemu+ssh://"
                    .into(),
            ));
        }
        let conn = connect(uri).map_err(|e| match e.is_not_installed() {
            true => HypervisorError::LibvirtMissing(e.message().to_owned()),
            false => unreachable(e.message().to_owned()),
        })?;
        let remote = match crate::libvirt_remote_host(uri) {
            Some(host) => Some(daemon::ipv4_of(&host).map_err(unreachable)?),
            None => None,
        };
        // The guest's TSC runs at the daemon host's frequency.
        let cpu_khz = match remote {
            Some(_) => conn.node_info().ok().map(|info| u64::from(info.mhz) * 1000).filter(|&khz| khz > 0),
            None => facts.cpu_khz,
        };
        let caps =
            conn.capabilities().map_err(|e| unreachable(format!("cannot read its capabilities: {}", e.message())))?;
        let dac_label = daemon::dac_label(&caps, accel);
        Ok(Libvirt {
            conn,
            uri: uri.to_owned(),
            registry: Registry::new(&state_dir.join(crate::registry::LIBVIRT_DIR)),
            accel,
            cpu_khz,
            pool_name: crate::DEFAULT_LIBVIRT_POOL.to_owned(),
            pool: Mutex::new(None),
            remote,
            dac_label,
        })
    }

    /// Uses storage pool `name` on the daemon instead of [`crate::DEFAULT_LIBVIRT_POOL`].
    pub fn with_pool(mut self, name: &str) -> Libvirt {
        self.pool_name = name.to_owned();
        self
    }

    /// sdsec's pool on the daemon, opened (and made when missing) at first use.
    fn pool(&self) -> Result<ImagePool> {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pool) = &*pool {
            return Ok(pool.clone());
        }
        let opened = ImagePool::open(&self.conn, &self.pool_name)?;
        *pool = Some(opened.clone());
        Ok(opened)
    }

    /// Where the user network's forwards listen: the daemon host's address.
    fn forward_ip(&self) -> Ipv4Addr {
        self.remote.unwrap_or(Ipv4Addr::LOCALHOST)
    }

    fn log_of(&self, id: &InstanceId, kind: LogKind) -> Result<VolumeLog> {
        Ok(VolumeLog::new(self.pool()?, volume_log::name(id, kind)))
    }

    /// The record of an instance booted by an earlier release, whose logs and control socket
    /// are in its directory under the state directory; `None` for any other.
    fn legacy(&self, id: &InstanceId) -> Result<Option<Instance>> {
        let dir = self.registry.dir(id);
        Ok(self.find(id)?.map(|(_, record)| record).filter(|record| record.console_log.starts_with(&dir)))
    }

    fn channel(&self, id: &InstanceId) -> ControlChannel {
        ControlChannel::Opened(Arc::new(DomainChannel {
            conn: self.conn.clone(),
            uri: self.uri.clone(),
            domain: xml::domain_name(id.as_str()),
            port: abi::control::PORT_NAME,
        }))
    }

    pub fn accel(&self) -> Accel {
        self.accel
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    fn fail(&self, action: impl Into<String>, e: &virt::Error) -> HypervisorError {
        HypervisorError::Libvirt { uri: self.uri.clone(), action: action.into(), reason: e.message().to_owned() }
    }

    /// The domain of `id` and its record, `None` when there is none or it is not sdsec's.
    fn find(&self, id: &InstanceId) -> Result<Option<(Domain, Instance)>> {
        let domain = match self.conn.lookup_domain_by_name(&xml::domain_name(id.as_str())) {
            Ok(d) => d,
            Err(e) if is(&e, ErrorNumber::NO_DOMAIN) => return Ok(None),
            Err(e) => return Err(self.fail(format!("look up instance {id}"), &e)),
        };
        Ok(record(&domain).filter(|r| r.id == *id).map(|r| (domain, r)))
    }

    fn find_or_fail(&self, id: &InstanceId) -> Result<Domain> {
        self.find(id)?.map(|(d, _)| d).ok_or_else(|| HypervisorError::NoSuchInstance(id.clone()))
    }

    /// Creates the domain; retries with another port when a port it picked was taken.
    fn launch(&self, spec: &BootSpec, record: &mut Instance) -> Result<Domain> {
        let mut tries = 0;
        loop {
            tries += 1;
            let asked = spec.nic.user_host_port();
            let port = match (&spec.nic, asked) {
                // The runtime is reached at the guest's address, set in the record already.
                (Nic::Tap { .. } | Nic::Site { .. } | Nic::Detached, _) => record.endpoint.port(),
                (_, Some(port)) => port,
                (_, None) if self.remote.is_some() => daemon::remote_port(),
                (_, None) => free_port()?,
            };
            if let Nic::User { .. } = spec.nic {
                record.endpoint = SocketAddr::from((self.forward_ip(), port));
            }
            let (console, audit) = (record.console_log.to_string_lossy(), audit_path(record));
            let def = xml::DomainDef {
                spec,
                record,
                accel: self.accel,
                cpu_khz: self.cpu_khz,
                console: &console,
                audit: &audit,
                control: spec.control.is_some(),
                forward_ip: self.forward_ip(),
                dac_label: self.dac_label.as_deref(),
            };
            match self.conn.create_domain_xml(&xml::domain_xml(&def), sys::VIR_DOMAIN_NONE) {
                Ok(domain) => return Ok(domain),
                Err(e) => {
                    let port_taken = e.message().contains("hostfwd") || e.message().contains("host forwarding");
                    if port_taken && asked.is_none() && matches!(spec.nic, Nic::User { .. }) && tries < PORT_TRIES {
                        continue;
                    }
                    let mut err = self.fail(format!("start instance {}", record.id), &e);
                    if port_taken && let HypervisorError::Libvirt { reason, .. } = &mut err {
                        reason.push_str(&format!(" (is host port {port} already in use? choose another host_port)"));
                    }
                    return Err(err);
                }
            }
        }
    }

    /// The runtime's ready notice (or its ready event on the audit log), then a 200 from
    /// the health path through the forwarded port: the same as the QEMU backend.
    fn wait_ready(&self, spec: &BootSpec, domain: &Domain, record: &Instance, started: Instant) -> Result<u64> {
        let alive = || matches!(running_state(domain), Some(InstanceState::Running));
        let (console, audit) = (self.log_of(&record.id, LogKind::Console)?, self.log_of(&record.id, LogKind::Audit)?);
        let control = spec.control.as_ref().map(|_| self.channel(&record.id));
        let logs = BootChannels { console: &console, audit: &audit, control };
        console::wait_ready(spec, &record.id, logs, record.endpoint, started, alive)
    }

    /// Rewrites the record kept in the running domain's metadata.
    fn save_record(&self, domain: &Domain, record: &Instance) -> Result<()> {
        domain
            .set_metadata(
                sys::VIR_DOMAIN_METADATA_ELEMENT,
                Some(&xml::metadata_element(record, false)),
                Some(xml::PREFIX),
                Some(xml::NAMESPACE),
                sys::VIR_DOMAIN_AFFECT_LIVE,
            )
            .map_err(|e| self.fail(format!("record instance {}", record.id), &e))
    }

    /// Ends the domain and removes what it left; a domain already gone is fine.
    fn remove(&self, id: &InstanceId, domain: Option<&Domain>) -> Result<()> {
        if let Some(domain) = domain {
            // SIGTERM first: QEMU exits at once and flushes the console log; the guest keeps
            // no state worth an ACPI shutdown (its root is the initramfs), and has no daemon
            // to act on one. SIGKILL only if QEMU does not go.
            if domain.destroy_flags(sys::VIR_DOMAIN_DESTROY_GRACEFUL).is_err()
                && let Err(e) = domain.destroy()
                && !gone(&e)
            {
                return Err(self.fail(format!("destroy instance {id}"), &e));
            }
            // Transient domains vanish when destroyed; one defined by hand may not.
            if domain.is_persistent().unwrap_or(false)
                && let Err(e) = domain.undefine()
                && !gone(&e)
            {
                return Err(self.fail(format!("undefine instance {id}"), &e));
            }
        }
        // Best effort, and the key goes in any case: the domain is gone already.
        let logs = self.pool().and_then(|pool| Ok(volume_log::delete_all(&pool, &volume_log::prefix(id))?));
        let removed = self.registry.remove(id);
        logs.and(removed)
    }
}

impl Hypervisor for Libvirt {
    fn boot(&self, spec: &BootSpec) -> Result<Instance> {
        if spec.restore.is_some() {
            return Err(HypervisorError::SnapshotUnsupported("libvirt"));
        }
        // The daemon boots the kernel and initramfs it holds in its pool, uploaded when
        // missing and checked against their digests first: its host may be another.
        let pool = self.pool()?;
        let kernel = pool.place(&spec.kernel, None)?;
        let initramfs = pool.place(&spec.initramfs, None)?;
        let id = InstanceId::random()?;
        let dir = self.registry.create_dir(&id, false)?;
        let spec = BootSpec {
            name: plain_name(&spec.name),
            kernel: kernel.path.into(),
            initramfs: initramfs.path.into(),
            ..spec.clone()
        };
        // The port is picked when the domain is created.
        let mut record = Instance::starting(id.clone(), &spec, self.accel, &dir, 0);
        let started = Instant::now();
        // The record, with its creator, goes into the domain's XML, so an interrupted boot
        // still leaves a domain `list` finds and `stop` removes (an orphan once its creator
        // is gone). The logs are made first: `stop` removes them too.
        let launched = self
            .registry
            .save(&record)
            .and_then(|()| {
                record.console_log = volume_log::create(&pool, &volume_log::name(&id, LogKind::Console))?.into();
                record.audit_log = Some(volume_log::create(&pool, &volume_log::name(&id, LogKind::Audit))?.into());
                Ok(())
            })
            .and_then(|()| control::personalise(&spec, &dir))
            .and_then(|spec| self.launch(&spec, &mut record));
        let domain = match launched {
            Ok(d) => d,
            Err(e) => {
                let _ = self.remove(&id, None);
                return Err(e);
            }
        };
        // The domain holds the record from now on; a local copy would go stale (and could
        // be taken for an orphan by a connection to another daemon sharing the directory).
        let _ = std::fs::remove_file(dir.join(crate::registry::RECORD));
        let ready = self.wait_ready(&spec, &domain, &record, started).and_then(|boot_ms| {
            record.boot_ms = boot_ms;
            self.save_record(&domain, &record)
        });
        match ready {
            Ok(()) => Ok(record),
            Err(e) => {
                let _ = self.remove(&id, Some(&domain));
                Err(e)
            }
        }
    }

    fn state(&self, id: &InstanceId) -> Result<InstanceState> {
        Ok(match self.find(id)? {
            Some((domain, _)) => running_state(&domain).unwrap_or(InstanceState::Gone),
            None => InstanceState::Gone,
        })
    }

    fn instance(&self, id: &InstanceId) -> Result<Instance> {
        self.find(id)?.map(|(_, r)| r).ok_or_else(|| HypervisorError::NoSuchInstance(id.clone()))
    }

    fn list(&self) -> Result<Vec<(Instance, InstanceState)>> {
        let domains = self.conn.list_all_domains(0).map_err(|e| self.fail("list domains", &e))?;
        let mut out: Vec<(Instance, InstanceState)> = domains
            .iter()
            .filter_map(|d| {
                let record = record(d)?;
                // A record copied into another domain is not that instance.
                (d.name().ok()? == xml::domain_name(record.id.as_str()))
                    .then(|| (record, running_state(d).unwrap_or(InstanceState::Gone)))
            })
            .collect();
        // Directories without a domain: a boot before its domain exists, or what one whose
        // creator died then left.
        for id in self.registry.ids()? {
            if !out.iter().any(|(record, _)| record.id == id)
                && let Ok(record) = self.registry.load(&id)
            {
                out.push((record, InstanceState::Gone));
            }
        }
        out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        Ok(out)
    }

    fn pause(&self, id: &InstanceId) -> Result<()> {
        self.find_or_fail(id)?.suspend().map_err(|e| self.fail(format!("pause instance {id}"), &e))
    }

    fn resume(&self, id: &InstanceId) -> Result<()> {
        self.find_or_fail(id)?.resume().map_err(|e| self.fail(format!("resume instance {id}"), &e))
    }

    /// `grace` is not needed: the guest has nothing to shut down gracefully, and libvirt
    /// bounds how long QEMU may take to go after SIGTERM.
    fn stop(&self, id: &InstanceId, _grace: Duration) -> Result<()> {
        let found = self.find(id)?;
        self.remove(id, found.as_ref().map(|(d, _)| d))
    }

    fn log(&self, id: &InstanceId, kind: LogKind) -> Result<Box<dyn LogFile>> {
        if let Some(record) = self.legacy(id)? {
            return Ok(Box::new(LocalLog(match kind {
                LogKind::Console => record.console_log.clone(),
                LogKind::Audit => logs::event_log(&record).to_owned(),
            })));
        }
        Ok(Box::new(self.log_of(id, kind)?))
    }

    /// The domain's kernel and initramfs, volumes named by their digests, checked against them.
    fn boot_files_drift(&self, id: &InstanceId) -> Result<Vec<String>> {
        let Some((domain, _)) = self.find(id)? else { return Ok(Vec::new()) };
        let xml = domain.xml_desc(0).map_err(|e| self.fail(format!("read instance {id}'s definition"), &e))?;
        let pool = self.pool()?;
        let mut drift = Vec::new();
        for (what, tag) in [("kernel", "kernel"), ("initramfs", "initrd")] {
            let Some(hex) = xml::boot_file(&xml, tag).and_then(|path| pool::digest_of_volume_path(&path)) else {
                continue;
            };
            if !pool.holds(&hex)? {
                drift.push(format!(
                    "the {what} volume sha256-{hex} on the libvirt daemon at {} is missing or no longer matches its \
                     digest (changed behind sdsec's back); the replacement uploads it again",
                    self.uri
                ));
            }
        }
        Ok(drift)
    }

    fn set_metadata(&self, id: &InstanceId, metadata: serde_json::Value) -> Result<()> {
        let (domain, mut record) = self.find(id)?.ok_or_else(|| HypervisorError::NoSuchInstance(id.clone()))?;
        record.metadata = metadata;
        self.save_record(&domain, &record)
    }

    fn set_creator(&self, id: &InstanceId, creator: Option<Creator>) -> Result<()> {
        let (domain, mut record) = self.find(id)?.ok_or_else(|| HypervisorError::NoSuchInstance(id.clone()))?;
        record.creator = creator;
        self.save_record(&domain, &record)
    }

    fn control(&self, id: &InstanceId) -> Result<ControlEndpoint> {
        self.find_or_fail(id)?;
        let dir = self.registry.dir(id);
        if self.legacy(id)?.is_some() {
            return control::endpoint(&dir, id);
        }
        Ok(ControlEndpoint { channel: self.channel(id), key: control::key(&dir, id)? })
    }

    fn save(&self, _id: &InstanceId, _dest: &Path) -> Result<()> {
        Err(HypervisorError::SnapshotUnsupported("libvirt"))
    }

    fn snapshot_compat(&self) -> Result<String> {
        Err(HypervisorError::SnapshotUnsupported("libvirt"))
    }

    /// A daemon on another host networks its instances itself; on this host the provider's
    /// bridge does.
    fn fabric(&self) -> Option<&dyn crate::Fabric> {
        self.remote.is_some().then_some(self as &dyn crate::Fabric)
    }
}

/// sdsec's record in the domain's metadata, if it is one of sdsec's.
fn record(domain: &Domain) -> Option<Instance> {
    let element = domain.metadata(sys::VIR_DOMAIN_METADATA_ELEMENT, Some(xml::NAMESPACE), 0).ok()?;
    xml::parse_metadata(&element).ok()
}

/// `None` when the domain could not be asked (it went meanwhile).
fn running_state(domain: &Domain) -> Option<InstanceState> {
    Some(match domain.state().ok()? {
        DomainState::Running | DomainState::Blocked => InstanceState::Running,
        DomainState::Paused | DomainState::PmSuspended => InstanceState::Paused,
        _ => InstanceState::Stopped,
    })
}

fn is(e: &virt::Error, number: ErrorNumber) -> bool {
    e.code() == number
}

/// The domain went already (or was not running): what a stop wants anyway.
fn gone(e: &virt::Error) -> bool {
    is(e, ErrorNumber::NO_DOMAIN) || is(e, ErrorNumber::OPERATION_INVALID)
}

/// A connection to the daemon at `uri` that fails calls within about 20 s once the daemon
/// stops answering (keepalives, sent by the event loop [`channel::event_loop`] runs).
pub fn connect(uri: &str) -> std::result::Result<Connect, virt::Error> {
    // Before the connection: libvirt takes the event loop it finds registered then. Without
    // one, non-blocking streams never receive and keepalives are never sent.
    channel::event_loop()?;
    let conn = Connect::open(uri)?;
    // Not every driver keeps connections alive (a local one needs none).
    let _ = conn.set_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT);
    Ok(conn)
}

/// The audit log's path on the daemon's host, as the record holds it.
fn audit_path(record: &Instance) -> String {
    record.audit_log.as_deref().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
}
