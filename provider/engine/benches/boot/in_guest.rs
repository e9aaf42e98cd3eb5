//! Part 5: the runtime's throughput in a guest against the same guest's application reached
//! directly, in the same run. One instance of the quickstart image, its rate limit raised so
//! that it never refuses (the figures then show what enforcing costs, not refusals), is
//! booted as every instance is: its user network forwards a port of 127.0.0.1 to the runtime
//! (80). A second forward, to the application's own port (8080, where it listens on all
//! addresses), is added at run time through the instance's QMP socket (HMP `hostfwd_add`).
//! The overhead benchmark's load generator (sdsec-guest's `benches/overhead/load.rs`) then
//! sends the same request bytes (GET `/items` with the quickstart token, which the
//! application ignores) over keep-alive connections to both, in alternation, bare first, for
//! some rounds. Both paths pay the same emulated CPU and the same user network, so their
//! ratio is what the runtime costs inside the guest.
//!
//! A failure (the boot, the forward, the load) is printed as `failed: <why>` and recorded as
//! `error`; the instance is stopped either way, and the parts after this one still run.

#[path = "../../../guest/benches/overhead/load.rs"]
mod load;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use hypervisor::qemu::Qemu;
use hypervisor::registry::{PIDFILE, Registry};
use hypervisor::{BootSpec, InstanceId};
use serde_json::{Value, json};

use crate::{POLICY, Running, TOKEN};
use load::{Figures, Request, load};

/// Where the example API listens in the guest (`--listen 0.0.0.0:8080`, the quickstart's port).
const APP_PORT: u16 = 8080;
/// The example API's item list, empty (nothing is ever posted): `[]`, through the runtime or not.
const REQUEST: Request = Request { path: "/items", token: TOKEN, body_len: 2 };
const WARM_UP_S: f64 = 1.0;
const QUICKSTART_LIMIT: &str = "rate_limit: { requests_per_second: 50, burst: 100, per: source }";
const NO_LIMIT: &str = "rate_limit: { requests_per_second: 1000000, burst: 1000000, per: source }";

/// The quickstart policy with its rate limit raised out of reach: every request still goes
/// through the limiter, none is refused.
pub fn policy() -> Result<String, String> {
    if !POLICY.contains(QUICKSTART_LIMIT) {
        return Err(format!("the quickstart's rate limit is no longer `{QUICKSTART_LIMIT}`"));
    }
    Ok(POLICY.replace(QUICKSTART_LIMIT, NO_LIMIT))
}

/// SDSEC_BENCH_GUEST_SECONDS (per path and round, 3), SDSEC_BENCH_GUEST_ROUNDS (2),
/// SDSEC_BENCH_GUEST_CONNECTIONS (8: the guest has one vCPU, more connections only queue).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    seconds: f64,
    rounds: usize,
    connections: usize,
}

impl Settings {
    pub fn from_env() -> Self {
        let seconds = std::env::var("SDSEC_BENCH_GUEST_SECONDS").ok().and_then(|v| v.parse().ok());
        Settings {
            seconds: seconds.filter(|s: &f64| *s > 0.0).unwrap_or(3.0),
            rounds: crate::setting("SDSEC_BENCH_GUEST_ROUNDS", 2).max(1) as usize,
            connections: crate::setting("SDSEC_BENCH_GUEST_CONNECTIONS", 8).max(1) as usize,
        }
    }
}

/// One path to the application, measured.
struct Route {
    key: &'static str,
    name: String,
    addr: SocketAddr,
    figures: Figures,
    rps_by_round: Vec<f64>,
}

