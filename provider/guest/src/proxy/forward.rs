//! Passing an admitted request to the application and its answer back.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;

use super::body::{LimitedBody, UpstreamBody};

/// The hop-by-hop headers every message loses, whatever its `Connection` header names.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "keep-alive"
            | "proxy-connection"
    )
}

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes hop-by-hop headers: they describe one connection, not the message (RFC 9110 7.6.1).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none (and so no `Connection` naming others): one pass over the
    // names they have, rather than a lookup for each name they might have.
    if !headers.keys().any(hop_by_hop) {
        return;
    }
    // Headers a `Connection` header names are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
}

/// An idle upstream connection is closed after this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long opening a connection to the application may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to the application: {0}")]
    Connect(#[source] std::io::Error),
    #[error("connecting to the application timed out")]
    ConnectTimeout,
    #[error("the application's connection failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("every connection to the application allowed was busy for {0:?}")]
    Busy(Duration),
}

impl UpstreamError {
    /// Whether the client, not the application, is at fault: its request body broke off
    /// (or was cut by a limit) while it was being passed on.
    pub fn is_client_side(&self) -> bool {
        matches!(self, Self::Http(e) if e.is_user())
    }

    /// How the application failed, for the `upstream_error` audit line: stable words.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Connect(e) => match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connect_refused",
                std::io::ErrorKind::ConnectionReset => "connect_reset",
                _ => "connect_failed",
            },
            Self::ConnectTimeout => "connect_timeout",
            Self::Busy(_) => "upstream_busy",
            Self::Http(e) if e.is_timeout() => "answer_timeout",
            Self::Http(e) if e.is_incomplete_message() => "closed_before_answer",
            Self::Http(e) if e.is_parse() => "invalid_answer",
            Self::Http(e) if e.is_canceled() || e.is_closed() => "connection_closed",
            Self::Http(_) => "connection_failed",
        }
    }

    /// The answer the client gets: 504 when the application took too long, else 502.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::ConnectTimeout => http::StatusCode::GATEWAY_TIMEOUT,
            // The runtime's own bound, not a failure of the application: try again later.
            Self::Busy(_) => http::StatusCode::SERVICE_UNAVAILABLE,
            Self::Http(e) if e.is_timeout() => http::StatusCode::GATEWAY_TIMEOUT,
            _ => http::StatusCode::BAD_GATEWAY,
        }
    }
}

#[derive(Debug)]
struct Pooled {
    sender: SendRequest<LimitedBody>,
    /// When the connection was last given a request.
    used: Instant,
}

impl Pooled {
    fn expired(&self, now: Instant) -> bool {
        self.sender.is_closed() || (self.sender.is_ready() && now.saturating_duration_since(self.used) > IDLE_TIMEOUT)
    }
}

type Pool = Mutex<VecDeque<Pooled>>;

