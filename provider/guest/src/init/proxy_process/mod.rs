//! The HTTP proxy, which parses hostile input, runs in a process of its own rather than in
//! PID 1: its own user ([`PROXY_ID`]), no capability, no_new_privs, a seccomp filter of its
//! own that refuses what `strict` refuses and kills execve, and no control key.
//!
//! PID 1 binds the listening socket (port 80 needs a capability) and re-executes its own
//! program with [`FLAG`]: the socket, the events channel and one end of a socket pair (the
//! link) are at descriptors 3, 4 and 5. Over the link PID 1 sends the plan as one line of
//! canonical JSON; the process answers `ok` once that plan is in force, or `error: ...`. The
//! first line starts it; every later one is a reconfiguration the controller accepted,
//! acknowledged to the host only after the `ok`. The line `probe` asks the process to send
//! one readiness request to the application ([`super::ready`]) and say what came back: the
//! application's answer is parsed in the proxy process, never in PID 1. If the process
//! ends, PID 1 powers off.

pub mod child;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd as _, RawFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use plan::EnforcementPlan;
use rustix::process::Pid;

use super::ready::Probe;
use super::sandbox::{Sandbox, set_pre_exec};
use crate::config::Runtime;
use crate::control::Enforce;

pub use super::sandbox::PROXY_ID;

/// The argument that makes the runtime the proxy process.
pub const FLAG: &str = "--sdsec-proxy-process";
/// Where the process finds what PID 1 hands it.
pub const LISTENER_FD: RawFd = 3;
pub const EVENTS_FD: RawFd = 4;
pub const LINK_FD: RawFd = 5;
/// How long the process may take to put a plan in force (compiling it is milliseconds).
const ANSWER_WAIT: Duration = Duration::from_secs(20);
/// The link's request for a readiness probe.
pub const PROBE: &str = "probe";
/// How long the application may take to answer a readiness request.
pub const PROBE_WAIT: Duration = Duration::from_secs(3);
/// Above the descriptors of a fresh process, below any limit.
const SCRATCH_FD: RawFd = 100;

#[derive(Debug, thiserror::Error)]
pub enum ProxyProcessError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot {what} for the proxy process: {source}")]
    Io { what: &'static str, source: std::io::Error },
    #[error("the proxy process refused the plan: {0}")]
    Refused(String),
    #[error("the proxy process did not answer: {0}")]
    Link(String),
}

/// PID 1's end of the link.
#[derive(Debug)]
pub struct Link {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Link {
    fn new(stream: UnixStream) -> std::io::Result<Self> {
        stream.set_read_timeout(Some(ANSWER_WAIT))?;
        Ok(Self { reader: BufReader::new(stream.try_clone()?), writer: stream })
    }

    /// Sends a plan and waits until the process has it in force.
    pub fn send(&mut self, plan: &EnforcementPlan) -> Result<(), ProxyProcessError> {
        self.send_json(&plan.canonical_json())
    }

    /// [`Link::send`] of a plan as JSON text.
    pub fn send_json(&mut self, plan: &str) -> Result<(), ProxyProcessError> {
        // One line: JSON keeps line breaks inside strings escaped, so the others are spacing.
        let answer = self.ask(&plan.replace('\n', " "))?;
        match answer.as_str() {
            "ok" => Ok(()),
            refused => Err(ProxyProcessError::Refused(refused.trim_start_matches("error: ").to_owned())),
        }
    }

    /// Has the process send one readiness request to the application.
    pub fn probe(&mut self) -> Result<Probe, ProxyProcessError> {
        let answer = self.ask(PROBE)?;
        Probe::from_line(&answer).ok_or_else(|| ProxyProcessError::Link(format!("unexpected answer `{answer}`")))
    }

