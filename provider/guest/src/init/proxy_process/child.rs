//! The proxy process's side: started by PID 1 as `sdsec-guest --sdsec-proxy-process
//! UPSTREAM` with its descriptors in place (see [`super`]).

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use super::{EVENTS_FD, LINK_FD, LISTENER_FD, PROBE, PROBE_WAIT};
use crate::audit::AuditLog;
use crate::config::{Runtime, parse_plan};
use crate::init::{ready, seccomp};
use crate::proxy::{Proxy, Shared};

/// The longest plan line read (plans are a few KiB).
const MAX_LINE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("usage: sdsec-guest {} UPSTREAM (started by init only)", super::FLAG)]
    Usage,
    #[error("cannot install the proxy process's seccomp filter: {0}")]
    Seccomp(String),
    #[error("cannot {what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
    #[error("PID 1 closed the link before sending a plan")]
    NoPlan,
    #[error("the plan from init does not start: {0}")]
    Plan(String),
}

/// Runs the proxy process; returns only on failure (PID 1 powers off when it ends).
pub fn run(mut args: impl Iterator<Item = String>) -> ChildError {
    // First, before any thread exists, so that every thread inherits the filter.
    let installed = seccomp::proxy_programs()
        .map_err(|e| e.to_string())
        .and_then(|programs| seccomp::install(&programs).map_err(|e| e.to_string()));
    if let Err(e) = installed {
        return ChildError::Seccomp(e);
    }
    let Some(upstream) = args.next().and_then(|a| a.parse::<SocketAddr>().ok()) else { return ChildError::Usage };
    // SAFETY: PID 1 placed these descriptors for this process alone before exec
    // (`super::place`); nothing else here owns them.
    #[allow(unsafe_code)]
    let (listener, events, link) = unsafe {
        (
            std::net::TcpListener::from_raw_fd(LISTENER_FD),
            File::from_raw_fd(EVENTS_FD),
            UnixStream::from(OwnedFd::from_raw_fd(LINK_FD)),
        )
    };
    match serve(listener, events, link, upstream) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

/// Serves until the link closes (then exits: PID 1 is gone and the VM with it).
fn serve(
    listener: std::net::TcpListener,
    events: File,
    link: UnixStream,
    upstream: SocketAddr,
) -> Result<std::convert::Infallible, ChildError> {
    let io = |what| move |source| ChildError::Io { what, source };
    let mut answers = link.try_clone().map_err(io("use the link"))?;
    let mut lines = BufReader::new(link);
    let Some(first) = next_line(&mut lines) else { return Err(ChildError::NoPlan) };
    let threads = Arc::new(crate::proxy::async_runtime().map_err(io("start the async runtime"))?);
    let audit = AuditLog::spawn(Box::new(events)).map_err(io("start the audit writer"))?;
    let shared = threads.block_on(async {
        let runtime = match compile(&first) {
            Ok(runtime) => runtime,
            Err(e) => return Err(e),
        };
        let proxy = Proxy::from_listener(listener, upstream, runtime, audit).map_err(|e| e.to_string())?;
        let shared = proxy.shared();
        // A serving thread per vCPU: this runtime's, and one more per further vCPU.
        tokio::spawn(proxy.run_on(crate::proxy::serving_threads()));
        Ok(shared)
    });
    let shared: Arc<Shared> = match shared {
        Ok(shared) => shared,
        Err(e) => {
            let _ = answers.write_all(format!("error: {}\n", e.replace('\n', " ")).as_bytes());
            return Err(ChildError::Plan(e));
        }
    };
    // A current-thread runtime runs its tasks only inside a `block_on`: a thread of its own
    // stays in one for good.
    let driver = Arc::clone(&threads);
    std::thread::Builder::new()
        .name("proxy".into())
        .spawn(move || driver.block_on(std::future::pending::<()>()))
        .map_err(io("start the proxy thread"))?;
    answers.write_all(b"ok\n").map_err(io("answer on the link"))?;
    // The proxy runs on that thread (and those it starts); this one takes the plans PID 1 sends
    // until the link closes (PID 1 is gone and the VM with it). Its probes run here, their
    // connections driven by the proxy's thread.
    while let Some(line) = next_line(&mut lines) {
        if line.trim_end() == PROBE {
            // Whatever the application answers is parsed here, never in PID 1.
            let found = threads.block_on(ready::probe(upstream, PROBE_WAIT));
            answers.write_all(format!("{}\n", found.to_line()).as_bytes()).map_err(io("answer on the link"))?;
            continue;
        }
        let answer = match compile(&line) {
            Ok(runtime) => {
                shared.reconfigure(runtime);
                "ok\n".to_owned()
            }
            Err(e) => format!("error: {}\n", e.replace('\n', " ")),
        };
        answers.write_all(answer.as_bytes()).map_err(io("answer on the link"))?;
    }
    drop(threads);
    std::process::exit(0)
}

fn next_line(lines: &mut BufReader<UnixStream>) -> Option<String> {
    let mut line = String::new();
    match std::io::Read::take(&mut *lines, MAX_LINE).read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line),
    }
}

fn compile(text: &str) -> Result<Runtime, String> {
    let plan = parse_plan("the plan from init", text.trim_end()).map_err(|e| e.to_string())?;
    Runtime::new(&plan.runtime).map_err(|e| e.to_string())
}
