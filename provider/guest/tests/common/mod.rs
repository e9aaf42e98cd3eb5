//! Test harness: an upstream application, the runtime as a real process, and a raw HTTP client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use plan::EnforcementPlan;

/// The upstream application: `/fixed` answers a fixed, odd response; anything else echoes
/// the request it received as JSON, after reading the whole body.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicU64>,
}

pub const FIXED_BODY: &[u8] = b"\x00\x01binary\xff\xfe body \r\n\r\n with framing-looking bytes 0\r\n\r\n";

async fn app(
    req: hyper::Request<Incoming>,
    hits: Arc<AtomicU64>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    hits.fetch_add(1, Ordering::SeqCst);
    if req.uri().path() == "/fixed" {
        return Ok(hyper::Response::builder()
            .status(203)
            .header("X-Odd-Header", "Value With  Spaces")
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .header("content-type", "application/octet-stream")
            .body(Full::new(Bytes::from_static(FIXED_BODY)))
            .unwrap());
    }
    let method = req.method().to_string();
    let target = req.uri().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = req.into_body().collect().await?.to_bytes();
    let echo = serde_json::json!({ "method": method, "target": target, "headers": headers, "body_len": body.len() });
    Ok(hyper::Response::builder()
        .header("content-type", "application/json")
        .header("x-upstream", "echo")
        .body(Full::new(Bytes::from(echo.to_string())))
        .unwrap())
}

/// One upstream for the whole test binary, on a runtime of its own.
pub fn upstream() -> &'static Upstream {
    static UPSTREAM: OnceLock<Upstream> = OnceLock::new();
    UPSTREAM.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        let hits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&hits);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let hits = Arc::clone(&counter);
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| app(req, Arc::clone(&hits)));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        });
        Upstream { addr: rx.recv().unwrap(), hits }
    })
}

/// The plan of unikernel `api` in `tests/policies/NAME.yaml`, as the compiler gave it: the
/// runtime's tests do not link the compiler. sectosca's golden test keeps `NAME.plans.json`
/// current (`UPDATE_GOLDEN=1 cargo test -p sdsec-sectosca --test golden` rewrites it).
pub fn plan(name: &str) -> EnforcementPlan {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policies").join(format!("{name}.plans.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut plans: std::collections::BTreeMap<String, EnforcementPlan> = serde_json::from_str(&text).unwrap();
    plans.remove("api").unwrap_or_else(|| panic!("{} has no plan for `api`", path.display()))
}

/// The runtime under test, as a host process.
pub struct Guest {
    pub addr: SocketAddr,
    pub pid: u32,
    child: Child,
    lines: Receiver<String>,
    pub seen: Arc<Mutex<Vec<String>>>,
    plan_file: tempfile::NamedTempFile,
}

impl Guest {
    pub fn start(plan: &EnforcementPlan) -> Self {
        Self::start_json(&serde_json::to_string(plan).unwrap()).unwrap()
    }

    /// The runtime in front of another application than the shared echo.
    pub fn start_to(plan: &EnforcementPlan, app: SocketAddr) -> Self {
        Self::start_json_to(&serde_json::to_string(plan).unwrap(), app).unwrap()
    }

    /// Starts the binary on a plan; `Err` with its stderr if it exits instead of getting ready.
    pub fn start_json(json: &str) -> Result<Self, String> {
        Self::start_json_to(json, upstream().addr)
    }

    fn start_json_to(json: &str, app: SocketAddr) -> Result<Self, String> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(json.as_bytes()).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sdsec-guest"))
            .arg("--plan")
            .arg(file.path())
            .args(["--listen", "127.0.0.1:0", "--upstream", &app.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = match lines.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let mut err = String::new();
                let _ = child.wait();
                child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                return Err(err);
            }
        };
        let Some(abi::event::Event::Ready { listen, .. }) = abi::event::Event::parse(&ready) else {
            panic!("not a ready line: {ready}")
        };
        let addr = listen.parse().unwrap();
        let pid = child.id();
        Ok(Self { addr, pid, child, lines, seen: Arc::default(), plan_file: file })
    }

    /// Waits for an audit line matching `pred` (lines before it are kept in `seen`).
    pub fn audit(&self, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.lock().unwrap().push(line.clone());
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    if pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("no matching audit line; seen: {:#?}", self.seen.lock().unwrap())
                }
            }
        }
    }

    /// Rewrites the plan file and sends SIGHUP: the runtime swaps the new plan in.
    pub fn reload(&self, plan: &EnforcementPlan) {
        std::fs::write(self.plan_file.path(), serde_json::to_string(plan).unwrap()).unwrap();
        let status = Command::new("kill").args(["-HUP", &self.pid.to_string()]).status().unwrap();
        assert!(status.success());
    }

    pub fn send(&self, raw: &[u8]) -> Reply {
        send(self.addr, raw)
    }

    /// A GET with `Connection: close` and extra header lines.
    pub fn get(&self, target: &str, headers: &str) -> Reply {
        self.send(format!("GET {target} HTTP/1.1\r\nHost: api\r\n{headers}Connection: close\r\n\r\n").as_bytes())
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Bytes received in all; 0 when the connection closed without an answer.
    pub raw_len: usize,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Writes `raw`, reads until the server closes, and parses what came back.
pub fn send(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    // The server may close before reading everything (that is the point of some tests).
    let _ = stream.write_all(raw);
    read_reply(&mut stream)
}

pub fn read_reply(stream: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("no answer and no close within the read timeout")
            }
            // A reset after the answer (the server closed with unread input) ends it too.
            Err(_) => break,
        }
    }
    parse_reply(&buf)
}

fn parse_reply(buf: &[u8]) -> Reply {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Reply { status: 0, headers: Vec::new(), body: Vec::new(), raw_len: buf.len() };
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let mut body = buf[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply { status, headers, body, raw_len: buf.len() }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}
pub mod auth;
