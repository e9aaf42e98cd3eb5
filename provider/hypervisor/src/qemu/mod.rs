//! The embedded default backend: `qemu-system-x86_64 -M microvm`, started by the provider
//! itself and daemonised, so instances outlive the command that started them. Control
//! goes through each instance's QMP socket; the guest's console goes to a log file.

pub(crate) mod args;
mod compat;
mod process;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use serde_json::Value;

use self::process::QemuProcess;
use crate::accel::{Accel, AccelChoice, HostFacts};
use crate::console::{self, BootChannels};
use crate::control::ControlChannel;
use crate::logs::{LocalLog, LogFile, LogKind};
use crate::qmp::Qmp;
use crate::registry::{AUDIT, CONSOLE, QMP_SOCKET, Registry};
use crate::{
    BootSpec, ControlEndpoint, Creator, Hypervisor, HypervisorError, Instance, InstanceId, InstanceState, Nic,
    PORT_TRIES, Result, control, free_port, logs, plain_name, snapshot, socket,
};

#[derive(Debug)]
pub struct Qemu {
    binary: PathBuf,
    registry: Registry,
    accel: Accel,
    cpu_khz: Option<u64>,
}

impl Qemu {
    /// A backend keeping its instances under `state_dir`. `SDSEC_QEMU` names another
    /// QEMU binary.
    pub fn new(state_dir: &Path, choice: AccelChoice) -> Result<Qemu> {
        let facts = HostFacts::read();
        let accel = facts.choose(choice).map_err(|why| HypervisorError::Accel(Accel::Kvm, why))?;
        let binary = std::env::var_os("SDSEC_QEMU").map(PathBuf::from).unwrap_or_else(|| "qemu-system-x86_64".into());
        Ok(Qemu { binary, registry: Registry::new(state_dir), accel, cpu_khz: facts.cpu_khz })
    }

    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// One QMP command to instance `id`'s QEMU, wherever its socket is: for what the
    /// [`Hypervisor`] trait does not cover (benchmarks, diagnostics).
    pub fn qmp(&self, id: &InstanceId, command: &str, arguments: Option<Value>) -> Result<Value> {
        let fail = |reason: String| HypervisorError::Qmp { id: id.clone(), command: command.to_owned(), reason };
        let socket = socket::path(&self.registry.dir(id), id.as_str(), QMP_SOCKET).map_err(|e| fail(e.to_string()))?;
        let mut qmp = Qmp::connect(&socket, Duration::from_secs(5)).map_err(fail)?;
        qmp.execute(command, arguments).map_err(fail)
    }

    /// Removes every file of an instance that is no more.
    fn forget(&self, id: &InstanceId) {
        socket::remove(&self.registry.dir(id), id.as_str());
        let _ = self.registry.remove(id);
    }

    fn process(&self, id: &InstanceId) -> Option<QemuProcess> {
        let dir = self.registry.dir(id);
        // Still naming its creator: it may have been left before QEMU wrote its pid file.
        match self.registry.load(id) {
            Ok(record) if record.creator.is_some() => QemuProcess::find_creating(&dir, id.as_str()),
            _ => QemuProcess::find(&dir, id.as_str()),
        }
    }

