//! Init mode: the runtime as `/init` of an image, PID 1 of a VM.
//!
//! In order: mount the kernel file systems, load the image's modules, configure the
//! network, load the plan and bind the PEP, start the application sandboxed, wait until it
//! listens, print the readiness line, then proxy and supervise. Any failure prints one
//! `init_error` line and powers the VM off: PID 1 must never exit (the kernel would panic)
//! and a VM that cannot enforce its plan must not linger.

pub mod app;
pub mod events;
pub mod exec;
pub mod modules;
pub mod mounts;
pub mod net;
pub mod port;
pub mod power;
pub mod ready;
pub mod relay;
pub mod sandbox;
pub mod seccomp;

use std::fmt::Display;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use abi::cmdline::Launch;
use abi::control::Key;
use abi::event::{Event, ShutdownReason};
use abi::paths;
use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};
use tokio::signal::unix::{SignalKind, signal};

use crate::audit::AuditLog;
use crate::config::{Runtime, load_plan};
use crate::proxy::Proxy;

const CMDLINE: &str = "/proc/cmdline";
const INTERFACE_WAIT: Duration = Duration::from_secs(5);
const LISTEN_WAIT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How long one readiness request may wait for the application's answer.
const PROBE_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot read {CMDLINE}: {0}")]
    Cmdline(std::io::Error),
    #[error("cannot {what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
    #[error("the application exited ({0}) before it listened on 127.0.0.1:{1}")]
    ExitedEarly(String, u16),
    #[error("the application did not listen on 127.0.0.1:{0} within {LISTEN_WAIT:?}")]
    NeverListened(u16),
    #[error(
        "the application accepts connections on 127.0.0.1:{port} but did not answer an HTTP request ({why}){}",
        if *strict { STRICT_FORKS } else { "" }
    )]
    NoHttpAnswer { port: u16, why: String, strict: bool },
}

/// The likely cause of an application that accepts but never answers, under `strict`.
const STRICT_FORKS: &str = "; under hardening level `strict` process creation is refused (fork and clone of a new \
    process return EPERM), so a server that forks per connection (busybox httpd, inetd-style servers) cannot \
    answer: use hardening level `baseline`, or a server that does not fork";

/// Init mode is PID 1 without flags. The kernel hands init the command-line words it
/// does not know (no `=`, no dot) as arguments, so bare words do not mean host mode;
/// host mode always has `--` flags, also when it is PID 1 of a container.
pub fn is_init() -> bool {
    std::process::id() == 1 && std::env::args().skip(1).all(|a| !a.starts_with('-'))
}

/// Writes one event straight away (the audit writer may not exist yet): to the audit port
/// once it is open, to the console before.
fn console(event: &Event<'_>) {
    events::write(event);
}

fn fail(step: &str, error: impl Display) -> ! {
    console(&Event::InitError { step: step.into(), error: error.to_string() });
    power::power_off()
}

fn warn(step: &str, error: impl Display) {
    console(&Event::InitWarning { step: step.into(), error: error.to_string() });
}

fn step<T, E: Display>(name: &str, result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| fail(name, e))
}

/// Runs the image; never returns.
pub fn run() -> ! {
    // A panic of the init thread itself would end PID 1: power off cleanly instead. One in
    // a proxy task unwinds into tokio, which ends that connection only; it is reported.
    std::panic::set_hook(Box::new(|info| {
        if std::thread::current().name() == Some("main") {
            fail("panic", info)
        }
        warn("panic", info)
    }));
    step("mounts", mounts::mount_all());
    mounts::reopen_console();
    // Ctrl-Alt-Del then reaches init as SIGINT, a clean stop, rather than an abrupt reset.
    let _ = rustix::system::reboot(rustix::system::RebootCommand::CadOff);
    let line = step("cmdline", std::fs::read_to_string(CMDLINE).map_err(InitError::Cmdline));
    let launch = step("cmdline", Launch::decode(&line));
    load_modules();
    // Before anything else that can fail: from here on the host reads events only there.
    if let Err(e) = events::open_audit_port() {
        warn("audit", e);
    }
    let network = launch.network;
    let address = net::Address { ip: network.ip, prefix: network.prefix, gateway: network.gateway };
    step("network", net::configure(address, INTERFACE_WAIT));
    let plan = step("plan", load_plan(&paths::in_guest(paths::PLAN)));
    // Before the root is made read-only, so the key can be removed once read.
    let key = step("control_key", crate::control::take_key(&paths::in_guest(paths::CONTROL_KEY)));
    if plan.build.hardening.read_only_root {
        step("read_only_root", mounts::read_only_root());
    }
    let runtime = step("plan", Runtime::new(&plan.runtime));
    let threads = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    let threads = step("runtime", threads.map_err(|source| InitError::Io { what: "start the async runtime", source }));
    threads.block_on(supervise(launch, plan, runtime, key))
}

