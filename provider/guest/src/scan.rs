//! A second look at the raw request heads, for what hyper accepts but the plan refuses.
//!
//! hyper resolves some ambiguous framings itself instead of refusing them: with both
//! `Content-Length` and `Transfer-Encoding` it drops the length and reads chunked, and it
//! accepts `Transfer-Encoding: gzip, chunked`. Once parsed, the request no longer shows what
//! was sent, so [`Scanned`] wraps the connection and scans every byte hyper reads: it parses
//! each head with httparse, queues a verdict per request, and follows the body framing to
//! find the next head. The service takes one verdict per request, in order (HTTP/1.1
//! handles requests on a connection one after another). Whatever the scanner cannot follow
//! breaks it for the rest of the connection, and every later request is refused: when the
//! two parsers might disagree, the request is not forwarded.

use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// hyper's default limit on the number of headers; a head with more is refused by both.
const MAX_HEADERS: usize = 100;

/// Why a request's framing is ambiguous. Each is answered 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ambiguity {
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndChunked,
    #[error("several different Content-Length values")]
    ConflictingLengths,
    #[error("a Content-Length that is not a plain number (a sign, leading zeros, not digits)")]
    InvalidLength,
    #[error("a Content-Length given as a list or more than once")]
    LengthList,
    #[error("a Transfer-Encoding other than a single `chunked`")]
    UnsupportedTransferEncoding,
    #[error("not exactly one Host header")]
    HostCount,
    #[error("a request head or body framing that could not be parsed")]
    Unparsable,
    #[error("a request head larger than allowed")]
    TooLarge,
    #[error("a request the scanner never saw")]
    Unseen,
}

impl Ambiguity {
    /// A stable reason for audit lines.
    pub fn reason(self) -> &'static str {
        match self {
            Self::LengthAndChunked => "smuggling_cl_te",
            Self::ConflictingLengths => "smuggling_double_cl",
            Self::InvalidLength => "invalid_content_length",
            Self::LengthList => "content_length_list",
            Self::UnsupportedTransferEncoding => "unsupported_transfer_encoding",
            Self::HostCount => "host_count",
            Self::Unparsable => "unparsable",
            Self::TooLarge => "head_too_large",
            Self::Unseen => "unseen",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size { value: u64, digits: u8 },
    Extension { value: u64 },
    SizeLf { value: u64 },
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    Chunked(Chunk),
    Broken(Ambiguity),
}

/// Follows the requests on one connection and judges each head.
#[derive(Debug)]
pub struct HeadScanner {
    state: State,
    head: Vec<u8>,
    max_head: usize,
    trailer_bytes: usize,
    verdicts: VecDeque<Result<(), Ambiguity>>,
    /// The connection was cut because a head did not complete in time.
    head_timed_out: bool,
}

impl HeadScanner {
    pub fn new(max_head: usize) -> Self {
        Self {
            state: State::Head,
            head: Vec::new(),
            max_head,
            trailer_bytes: 0,
            verdicts: VecDeque::new(),
            head_timed_out: false,
        }
    }

    /// Whether the connection was cut because a request head did not complete in time.
    pub fn head_timed_out(&self) -> bool {
        self.head_timed_out
    }

    /// The verdict on the next request hyper hands over.
    pub fn next_verdict(&mut self) -> Result<(), Ambiguity> {
        match (self.verdicts.pop_front(), self.state) {
            (Some(v), _) => v,
            (None, State::Broken(why)) => Err(why),
            (None, _) => Err(Ambiguity::Unseen),
        }
    }

    /// Whether part of a request head has arrived and the rest is awaited.
    pub fn mid_head(&self) -> bool {
        self.state == State::Head && !self.head.is_empty()
    }

    fn break_with(&mut self, why: Ambiguity) {
        self.state = State::Broken(why);
        self.head = Vec::new();
    }

