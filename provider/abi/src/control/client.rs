//! The host's side: one request, one authenticated reply, over whatever carries the
//! channel ([`Channel`]): QEMU's unix socket here, a libvirt stream for a daemon elsewhere.

use std::io::{BufRead as _, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Command, Key, Notice, Reply, Request, Resume};

/// A connected control channel. Reads and writes past the timeout fail with
/// [`std::io::ErrorKind::TimedOut`] or [`std::io::ErrorKind::WouldBlock`].
pub trait Channel: Read + Write {
    fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()>;
}

impl Channel for UnixStream {
    fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        // Zero means "no timeout" to the socket; the caller means "now".
        let timeout = Some(timeout.max(Duration::from_millis(1)));
        self.set_read_timeout(timeout)?;
        self.set_write_timeout(timeout)
    }
}

/// Errors name the channel by `where_`: a socket's path, or a domain's channel and daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the control channel {where_}: {source}; is the instance running?")]
    Connect { where_: String, source: std::io::Error },
    #[error("the control channel {where_} failed: {source}")]
    Io { where_: String, source: std::io::Error },
    #[error("no answer on the control channel {0} within {1:?}; the guest may be paused or not running its runtime")]
    Timeout(String, Duration),
    #[error("the answer on the control channel {0} is not a reply: {1}")]
    Malformed(String, String),
    #[error("the reply on the control channel {0} is not authenticated by the instance's key; it was ignored")]
    Forged(String),
    #[error("the runtime refused the request: {0}")]
    Refused(String),
}

/// Connects to the control socket at `socket`.
pub fn connect(socket: &Path) -> Result<UnixStream, ClientError> {
    UnixStream::connect(socket).map_err(|source| ClientError::Connect { where_: socket.display().to_string(), source })
}

/// Microseconds since the epoch: larger than any earlier request's, without a counter kept
/// on the host.
pub fn next_seq() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_micros() as u64)
}

/// Sends `command` on the socket at `socket` and returns the runtime's authenticated reply
/// (an `Err` when it refused).
pub fn call(socket: &Path, key: &Key, command: Command, timeout: Duration) -> Result<Reply, ClientError> {
    call_on(&mut connect(socket)?, &socket.display().to_string(), key, command, timeout)
}

/// [`call`] on a channel already connected, named `where_` in errors.
pub fn call_on(
    channel: &mut dyn Channel,
    where_: &str,
    key: &Key,
    command: Command,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    call_answered_with(channel, where_, key, key, command, timeout)
}

/// Resumes a copy restored from a snapshot whose key is `snapshot_key`: the reply comes
/// authenticated with the copy's new key, which proves the copy took it.
pub fn resume(socket: &Path, snapshot_key: &Key, resume: Resume, timeout: Duration) -> Result<Reply, ClientError> {
    let new_key = resume.key.clone();
    let where_ = socket.display().to_string();
    call_answered_with(&mut connect(socket)?, &where_, snapshot_key, &new_key, Command::Resume(resume), timeout)
}

fn call_answered_with(
    channel: &mut dyn Channel,
    where_: &str,
    key: &Key,
    reply_key: &Key,
    command: Command,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    let request = Request::new(key, next_seq(), command);
    let reply = exchange_on(channel, where_, &request, timeout)?;
    // A refusal comes under the key the request was made with: the key did not change.
    let authentic = reply.verify(reply_key) || (!reply.ok && reply.verify(key));
    if reply.seq != request.seq || !authentic {
        return Err(ClientError::Forged(where_.to_owned()));
    }
    if !reply.ok {
        return Err(ClientError::Refused(reply.error.unwrap_or_default()));
    }
    Ok(reply)
}

/// Sends a request as it is on a connected channel, named `where_` in errors, and returns
/// the reply to it, unverified.
pub fn exchange_on(
    channel: &mut dyn Channel,
    where_: &str,
    request: &Request,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    let io = |source| ClientError::Io { where_: where_.to_owned(), source };
    let timed_out =
        |e: &std::io::Error| matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
    channel.set_timeout(timeout).map_err(io)?;
    let mut line = serde_json::to_string(request).map_err(|e| io(std::io::Error::other(e)))?;
    line.push('\n');
    match channel.write_all(line.as_bytes()).and_then(|()| channel.flush()) {
        Ok(()) => {}
        Err(e) if timed_out(&e) => return Err(ClientError::Timeout(where_.to_owned(), timeout)),
        Err(e) => return Err(io(e)),
    }
    let mut reader = BufReader::new(channel);
    loop {
        let mut answer = String::new();
        match reader.read_line(&mut answer) {
            Ok(0) => return Err(io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(e) if timed_out(&e) => return Err(ClientError::Timeout(where_.to_owned(), timeout)),
            Err(e) => return Err(io(e)),
        }
        let reply: Reply = match serde_json::from_str(answer.trim()) {
            Ok(reply) => reply,
            // Told unasked, to whoever waited for the boot: not an answer to this request.
            Err(_) if serde_json::from_str::<Notice>(answer.trim()).is_ok() => continue,
            Err(e) => return Err(ClientError::Malformed(where_.to_owned(), e.to_string())),
        };
        // A reply to an earlier, abandoned request may still be queued: skip it.
        if reply.seq < request.seq {
            continue;
        }
        return Ok(reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::NoticeKind;
    use std::os::unix::net::UnixListener;

    /// A runtime that told the boot it was ready before this client connected: the notice
    /// is still queued, and the client takes the reply after it.
    #[test]
    fn a_queued_notice_is_skipped_and_the_reply_taken() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let key = Key::generate().unwrap();
        let guest_key = key.clone();
        let guest = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            let request: Request = serde_json::from_str(&line).unwrap();
            let notice = Notice::new(&guest_key, NoticeKind::Ready, "sha256:ab".into());
            let reply = Reply::new(&guest_key, request.seq, Ok("sha256:ab".into()));
            for line in [serde_json::to_string(&notice).unwrap(), serde_json::to_string(&reply).unwrap()] {
                (&stream).write_all(format!("{line}\n").as_bytes()).unwrap();
            }
        });
        let reply = call(&socket, &key, Command::Status, Duration::from_secs(5)).unwrap();
        assert_eq!(reply.digest.as_deref(), Some("sha256:ab"));
        guest.join().unwrap();
    }
}
