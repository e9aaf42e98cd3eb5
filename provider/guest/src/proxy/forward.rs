//! Passing an admitted request to the application and its answer back.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::body::{LimitedBody, UpstreamBody};
use super::exchange::{Connection, Counted, ExchangeError, origin_form};
use super::framing::ResponseHead;
use super::headers::Identity;

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
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error("every connection to the application allowed was busy for {0:?}")]
    Busy(Duration),
    #[error("the application did not begin its answer within {0:?}")]
    AnswerTimeout(Duration),
}

impl UpstreamError {
    /// Whether the client, not the application, is at fault: its request body broke off
    /// (or was cut by a limit) while it was being passed on.
    pub fn is_client_side(&self) -> bool {
        matches!(self, Self::Exchange(ExchangeError::RequestBody(_)))
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
            Self::AnswerTimeout(_) => "answer_timeout",
            Self::Busy(_) => "upstream_busy",
            Self::Exchange(e) => e.reason(),
        }
    }

    /// The answer the client gets: 504 when the application took too long, else 502.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::ConnectTimeout | Self::AnswerTimeout(_) => http::StatusCode::GATEWAY_TIMEOUT,
            // The runtime's own bound, not a failure of the application: try again later.
            Self::Busy(_) => http::StatusCode::SERVICE_UNAVAILABLE,
            _ => http::StatusCode::BAD_GATEWAY,
        }
    }
}

/// What `sending` gives, if it does within `within`: the application's answer begun.
async fn begun<T>(within: Duration, sending: impl Future<Output = T>) -> Result<T, UpstreamError> {
    tokio::time::timeout(within, sending).await.map_err(|_| UpstreamError::AnswerTimeout(within))
}

/// Idle connections, most recently used last.
type Pool = Mutex<VecDeque<Connection>>;

/// Every serving thread's pool, and the count of connections open, idle or busy.
#[derive(Debug)]
pub struct Pools {
    per_thread: Box<[Pool]>,
    open: Arc<AtomicUsize>,
}