    /// One line out, one line back (without its newline).
    fn ask(&mut self, line: &str) -> Result<String, ProxyProcessError> {
        let link = |e: std::io::Error| ProxyProcessError::Link(e.to_string());
        self.writer.write_all(format!("{line}\n").as_bytes()).map_err(link)?;
        let mut answer = String::new();
        match self.reader.read_line(&mut answer).map_err(link)? {
            0 => Err(ProxyProcessError::Link("it closed the link".into())),
            _ => Ok(answer.trim_end().to_owned()),
        }
    }
}

/// The link as PID 1 shares it between its main thread (probes) and the control thread.
pub type SharedLink = Arc<Mutex<Link>>;

impl Enforce for SharedLink {
    fn enforce(&mut self, plan: &EnforcementPlan, _runtime: Runtime) -> Result<(), String> {
        // The runtime was compiled to validate the plan; the process compiles its own.
        lock(self).send(plan).map_err(|e| e.to_string())
    }
}

/// The link, even if a thread panicked holding it (each exchange is a whole line each way).
pub fn lock(link: &SharedLink) -> MutexGuard<'_, Link> {
    link.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The started proxy process.
#[derive(Debug)]
pub struct ProxyProcess {
    pub pid: Pid,
    pub local: SocketAddr,
    pub link: Link,
}

/// The program init starts as the proxy process: itself.
pub const SELF: &str = "/proc/self/exe";

/// Binds `listen`, starts `program` (the runtime: [`SELF`] in an image) as the proxy process
/// in front of `upstream` with `events` as its events channel, and returns once it enforces
/// `plan` (JSON text: the image's plan file as it is, which spares PID 1 writing it again).
/// `sandboxed` (init always) runs it as [`PROXY_ID`] without capabilities, which needs root.
pub fn start(
    program: &std::path::Path,
    sandboxed: bool,
    listen: SocketAddr,
    upstream: SocketAddr,
    events: std::os::fd::BorrowedFd<'_>,
    plan: &str,
) -> Result<ProxyProcess, ProxyProcessError> {
    let listener = TcpListener::bind(listen).map_err(|source| ProxyProcessError::Listen { addr: listen, source })?;
    let local = listener.local_addr().map_err(|source| ProxyProcessError::Listen { addr: listen, source })?;
    let io = |what| move |source| ProxyProcessError::Io { what, source };
    let (ours, theirs) = UnixStream::pair().map_err(io("create the link"))?;
    let handed = [listener.as_raw_fd(), events.as_raw_fd(), theirs.as_raw_fd()];
    let mut command = Command::new(program);
    command
        .arg(FLAG)
        .arg(upstream.to_string())
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    // The descriptors to place are PID 1's (or the test's) open ones, so none of them is the
    // child's own error-report pipe, which the standard library opens after them.
    set_pre_exec(&mut command, Sandbox::proxy(sandboxed), move || place(handed));
    let child = command.spawn().map_err(io("start the process"))?;
    drop(command);
    // Only the process holds these now.
    drop((listener, theirs));
    let pid = Pid::from_child(&child);
    let mut link = Link::new(ours).map_err(io("set up the link"))?;
    link.send_json(plan)?;
    Ok(ProxyProcess { pid, local, link })
}

/// In the child between fork and exec: puts `fds` at 3, 4 and 5, open across exec. Copies
/// first go above [`SCRATCH_FD`], so that placing one never closes another still to place.
#[allow(unsafe_code)]
fn place(fds: [RawFd; 3]) -> std::io::Result<()> {
    let targets = [LISTENER_FD, EVENTS_FD, LINK_FD];
    let mut copies = [0; 3];
    for (copy, fd) in copies.iter_mut().zip(fds) {
        // SAFETY: fcntl on a descriptor this process holds; the copy is closed below.
        *copy = unsafe { libc::fcntl(fd, libc::F_DUPFD, SCRATCH_FD) };
        if *copy < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    for (copy, target) in copies.into_iter().zip(targets) {
        // SAFETY: dup2 onto a small number and close of the copy made above; dup2 leaves
        // the target open across exec, as wanted.
        unsafe {
            if libc::dup2(copy, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(copy);
        }
    }
    Ok(())
}