    /// Scans bytes as they are read from the client.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                State::Broken(_) => return,
                State::Head => data = self.feed_head(data),
                State::Body(remaining) => {
                    let n = usize::try_from(remaining).map_or(data.len(), |r| r.min(data.len()));
                    data = &data[n..];
                    let left = remaining - n as u64;
                    self.state = if left == 0 { State::Head } else { State::Body(left) };
                }
                State::Chunked(Chunk::Data(remaining)) => {
                    let n = usize::try_from(remaining).map_or(data.len(), |r| r.min(data.len()));
                    data = &data[n..];
                    let left = remaining - n as u64;
                    self.state = State::Chunked(if left == 0 { Chunk::DataCr } else { Chunk::Data(left) });
                }
                State::Chunked(c) => {
                    self.chunk_byte(c, data[0]);
                    data = &data[1..];
                }
            }
        }
    }

    /// Refuses the head being read, and with it the rest of the connection.
    fn refuse_head(&mut self, why: Ambiguity) {
        self.verdicts.push_back(Err(why));
        self.break_with(why);
    }

    /// Buffers head bytes; returns what follows a complete head.
    fn feed_head<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let searched_from = self.head.len().saturating_sub(3);
        self.head.extend_from_slice(data);
        let window = &self.head[searched_from..];
        let complete = holds_blank_line(window);
        if !complete {
            if self.head.len() > self.max_head {
                self.refuse_head(Ambiguity::TooLarge);
            }
            return &[];
        }
        // Left uninitialised: setting a hundred entries cost more than parsing a small head.
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut []);
        let parsed = match request.parse_with_uninit_headers(&self.head, &mut headers) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return &[],
            Err(_) => {
                self.refuse_head(Ambiguity::Unparsable);
                return &[];
            }
        };
        if parsed > self.max_head {
            self.refuse_head(Ambiguity::TooLarge);
            return &[];
        }
        let judged = judge(&request);
        // What followed the head in this read is body (or the next request).
        let consumed_before = self.head.len() - data.len();
        let rest_start = parsed.saturating_sub(consumed_before).min(data.len());
        self.head.clear();
        match judged {
            Ok(framing) => {
                self.verdicts.push_back(Ok(()));
                self.state = framing;
                &data[rest_start..]
            }
            Err(why) => {
                self.refuse_head(why);
                &[]
            }
        }
    }

    fn chunk_byte(&mut self, chunk: Chunk, b: u8) {
        let next = match (chunk, b) {
            (Chunk::Size { value, digits }, _) if b.is_ascii_hexdigit() && digits < 16 => {
                let d = u64::from(char::from(b).to_digit(16).unwrap_or(0));
                Some(Chunk::Size { value: value * 16 + d, digits: digits + 1 })
            }
            (Chunk::Size { value, digits }, b';' | b' ' | b'\t') if digits > 0 => Some(Chunk::Extension { value }),
            (Chunk::Size { value, digits }, b'\r') if digits > 0 => Some(Chunk::SizeLf { value }),
            (Chunk::Extension { value }, b'\r') => Some(Chunk::SizeLf { value }),
            (Chunk::Extension { value }, _) if b != b'\n' => Some(Chunk::Extension { value }),
            (Chunk::SizeLf { value: 0 }, b'\n') => {
                self.trailer_bytes = 0;
                Some(Chunk::TrailerStart)
            }
            (Chunk::SizeLf { value }, b'\n') => Some(Chunk::Data(value)),
            (Chunk::DataCr, b'\r') => Some(Chunk::DataLf),
            (Chunk::DataLf, b'\n') => Some(Chunk::Size { value: 0, digits: 0 }),
            (Chunk::TrailerStart, b'\r') => Some(Chunk::EndLf),
            (Chunk::Trailer, b'\r') => Some(Chunk::TrailerLf),
            (Chunk::TrailerStart | Chunk::Trailer, _) if b != b'\n' && self.trailer_bytes < self.max_head => {
                self.trailer_bytes += 1;
                Some(Chunk::Trailer)
            }
            (Chunk::TrailerLf, b'\n') => Some(Chunk::TrailerStart),
            (Chunk::EndLf, b'\n') => {
                self.state = State::Head;
                return;
            }
            _ => None,
        };
        match next {
            Some(c) => self.state = State::Chunked(c),
            None => self.break_with(Ambiguity::Unparsable),
        }
    }
}

/// Whether `window` holds the end of a head: an empty line, `LF LF` or `LF CR LF`. One
/// pass over the bytes, looking further only after a line feed.
fn holds_blank_line(window: &[u8]) -> bool {
    window
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (window.get(i + 1) == Some(&b'\n') || window.get(i + 1..i + 3) == Some(b"\r\n")))
}

/// Judges one parsed head; on success returns how its body is framed.
fn judge(request: &httparse::Request<'_, '_>) -> Result<State, Ambiguity> {
    let mut length: Option<u64> = None;
    let mut transfer_encodings = 0usize;
    let mut hosts = 0usize;
    for h in request.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            // Exactly one plain number: a list (`5, 5`) or a repeated header, even of equal
            // values, is read differently by different servers behind a shared connection
            // pool, and so are signs and leading zeros (octal to some).
            let text = std::str::from_utf8(h.value).map_err(|_| Ambiguity::InvalidLength)?;
            let text = text.trim_matches([' ', '\t']);
            if text.contains(',') {
                return Err(Ambiguity::LengthList);
            }
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || (text.len() > 1 && text.starts_with('0'))
            {
                return Err(Ambiguity::InvalidLength);
            }
            let n: u64 = text.parse().map_err(|_| Ambiguity::InvalidLength)?;
            match length {
                Some(l) if l != n => return Err(Ambiguity::ConflictingLengths),
                Some(_) => return Err(Ambiguity::LengthList),
                None => length = Some(n),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encodings += 1;
            let value = h.value.trim_ascii();
            if transfer_encodings > 1 || !value.eq_ignore_ascii_case(b"chunked") {
                return Err(Ambiguity::UnsupportedTransferEncoding);
            }
        } else if h.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    if transfer_encodings > 0 && length.is_some() {
        return Err(Ambiguity::LengthAndChunked);
    }
    // HTTP/1.1 requires exactly one Host; HTTP/1.0 allows none, never several.
    let host_ok = if request.version == Some(1) { hosts == 1 } else { hosts <= 1 };
    if !host_ok {
        return Err(Ambiguity::HostCount);
    }
    Ok(match (transfer_encodings, length) {
        (0, None | Some(0)) => State::Head,
        (0, Some(n)) => State::Body(n),
        _ => State::Chunked(Chunk::Size { value: 0, digits: 0 }),
    })
}

