//! Bodies on their way through: the client's request body, bounded in size and time, and
//! the application's answer, read from its connection, which it holds (and a slot of the
//! bound on them) until it is done.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use super::exchange::{Connection, ExchangeError};
use super::forward::Home;
use super::framing::{ChunkedDecoder, Decoded, Framing};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request body was cut off; the runtime answers for it, not the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyFault {
    #[error("the request body is larger than allowed")]
    TooLarge,
    #[error("the request body did not arrive in time")]
    TimedOut,
}

/// Where a [`LimitedBody`] tells the request handler why it failed, once the body has been
/// handed to the upstream client.
#[derive(Debug, Clone, Default)]
pub struct FaultCell(Arc<AtomicU8>);

impl FaultCell {
    fn set(&self, fault: BodyFault) {
        let code = match fault {
            BodyFault::TooLarge => 1,
            BodyFault::TimedOut => 2,
        };
        self.0.store(code, Ordering::Release);
    }

    pub fn get(&self) -> Option<BodyFault> {
        match self.0.load(Ordering::Acquire) {
            1 => Some(BodyFault::TooLarge),
            2 => Some(BodyFault::TimedOut),
            _ => None,
        }
    }
}

/// A request body that fails once more than `limit` bytes have come (as they stream: a
/// chunked body has no length to check up front), or when it is not all in before its
/// deadline (a slow sender would otherwise hold an application connection for ever).
#[derive(Debug)]
pub struct LimitedBody {
    inner: Incoming,
    seen: u64,
    limit: u64,
    /// When the whole body must be in.
    due: Instant,
    /// Armed the first time the body is not there yet: a request without a body (most)
    /// never costs a timer.
    deadline: Option<Pin<Box<Sleep>>>,
    fault: FaultCell,
}

impl LimitedBody {
    /// Must be called within a tokio runtime: the deadline is `timeout` from now.
    pub fn new(inner: Incoming, limit: u64, timeout: Duration, fault: FaultCell) -> Self {
        Self { inner, seen: 0, limit, due: Instant::now() + timeout, deadline: None, fault }
    }

    fn fail(&self, fault: BodyFault) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.fault.set(fault);
        Poll::Ready(Some(Err(Box::new(fault))))
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.seen > this.limit {
                        return this.fail(BodyFault::TooLarge);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let due = this.due;
                let deadline = this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                if deadline.as_mut().poll(cx).is_ready() { this.fail(BodyFault::TimedOut) } else { Poll::Pending }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How much of the application's answer is still to come.
#[derive(Debug)]
enum Remaining {
    Nothing,
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// The application's answer, streamed back as it comes, read on the client's task from the
/// application's connection. Once read to its end the connection goes back to its pool
/// (when its framing leaves no doubt about what follows), and only then is the slot it
/// holds free: that is what bounds the connections to the application. Dropped before its
/// end, it closes the connection: the rest of the answer would come before the next.
#[derive(Debug)]
pub struct UpstreamBody {
    /// Data decoded before the answer's head was passed on (see [`Self::new`]).
    first: Option<Bytes>,
    remaining: Remaining,
    connection: Option<Connection>,
    reusable: bool,
    home: Home,
    _slot: OwnedSemaphorePermit,
}

impl UpstreamBody {
    /// The body of an answer whose head has been read from `connection`. What came with the
    /// head of a chunked body is decoded at once: a malformed chunk there is found while the
    /// client can still be answered 502, rather than after the head has gone out to it.
    pub fn new(
        mut connection: Connection,
        framing: Framing,
        reusable: bool,
        home: Home,
        slot: OwnedSemaphorePermit,
    ) -> Result<Self, ExchangeError> {
        let mut first = None;
        let remaining = match framing {
            Framing::Empty => Remaining::Nothing,
            Framing::Length(n) => Remaining::Length(n),
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::default();
                match decoder.decode(&mut connection.read)? {
                    Decoded::Data(data) => {
                        first = Some(data);
                        Remaining::Chunked(decoder)
                    }
                    Decoded::End => Remaining::Nothing,
                    Decoded::Short => Remaining::Chunked(decoder),
                }
            }
            Framing::UntilClose => Remaining::UntilClose,
        };
        let mut body = Self { first, remaining, connection: Some(connection), reusable, home, _slot: slot };
        if matches!(body.remaining, Remaining::Nothing) {
            body.finish();
        }
        Ok(body)
    }

    /// The answer is over: its connection goes back to the pool, unless anything already
    /// follows it (no request asked for that) or its framing said not to.
    fn finish(&mut self) {
        self.remaining = Remaining::Nothing;
        if let Some(connection) = self.connection.take()
            && self.reusable
            && connection.read.is_empty()
        {
            self.home.give_back(connection);
        }
    }

    fn fail(&mut self, error: ExchangeError) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        self.remaining = Remaining::Nothing;
        self.connection = None;
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = ExchangeError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        let this = &mut *self;
        if let Some(data) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        loop {
            let Some(connection) = this.connection.as_mut() else { return Poll::Ready(None) };
            let buffered = &mut connection.read;
            match &mut this.remaining {
                Remaining::Nothing => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Remaining::Length(left) if !buffered.is_empty() => {
                    let n = usize::try_from(*left).map_or(buffered.len(), |left| left.min(buffered.len()));
                    let data = buffered.split_to(n).freeze();
                    *left -= n as u64;
                    if *left == 0 {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Remaining::Chunked(decoder) => match decoder.decode(buffered) {
                    Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Decoded::End) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Decoded::Short) => {}
                    Err(e) => return this.fail(e.into()),
                },
                Remaining::UntilClose if !buffered.is_empty() => {
                    let data = buffered.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Remaining::Length(_) | Remaining::UntilClose => {}
            }
            match connection.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) if matches!(this.remaining, Remaining::UntilClose) => {
                    this.remaining = Remaining::Nothing;
                    this.connection = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => return this.fail(ExchangeError::Truncated),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return this.fail(ExchangeError::Read(e)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && matches!(self.remaining, Remaining::Nothing)
    }

    fn size_hint(&self) -> SizeHint {
        if self.first.is_some() {
            return SizeHint::default();
        }
        match self.remaining {
            Remaining::Nothing => SizeHint::with_exact(0),
            Remaining::Length(n) => SizeHint::with_exact(n),
            Remaining::Chunked(_) | Remaining::UntilClose => SizeHint::default(),
        }
    }
}
