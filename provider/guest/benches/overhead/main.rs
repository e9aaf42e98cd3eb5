//! Runtime overhead: requests per second and latency straight to an application, through
//! the runtime, and through nginx enforcing the same checks, on loopback, in the same run.
//! Prints a table with each path's ratio to direct (goal for the runtime: ≥ 0.6) and the
//! runtime's to nginx (goal: ≥ 1 in requests/s, ≤ 1 in p99).
//!
//! The application is a keep-alive HTTP/1.1 server (hyper) answering a small JSON body. The
//! load generator keeps `CONNECTIONS` keep-alive connections busy, one request in flight on
//! each, for `SECONDS` per measurement; the paths are measured in alternation, `ROUNDS`
//! times, and summed. All get the same request bytes (with the bearer token), so the only
//! difference is what stands in between.
//!
//! The runtime enforces a plan (`tests/policies/bench.yaml`) with bearer authentication, RBAC,
//! a per-source and a global rate limit set high enough never to trigger, and the default
//! audit (denials only), so the measured path goes through every check. A run with an open
//! plan is shown for comparison. nginx (Debian's package; the row is skipped, saying how to
//! install it, when it is missing) gets a configuration written for the same checks: see
//! `nginx.rs`.
//!
//! The application and the load generator each have a tokio runtime of their own
//! (`APP_WORKERS`, `LOAD_WORKERS` threads; default: one per core); the runtime serves on
//! `PROXY_WORKERS` threads (default: one per core), each a current-thread runtime, as the
//! proxy process of a guest with that many vCPUs does (`PROXY_WORKERS=1`: the 1-vCPU guest).
//! All share the machine's cores: on a small machine the figures show what a request costs
//! in CPU rather than what the runtime adds on a machine of its own. nginx gets
//! `PROXY_WORKERS` worker processes, so both proxies have the same parallelism.
//!
//! `cargo bench -p sdsec-guest --bench overhead` (env `SECONDS`, `ROUNDS`, `CONNECTIONS`,
//! `APP_WORKERS`, `PROXY_WORKERS`, `LOAD_WORKERS`; `ONLY=direct|proxied|open|nginx` for
//! profiling; `NGINX=0` skips nginx; `SDSEC_BENCH_JSON=<path>` also writes the figures there
//! as JSON, for the evaluation in `scripts/evaluate/`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod load;
mod nginx;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use plan::{AuthenticationPlan, Credential, EnforcementPlan, PrincipalPlan, RuntimePlan, Scheme, TokenSha256};
use sha2::{Digest, Sha256};

use load::{Figures, Request, load, tokio_runtime};

const TOKEN: &str = "bench-token-0123456789";
const BODY: &[u8] = br#"{"items":[{"id":1,"name":"apple"},{"id":2,"name":"pear"}],"total":2}"#;
const REQUEST: Request = Request { path: "/api/items", token: TOKEN, body_len: BODY.len() };

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The runtime's async runtime as the proxy process builds it, driven by a thread named
/// `proxy` as the proxy process drives it.
fn proxy_runtime() -> tokio::runtime::Handle {
    let rt = guest::proxy::async_runtime().unwrap();
    let handle = rt.handle().clone();
    std::thread::Builder::new().name("proxy".into()).spawn(move || rt.block_on(std::future::pending::<()>())).unwrap();
    handle
}

/// The application: a keep-alive HTTP/1.1 server answering a small JSON body.
async fn application() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    let mut response = hyper::Response::new(Full::new(Bytes::from_static(BODY)));
                    response
                        .headers_mut()
                        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
                    Ok::<_, hyper::Error>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    addr
}

