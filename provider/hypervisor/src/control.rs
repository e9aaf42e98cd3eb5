//! Each instance's control channel to its runtime ([`abi::control`]): the key (handed to the
//! guest first on the channel, [`abi::control::Provision`]), the virtio-serial port, and where
//! the host finds socket and key again.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::time::Duration;

use abi::control::{Channel, ClientError, Command, Key, Reply, Request};
use fsutil::io;

use crate::registry::{CONTROL_KEY, CONTROL_SOCKET};
use crate::{BootSpec, HypervisorError, InstanceId, Result, socket};

/// What a boot needs for a control channel: the instance's own key.
#[derive(Debug, Clone)]
pub struct ControlBoot {
    pub key: Key,
}

/// Where the host reaches a running instance's runtime.
#[derive(Debug, Clone)]
pub struct ControlEndpoint {
    pub channel: ControlChannel,
    pub key: Key,
}

impl ControlEndpoint {
    /// Sends `command` and returns the runtime's authenticated reply (an `Err` when it
    /// refused).
    pub fn call(&self, command: Command, timeout: Duration) -> Result<Reply, ClientError> {
        let mut channel = self.channel.open()?;
        abi::control::call_on(&mut *channel, &self.channel.describe(), &self.key, command, timeout)
    }

    /// Sends `request` as it is and returns the reply to it, unverified.
    pub fn exchange(&self, request: &Request, timeout: Duration) -> Result<Reply, ClientError> {
        let mut channel = self.channel.open()?;
        abi::control::exchange_on(&mut *channel, &self.channel.describe(), request, timeout)
    }
}

/// How the host reaches an instance's control channel.
#[derive(Debug, Clone)]
pub enum ControlChannel {
    /// The unix socket QEMU listens on, on this host.
    Socket(PathBuf),
    /// A channel the backend opens anew for each use (a libvirt domain's, over the
    /// connection to its daemon).
    Opened(Arc<dyn OpenChannel>),
}

/// Opens a connected control channel; the guest's side takes one at a time.
pub trait OpenChannel: std::fmt::Debug + Send + Sync {
    fn open(&self) -> std::io::Result<Box<dyn Channel>>;
    /// Where the channel is, for people.
    fn describe(&self) -> String;
}

impl ControlChannel {
    pub fn open(&self) -> Result<Box<dyn Channel>, ClientError> {
        match self {
            ControlChannel::Socket(path) => abi::control::connect(path).map(|s| Box::new(s) as Box<dyn Channel>),
            ControlChannel::Opened(opener) => {
                opener.open().map_err(|source| ClientError::Connect { where_: opener.describe(), source })
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ControlChannel::Socket(path) => path.display().to_string(),
            ControlChannel::Opened(opener) => opener.describe(),
        }
    }
}

/// Keeps the key in the instance directory and, except for a copy of a snapshot (which is
/// given its key when resumed), marks the command line so that init waits for the key and
/// its random seed on the channel ([`crate::console::wait_ready`] writes them). The image's
/// initramfs is booted as it is: one file for every instance of the image. Returns the spec
/// to boot.
pub(crate) fn personalise(spec: &BootSpec, dir: &Path) -> Result<BootSpec> {
    let Some(control) = &spec.control else { return Ok(spec.clone()) };
    let key_path = dir.join(CONTROL_KEY);
    control
        .key
        .write_new(&key_path)
        .map_err(|e| io("write the control key", &key_path)(std::io::Error::other(e.to_string())))?;
    if spec.restore.is_some() {
        return Ok(spec.clone());
    }
    let cmdline = abi::cmdline::with_flag(&spec.cmdline, abi::cmdline::Flag::Provision);
    Ok(BootSpec { cmdline, ..spec.clone() })
}

/// The socket QEMU listens on for the channel.
pub(crate) fn socket_path(dir: &Path, id: &InstanceId) -> Result<PathBuf> {
    socket::path(dir, id.as_str(), CONTROL_SOCKET)
}

/// QEMU's arguments for the virtio-serial ports: the runtime's audit channel, appended to
/// the file `audit`, and with `control` the control channel, a unix socket (in a directory
/// of the provider's user only).
pub(crate) fn qemu_args(audit: &Path, control: Option<&Path>) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "-device".into(),
        // Port 0 is reserved for a console; the audit channel and the control channel take
        // the next ones.
        "virtio-serial-device,max_ports=3".into(),
        "-chardev".into(),
        option("file,id=sdsecaudit,path=", audit, ",append=on"),
        "-device".into(),
        format!("virtserialport,chardev=sdsecaudit,name={}", abi::event::AUDIT_PORT_NAME).into(),
    ];
    if let Some(socket) = control {
        args.extend([
            "-chardev".into(),
            option("socket,id=sdsecctl,path=", socket, ",server=on,wait=off"),
            "-device".into(),
            format!("virtserialport,chardev=sdsecctl,name={}", abi::control::PORT_NAME).into(),
        ]);
    }
    args
}

/// A QEMU option string with `path` as one field's value. Commas separate QEMU's option
/// fields; a comma in the path is written twice, so no path can add or end fields.
pub(crate) fn option(prefix: &str, path: &Path, suffix: &str) -> OsString {
    use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
    let mut bytes = prefix.as_bytes().to_vec();
    for &b in path.as_os_str().as_bytes() {
        bytes.push(b);
        if b == b',' {
            bytes.push(b',');
        }
    }
    bytes.extend_from_slice(suffix.as_bytes());
    OsString::from_vec(bytes)
}

/// The channel of an instance whose directory is `dir`: QEMU's socket there.
pub(crate) fn endpoint(dir: &Path, id: &InstanceId) -> Result<ControlEndpoint> {
    Ok(ControlEndpoint { channel: ControlChannel::Socket(socket_path(dir, id)?), key: key(dir, id)? })
}

/// The key of an instance whose directory is `dir`.
pub(crate) fn key(dir: &Path, id: &InstanceId) -> Result<Key> {
    let key_path = dir.join(CONTROL_KEY);
    if !key_path.exists() {
        return Err(HypervisorError::NoControl(id.clone()));
    }
    Key::read(&key_path).map_err(|e| HypervisorError::BadRecord { path: key_path, reason: e.to_string() })
}
