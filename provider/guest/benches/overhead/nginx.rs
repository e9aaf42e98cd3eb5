//! nginx (Debian's package) as a reverse proxy in front of the same application, configured
//! by hand to enforce what `tests/policies/bench.yaml` asks of the runtime: what a user
//! would run instead of the runtime.
//!
//! The configuration is written to a temporary directory that also holds nginx's pid file,
//! logs and buffers; nginx listens on 127.0.0.1 only. The child runs in a process group of
//! its own, which [`Nginx`]'s `Drop` ends (also when the bench panics).
//!
//! Differences that remain: nginx compares the bearer token itself (a `map` on the header),
//! where the runtime compares SHA-256 digests in constant time; nginx checks the token and
//! roles in its rewrite phase, before `limit_req` (the runtime limits first); its header
//! limit is per line (`large_client_header_buffers`), the runtime's on the whole head; and
//! nginx forwards the request target as the client sent it once it has matched the
//! normalised one, where the runtime forwards the normalised form.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

use crate::load::stat_cpu_seconds;

/// A running nginx; ended when dropped.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// Where Debian's package puts the program.
const PROGRAMS: &[&str] = &["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"];

fn program() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("nginx")).collect::<Vec<_>>())
        .unwrap_or_default();
    PROGRAMS.iter().map(PathBuf::from).chain(on_path).find(|p| p.is_file())
}

/// A port nothing listens on now (nginx binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// The configuration: the checks of `bench.yaml`, with the runtime's defaults for limits and
/// timeouts, and kept-alive connections to the application as the runtime keeps them.
fn config(dir: &Path, listen: SocketAddr, app: SocketAddr, workers: usize, token: &str) -> String {
    let d = dir.display();
    let mut c = String::new();
    // Without root the directive would only draw a warning; as root nginx would otherwise
    // switch its workers to `nobody`, who cannot write the temporary directory.
    if rustix::process::geteuid().is_root() {
        c.push_str("user root;\n");
    }
    let workers = if workers == 0 { "auto".to_owned() } else { workers.to_string() };
    let _ = write!(
        c,
        r#"worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    # Body and head limits, timeouts: the plan's firewall.http.
    client_max_body_size 1m;
    client_header_buffer_size 1k;
    large_client_header_buffers 4 16k;
    client_header_timeout 10s;
    client_body_timeout 30s;
    keepalive_timeout 30s;
    # The runtime does not close a kept-alive connection after some number of requests.
    keepalive_requests 100000000;

    # Authentication: the one principal's bearer token; its roles.
    map $http_authorization $sdsec_principal {{
        default "";
        "Bearer {token}" bench;
    }}
    map $sdsec_principal $sdsec_roles {{
        default "";
        bench reader;
    }}
    # Authorization (policy `rbac`, default deny): admin anything; reader GET/HEAD /api/**.
    map "$sdsec_roles $request_method $uri" $sdsec_allowed {{
        default 0;
        "~^admin " 1;
        "~^reader (GET|HEAD) /api(/|$)" 1;
    }}
    # Rate limits per source and global, as high as the plan's (never reached).
    limit_req_zone $binary_remote_addr zone=per_source:10m rate=1000000r/s;
    limit_req_zone $server_name zone=global:1m rate=1000000r/s;
    limit_req_status 429;

    upstream application {{
        server {app};
        keepalive 64;
    }}

    server {{
        listen {listen};
        # Named: the global limit's key (an empty key is not counted).
        server_name bench;

        location = /.sdsec/health {{
            limit_except GET {{ deny all; }}
            return 200 "ok\n";
        }}
        # deny_paths /admin/**, whatever the letters' case.
        location ~* ^/admin(/|$) {{
            return 403;
        }}
        location / {{
            if ($request_method !~ ^(GET|HEAD|POST)$) {{
                add_header Allow "GET, HEAD, POST" always;
                return 405;
            }}
            limit_req zone=per_source burst=1000000 nodelay;
            limit_req zone=global burst=1000000 nodelay;
            if ($sdsec_principal = "") {{
                add_header WWW-Authenticate 'Bearer realm="bench"' always;
                return 401;
            }}
            if ($sdsec_allowed = 0) {{
                return 403;
            }}
            proxy_pass http://application;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            # Checked here, not passed on (the plan has no forward_credentials).
            proxy_set_header Authorization "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header Forwarded "for=$remote_addr;proto=http";
            proxy_set_header X-Forwarded-Proto http;
            proxy_set_header X-Sdsec-Principal $sdsec_principal;
            proxy_set_header X-Sdsec-Roles $sdsec_roles;
            proxy_set_header X-HTTP-Method-Override "";
        }}
    }}
}}
"#
    );
    c
}

/// Whether `addr` answers the health path with 200.
fn answers(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let sent = s.write_all(b"GET /.sdsec/health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    sent.is_ok() && s.read_to_string(&mut answer).is_ok() && answer.starts_with("HTTP/1.1 200")
}

impl Nginx {
    /// Starts nginx in front of `app` with `workers` worker processes (0: one per core), or
    /// says why it could not (not installed: how to install it).
    pub fn start(app: SocketAddr, workers: usize, token: &str) -> Result<Self, String> {
        let Some(program) = program() else {
            return Err("nginx is not installed: `apt-get install -y nginx-light` (or `nginx`) adds that row".into());
        };
        let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(dir.path(), addr, app, workers, token)).map_err(|e| e.to_string())?;
        let mut command = Command::new(&program);
        command
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // A group of its own: the master and its workers end together.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let nginx = Self { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers(addr) {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default();
                return Err(format!("nginx did not answer on {addr} within 10 s: {}", log.trim()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(nginx)
    }

    /// CPU seconds used so far by the master and its workers.
    pub fn cpu(&self) -> f64 {
        let master = self.child.id();
        let mut total = 0.0;
        let Ok(procs) = std::fs::read_dir("/proc") else { return total };
        for entry in procs.flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let Some(close) = stat.rfind(')') else { continue };
            // After the name: state, then ppid.
            let ppid = stat[close + 1..].split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
            let pid = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok());
            if pid == Some(master) || ppid == Some(master) {
                total += stat_cpu_seconds(&stat);
            }
        }
        total
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let group = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw);
        if let Some(group) = group {
            // TERM: the master stops its workers; KILL whatever is left after a while.
            let _ = kill_process_group(group, Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(self.child.try_wait(), Ok(None)) {
                let _ = kill_process_group(group, Signal::KILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