/// Measures `boot` (the quickstart with [`policy`]) on kernel `label`, prints the table and
/// returns the figures for the summary (with `error` when the part failed).
pub fn report(label: &str, boot: Result<BootSpec, String>, running: &mut Running, state: &Path) -> Value {
    let s = Settings::from_env();
    let mut figures = json!({
        "label": label, "connections": s.connections, "rounds": s.rounds, "seconds": s.seconds,
    });
    println!(
        "\nin a guest: the runtime against the same guest's application, kernel {label}, {} keep-alive connections, \
         {} x {} s per path in alternation (same run, same instance)",
        s.connections, s.rounds, s.seconds
    );
    let measured = boot.and_then(|boot| {
        figures["vcpus"] = json!(boot.vcpus);
        figures["memory_mb"] = json!(boot.memory_mb);
        measure(&boot, running, state, s)
    });
    // Stopped whatever happened: the memory part counts every instance running.
    running.stop_all();
    let mut routes = match measured {
        Ok(routes) => routes,
        Err(why) => {
            println!("failed: {why}");
            figures["error"] = json!(why);
            return figures;
        }
    };
    println!(
        "{:<44}{:>20}{:>10}{:>10}{:>10}   CPU µs/request: QEMU, load",
        "path", "req/s (by round)", "p50 ms", "p99 ms", "÷ bare"
    );
    let bare = routes[0].figures.rps();
    let mut paths = Vec::new();
    for r in &mut routes {
        let f = &mut r.figures;
        let (rps, p50, p99) = (f.rps(), ms(f.quantile(0.50)), ms(f.quantile(0.99)));
        let [_, qemu, load_cpu] = f.cpu_per_request();
        let rounds: Vec<String> = r.rps_by_round.iter().map(|v| format!("{v:.0}")).collect();
        println!(
            "{:<44}{:>20}{p50:>10.2}{p99:>10.2}{:>10}   {qemu:>8.0} {load_cpu:>6.0}",
            r.name,
            format!("{rps:.0} ({})", rounds.join(", ")),
            format!("{:.2}", rps / bare)
        );
        paths.push(json!({
            "key": r.key, "name": r.name, "requests": f.requests, "rps": rps, "rps_by_round": r.rps_by_round,
            "p50_ms": p50, "p99_ms": p99, "cpu_us_per_request": { "qemu": qemu, "load": load_cpu },
        }));
    }
    figures["paths"] = paths.into();
    figures
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Boots the instance, adds the forward to its application and loads both paths.
fn measure(boot: &BootSpec, running: &mut Running, state: &Path, s: Settings) -> Result<Vec<Route>, String> {
    let instance = running.try_boot(boot)?;
    let bare = forward(running.qemu, &instance.id)?;
    let pid_file = Registry::new(state).dir(&instance.id).join(PIDFILE);
    let pid = std::fs::read_to_string(&pid_file).map_err(|e| format!("{}: {e}", pid_file.display()))?;
    let stat = format!("/proc/{}/stat", pid.trim());
    // The whole guest's CPU: QEMU's threads emulate the runtime, the application and the kernel.
    let qemu_cpu = move || std::fs::read_to_string(&stat).map_or(0.0, |s| load::stat_cpu_seconds(&s));
    let mut routes = [
        ("bare", format!("bare: the application, forwarded to :{APP_PORT}"), bare),
        ("runtime", format!("runtime: its endpoint, forwarded to :{}", boot.guest_port), instance.endpoint),
    ]
    .map(|(key, name, addr)| Route { key, name, addr, figures: Figures::default(), rps_by_round: Vec::new() });
    let rt = load::tokio_runtime("load", 0);
    rt.block_on(async {
        // Warms both paths (the runtime's upstream connections, the guest's caches) and
        // checks that both answer as expected before anything counts.
        for r in &routes {
            load(r.addr, REQUEST, s.connections, WARM_UP_S, None).await.map_err(|e| format!("{}: {e}", r.name))?;
        }
        for _ in 0..s.rounds {
            for r in &mut routes {
                let f = load(r.addr, REQUEST, s.connections, s.seconds, Some(&qemu_cpu))
                    .await
                    .map_err(|e| format!("{}: {e}", r.name))?;
                r.rps_by_round.push(f.rps());
                r.figures.add(f);
            }
        }
        Ok::<_, String>(())
    })?;
    Ok(routes.into())
}

/// Adds a forward from a free port of 127.0.0.1 to the application's port on the instance's
/// user network (netdev `net0`, as the hypervisor names it), and returns that address.
fn forward(qemu: &Qemu, id: &InstanceId) -> Result<SocketAddr, String> {
    let mut refused = String::new();
    // The port is free when picked, but another process may take it before QEMU does.
    for _ in 0..3 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("pick a port: {e}"))?
            .port();
        let line = format!("hostfwd_add net0 tcp:127.0.0.1:{port}-:{APP_PORT}");
        let answer =
            qemu.qmp(id, "human-monitor-command", Some(json!({ "command-line": line }))).map_err(|e| e.to_string())?;
        // HMP answers a success with nothing, a failure with its message.
        refused = answer.as_str().unwrap_or("?").trim().to_owned();
        if refused.is_empty() {
            return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        }
    }
    Err(format!("`hostfwd_add` refused: {refused}"))
}
