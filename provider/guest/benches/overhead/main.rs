//! Runtime overhead: requests per second and latency straight to an application vs through
//! the runtime, on loopback, in the same run. Prints a table, `ratio = proxied/direct` (target
//! ≥ 0.8) and the p99 latency the runtime adds.
//!
//! The application is a keep-alive HTTP/1.1 server (hyper) answering a small JSON body. The
//! load generator keeps `CONNECTIONS` keep-alive connections busy, one request in flight on
//! each, for `SECONDS` per measurement; directly and through the runtime are measured in
//! alternation, `ROUNDS` times, and summed. Both get the same request bytes (with the bearer
//! token), so the only difference is the runtime in between.
//!
//! The runtime enforces a plan (`tests/policies/bench.yaml`) with bearer authentication, RBAC,
//! a per-source and a global rate limit set high enough never to trigger, and the default
//! audit (denials only), so the measured path goes through every check. A run with an open
//! plan is shown for comparison.
//!
//! The application, the runtime and the load generator each have a tokio runtime of their own
//! (`APP_WORKERS`, `PROXY_WORKERS`, `LOAD_WORKERS` threads; default: one per core), but share
//! the machine's cores: on a small machine the figures show what a request costs in CPU
//! rather than what the runtime adds on a machine of its own.
//!
//! `cargo bench -p sdsec-guest --bench overhead` (env `SECONDS`, `ROUNDS`, `CONNECTIONS`,
//! `APP_WORKERS`, `PROXY_WORKERS`, `LOAD_WORKERS`; `ONLY=direct|proxied` for profiling).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use plan::{AuthenticationPlan, Credential, EnforcementPlan, PrincipalPlan, RuntimePlan, Scheme, TokenSha256};
use sha2::{Digest, Sha256};

const TOKEN: &str = "bench-token-0123456789";
const BODY: &[u8] = br#"{"items":[{"id":1,"name":"apple"},{"id":2,"name":"pear"}],"total":2}"#;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A tokio runtime on threads of its own, `workers` of them (0: one per core).
fn tokio_runtime(name: &str, workers: usize) -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all().thread_name(name);
    if workers > 0 {
        b.worker_threads(workers);
    }
    b.build().unwrap()
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

async fn guest(upstream: SocketAddr, guarded: bool) -> SocketAddr {
    let runtime = guest::config::Runtime::new(&plan(guarded)).unwrap();
    let audit = guest::audit::AuditLog::spawn(Box::new(std::io::sink())).unwrap();
    let proxy = guest::proxy::Proxy::bind("127.0.0.1:0".parse().unwrap(), upstream, runtime, audit).await.unwrap();
    let addr = proxy.local_addr();
    tokio::spawn(proxy.run());
    addr
}

/// CPU seconds used so far by this process's threads named `app`, `proxy` and `load` (Linux;
/// zeros elsewhere): what a request costs each party, whatever else runs on the machine.
fn cpu_by_thread() -> [f64; 3] {
    let mut cpu = [0.0; 3];
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return cpu };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let slot = match &stat[open + 1..close] {
            "app" => 0,
            "proxy" => 1,
            "load" => 2,
            _ => continue,
        };
        // Fields after the name: state is the 3rd field, utime and stime the 14th and 15th.
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
        cpu[slot] += ticks / 100.0;
    }
    cpu
}

#[derive(Default)]
struct Figures {
    requests: usize,
    seconds: f64,
    latencies: Vec<Duration>,
    /// CPU seconds of the application, the runtime and the load generator.
    cpu: [f64; 3],
}

impl Figures {
    fn add(&mut self, other: Figures) {
        self.requests += other.requests;
        self.seconds += other.seconds;
        self.latencies.extend(other.latencies);
        for (sum, part) in self.cpu.iter_mut().zip(other.cpu) {
            *sum += part;
        }
    }

    /// Microseconds of CPU per request of the application, the runtime and the load generator.
    fn cpu_per_request(&self) -> [f64; 3] {
        self.cpu.map(|c| c * 1e6 / self.requests.max(1) as f64)
    }

    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn quantile(&mut self, q: f64) -> Duration {
        self.latencies.sort_unstable();
        let n = self.latencies.len();
        self.latencies.get(((n as f64 * q) as usize).min(n.saturating_sub(1))).copied().unwrap_or_default()
    }
}