/// The runtime plan of `tests/policies/bench.yaml` (guarded) or `bare.yaml` (open), as the
/// compiler gave it, with bearer authentication added to the guarded one.
fn plan(guarded: bool) -> RuntimePlan {
    let name = if guarded { "bench" } else { "bare" };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/policies/{name}.plans.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    let plans: std::collections::BTreeMap<String, EnforcementPlan> = serde_json::from_str(&text).unwrap();
    let mut plan = plans["api"].runtime.clone();
    if guarded {
        let hash = TokenSha256(format!("{:x}", Sha256::digest(TOKEN)));
        plan.authentication = Some(AuthenticationPlan {
            scheme: Scheme::Bearer,
            realm: "bench".into(),
            principals: vec![PrincipalPlan {
                name: "bench".into(),
                credential: Credential::TokenSha256(hash),
                roles: vec!["reader".into()],
            }],
            jwt: None,
            forward_credentials: false,
        });
        assert!(!plan.firewall.rate_limits.is_empty() && !plan.authorization.is_empty());
    }
    plan
}

/// The runtime with `threads` serving threads (0: one per core), as a guest with that many
/// vCPUs runs it.
async fn guest(upstream: SocketAddr, guarded: bool, threads: usize) -> SocketAddr {
    let runtime = guest::config::Runtime::new(&plan(guarded)).unwrap();
    let audit = guest::audit::AuditLog::spawn(Box::new(std::io::sink())).unwrap();
    let proxy = guest::proxy::Proxy::bind("127.0.0.1:0".parse().unwrap(), upstream, runtime, audit).await.unwrap();
    let addr = proxy.local_addr();
    let threads = if threads == 0 { guest::proxy::serving_threads() } else { threads };
    tokio::spawn(proxy.run_on(threads));
    addr
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One measured path.
struct Path {
    name: &'static str,
    key: &'static str,
    addr: SocketAddr,
    figures: Figures,
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: keep that run short.
    let quick = !std::env::args().any(|a| a == "--bench");
    let seconds: f64 = if quick { 0.2 } else { env("SECONDS", 3.0) };
    let rounds: usize = if quick { 1 } else { env("ROUNDS", 2) };
    let connections: usize = env("CONNECTIONS", 32);
    let only: String = env("ONLY", String::new());
    let with_nginx = env("NGINX", 1) != 0 && (only.is_empty() || only == "nginx");
    let (app_workers, proxy_workers, load_workers) =
        (env("APP_WORKERS", 0), env("PROXY_WORKERS", 0), env("LOAD_WORKERS", 0));

    let app_rt = tokio_runtime("app", app_workers);
    let proxy_rt = proxy_runtime();
    let load_rt = tokio_runtime("load", load_workers);
    let app = app_rt.block_on(application());
    let guarded = proxy_rt.block_on(guest(app, true, proxy_workers));
    let open = proxy_rt.block_on(guest(app, false, proxy_workers));
    // Ended when dropped, also on a panic below.
    let mut nginx_skipped = (!with_nginx).then(|| "not asked for (NGINX=0 or ONLY)".to_owned());
    let nginx = if with_nginx {
        match nginx::Nginx::start(app, proxy_workers, TOKEN) {
            Ok(n) => {
                println!("nginx listens on {}", n.addr);
                Some(n)
            }
            Err(e) => {
                println!("nginx row skipped: {e}");
                nginx_skipped = Some(e);
                None
            }
        }
    } else {
        None
    };
    let mut paths = vec![
        Path { name: "direct to the application", key: "direct", addr: app, figures: Figures::default() },
        Path { name: "runtime, full policy", key: "proxied", addr: guarded, figures: Figures::default() },
        Path { name: "runtime, open plan", key: "open", addr: open, figures: Figures::default() },
    ];
    if let Some(n) = &nginx {
        paths.push(Path { name: "nginx, same checks", key: "nginx", addr: n.addr, figures: Figures::default() });
    }
    paths.retain(|p| only.is_empty() || p.key == only);
    let workers = |n: usize| if n == 0 { "1/core".to_owned() } else { n.to_string() };
    println!(
        "loopback, {} cores, {connections} keep-alive connections, {rounds} x {seconds}s per path; \
         tokio workers: app {}, runtime {}, load {}; nginx worker processes {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        workers(app_workers),
        workers(proxy_workers),
        workers(load_workers),
        workers(proxy_workers),
    );
    let nginx_cpu = nginx.as_ref().map(|n| move || n.cpu());
    let outside =
        |p: &Path| if p.key == "nginx" { nginx_cpu.as_ref().map(|f| f as &(dyn Fn() -> f64 + Sync)) } else { None };
    load_rt.block_on(async {
        // Warm up connections, pools and caches on every path.
        for p in &paths {
            load(p.addr, REQUEST, connections, 0.3, None).await.unwrap_or_else(|e| panic!("{}: {e}", p.name));
        }
        for _ in 0..rounds {
            for p in &mut paths {
                let figures = load(p.addr, REQUEST, connections, seconds, outside(p)).await;
                p.figures.add(figures.unwrap_or_else(|e| panic!("{}: {e}", p.name)));
            }
        }
    });
    report(&mut paths);
    if let Some(path) = std::env::var_os("SDSEC_BENCH_JSON").filter(|p| !p.is_empty()) {
        let settings = serde_json::json!({
            "bench": "overhead",
            "cpus": std::thread::available_parallelism().map_or(0, usize::from),
            "connections": connections, "rounds": rounds, "seconds": seconds,
            "workers": { "app": app_workers, "proxy": proxy_workers, "load": load_workers },
            "nginx_skipped": nginx_skipped,
        });
        summary(std::path::Path::new(&path), settings, &mut paths);
    }
}

/// The settings and each path's figures as JSON at `path` (workers: 0 is one per core).
fn summary(path: &std::path::Path, mut settings: serde_json::Value, paths: &mut [Path]) {
    let figures: Vec<_> = paths
        .iter_mut()
        .map(|p| {
            let f = &mut p.figures;
            let [app, proxy, load] = f.cpu_per_request();
            serde_json::json!({
                "key": p.key, "name": p.name, "requests": f.requests, "rps": f.rps(),
                "p50_ms": ms(f.quantile(0.50)), "p99_ms": ms(f.quantile(0.99)),
                "cpu_us_per_request": { "app": app, "proxy": proxy, "load": load },
            })
        })
        .collect();
    settings["paths"] = figures.into();
    let text = serde_json::to_string_pretty(&settings).unwrap() + "\n";
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn report(paths: &mut [Path]) {
    println!(
        "{:<28} {:>9} {:>8} {:>8} {:>9} {:>9}   CPU us/request: {:>5} {:>5} {:>5}",
        "path", "req/s", "p50 ms", "p99 ms", "x direct", "x nginx", "app", "proxy", "load"
    );
    let rps_of = |paths: &mut [Path], key: &str| {
        paths.iter_mut().find(|p| p.key == key).map(|p| (p.figures.rps(), p.figures.quantile(0.99)))
    };
    let direct = rps_of(paths, "direct");
    let nginx = rps_of(paths, "nginx");
    let ratio = |of: Option<(f64, Duration)>, rps: f64| of.map_or("-".to_owned(), |(r, _)| format!("{:.2}", rps / r));
    for p in paths.iter_mut() {
        let f = &mut p.figures;
        let (rps, p50, p99) = (f.rps(), f.quantile(0.50), f.quantile(0.99));
        let [app, proxy, load] = f.cpu_per_request();
        let vs_nginx = if p.key == "proxied" || p.key == "open" { ratio(nginx, rps) } else { "-".to_owned() };
        println!(
            "{:<28} {rps:>9.0} {:>8.3} {:>8.3} {:>9} {vs_nginx:>9}                   {app:>5.1} {proxy:>5.1} {load:>5.1}",
            p.name,
            ms(p50),
            ms(p99),
            ratio(direct, rps),
        );
    }
    if let Some(p) = paths.iter_mut().find(|p| p.key == "proxied") {
        let (rps, p99) = (p.figures.rps(), p.figures.quantile(0.99));
        let mut goals = Vec::new();
        if let Some((d, _)) = direct {
            goals.push(format!("{:.2} x direct req/s (goal >= 0.60)", rps / d));
        }
        if let Some((n, n99)) = nginx {
            goals.push(format!(
                "{:.2} x nginx req/s (goal >= 1), p99 {:.3} ms vs nginx {:.3} ms",
                rps / n,
                ms(p99),
                ms(n99)
            ));
        }
        println!("runtime, full policy: {}", goals.join("; "));
    }
}
