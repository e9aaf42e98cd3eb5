//! Data streams (`virStream*`): volume transfers and domain channels.

use crate::Connect;
use crate::error::{Error, check};

handle!(
    /// A stream over a connection.
    Stream,
    virStreamRef,
    virStreamFree
);

/// What a non-blocking stream's send or receive returns when it would block.
pub const WOULD_BLOCK: isize = -2;

impl Stream {
    /// A new stream on `conn` (`VIR_STREAM_NONBLOCK` in `flags` for a non-blocking one).
    pub fn new(conn: &Connect, flags: u32) -> Result<Stream, Error> {
        // SAFETY: a live connection; the stream returned is ours.
        Stream::own(conn.api, unsafe { (conn.api.virStreamNew)(conn.raw(), flags) })
    }

    /// Sends bytes of `data`: how many, or [`WOULD_BLOCK`].
    pub fn send(&self, data: &[u8]) -> Result<isize, Error> {
        // SAFETY: `data` is readable for its length during the call.
        let n = unsafe { (self.api.virStreamSend)(self.raw(), data.as_ptr().cast(), data.len()) };
        self.progress(n)
    }

    /// Receives into `buffer`: how many bytes (0 at the end), or [`WOULD_BLOCK`].
    pub fn recv(&self, buffer: &mut [u8]) -> Result<isize, Error> {
        // SAFETY: `buffer` is writable for its length during the call.
        let n = unsafe { (self.api.virStreamRecv)(self.raw(), buffer.as_mut_ptr().cast(), buffer.len()) };
        self.progress(n)
    }

    fn progress(&self, n: i32) -> Result<isize, Error> {
        let n = n as isize;
        if n == WOULD_BLOCK { Ok(n) } else { check(self.api, n as i32).map(|n| n as isize) }
    }

    /// Ends a transfer, after which the daemon says whether it completed.
    pub fn finish(&self) -> Result<(), Error> {
        // SAFETY: a live stream.
        check(self.api, unsafe { (self.api.virStreamFinish)(self.raw()) }).map(drop)
    }

    /// Ends a transfer early.
    pub fn abort(&self) -> Result<(), Error> {
        // SAFETY: a live stream.
        check(self.api, unsafe { (self.api.virStreamAbort)(self.raw()) }).map(drop)
    }
}
