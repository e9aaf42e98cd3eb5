//! Init mode: the runtime as `/init` of an image, PID 1 of a VM.
//!
//! In order: mount the kernel file systems, load the image's modules, open the audit port,
//! configure the network, load the plan and the control key, bind the PEP's port and start
//! the proxy process ([`proxy_process`]), start the application sandboxed ([`app`], with
//! [`exec`]'s supervisor under `strict`), give up what PID 1 no longer needs
//! ([`privileges`]), wait until the application answers HTTP ([`ready`]), write `ready`,
//! then supervise: the control channel, the application's output ([`relay`]), the children's
//! exits ([`reaper`]), signals. Any failure writes one `init_error` event and powers the VM
//! off: PID 1 must never exit (the kernel would panic) and a VM that cannot enforce its
//! plan must not linger.

pub mod app;
pub mod entropy;
pub mod events;
pub mod exec;
pub mod kernel_params;
pub mod memory;
pub mod modules;
pub mod mounts;
pub mod net;
pub mod port;
pub mod power;
pub mod privileges;
pub mod provision;
pub mod proxy_process;
pub mod ready;
pub mod reaper;
pub mod relay;
pub mod resume;
pub mod sandbox;
pub mod seccomp;

use std::fmt::Display;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use abi::cmdline::Launch;
use abi::control::Key;
use abi::event::{Event, ShutdownReason};
use abi::paths;
use rustix::process::Pid;
use rustix::thread::CapabilitySet;
use tokio::signal::unix::{SignalKind, signal};

use crate::audit::AuditLog;
use crate::config::read_plan;
use reaper::Reaper;

const CMDLINE: &str = "/proc/cmdline";
const INTERFACE_WAIT: Duration = Duration::from_secs(5);
/// The host writes the instance's key as soon as QEMU has made the channel: long before
/// init asks, unless the host is overloaded.
const PROVISION_WAIT: Duration = Duration::from_secs(60);
const LISTEN_WAIT: Duration = Duration::from_secs(30);
/// Between readiness probes: each one is a refused connect until the application listens,
/// cheap beside the boot it would otherwise lengthen by half an interval on average.
const READY_PROBE_INTERVAL: Duration = Duration::from_millis(10);

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
    #[error("the runtime's proxy process ended ({0}): the instance stops rather than leave the application unguarded")]
    ProxyEnded(String),
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
    // another thread of PID 1 ends that thread only; it is reported.
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
    // Before anything asks for randomness: getrandom(2) blocks until the kernel is seeded.
    let key = launch.provision.then(|| step("provision", provision::receive(PROVISION_WAIT)));
    // Before anything else that can fail (the key's failure shows on the console, which the
    // host reads until the audit channel opens): from here on the host reads events only there.
    if let Err(e) = events::open_audit_port() {
        warn("audit", e);
    }
    let mut ignored = kernel_params::ignored(std::env::args_os(), std::env::vars_os());
    ignored.extend(kernel_params::unapplied_dotted(&line, std::path::Path::new("/sys/module")));
    if !ignored.is_empty() {
        warn("cmdline", format!("the kernel did not recognise these parameters: {}", ignored.join(" ")));
    }
    let network = launch.network;
    let address = net::Address { ip: network.ip, prefix: network.prefix, gateway: network.gateway };
    step("network", net::configure(address, INTERFACE_WAIT));
    let (plan, plan_json) = step("plan", read_plan(&paths::in_guest(paths::PLAN)));
    if plan.build.hardening.read_only_root {
        step("read_only_root", mounts::read_only_root());
    }
    // Its threads serve PID 1's timers and signals only: they hold no capability.
    let threads = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(|| privileges::drop_quietly(CapabilitySet::empty()))
        .enable_all()
        .build();
    let threads = step("runtime", threads.map_err(|source| InitError::Io { what: "start the async runtime", source }));
    threads.block_on(supervise(launch, plan, &plan_json, key))
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

