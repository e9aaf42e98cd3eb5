//! The reverse proxy: accepts connections, judges each request against the plan, and
//! forwards what is admitted to the application.

mod body;
mod exchange;
mod forward;
mod framing;
mod headers;
mod request;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::AsFd as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use abi::event::Access;
use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use plan::AuditEvent;
use tokio::net::{TcpListener, TcpStream};

use crate::audit::{AuditLog, now_rfc3339};
use crate::config::Runtime;
use crate::firewall::Connections;
use crate::scan::{HeadScanner, Scanned, SharedScanner};

pub use headers::{PRINCIPAL_HEADER, ROLES_HEADER};

/// hyper's default read buffer, kept unless the plan allows larger heads.
const READ_BUFFER: usize = 400 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// The async runtime a proxy is started on: current-thread, its blocking threads named
/// `proxy`. The caller drives it (a `block_on` on some thread for as long as the proxy
/// serves); [`Proxy::run_on`] adds a thread with a runtime of its own per further CPU.
///
/// Why not a multi-thread runtime: a request's tasks (client connection, application
/// connection, bodies) wake each other; spread over threads that is a cross-thread wakeup
/// and work stealing per step, which on one CPU is pure cost and on two doubled the CPU a
/// request took. One runtime per thread, each accepting on the same socket and keeping its
/// own application connections, is how nginx's workers do it too.
pub fn async_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().thread_name("proxy").build()
}

/// How many threads serve: one per CPU (one in a guest of one vCPU).
pub fn serving_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    /// The runtime configuration; each connection and each request takes a snapshot, so a
    /// swap never changes the rules under a request in flight.
    runtime: ArcSwap<Runtime>,
    /// Kept-alive connections to the application.
    client: forward::Upstream,
    /// The application's port: what ingress rules' `ports` name.
    app_port: u16,
    /// Client connections open now, against the plan's caps.
    connections: Connections,
    audit: AuditLog,
}

impl Shared {
    /// Swaps in a new runtime configuration; requests already admitted finish under the old one.
    pub fn reconfigure(&self, runtime: Runtime) {
        let max_upstream = usize::try_from(runtime.plan.firewall.http.max_upstream_connections).unwrap_or(usize::MAX);
        self.client.set_max(max_upstream);
        self.runtime.store(Arc::new(runtime));
    }

    /// The configuration new requests are judged against.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }
}

/// A bound, not yet running, proxy.
#[derive(Debug)]
pub struct Proxy {
    listener: TcpListener,
    local: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    pub async fn bind(
        listen: SocketAddr,
        upstream: SocketAddr,
        runtime: Runtime,
        audit: AuditLog,
    ) -> Result<Self, ProxyError> {
        let listener = TcpListener::bind(listen).await.map_err(|source| ProxyError::Listen { addr: listen, source })?;
        Self::on(listener, listen, upstream, runtime, audit)
    }

    /// A proxy on a socket bound elsewhere: in an image PID 1 binds the port (80 needs a
    /// capability) and hands the socket to the unprivileged proxy process. Must be called
    /// within a tokio runtime.
    pub fn from_listener(
        listener: std::net::TcpListener,
        upstream: SocketAddr,
        runtime: Runtime,
        audit: AuditLog,
    ) -> Result<Self, ProxyError> {
        let listen = SocketAddr::from(([0, 0, 0, 0], 0));
        let listener = listener
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(listener))
            .map_err(|source| ProxyError::Listen { addr: listen, source })?;
        Self::on(listener, listen, upstream, runtime, audit)
    }

    fn on(
        listener: TcpListener,
        listen: SocketAddr,
        upstream: SocketAddr,
        runtime: Runtime,
        audit: AuditLog,
    ) -> Result<Self, ProxyError> {
        let local = listener.local_addr().map_err(|source| ProxyError::Listen { addr: listen, source })?;
        let max_upstream = usize::try_from(runtime.plan.firewall.http.max_upstream_connections).unwrap_or(usize::MAX);
        let client = forward::Upstream::new(upstream, max_upstream);
        let shared = Arc::new(Shared {
            runtime: ArcSwap::from_pointee(runtime),
            client,
            app_port: upstream.port(),
            connections: Connections::default(),
            audit,
        });
        Ok(Self { listener, local, shared })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// For reconfiguration while running.
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Accepts connections until the task is dropped.
    pub async fn run(self) {
        accept(self.listener, self.shared).await;
    }

    /// Accepts connections on this runtime and, with `threads` > 1, on as many threads in all,
    /// each a current-thread runtime of its own accepting on the same socket. The other
    /// threads serve for as long as the process runs.
    pub async fn run_on(self, threads: usize) {
        for index in 1..threads {
            // The same socket under another descriptor, registered with that thread's runtime.
            let Ok(copy) = self.listener.as_fd().try_clone_to_owned() else { break };
            let (listener, shared) = (std::net::TcpListener::from(copy), Arc::clone(&self.shared));
            let started = std::thread::Builder::new().name("proxy".into()).spawn(move || {
                forward::set_thread_index(index);
                let Ok(runtime) = async_runtime() else { return };
                runtime.block_on(async move {
                    if let Ok(listener) = TcpListener::from_std(listener) {
                        accept(listener, shared).await;
                    }
                });
            });
            // Fewer threads serve; the others still do.
            if started.is_err() {
                break;
            }
        }
        self.run().await;
    }
}

