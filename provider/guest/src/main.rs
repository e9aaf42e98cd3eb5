//! `sdsec-guest --plan plan.json --listen ADDR:PORT --upstream ADDR:PORT`
//!
//! Enforces one node's enforcement plan in front of its application. Prints a readiness
//! line, then one JSON audit line per recorded event, on stdout. SIGHUP re-reads the plan
//! and swaps its runtime part in without dropping requests in flight.
//!
//! As PID 1 without flags (`/init` of an image) it runs in init mode instead: see
//! [`guest::init`]; init starts the HTTP proxy as a process of its own, this program again
//! with a flag of its own ([`guest::init::proxy_process`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use guest::audit::AuditLog;
use guest::config::{Runtime, load_plan};
use guest::proxy::{Proxy, Shared};

const USAGE: &str = "usage: sdsec-guest --plan PLAN.json --listen ADDR:PORT --upstream ADDR:PORT";

#[derive(Debug)]
struct Args {
    plan: PathBuf,
    listen: SocketAddr,
    upstream: SocketAddr,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut plan, mut listen, mut upstream) = (None, None, None);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--plan" => plan = Some(PathBuf::from(value()?)),
            "--listen" => {
                listen = Some(value()?.parse().map_err(|_| "--listen wants ADDR:PORT, e.g. 0.0.0.0:8080".to_owned())?)
            }
            "--upstream" => {
                upstream =
                    Some(value()?.parse().map_err(|_| "--upstream wants ADDR:PORT, e.g. 127.0.0.1:8081".to_owned())?)
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    match (plan, listen, upstream) {
        (Some(plan), Some(listen), Some(upstream)) => Ok(Args { plan, listen, upstream }),
        _ => Err("--plan, --listen and --upstream are all required".into()),
    }
}

fn main() -> ExitCode {
    if guest::init::is_init() {
        guest::init::run()
    }
    let mut args = std::env::args().skip(1).peekable();
    if args.next_if(|a| a == guest::init::proxy_process::FLAG).is_some() {
        // Started by init only; returns on failure, which init reports.
        let error = guest::init::proxy_process::child::run(args);
        eprintln!("sdsec-guest: proxy process: {error}");
        return ExitCode::FAILURE;
    }
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sdsec-guest: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Driven by `block_on` below; the proxy adds a serving thread per further CPU.
    let runtime = match guest::proxy::async_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sdsec-guest: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sdsec-guest: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let plan = load_plan(&args.plan)?;
    let runtime = Runtime::new(&plan.runtime)?;
    let audit = AuditLog::spawn(Box::new(std::io::stdout()))?;
    let proxy = Proxy::bind(args.listen, args.upstream, runtime, audit.clone()).await?;
    audit.emit(&abi::event::Event::Ready {
        node: plan.node.as_str().into(),
        listen: proxy.local_addr().to_string(),
        app: None,
    });
    tokio::spawn(reload_on_hangup(args.plan, proxy.shared()));
    proxy.run_on(guest::proxy::serving_threads()).await;
    Ok(())
}

/// Re-reads the plan on SIGHUP. A plan that does not load leaves the running one in place.
async fn reload_on_hangup(path: PathBuf, shared: Arc<Shared>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
    while hangups.recv().await.is_some() {
        match reload(&path) {
            Ok(runtime) => shared.reconfigure(runtime),
            Err(e) => eprintln!("sdsec-guest: plan not reloaded, the previous one stays: {e}"),
        }
    }
}

fn reload(path: &Path) -> Result<Runtime, guest::config::ConfigError> {
    Runtime::new(&load_plan(path)?.runtime)
}