/// `plan_json` is `plan` as the image holds it: the proxy process compiles it, and refuses
/// it before anything starts if it does not compile.
async fn supervise(launch: Launch, plan: plan::EnforcementPlan, plan_json: &str, key: Option<Key>) -> ! {
    let listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, launch.listen));
    let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, launch.app_port));
    let proxy = step(
        "proxy",
        proxy_process::start(Path::new(proxy_process::SELF), true, listen, upstream, events::descriptor(), plan_json),
    );
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
        let keep = || privileges::drop_quietly(privileges::EXEC_SUPERVISION);
        step("exec_supervisor", supervisor.spawn(keep, |refused| console(&refused.event())));
        guard
    });
    let (child, output) = step("app", app::spawn(&launch, &plan.build.hardening, exec_guard));
    let mut reaper = Reaper::new(Pid::from_child(&child), Some(proxy.pid));
    // The handle is not needed: the reaper collects the status (and orphans' too).
    drop(child);
    // The threads that handle what others send (events, the application's output, the host's
    // control requests) start without any capability. Before the main thread gives up its
    // own: a thread needs CAP_SETPCAP to empty its bounding set.
    // Booted for a snapshot: the main thread keeps what making a copy its own needs until
    // the host's resume ([`resume`]).
    let supervision =
        if launch.snapshot { privileges::SUPERVISION.union(resume::RESUMING) } else { privileges::SUPERVISION };
    let (handoff, mut resumes) = match launch.snapshot {
        true => {
            let (handoff, resumes) = resume::channel();
            (Some(handoff), Some(resumes))
        }
        false => (None, None),
    };
    let link = Arc::new(Mutex::new(proxy.link));
    let control_link = Arc::clone(&link);
    let started = privileges::without_capabilities(|| {
        let audit = events::writer().and_then(AuditLog::spawn);
        let relayed = relay::spawn(output, std::io::stdout());
        let mut notifier = None;
        if let (Some(key), Ok(audit)) = (key, &audit) {
            let mut controller =
                crate::control::Controller::new(key, plan.clone(), Box::new(control_link), audit.clone());
            if let Some(handoff) = handoff {
                controller = controller.resumable(Box::new(handoff));
            }
            notifier = Some(crate::control::spawn(controller, warn));
        }
        (audit, relayed, notifier)
    });
    let (audit, relayed, notifier) = step("privileges", started);
    let audit = step("audit", audit.map_err(|source| InitError::Io { what: "start the audit writer", source }));
    if let Err(e) = relayed {
        warn("app_output", InitError::Io { what: "start the application's output relay", source: e });
    }
    // Both children run: what they needed root for is done.
    step("privileges", privileges::keep_only(supervision));

    let deadline = Instant::now() + LISTEN_WAIT;
    let mut verdict = ready::Verdict::default();
    loop {
        if let Some(exit) = reaper.poll() {
            fail("app_ready", InitError::ExitedEarly(exit.describe(), launch.app_port));
        }
        if let Some(exit) = reaper.proxy_exit() {
            reaper.stop().await;
            fail("proxy", InitError::ProxyEnded(exit.describe()));
        }
        // Through the proxy process: PID 1 never parses what the application sends. A blocking
        // exchange of a few seconds at most; signals wait for it.
        let probe = step("proxy", proxy_process::lock(&link).probe());
        if matches!(probe, ready::Probe::Answered(_)) {
            break;
        }
        if verdict.hopeless(&probe, Instant::now()) || Instant::now() >= deadline {
            reaper.stop().await;
            let port = launch.app_port;
            match probe {
                ready::Probe::NoAnswer(why) => fail("app_ready", InitError::NoHttpAnswer { port, why, strict }),
                _ => fail("app_ready", InitError::NeverListened(port)),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(READY_PROBE_INTERVAL) => {}
            _ = children.recv() => {}
            _ = term.recv() => shut_down(&mut reaper, &audit).await,
            _ = int.recv() => shut_down(&mut reaper, &audit).await,
        }
    }
    step("privileges", privileges::check(|name, main| thread_capabilities(name, main, supervision)));

    let ready = Event::Ready {
        node: plan.node.as_str().into(),
        listen: proxy.local.to_string(),
        app: Some(launch.app_path().display().to_string()),
    };
    audit.emit(&ready);
    // The host waiting for the boot hears it at once. A copy of a snapshot is not told
    // again: its resume's reply is its readiness.
    // Only now: reporting small blocks while booting slowed the boot down. Before the host
    // hears of readiness: a snapshot saved then must report them too.
    if let Err(e) = memory::report_small_free_blocks() {
        warn("memory", e);
    }
    if let Some(notifier) = &notifier {
        notifier.ready();
    }
    let mut address =
        net::Address { ip: launch.network.ip, prefix: launch.network.prefix, gateway: launch.network.gateway };
    loop {
        let mut handed = None;
        tokio::select! {
            _ = children.recv() => {}
            // Signals can coalesce: a periodic look keeps an exit from going unnoticed.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = term.recv() => shut_down(&mut reaper, &audit).await,
            _ = int.recv() => shut_down(&mut reaper, &audit).await,
            request = next_resume(&mut resumes) => handed = Some(request),
        }
        if let Some(request) = handed {
            // One resume only; a closed hand-over (no control channel) waits no longer.
            resumes = None;
            // The control thread is gone without a resume: nothing will need what was kept for it.
            if request.is_none() {
                step("privileges", privileges::keep_only(privileges::SUPERVISION));
                let allowed = |name: &str, main| thread_capabilities(name, main, privileges::SUPERVISION);
                step("privileges", privileges::check(allowed));
            }
            if let Some(request) = request {
                let applied = resume::apply(&request.resume, address, privileges::SUPERVISION);
                let answer = applied.map(|new| address = new).map_err(|e| e.to_string());
                let allowed = |name: &str, main| thread_capabilities(name, main, privileges::SUPERVISION);
                step("privileges", privileges::check(allowed));
                if answer.is_ok() {
                    audit.emit(&Event::Resumed { ts: crate::audit::now_rfc3339() });
                    audit.emit(&ready);
                }
                let _ = request.done.send(answer);
            }
        }
        if let Some(exit) = reaper.poll() {
            audit.emit(&Event::AppExit { status: exit.code, signal: exit.signal });
            flush_and_power_off().await
        }
        if let Some(exit) = reaper.proxy_exit() {
            reaper.stop().await;
            fail("proxy", InitError::ProxyEnded(exit.describe()));
        }
    }
}

/// The next resume handed over by the control thread (`None` once it is gone); never with
/// no hand-over.
async fn next_resume(resumes: &mut Option<tokio::sync::mpsc::Receiver<resume::Request>>) -> Option<resume::Request> {
    match resumes {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// What each thread of PID 1 may hold once the children run ([`privileges`]), the main
/// thread `main_thread`.
fn thread_capabilities(name: &str, main: bool, main_thread: CapabilitySet) -> CapabilitySet {
    match (main, name) {
        (true, _) => main_thread,
        (false, exec::THREAD_NAME) => privileges::EXEC_SUPERVISION,
        (false, _) => CapabilitySet::empty(),
    }
}

async fn shut_down(reaper: &mut Reaper, audit: &AuditLog) -> ! {
    audit.emit(&Event::Shutdown { reason: ShutdownReason::Signal });
    reaper.stop().await;
    flush_and_power_off().await
}

/// Gives the audit writer a moment to write what is queued, then powers off.
async fn flush_and_power_off() -> ! {
    tokio::time::sleep(Duration::from_millis(200)).await;
    power::power_off()
}