/// Accepts connections on `listener` and serves each on a task of this runtime.
async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors or a connection reset before accept (or taken by another
            // thread): wait a little rather than spin, and keep serving.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let runtime = shared.runtime.load_full();
        // Rules name the application's service port, as users write it: the one the
        // runtime stands in front of, not the one it listens on.
        if !plan::ingress::allows(&runtime.plan.firewall.ingress, peer.ip(), shared.app_port) {
            // Closed without a byte read or written: the client learns nothing.
            drop(stream);
            record_drop(&shared.audit, &runtime, peer, None, "ingress");
            continue;
        }
        let http = &runtime.plan.firewall.http;
        let slot = match shared.connections.admit(peer.ip(), http.max_connections, http.max_connections_per_source) {
            Ok(slot) => slot,
            Err(over) => {
                drop(stream);
                record_drop(&shared.audit, &runtime, peer, None, over.reason());
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            serve(shared, runtime, stream, peer).await;
            drop(slot);
        });
    }
}

fn record_drop(audit: &AuditLog, runtime: &Runtime, src: SocketAddr, status: Option<u16>, reason: &str) {
    let access = Access {
        ts: now_rfc3339(),
        src,
        method: None,
        path: None,
        principal: None,
        status,
        reason: Some(reason.into()),
    };
    audit.record(&runtime.plan.audit.events, AuditEvent::FirewallDrop, access);
}

async fn serve(shared: Arc<Shared>, runtime: Arc<Runtime>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let scanner: SharedScanner = Arc::new(Mutex::new(HeadScanner::new(runtime.max_header_bytes)));
    let io = TokioIo::new(Scanned::new(stream, Arc::clone(&scanner), runtime.header_timeout));
    let client = Arc::new(request::Client { peer, scanner, headers: headers::ClientHeaders::new(peer) });
    let service = {
        let (shared, client) = (Arc::clone(&shared), Arc::clone(&client));
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let (shared, client) = (Arc::clone(&shared), Arc::clone(&client));
            async move { Ok::<_, Infallible>(request::handle(&shared, req, &client).await) }
        })
    };
    let scanner = &client.scanner;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper's header timer runs from when it waits for a request until its head is in:
        // the idle bound of a kept-alive (or new) connection. The head alone is bounded
        // from its first byte by `Scanned`.
        .header_read_timeout(runtime.idle_timeout)
        .max_header_size(runtime.max_header_bytes)
        .max_buf_size(READ_BUFFER.max(runtime.max_header_bytes.saturating_add(8192)))
        // The application's answer goes back as it came: no Date it did not send.
        .auto_date_header(false);
    if let Err(e) = builder.serve_connection(io, service).await {
        // hyper answered (400, 431) or cut the connection itself; record why.
        let reason = if crate::scan::lock(scanner).head_timed_out() {
            Some(("header_timeout", None))
        } else if e.is_timeout() {
            // A timeout on an idle keep-alive connection is its normal end, not a slow sender.
            crate::scan::lock(scanner).mid_head().then_some(("header_timeout", None))
        } else if e.is_parse_too_large() {
            Some(("head_too_large", Some(431)))
        } else if e.is_parse() {
            Some(("unparsable", Some(400)))
        } else {
            None
        };
        if let Some((reason, status)) = reason {
            record_drop(&shared.audit, &runtime, peer, status, reason);
        }
    }
}
