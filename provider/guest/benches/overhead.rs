//! Runtime overhead: requests per second and latency straight to an application vs through
//! the runtime, on loopback, in the same run. Prints the figures and the ratio (target ≥ 0.8).
//!
//! `cargo bench -p sdsec-guest --bench overhead` (env `SECONDS`, `CONNECTIONS` to change the load).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

const TOKEN: &str = "bench-token-0123456789";

async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from_static(b"{\"items\":[1,2,3]}"))))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    addr
}

async fn runtime(upstream: SocketAddr, bearer: bool) -> SocketAddr {
    let doc = "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    api: { type: sdsec.nodes.Unikernel }\n";
    let mut plan = sectosca::compile_str("bench", doc).plans["api"].clone();
    if bearer {
        use sectosca::lower::plan::{AuthenticationPlan, Credential, PrincipalPlan};
        let hash = sectosca::values::TokenSha256(format!("{:x}", Sha256::digest(TOKEN)));
        plan.runtime.authentication = Some(AuthenticationPlan {
            scheme: sectosca::model::policies::Scheme::Bearer,
            realm: "bench".into(),
            principals: vec![PrincipalPlan {
                name: "bench".into(),
                credential: Credential::TokenSha256(hash),
                roles: vec![],
            }],
            jwt: None,
        });
    }
    let runtime = guest::config::Runtime::new(&plan.runtime).unwrap();
    let audit = guest::audit::AuditLog::spawn(Box::new(std::io::sink())).unwrap();
    let proxy = guest::proxy::Proxy::bind("127.0.0.1:0".parse().unwrap(), upstream, runtime, audit).await.unwrap();
    let addr = proxy.local_addr();
    tokio::spawn(proxy.run());
    addr
}

struct Figures {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

/// `connections` keep-alive clients sending GETs back to back for `seconds`.
async fn load(target: SocketAddr, connections: usize, seconds: f64, bearer: bool) -> Figures {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(target).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let mut req = hyper::Request::get("/api/items").header("host", "api");
                if bearer {
                    req = req.header("authorization", format!("Bearer {TOKEN}"));
                }
                let t0 = Instant::now();
                let response = sender.send_request(req.body(Empty::<Bytes>::new()).unwrap()).await.unwrap();
                assert_eq!(response.status(), 200);
                response.into_body().collect().await.unwrap();
                latencies.push(t0.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Figures { rps: all.len() as f64 / elapsed, p50: at(0.50), p99: at(0.99) }
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: keep that run short.
    let quick = !std::env::args().any(|a| a == "--bench");
    let seconds: f64 = if quick { 0.3 } else { env("SECONDS", 5.0) };
    let connections: usize = env("CONNECTIONS", 32);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let app = upstream().await;
        let open = runtime(app, false).await;
        let guarded = runtime(app, true).await;
        // Warm up connections, pools and caches on every path.
        for target in [app, open, guarded] {
            load(target, connections, 0.2, target == guarded).await;
        }
        println!("loopback, {connections} keep-alive connections, {seconds}s per run, same process");
        let direct = load(app, connections, seconds, false).await;
        let through = load(open, connections, seconds, false).await;
        let with_auth = load(guarded, connections, seconds, true).await;
        let show = |name: &str, f: &Figures| {
            println!("{name:<28} {:>9.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms", f.rps, ms(f.p50), ms(f.p99));
        };
        show("direct to the application", &direct);
        show("through the runtime", &through);
        show("through the runtime, bearer", &with_auth);
        println!(
            "ratio (runtime / direct): {:.2}   added p99: {:.3} ms   (target >= 0.80)",
            through.rps / direct.rps,
            ms(through.p99) - ms(direct.p99)
        );
        println!(
            "ratio with bearer auth:   {:.2}   added p99: {:.3} ms",
            with_auth.rps / direct.rps,
            ms(with_auth.p99) - ms(direct.p99)
        );
    });
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
