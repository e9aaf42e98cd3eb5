//! Bodies on their way through: the client's request body, bounded in size and time, and
//! the application's answer, which holds its upstream connection slot until it is done.

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

/// The application's answer, streamed back as it comes. It holds one of the slots bounding
/// the connections to the application until it is read to its end or dropped: only then is
/// its connection free for another request.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Incoming,
    _slot: OwnedSemaphorePermit,
}

impl UpstreamBody {
    pub fn new(inner: Incoming, slot: OwnedSemaphorePermit) -> Self {
        Self { inner, _slot: slot }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