    /// Starts QEMU and returns its process once it has daemonised.
    fn launch(&self, spec: &BootSpec, id: &InstanceId, dir: &Path) -> Result<(QemuProcess, u16)> {
        let mut tries = 0;
        loop {
            tries += 1;
            let host_port = match (&spec.nic, spec.nic.user_host_port()) {
                (Nic::Tap { .. } | Nic::Site { .. } | Nic::Detached, _) => 0,
                (_, Some(port)) => port,
                (_, None) => free_port()?,
            };
            let sockets = args::Sockets {
                qmp: socket::path(dir, id.as_str(), QMP_SOCKET)?,
                control: spec.control.as_ref().map(|_| control::socket_path(dir, id)).transpose()?,
            };
            let args = args::args(spec, id.as_str(), dir, &sockets, self.accel, self.cpu_khz, host_port);
            let output = Command::new(&self.binary)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .map_err(|source| HypervisorError::QemuMissing { binary: self.binary.display().to_string(), source })?;
            if output.status.success() {
                return match QemuProcess::find(dir, id.as_str()) {
                    Some(process) => Ok((process, host_port)),
                    None => Err(HypervisorError::DiedBooting {
                        id: id.clone(),
                        what: "QEMU exited right after starting".into(),
                        console: logs::tails(&LocalLog(dir.join(CONSOLE)), &LocalLog(dir.join(AUDIT)), 20),
                    }),
                };
            }
            let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            if stderr.is_empty() {
                stderr = format!("it exited with {} and printed nothing", output.status);
            }
            let port_taken = stderr.contains("hostfwd") || stderr.contains("host forwarding");
            let asked = spec.nic.user_host_port();
            if !(port_taken && asked.is_none() && matches!(spec.nic, Nic::User { .. }) && tries < PORT_TRIES) {
                let stderr = if port_taken && asked.is_some() {
                    format!("{stderr} (is host port {host_port} already in use? choose another host_port)")
                } else {
                    stderr
                };
                return Err(HypervisorError::QemuFailed { stderr });
            }
        }
    }

    /// For a copy of a snapshot: loads the state, runs it and makes it its own.
    fn restore_state(&self, spec: &BootSpec, id: &InstanceId, process: &QemuProcess) -> Result<()> {
        let (Some(restore), Some(control)) = (&spec.restore, &spec.control) else { return Ok(()) };
        let fail = |reason: String| HypervisorError::Snapshot { id: id.clone(), reason };
        let dir = self.registry.dir(id);
        let qmp = socket::path(&dir, id.as_str(), QMP_SOCKET)?;
        snapshot::load(id, &qmp, &restore.state, spec.ready_timeout, || process.alive())?;
        let channel = control::socket_path(&dir, id)?;
        snapshot::resume(&channel, restore, &control.key)
            .map_err(|e| fail(format!("the copy was not resumed: {e}")))?;
        snapshot::link_up(&qmp).map_err(fail)
    }

    fn wait_ready(
        &self,
        spec: &BootSpec,
        id: &InstanceId,
        process: QemuProcess,
        endpoint: SocketAddr,
        started: Instant,
    ) -> Result<u64> {
        let dir = self.registry.dir(id);
        let control = spec.control.as_ref().map(|_| control::socket_path(&dir, id)).transpose()?;
        let (console, audit) = (LocalLog(dir.join(CONSOLE)), LocalLog(dir.join(AUDIT)));
        let logs = BootChannels { console: &console, audit: &audit, control: control.map(ControlChannel::Socket) };
        console::wait_ready(spec, id, logs, endpoint, started, || process.alive())
    }
}

impl Hypervisor for Qemu {
    fn boot(&self, spec: &BootSpec) -> Result<Instance> {
        if let Nic::Site { network, .. } = &spec.nic {
            return Err(HypervisorError::Unsupported {
                backend: "qemu",
                what: format!("a port on network {network} kept by a hypervisor's host"),
            });
        }
        let id = InstanceId::random()?;
        let dir = self.registry.create_dir(&id, true)?;
        let spec = BootSpec { name: plain_name(&spec.name), ..spec.clone() };
        let started = Instant::now();
        // Recorded with its creator before QEMU starts, so that an instance whose creator is
        // killed while it boots is found again (and stopped as an orphan).
        let mut instance = Instance::starting(id.clone(), &spec, self.accel, &dir, 0);
        let launched = self
            .registry
            .save(&instance)
            .and_then(|()| control::personalise(&spec, &dir))
            .and_then(|spec| self.launch(&spec, &id, &dir));
        let (process, host_port) = match launched {
            Ok(l) => l,
            Err(e) => {
                self.forget(&id);
                return Err(e);
            }
        };
        if let Nic::User { .. } = spec.nic {
            instance.endpoint.set_port(host_port);
        }
        let endpoint = instance.endpoint;
        let ready = self
            .registry
            .save(&instance)
            .and_then(|()| self.restore_state(&spec, &id, &process))
            .and_then(|()| self.wait_ready(&spec, &id, process, endpoint, started));
        match ready {
            Ok(boot_ms) => {
                instance.boot_ms = boot_ms;
                self.registry.save(&instance)?;
                Ok(instance)
            }
            Err(e) => {
                process.kill();
                self.forget(&id);
                Err(e)
            }
        }
    }

