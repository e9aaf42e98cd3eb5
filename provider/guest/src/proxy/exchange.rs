//! One exchange on a connection to the application: the request written (its head in one
//! write when it has no body), the answer's head read and its framing decided.
//!
//! The runtime's own HTTP/1.1 client rather than hyper's: hyper's runs each connection as a
//! task of its own, the request and the answer's body passing between it and the client's
//! connection task through channels, a wakeup each way per request. Here the client's task
//! writes the request and reads the answer itself, with the same number of system calls (a
//! read that returns less than asked leaves the socket marked drained, so no read is tried
//! only to learn there is nothing yet).

use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::BytesMut;
use http::header::{self, HeaderMap};
use http::request::Parts;
use http::{Method, Uri};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::body::{BoxError, LimitedBody};
use super::framing::{self, FramingError, ResponseHead};
use super::headers::Identity;

/// Room made for each read: a typical answer, head and body, comes in one.
const READ_SIZE: usize = 16 * 1024;
/// Body frames up to this size are copied beside their chunk framing and written in one
/// call; larger ones are written as they are.
const COALESCE: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("cannot write the request to the application: {0}")]
    Write(#[source] io::Error),
    #[error("reading the application's answer failed: {0}")]
    Read(#[source] io::Error),
    #[error("the application closed the connection before answering")]
    ClosedBeforeAnswer,
    #[error("the application closed the connection in the middle of its answer")]
    Truncated,
    #[error("the application's answer is malformed: {0}")]
    Invalid(#[from] FramingError),
    #[error("the request body broke off: {0}")]
    RequestBody(#[source] BoxError),
}

impl ExchangeError {
    /// How the application failed, for the `upstream_error` audit line: stable words.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ClosedBeforeAnswer | Self::Truncated => "closed_before_answer",
            Self::Invalid(_) => "invalid_answer",
            Self::Write(e) | Self::Read(e)
                if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) =>
            {
                "connection_closed"
            }
            Self::Write(_) | Self::Read(_) | Self::RequestBody(_) => "connection_failed",
        }
    }
}

/// Counts the connections open to the application; one is held by each.
#[derive(Debug)]
pub struct Counted(Arc<AtomicUsize>);

impl Counted {
    pub fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(open))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection to the application, with what has been read on it and not passed on yet.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    /// Bytes of the answer read and not yet passed on.
    pub read: BytesMut,
    /// The request head being written; kept for its allocation.
    write: Vec<u8>,
    /// When the connection was last given back idle.
    pub idle_since: Instant,
    _counted: Counted,
}

impl Connection {
    pub fn new(stream: TcpStream, counted: Counted) -> Self {
        Self { stream, read: BytesMut::new(), write: Vec::new(), idle_since: Instant::now(), _counted: counted }
    }

    /// Whether an idle connection can carry a request: nothing came on it since its last
    /// answer, neither its end (the application closed it) nor bytes no request asked for
    /// (after which no answer on it can be told from the one before).
    pub fn still_idle(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            // The runtime has seen nothing on it since it was last read to the end.
            Poll::Pending => self.read.is_empty(),
            Poll::Ready(Err(_)) => false,
            // Marked readable: only a read tells whether anything is there.
            Poll::Ready(Ok(())) => {
                matches!(self.stream.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
                    && self.read.is_empty()
            }
        }
    }

