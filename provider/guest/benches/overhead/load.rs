//! The load generator and what it measures.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::{BODY, TOKEN};

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

/// `connections` keep-alive connections, each sending GETs back to back for `seconds`.
/// `proxy_cpu` reads the CPU seconds of a proxy outside this process (nginx).
pub async fn load(
    target: SocketAddr,
    connections: usize,
    seconds: f64,
    proxy_cpu: Option<&(dyn Fn() -> f64 + Sync)>,
) -> Figures {
    let authorization = http::HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap();
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        let stream = tokio::net::TcpStream::connect(target).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
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
    if let (Some(f), Some(before)) = (proxy_cpu, outside_before) {
        figures.cpu[1] = f() - before;
    }
    figures.requests = figures.latencies.len();
    figures
}