/// Module failures are warnings: a driver may be built in, and the network step names
/// what is really missing.
fn load_modules() {
    let found = match modules::scan(&paths::in_guest(paths::MODULES)) {
        Ok(found) => found,
        Err(modules::ModuleError::List { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => return warn("modules", e),
    };
    for module in modules::order(found) {
        if let Err(e) = modules::load(&module) {
            warn("modules", e);
        }
    }
}

async fn supervise(launch: Launch, plan: plan::EnforcementPlan, runtime: Runtime, key: Option<Key>) -> ! {
    let audit = step(
        "audit",
        events::writer()
            .and_then(AuditLog::spawn)
            .map_err(|source| InitError::Io { what: "start the audit writer", source }),
    );
    let listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, launch.listen));
    let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, launch.app_port));
    let proxy = step("listen", Proxy::bind(listen, upstream, runtime, audit.clone()).await);
    let signals = (signal(SignalKind::child()), signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
    let (mut children, mut term, mut int) = match signals {
        (Ok(c), Ok(t), Ok(i)) => (c, t, i),
        (Err(source), _, _) | (_, Err(source), _) | (_, _, Err(source)) => {
            fail("signals", InitError::Io { what: "handle signals", source })
        }
    };
    let strict = plan.build.hardening.seccomp && plan.build.hardening.level == plan::HardeningLevel::Strict;
    let exec_guard = strict.then(|| {
        let (guard, supervisor) = step("exec_supervisor", exec::pair());
        let refusals = audit.clone();
        step("exec_supervisor", supervisor.spawn(move |refused| refusals.emit(&refused.event())));
        guard
    });
    let (child, output) = step("app", app::spawn(&launch, &plan.build.hardening, exec_guard));
    if let Err(e) = relay::spawn(output, std::io::stdout()) {
        warn("app_output", InitError::Io { what: "start the application's output relay", source: e });
    }
    let mut app = Reaper { pid: Pid::from_child(&child), exit: None };
    // The handle is not needed: the reaper collects the status (and orphans' too).
    drop(child);

    let deadline = Instant::now() + LISTEN_WAIT;
    let mut verdict = ready::Verdict::default();
    loop {
        if let Some(exit) = app.poll() {
            fail("app_ready", InitError::ExitedEarly(exit.describe(), launch.app_port));
        }
        let probe = ready::probe(upstream, PROBE_WAIT).await;
        if matches!(probe, ready::Probe::Answered(_)) {
            break;
        }
        if verdict.hopeless(&probe, Instant::now()) || Instant::now() >= deadline {
            app.stop().await;
            let port = launch.app_port;
            match probe {
                ready::Probe::NoAnswer(why) => fail("app_ready", InitError::NoHttpAnswer { port, why, strict }),
                _ => fail("app_ready", InitError::NeverListened(port)),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = children.recv() => {}
            _ = term.recv() => shut_down(&mut app, &audit).await,
            _ = int.recv() => shut_down(&mut app, &audit).await,
        }
    }

    audit.emit(&Event::Ready {
        node: plan.node.as_str().into(),
        listen: proxy.local_addr().to_string(),
        app: Some(launch.app_path().display().to_string()),
    });
    if let Some(key) = key {
        let controller = crate::control::Controller::new(key, plan.clone(), proxy.shared(), audit.clone());
        crate::control::spawn(controller, warn);
    }
    tokio::spawn(proxy.run());
    loop {
        tokio::select! {
            _ = children.recv() => {}
            // Signals can coalesce: a periodic look keeps an exit from going unnoticed.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = term.recv() => shut_down(&mut app, &audit).await,
            _ = int.recv() => shut_down(&mut app, &audit).await,
        }
        if let Some(exit) = app.poll() {
            audit.emit(&Event::AppExit { status: exit.code, signal: exit.signal });
            flush_and_power_off().await
        }
    }
}

async fn shut_down(app: &mut Reaper, audit: &AuditLog) -> ! {
    audit.emit(&Event::Shutdown { reason: ShutdownReason::Signal });
    app.stop().await;
    flush_and_power_off().await
}

/// Gives the audit writer a moment to write what is queued, then powers off.
async fn flush_and_power_off() -> ! {
    tokio::time::sleep(Duration::from_millis(200)).await;
    power::power_off()
}

#[derive(Debug, Clone, Copy)]
struct Exit {
    code: Option<i32>,
    signal: Option<i32>,
}

impl Exit {
    fn from_status(status: WaitStatus) -> Self {
        Self { code: status.exit_status(), signal: status.terminating_signal() }
    }

    fn describe(self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("status {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "unknown status".to_owned(),
        }
    }
}

/// Collects exited children: the application, and any orphan re-parented to init.
#[derive(Debug)]
struct Reaper {
    pid: Pid,
    exit: Option<Exit>,
}

impl Reaper {
    fn poll(&mut self) -> Option<Exit> {
        // `wait`, not `waitpid(None)`: the latter only sees init's own process group, and
        // the application runs in a group of its own.
        while let Ok(Some((pid, status))) = rustix::process::wait(WaitOptions::NOHANG) {
            if pid == self.pid {
                self.exit = Some(Exit::from_status(status));
            }
        }
        self.exit
    }

    /// SIGTERM to the application's process group, SIGKILL after the grace period.
    async fn stop(&mut self) {
        for (signal, wait) in [(Signal::TERM, STOP_GRACE), (Signal::KILL, Duration::from_secs(1))] {
            let _ = rustix::process::kill_process_group(self.pid, signal);
            let deadline = Instant::now() + wait;
            while Instant::now() < deadline {
                if self.poll().is_some() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