thread_local! {
    /// Which of the proxy's serving threads this is ([`super::Proxy::run_on`]): each has a
    /// pool of its own, so that a request uses connections whose tasks run on its thread.
    static THREAD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the calling thread as the proxy's serving thread `index`.
pub fn set_thread_index(index: usize) {
    THREAD.with(|t| t.set(index));
}

fn lock(pool: &Pool) -> MutexGuard<'_, VecDeque<Pooled>> {
    // Nothing panics while the lock is held; a poisoned pool still holds valid connections.
    pool.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The application, reached over kept-alive HTTP/1.1 connections.
///
/// Every open connection stays in the pool, busy or not, oldest request first; a request takes
/// the first one whose connection is idle (hyper says it is ready for the next request only
/// once the previous answer has been read to its end), and puts it back at the end as soon as
/// it is sent. A connection with an unfinished exchange (an answer not yet read to its end, a
/// request body still coming) is never chosen, so it never holds up another request.
///
/// At most `max` connections are open: each request in flight holds one of `max` slots
/// until its answer has been read to its end, waits a bounded time for one, and at most
/// `max` connections are kept in the pool. A request opens a connection only when every
/// pooled one is busy, so busy and idle connections together never pass `max`.
///
/// There is one pool per serving thread, together one pool as far as the bound goes: a
/// request looks in its thread's pool first (that connection's task runs on its thread,
/// so they wake each other without crossing threads), then in the others, and opens a
/// connection only when every connection in every pool is busy. A connection goes back to
/// the pool it came from.
#[derive(Debug)]
pub struct Upstream {
    addr: SocketAddr,
    /// For requests without a Host header (none reach here today: the scanner refuses them).
    host: HeaderValue,
    pools: Arc<[Pool]>,
    slots: Mutex<Slots>,
}

/// The bound on connections, swapped whole when the plan changes it: requests holding a
/// slot of the old bound finish under it.
#[derive(Debug)]
struct Slots {
    max: usize,
    semaphore: Arc<Semaphore>,
}

impl Upstream {
    /// Must be called within a tokio runtime: it starts the task closing idle connections.
    pub fn new(addr: SocketAddr, max: usize) -> Self {
        // One per CPU: the most serving threads there are (more share them).
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let pools: Arc<[Pool]> = (0..threads).map(|_| Mutex::new(VecDeque::new())).collect();
        tokio::spawn(reap(Arc::downgrade(&pools)));
        // A socket address is always a valid header value.
        let host = HeaderValue::from_str(&addr.to_string()).unwrap_or(HeaderValue::from_static("localhost"));
        let max = max.max(1);
        Self { addr, host, pools, slots: Mutex::new(Slots { max, semaphore: Arc::new(Semaphore::new(max)) }) }
    }

    /// Changes the bound on connections to the application (a reconfiguration).
    pub fn set_max(&self, max: usize) {
        let max = max.max(1);
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.max != max {
            *slots = Slots { max, semaphore: Arc::new(Semaphore::new(max)) };
        }
    }

    /// Sends `req` (any URI: only its path and query are sent) once a connection slot is
    /// free, waiting at most `wait` for one, and returns the application's answer as it
    /// came, its body streamed.
    pub async fn request(
        &self,
        req: Request<LimitedBody>,
        wait: Duration,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let (semaphore, max) = {
            let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            (Arc::clone(&slots.semaphore), slots.max)
        };
        // A free slot is taken at once, without arming a timer.
        let slot = match Arc::clone(&semaphore).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => match tokio::time::timeout(wait, semaphore.acquire_owned()).await {
                Ok(Ok(slot)) => slot,
                // Closed never happens (the semaphore is never closed); treat it as busy.
                Ok(Err(_)) | Err(_) => return Err(UpstreamError::Busy(wait)),
            },
        };
        let response = self.send(req, max).await?;
        Ok(response.map(|body| UpstreamBody::new(body, slot)))
    }

    async fn send(&self, mut req: Request<LimitedBody>, max: usize) -> Result<Response<Incoming>, UpstreamError> {
        if req.uri().scheme().is_some() || req.uri().authority().is_some() {
            let origin = req.uri().path_and_query().cloned().map_or_else(|| Uri::from_static("/"), Uri::from);
            *req.uri_mut() = origin;
        }
        if !req.headers().contains_key(header::HOST) {
            req.headers_mut().insert(header::HOST, self.host.clone());
        }
        let now = Instant::now();
        if let Some((mut sender, home)) = self.checkout(now) {
            let sent = sender.try_send_request(req);
            self.checkin(sender, home, now, max);
            match sent.await {
                Ok(response) => return Ok(response),
                // The connection closed before the request was written (the application
                // timed it out): it is safe to send on a new one.
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let mut sender = self.connect().await?;
        let sent = sender.send_request(req);
        self.checkin(sender, self.own_pool(), now, max);
        Ok(sent.await?)
    }

    /// The calling thread's pool.
    fn own_pool(&self) -> usize {
        THREAD.with(std::cell::Cell::get) % self.pools.len()
    }

    /// The least recently used idle connection of this thread's pool, else of another, with
    /// the pool it belongs to; closed and expired ones are dropped on the way.
    fn checkout(&self, now: Instant) -> Option<(SendRequest<LimitedBody>, usize)> {
        let (own, n) = (self.own_pool(), self.pools.len());
        (0..n).map(|k| (own + k) % n).find_map(|home| Some((idle(&self.pools[home], now)?, home)))
    }

    fn checkin(&self, sender: SendRequest<LimitedBody>, home: usize, now: Instant, max: usize) {
        let Some(pool) = self.pools.get(home) else { return };
        let mut pool = lock(pool);
        if pool.len() < max && !sender.is_closed() {
            pool.push_back(Pooled { sender, used: now });
        }
        // Otherwise dropped: hyper closes the connection once its exchange is over.
    }

    async fn connect(&self) -> Result<SendRequest<LimitedBody>, UpstreamError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(self.addr))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(UpstreamError::Connect)?;
        stream.set_nodelay(true).map_err(UpstreamError::Connect)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // Ends when the connection closes: by either side, or once every sender is dropped
        // and the exchange in progress is over.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// Takes the least recently used idle connection out of `pool`.
fn idle(pool: &Pool, now: Instant) -> Option<SendRequest<LimitedBody>> {
    let mut pool = lock(pool);
    let mut i = 0;
    while let Some(pooled) = pool.get(i) {
        if pooled.expired(now) {
            pool.remove(i);
        } else if pooled.sender.is_ready() {
            return pool.remove(i).map(|p| p.sender);
        } else {
            i += 1;
        }
    }
    None
}

/// Closes idle connections past their timeout, until the pools are gone.
async fn reap(pools: Weak<[Pool]>) {
    let mut tick = tokio::time::interval(IDLE_TIMEOUT / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pools) = pools.upgrade() else { return };
        let now = Instant::now();
        for pool in pools.iter() {
            lock(pool).retain(|p| !p.expired(now));
        }
    }
}