    /// Reads what has come into [`Self::read`]; `Ok(0)` is the application's end.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.read.reserve(READ_SIZE);
        // A read future holds nothing but its borrows: polling a new one each time is the same
        // as keeping one.
        pin!(self.stream.read_buf(&mut self.read)).poll(cx)
    }

    /// Writes the request and reads the answer's head (interim answers are passed over).
    /// The body is sent while the answer is awaited: an application may answer (and stop
    /// reading) before the body is all in; its connection is then not used again.
    pub async fn send(
        &mut self,
        parts: &Parts,
        identity: Identity<'_>,
        body: &mut LimitedBody,
    ) -> Result<ResponseHead, ExchangeError> {
        let to_head_request = parts.method == Method::HEAD;
        let bodiless = body.is_end_stream();
        let length = declared_length(&parts.headers);
        // A body without a length (the client sent it chunked) goes on chunked.
        let chunked = !bodiless && length.is_none();
        self.write.clear();
        encode_head(parts, identity, chunked, &mut self.write);
        if bodiless {
            self.stream.write_all(&self.write).await.map_err(ExchangeError::Write)?;
            return read_head(&mut self.stream, &mut self.read, to_head_request).await;
        }
        let (mut reader, mut writer) = self.stream.split();
        let mut sending = pin!(send_body(&mut writer, &mut self.write, body, chunked, length));
        let mut receiving = pin!(read_head(&mut reader, &mut self.read, to_head_request));
        let mut sent = Sending::Busy;
        loop {
            tokio::select! {
                biased;
                head = &mut receiving => {
                    let mut head = head?;
                    head.reusable &= sent == Sending::Done;
                    return Ok(head);
                }
                result = &mut sending, if sent == Sending::Busy => match result {
                    Ok(()) => sent = Sending::Done,
                    Err(SendError::Body(e)) => return Err(ExchangeError::RequestBody(e)),
                    // The application may have answered and closed: its answer, or its
                    // absence, tells the client what happened.
                    Err(SendError::Write) => sent = Sending::Failed,
                },
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sending {
    Busy,
    Done,
    Failed,
}

#[derive(Debug)]
enum SendError {
    Body(BoxError),
    Write,
}

/// The request's Content-Length: the scanner has let through only single, plain ones.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// The request head in origin form, its headers those `identity` lets pass and writes.
/// Hop-by-hop headers are gone already, the client's framing with them; `chunked` adds the
/// framing of a body of unknown length.
pub fn encode_head(parts: &Parts, identity: Identity<'_>, chunked: bool, out: &mut Vec<u8>) {
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(if target.is_empty() { b"/" } else { target.as_bytes() });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let passing = parts.headers.iter().filter(|(name, _)| identity.passes(name));
    for (name, value) in passing.chain(identity.written()) {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes the head in `out` and the body after it, framed by its length or chunked.
async fn send_body<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &mut Vec<u8>,
    body: &mut LimitedBody,
    chunked: bool,
    length: Option<u64>,
) -> Result<(), SendError> {
    let mut sent = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(SendError::Body)?;
        // Trailers are not passed on.
        let Ok(data) = frame.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        sent = sent.saturating_add(data.len() as u64);
        // hyper already holds a body to its length; this keeps the application's view of
        // the framing right whatever a body type does.
        if length.is_some_and(|length| sent > length) {
            return Err(SendError::Body("the request body is longer than its Content-Length".into()));
        }
        if chunked {
            out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        }
        if data.len() <= COALESCE {
            out.extend_from_slice(&data);
        } else {
            writer.write_all(out).await.map_err(|_| SendError::Write)?;
            out.clear();
            writer.write_all(&data).await.map_err(|_| SendError::Write)?;
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        writer.write_all(out).await.map_err(|_| SendError::Write)?;
        out.clear();
    }
    if length.is_some_and(|length| sent != length) {
        return Err(SendError::Body("the request body is shorter than its Content-Length".into()));
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    writer.write_all(out).await.map_err(|_| SendError::Write)?;
    out.clear();
    Ok(())
}

/// Reads until a final answer head is in `buf` and takes it out.
async fn read_head<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    to_head_request: bool,
) -> Result<ResponseHead, ExchangeError> {
    let mut answered = false;
    loop {
        if !buf.is_empty() {
            answered = true;
            match framing::parse_head(buf, to_head_request)? {
                // `100 Continue`, `103 Early Hints`: the final answer follows.
                Some(head) if head.status.is_informational() => continue,
                Some(head) => return Ok(head),
                None => {}
            }
        }
        buf.reserve(READ_SIZE);
        match reader.read_buf(buf).await {
            Ok(0) if answered => return Err(ExchangeError::Truncated),
            Ok(0) => return Err(ExchangeError::ClosedBeforeAnswer),
            Ok(_) => {}
            Err(e) if !answered && e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(ExchangeError::ClosedBeforeAnswer);
            }
            Err(e) => return Err(ExchangeError::Read(e)),
        }
    }
}

/// The origin form of `uri`: what is sent on a connection to the application.
pub fn origin_form(uri: &Uri) -> Uri {
    uri.path_and_query().cloned().map_or_else(|| Uri::from_static("/"), Uri::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::headers::ClientHeaders;

    #[test]
    fn a_request_head_is_written_in_origin_form_with_its_framing() {
        let (mut parts, ()) = http::Request::post("/items?q=1")
            .header("host", "api")
            .header("x-sdsec-principal", "forged")
            .header("x-a", "1")
            .header("x-a", "2")
            .body(())
            .unwrap_or_default()
            .into_parts();
        let client = ClientHeaders::new("192.0.2.7:5000".parse().unwrap());
        let identity = Identity::new(&client, None, true);
        let mut out = Vec::new();
        encode_head(&parts, identity, true, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "POST /items?q=1 HTTP/1.1\r\nhost: api\r\nx-a: 1\r\nx-a: 2\r\nx-forwarded-for: 192.0.2.7\r\n\
             x-real-ip: 192.0.2.7\r\nforwarded: for=192.0.2.7;proto=http\r\nx-forwarded-proto: http\r\n\
             transfer-encoding: chunked\r\n\r\n"
        );
        parts.uri = origin_form(&Uri::from_static("http://api/"));
        out.clear();
        encode_head(&parts, identity, false, &mut out);
        assert!(out.starts_with(b"POST / HTTP/1.1\r\n"));
    }
}