thread_local! {
    /// Which of the proxy's serving threads this is ([`super::Proxy::run_on`]): each has a
    /// pool of its own, because a connection is registered with the runtime of the thread
    /// that opened it, and is used on that thread only.
    static THREAD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the calling thread as the proxy's serving thread `index`.
pub fn set_thread_index(index: usize) {
    THREAD.with(|t| t.set(index));
}

fn lock(pool: &Pool) -> MutexGuard<'_, VecDeque<Connection>> {
    // Nothing panics while the lock is held; a poisoned pool still holds valid connections.
    pool.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where an answer's connection goes back once the answer has been read to its end.
#[derive(Debug)]
pub struct Home {
    pools: Arc<Pools>,
    index: usize,
    /// The most connections its pool keeps.
    max: usize,
}

impl Home {
    pub fn give_back(&self, mut connection: Connection) {
        let Some(pool) = self.pools.per_thread.get(self.index) else { return };
        let mut pool = lock(pool);
        if pool.len() < self.max {
            connection.idle_since = Instant::now();
            pool.push_back(connection);
        }
        // Otherwise dropped, and so closed.
    }
}

/// The application, reached over kept-alive HTTP/1.1 connections.
///
/// A request takes the most recently used idle connection of its thread's pool (the others
/// age and are closed after [`IDLE_TIMEOUT`]: as few stay open as the load needs), or opens
/// one, and the connection goes back once the answer has been read to its end.
///
/// At most `max` connections are open: each request in flight holds one of `max` slots
/// until its answer has been read to its end, and waits a bounded time for one. A request
/// holding a slot that finds its pool empty while `max` are open closes an idle connection
/// of another thread's pool first (one is idle: at most `max - 1` others are busy).
#[derive(Debug)]
pub struct Upstream {
    addr: SocketAddr,
    /// For requests without a Host header (none reach here today: the scanner refuses them).
    host: HeaderValue,
    pools: Arc<Pools>,
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
        let per_thread = (0..threads).map(|_| Mutex::new(VecDeque::new())).collect();
        let pools = Arc::new(Pools { per_thread, open: Arc::new(AtomicUsize::new(0)) });
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

    /// Sends `req` (any URI: only its path and query are sent), its headers filtered and
    /// completed by `identity`, once a connection slot is free, waiting at most `wait` for
    /// one, and returns the application's answer as it came, its body streamed. The answer
    /// must begin within `answer_within` of sending; the connection is dropped if not.
    pub async fn request(
        &self,
        req: Request<LimitedBody>,
        identity: Identity<'_>,
        wait: Duration,
        answer_within: Duration,
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
        let (mut parts, mut body) = req.into_parts();
        if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
            parts.uri = origin_form(&parts.uri);
        }
        if !parts.headers.contains_key(header::HOST) {
            parts.headers.insert(header::HOST, self.host.clone());
        }
        let home = self.own_pool();
        // Whether it could be sent again: nothing of it is consumed by sending it.
        let bodiless = http_body::Body::is_end_stream(&body);
        if let Some(mut connection) = self.idle(home) {
            match begun(answer_within, connection.send(&parts, identity, &mut body)).await? {
                Ok(head) => return self.answer(head, connection, home, max, slot),
                // The application closed the kept-alive connection as the request went out (its
                // idle timeout): sent again on a new one when that cannot do anything twice
                // (RFC 9110 9.2.2) and nothing of it has been consumed.
                Err(ExchangeError::ClosedBeforeAnswer | ExchangeError::Write(_))
                    if parts.method.is_idempotent() && bodiless => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.make_room(home, max);
        let mut connection = self.connect().await?;
        let head = begun(answer_within, connection.send(&parts, identity, &mut body)).await??;
        self.answer(head, connection, home, max, slot)
    }

    fn answer(
        &self,
        head: ResponseHead,
        connection: Connection,
        index: usize,
        max: usize,
        slot: OwnedSemaphorePermit,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let home = Home { pools: Arc::clone(&self.pools), index, max };
        let body = UpstreamBody::new(connection, head.framing, head.reusable, home, slot)?;
        let mut response = Response::new(body);
        *response.status_mut() = head.status;
        *response.headers_mut() = head.headers;
        Ok(response)
    }

    /// The calling thread's pool.
    fn own_pool(&self) -> usize {
        THREAD.with(std::cell::Cell::get) % self.pools.per_thread.len()
    }

    /// The most recently used connection of pool `index` that is still idle and open;
    /// closed, spoiled and expired ones are dropped on the way.
    fn idle(&self, index: usize) -> Option<Connection> {
        let now = Instant::now();
        let mut pool = lock(self.pools.per_thread.get(index)?);
        while let Some(mut connection) = pool.pop_back() {
            if now.saturating_duration_since(connection.idle_since) <= IDLE_TIMEOUT && connection.still_idle() {
                return Some(connection);
            }
        }
        None
    }

    /// With `max` connections open, closes the least recently used idle one of another
    /// pool, so that the one about to open keeps the count within the bound.
    fn make_room(&self, own: usize, max: usize) {
        if self.pools.open.load(Ordering::Relaxed) < max {
            return;
        }
        let n = self.pools.per_thread.len();
        for index in (1..=n).map(|k| (own + k) % n) {
            if lock(&self.pools.per_thread[index]).pop_front().is_some() {
                return;
            }
        }
    }

    async fn connect(&self) -> Result<Connection, UpstreamError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(self.addr))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(UpstreamError::Connect)?;
        stream.set_nodelay(true).map_err(UpstreamError::Connect)?;
        Ok(Connection::new(stream, Counted::new(&self.pools.open)))
    }
}

/// Closes idle connections past their timeout, until the pools are gone.
async fn reap(pools: Weak<Pools>) {
    let mut tick = tokio::time::interval(IDLE_TIMEOUT / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pools) = pools.upgrade() else { return };
        let now = Instant::now();
        for pool in pools.per_thread.iter() {
            lock(pool).retain(|c| now.saturating_duration_since(c.idle_since) <= IDLE_TIMEOUT);
        }
    }
}