/// The scanner shared between a connection's reader and its request handler.
pub type SharedScanner = Arc<Mutex<HeadScanner>>;

pub fn lock(scanner: &SharedScanner) -> std::sync::MutexGuard<'_, HeadScanner> {
    // The scanner never panics while locked; a poisoned lock still holds a consistent state.
    scanner.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A client connection whose reads are shown to a [`HeadScanner`] on their way to hyper.
///
/// It also bounds the time a request head takes, from its first byte: hyper's own header
/// timer starts when it waits for a request, so it bounds the idle wait and the head
/// together, and cannot tell a slow sender from a quiet keep-alive connection.
#[derive(Debug)]
pub struct Scanned<T> {
    inner: T,
    scanner: SharedScanner,
    head_timeout: Duration,
    /// Armed at the first byte of a head, disarmed once it is complete.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<T> Scanned<T> {
    pub fn new(inner: T, scanner: SharedScanner, head_timeout: Duration) -> Self {
        Self { inner, scanner, head_timeout, deadline: None }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Scanned<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {
                if let Some(deadline) = this.deadline.as_mut()
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    lock(&this.scanner).head_timed_out = true;
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request head did not complete in time",
                    )));
                }
                return Poll::Pending;
            }
        }
        let fresh = &buf.filled()[before..];
        if !fresh.is_empty() {
            let mid_head = {
                let mut scanner = lock(&this.scanner);
                scanner.feed(fresh);
                scanner.mid_head()
            };
            if !mid_head {
                this.deadline = None;
            } else if this.deadline.is_none() {
                this.deadline = Some(Box::pin(tokio::time::sleep(this.head_timeout)));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Scanned<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(bytes: &[u8], split: usize) -> Vec<Result<(), Ambiguity>> {
        let mut s = HeadScanner::new(16 * 1024);
        // Fed in pieces, as reads arrive.
        for piece in bytes.chunks(split.max(1)) {
            s.feed(piece);
        }
        std::iter::from_fn(|| (!s.verdicts.is_empty()).then(|| s.next_verdict())).collect()
    }

    #[test]
    fn the_end_of_a_head_is_an_empty_line_in_either_spelling() {
        for (window, end) in [
            (&b"Host: x\r\n\r\n"[..], true),
            (b"Host: x\n\n", true),
            (b"Host: x\n\r\nbody", true),
            (b"\n\n", true),
            (b"Host: x\r\n\r", false),
            (b"Host: x\r\nA: b\r\n", false),
            (b"\n\r", false),
            (b"", false),
        ] {
            assert_eq!(holds_blank_line(window), end, "{:?}", String::from_utf8_lossy(window));
        }
    }

    #[test]
    fn follows_bodies_to_the_next_head() {
        let wire = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n";
        for split in [1, 3, 7, wire.len()] {
            assert_eq!(verdicts(wire, split), vec![Ok(()), Ok(()), Ok(())], "split {split}");
        }
    }

    #[test]
    fn ambiguous_framings_are_refused() {
        let cases: &[(&[u8], Ambiguity)] = &[
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                Ambiguity::LengthAndChunked,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                Ambiguity::ConflictingLengths,
            ),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\n", Ambiguity::InvalidLength),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 03\r\n\r\n", Ambiguity::InvalidLength),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -0\r\n\r\n", Ambiguity::InvalidLength),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\n", Ambiguity::LengthList),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", Ambiguity::LengthList),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Ambiguity::UnsupportedTransferEncoding,
            ),
            (b"GET / HTTP/1.1\r\n\r\n", Ambiguity::HostCount),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Ambiguity::HostCount),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", Ambiguity::Unparsable),
        ];
        for (wire, why) in cases {
            assert_eq!(verdicts(wire, 4), vec![Err(*why)], "{}", String::from_utf8_lossy(wire));
        }
    }

    #[test]
    fn a_broken_connection_refuses_everything_after() {
        let wire =
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut s = HeadScanner::new(1024);
        s.feed(wire);
        assert_eq!(s.next_verdict(), Ok(()));
        assert_eq!(s.next_verdict(), Err(Ambiguity::Unparsable));
        assert_eq!(s.next_verdict(), Err(Ambiguity::Unparsable));
    }

    #[test]
    fn oversized_heads_break_the_scanner() {
        let mut s = HeadScanner::new(64);
        s.feed(&[b'a'; 100]);
        assert_eq!(s.next_verdict(), Err(Ambiguity::TooLarge));
    }
}