/// `connections` keep-alive connections, each sending GETs back to back for `seconds`.
async fn load(target: SocketAddr, connections: usize, seconds: f64) -> Figures {
    let authorization = http::HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap();
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        let stream = tokio::net::TcpStream::connect(target).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        senders.push(sender);
    }
    let cpu_before = cpu_by_thread();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            let authorization = authorization.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(1 << 16);
                let mut t0 = Instant::now();
                while t0 < deadline {
                    let mut req = hyper::Request::new(Empty::<Bytes>::new());
                    *req.uri_mut() = http::Uri::from_static("/api/items");
                    let headers = req.headers_mut();
                    headers.insert(http::header::HOST, http::HeaderValue::from_static("api"));
                    headers.insert(http::header::AUTHORIZATION, authorization.clone());
                    let response = sender.send_request(req).await.unwrap();
                    assert_eq!(response.status(), 200);
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    assert_eq!(body.len(), BODY.len());
                    let t1 = Instant::now();
                    latencies.push(t1 - t0);
                    t0 = t1;
                }
                latencies
            })
        })
        .collect();
    let mut figures = Figures::default();
    for t in tasks {
        figures.latencies.extend(t.await.unwrap());
    }
    figures.seconds = started.elapsed().as_secs_f64();
    let cpu_after = cpu_by_thread();
    figures.cpu = std::array::from_fn(|i| cpu_after[i] - cpu_before[i]);
    figures.requests = figures.latencies.len();
    figures
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: keep that run short.
    let quick = !std::env::args().any(|a| a == "--bench");
    let seconds: f64 = if quick { 0.2 } else { env("SECONDS", 3.0) };
    let rounds: usize = if quick { 1 } else { env("ROUNDS", 2) };
    let connections: usize = env("CONNECTIONS", 32);
    let only: String = env("ONLY", String::new());
    let (app_workers, proxy_workers, load_workers) =
        (env("APP_WORKERS", 0), env("PROXY_WORKERS", 0), env("LOAD_WORKERS", 0));

    let app_rt = tokio_runtime("app", app_workers);
    let proxy_rt = tokio_runtime("proxy", proxy_workers);
    let load_rt = tokio_runtime("load", load_workers);
    let app = app_rt.block_on(application());
    let open = proxy_rt.block_on(guest(app, false));
    let guarded = proxy_rt.block_on(guest(app, true));
    let targets = [("direct to the application", app), ("runtime, open plan", open), ("runtime, full policy", guarded)];
    let measured: Vec<_> = targets
        .iter()
        .filter(|(name, _)| match only.as_str() {
            "direct" => name.starts_with("direct"),
            "proxied" => name.ends_with("policy"),
            _ => true,
        })
        .collect();
    let workers = |n: usize| if n == 0 { "1/core".to_owned() } else { n.to_string() };
    println!(
        "loopback, {} cores, {connections} keep-alive connections, {rounds} x {seconds}s per path; \
         tokio workers: app {}, runtime {}, load {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        workers(app_workers),
        workers(proxy_workers),
        workers(load_workers),
    );
    let mut figures: Vec<Figures> = measured.iter().map(|_| Figures::default()).collect();
    load_rt.block_on(async {
        // Warm up connections, pools and caches on every path.
        for (_, target) in &measured {
            load(*target, connections, 0.3).await;
        }
        for _ in 0..rounds {
            for ((_, target), f) in measured.iter().zip(&mut figures) {
                f.add(load(*target, connections, seconds).await);
            }
        }
    });
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10}   CPU us/request: {:>5} {:>7} {:>5}",
        "path", "req/s", "p50 ms", "p99 ms", "requests", "app", "runtime", "load"
    );
    let mut summary = Vec::new();
    for ((name, _), f) in measured.iter().zip(&mut figures) {
        let (p50, p99) = (f.quantile(0.50), f.quantile(0.99));
        let [app, runtime, load] = f.cpu_per_request();
        println!(
            "{name:<28} {:>10.0} {:>10.3} {:>10.3} {:>10}                   {app:>5.1} {runtime:>7.1} {load:>5.1}",
            f.rps(),
            ms(p50),
            ms(p99),
            f.requests
        );
        summary.push((*name, f.rps(), p99, app + runtime + load));
    }
    if let Some((_, direct_rps, direct_p99, direct_cpu)) =
        summary.first().filter(|s| s.0.starts_with("direct")).copied()
    {
        for (name, rps, p99, cpu) in &summary[1..] {
            println!(
                "{name:<28} ratio = proxied/direct = {:.2}   added p99 = {:.3} ms   (target ratio >= 0.80)",
                rps / direct_rps,
                ms(*p99) - ms(direct_p99)
            );
            // With every party on the same saturated cores, throughput is inverse to the CPU
            // a request costs in all: this is the ratio the CPU split allows.
            println!("{:<28} CPU-bound ratio = direct CPU/request / proxied CPU/request = {:.2}", "", direct_cpu / cpu);
        }
    }
}