    fn state(&self, id: &InstanceId) -> Result<InstanceState> {
        if !self.registry.dir(id).is_dir() || self.process(id).is_none() {
            return Ok(InstanceState::Gone);
        }
        let status = match self.qmp(id, "query-status", None) {
            Ok(status) => status,
            // Alive but not answering: not serving either.
            Err(_) => return Ok(InstanceState::Stopped),
        };
        Ok(match status.get("status").and_then(Value::as_str) {
            Some("running") => InstanceState::Running,
            Some("paused" | "suspended") => InstanceState::Paused,
            _ => InstanceState::Stopped,
        })
    }

    fn instance(&self, id: &InstanceId) -> Result<Instance> {
        self.registry.load(id)
    }

    fn list(&self) -> Result<Vec<(Instance, InstanceState)>> {
        let mut out = Vec::new();
        for id in self.registry.ids()? {
            if let Ok(instance) = self.registry.load(&id) {
                logs::rotate_both(
                    &LocalLog(instance.console_log.clone()),
                    &LocalLog(logs::event_log(&instance).into()),
                );
                let state = self.state(&id)?;
                out.push((instance, state));
            }
        }
        Ok(out)
    }

    fn pause(&self, id: &InstanceId) -> Result<()> {
        self.registry.load(id)?;
        self.qmp(id, "stop", None).map(|_| ())
    }

    fn resume(&self, id: &InstanceId) -> Result<()> {
        self.registry.load(id)?;
        self.qmp(id, "cont", None).map(|_| ())
    }

    fn stop(&self, id: &InstanceId, grace: Duration) -> Result<()> {
        if let Some(process) = self.process(id) {
            // `quit` ends QEMU at once and cleanly (the console log is flushed); the guest
            // keeps no state worth a shutdown, its root file system is the initramfs.
            let _ = self.qmp(id, "quit", None);
            if !process.wait_gone(grace) {
                process.signal(Signal::TERM);
                if !process.wait_gone(Duration::from_secs(2)) {
                    process.signal(Signal::KILL);
                    process.wait_gone(Duration::from_secs(5));
                }
            }
        }
        socket::remove(&self.registry.dir(id), id.as_str());
        self.registry.remove(id)
    }

    fn log(&self, id: &InstanceId, kind: LogKind) -> Result<Box<dyn LogFile>> {
        let dir = self.registry.dir(id);
        Ok(Box::new(LocalLog(match kind {
            LogKind::Console => dir.join(CONSOLE),
            // An instance of an earlier release wrote its events to the console.
            LogKind::Audit => self.registry.load(id).map_or_else(|_| dir.join(AUDIT), |i| logs::event_log(&i).into()),
        })))
    }

    fn set_metadata(&self, id: &InstanceId, metadata: Value) -> Result<()> {
        let mut instance = self.registry.load(id)?;
        instance.metadata = metadata;
        self.registry.save(&instance)
    }

    fn set_creator(&self, id: &InstanceId, creator: Option<Creator>) -> Result<()> {
        let mut instance = self.registry.load(id)?;
        instance.creator = creator;
        self.registry.save(&instance)
    }

    fn control(&self, id: &InstanceId) -> Result<ControlEndpoint> {
        self.registry.load(id)?;
        control::endpoint(&self.registry.dir(id), id)
    }

    fn save(&self, id: &InstanceId, dest: &Path) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        self.registry.load(id)?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)
            .map_err(fsutil::io("create the snapshot", dest))?;
        let qmp = socket::path(&self.registry.dir(id), id.as_str(), QMP_SOCKET)?;
        let saved = snapshot::save(&qmp, &file, SAVE_TIMEOUT);
        saved.map_err(|reason| HypervisorError::Snapshot { id: id.clone(), reason })
    }

    fn snapshot_compat(&self) -> Result<String> {
        Ok(compat::compat(&self.binary, self.accel))
    }
}

/// How long writing a snapshot may take (a few tens of MB of a small guest's memory).
const SAVE_TIMEOUT: Duration = Duration::from_secs(60);
