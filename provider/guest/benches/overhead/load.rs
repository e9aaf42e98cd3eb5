//! The load generator and what it measures. Also included by the engine's boot benchmark
//! (`provider/engine/benches/boot/in_guest.rs`), which drives a guest with it: keep it free
//! of this benchmark's other modules.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// A tokio runtime on threads of its own named `name`, `workers` of them (0: one per core).
pub fn tokio_runtime(name: &str, workers: usize) -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all().thread_name(name);
    if workers > 0 {
        b.worker_threads(workers);
    }
    b.build().unwrap()
}

/// User and system CPU seconds in a `/proc/.../stat` line: utime and stime are the 12th and
/// 13th fields after the name (read from its last `)`, since a name may hold spaces).
pub fn stat_cpu_seconds(stat: &str) -> f64 {
    let Some(close) = stat.rfind(')') else { return 0.0 };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()) / 100.0
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
        cpu[slot] += stat_cpu_seconds(&stat);
    }
    cpu
}

/// `e` with its causes: hyper's own errors say little without them ("operation was canceled").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// What every request of a measurement is: the same bytes on every path compared.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub path: &'static str,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: &'static str,
    /// The length of every answer's body: a path that answers something else fails.
    pub body_len: usize,
}

#[derive(Default)]
pub struct Figures {
    pub requests: usize,
    seconds: f64,
    latencies: Vec<Duration>,
    /// CPU seconds of the application, the proxy and the load generator.
    cpu: [f64; 3],
}

impl Figures {
    pub fn add(&mut self, other: Figures) {
        self.requests += other.requests;
        self.seconds += other.seconds;
        self.latencies.extend(other.latencies);
        for (sum, part) in self.cpu.iter_mut().zip(other.cpu) {
            *sum += part;
        }
    }

    /// Microseconds of CPU per request of the application, the proxy and the load generator.
    pub fn cpu_per_request(&self) -> [f64; 3] {
        self.cpu.map(|c| c * 1e6 / self.requests.max(1) as f64)
    }

    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }

    pub fn quantile(&mut self, q: f64) -> Duration {
        self.latencies.sort_unstable();
        let n = self.latencies.len();
        self.latencies.get(((n as f64 * q) as usize).min(n.saturating_sub(1))).copied().unwrap_or_default()
    }
}

/// `connections` keep-alive connections, each sending `request` back to back for `seconds`.
/// `proxy_cpu` reads the CPU seconds of a proxy outside this process (nginx; a whole guest's
/// QEMU). Fails, saying why, at the first request not answered as `request` expects.
pub async fn load(
    target: SocketAddr,
    request: Request,
    connections: usize,
    seconds: f64,
    proxy_cpu: Option<&(dyn Fn() -> f64 + Sync)>,
) -> Result<Figures, String> {
    let authorization = http::HeaderValue::from_str(&format!("Bearer {}", request.token)).map_err(|e| e.to_string())?;
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        let stream = tokio::net::TcpStream::connect(target).await.map_err(|e| format!("connect to {target}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake with {target}: {}", chain(&e)))?;
        tokio::spawn(conn);
        senders.push(sender);
    }
    let outside_before = proxy_cpu.map(|f| f());
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
                    *req.uri_mut() = http::Uri::from_static(request.path);
                    let headers = req.headers_mut();
                    headers.insert(http::header::HOST, http::HeaderValue::from_static("api"));
                    headers.insert(http::header::AUTHORIZATION, authorization.clone());
                    let response = sender.send_request(req).await.map_err(|e| format!("{target}: {}", chain(&e)))?;
                    let status = response.status();
                    let body = response.into_body().collect().await;
                    let body = body.map_err(|e| format!("{target}: {}", chain(&e)))?.to_bytes();
                    if status != 200 || body.len() != request.body_len {
                        let body = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                        return Err(format!("{target} answered {status} with {body:?}"));
                    }
                    let t1 = Instant::now();
                    latencies.push(t1 - t0);
                    t0 = t1;
                }
                Ok::<_, String>(latencies)
            })
        })
        .collect();
    let mut figures = Figures::default();
    for t in tasks {
        figures.latencies.extend(t.await.map_err(|e| e.to_string())??);
    }
    figures.seconds = started.elapsed().as_secs_f64();
    let cpu_after = cpu_by_thread();
    figures.cpu = std::array::from_fn(|i| cpu_after[i] - cpu_before[i]);
    if let (Some(f), Some(before)) = (proxy_cpu, outside_before) {
        figures.cpu[1] = f() - before;
    }
    figures.requests = figures.latencies.len();
    Ok(figures)
}
