//! A domain's control channel over the connection to its daemon (`virDomainOpenChannel`):
//! the host needs no path on the daemon's host, only the connection.
//!
//! Streams are non-blocking, so that a read can give up at its deadline (a blocking
//! `virStreamRecv` waits for ever on a guest that does not answer). Their data arrives on
//! the connection through libvirt's event loop, which [`event_loop`] runs in a thread of its
//! own; the same loop sends the connection's keepalives, so that a daemon that went away
//! silently fails calls instead of hanging them.

use std::io;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use abi::control::Channel;
use virt::stream::WOULD_BLOCK;
use virt::{Connect, Stream, sys};

use crate::control::OpenChannel;

/// How long a non-blocking stream waits between two looks when it has nothing to read.
const IDLE_POLL: Duration = Duration::from_millis(2);
/// ... and at most, as the wait grows.
const IDLE_POLL_MAX: Duration = Duration::from_millis(20);
/// How long opening a channel another stream holds is retried.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// Runs libvirt's default event loop in a thread of its own, once per process; before any
/// connection is opened, which is when libvirt looks for one. Why it could not be started
/// (libvirt missing): then non-blocking streams would never receive, and [`super::connect`]
/// refuses.
pub fn event_loop() -> Result<(), virt::Error> {
    static STARTED: OnceLock<Result<(), virt::Error>> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            virt::event::register_default_impl()?;
            std::thread::Builder::new()
                .name("libvirt-events".into())
                .spawn(|| {
                    loop {
                        if virt::event::run_default_impl().is_err() {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                })
                .map(drop)
                .map_err(|e| virt::Error::other(&format!("cannot start libvirt's event loop: {e}")))
        })
        .clone()
}

/// The channel named `port` of the domain named `domain` on the daemon behind `conn`.
#[derive(Debug)]
pub struct DomainChannel {
    pub conn: Connect,
    pub uri: String,
    pub domain: String,
    pub port: &'static str,
}

impl OpenChannel for DomainChannel {
    fn open(&self) -> io::Result<Box<dyn Channel>> {
        let failed = |e: virt::Error| io::Error::other(e.message().to_owned());
        let domain = self.conn.lookup_domain_by_name(&self.domain).map_err(failed)?;
        // The daemon lets one stream at a time hold a channel: another process's call (a
        // refresh meanwhile) ends within its timeout.
        let deadline = Instant::now() + BUSY_WAIT;
        loop {
            let stream = Stream::new(&self.conn, sys::VIR_STREAM_NONBLOCK).map_err(failed)?;
            match domain.open_channel(Some(self.port), &stream, 0) {
                Ok(()) => {
                    return Ok(Box::new(StreamChannel { stream: Some(stream), timeout: Duration::from_secs(30) }));
                }
                Err(e) if e.message().contains("Active channel stream exists") && Instant::now() < deadline => {
                    std::thread::sleep(IDLE_POLL_MAX);
                }
                Err(e) => return Err(failed(e)),
            }
        }
    }

    fn describe(&self) -> String {
        format!("{} of domain {} at {}", self.port, self.domain, self.uri)
    }
}

/// A connected, non-blocking libvirt stream read and written with a timeout.
pub struct StreamChannel {
    /// Aborted when dropped: libvirt wants a stream ended before it is freed.
    stream: Option<Stream>,
    timeout: Duration,
}

impl StreamChannel {
    fn stream(&self) -> io::Result<&Stream> {
        self.stream.as_ref().ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// Runs `step` until it makes progress (returns something other than -2, "would block")
    /// or the timeout passes.
    fn until_ready(&self, mut step: impl FnMut(&Stream) -> Result<isize, virt::Error>) -> io::Result<usize> {
        let stream = self.stream()?;
        let deadline = Instant::now() + self.timeout;
        let mut idle = IDLE_POLL;
        loop {
            match step(stream) {
                Ok(WOULD_BLOCK) => {}
                Ok(n) => return usize::try_from(n).map_err(|_| io::Error::other("the stream failed")),
                Err(e) => return Err(io::Error::new(io::ErrorKind::BrokenPipe, e.message().to_owned())),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            std::thread::sleep(idle.min(left));
            idle = (idle * 2).min(IDLE_POLL_MAX);
        }
    }
}

impl io::Read for StreamChannel {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.until_ready(|stream| stream.recv(buf))
    }
}

impl io::Write for StreamChannel {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.until_ready(|stream| stream.send(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Channel for StreamChannel {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.timeout = timeout;
        Ok(())
    }
}

impl Drop for StreamChannel {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            let _ = stream.abort();
        }
    }
}
