//! The host's side: one request, one authenticated reply.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Command, Key, Notice, Reply, Request, Resume};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the control socket {path}: {source}; is the instance running?")]
    Connect { path: PathBuf, source: std::io::Error },
    #[error("the control channel {path} failed: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no answer on the control channel {0} within {1:?}; the guest may be paused or not running its runtime")]
    Timeout(PathBuf, Duration),
    #[error("the answer on the control channel {0} is not a reply: {1}")]
    Malformed(PathBuf, String),
    #[error("the reply on the control channel {0} is not authenticated by the instance's key; it was ignored")]
    Forged(PathBuf),
    #[error("the runtime refused the request: {0}")]
    Refused(String),
}

/// Microseconds since the epoch: larger than any earlier request's, without a counter kept
/// on the host.
pub fn next_seq() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_micros() as u64)
}

/// Sends `command` and returns the runtime's authenticated reply (an `Err` when it refused).
pub fn call(socket: &Path, key: &Key, command: Command, timeout: Duration) -> Result<Reply, ClientError> {
    call_answered_with(socket, key, key, command, timeout)
}

/// Resumes a copy restored from a snapshot whose key is `snapshot_key`: the reply comes
/// authenticated with the copy's new key, which proves the copy took it.
pub fn resume(socket: &Path, snapshot_key: &Key, resume: Resume, timeout: Duration) -> Result<Reply, ClientError> {
    let new_key = resume.key.clone();
    call_answered_with(socket, snapshot_key, &new_key, Command::Resume(resume), timeout)
}

fn call_answered_with(
    socket: &Path,
    key: &Key,
    reply_key: &Key,
    command: Command,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    let request = Request::new(key, next_seq(), command);
    let reply = exchange(socket, &request, timeout)?;
    // A refusal comes under the key the request was made with: the key did not change.
    let authentic = reply.verify(reply_key) || (!reply.ok && reply.verify(key));
    if reply.seq != request.seq || !authentic {
        return Err(ClientError::Forged(socket.to_owned()));
    }
    if !reply.ok {
        return Err(ClientError::Refused(reply.error.unwrap_or_default()));
    }
    Ok(reply)
}

/// Sends a request as it is and returns the reply to it, unverified.
pub fn exchange(socket: &Path, request: &Request, timeout: Duration) -> Result<Reply, ClientError> {
    let io = |source| ClientError::Io { path: socket.to_owned(), source };
    let stream =
        UnixStream::connect(socket).map_err(|source| ClientError::Connect { path: socket.to_owned(), source })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_string(request).map_err(|e| io(std::io::Error::other(e)))?;
    line.push('\n');
    (&stream).write_all(line.as_bytes()).map_err(io)?;
    let mut reader = BufReader::new(&stream);
    loop {
        let mut answer = String::new();
        match reader.read_line(&mut answer) {
            Ok(0) => return Err(io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(ClientError::Timeout(socket.to_owned(), timeout));
            }
            Err(e) => return Err(io(e)),
        }
        let reply: Reply = match serde_json::from_str(answer.trim()) {
            Ok(reply) => reply,
            // Told unasked, to whoever waited for the boot: not an answer to this request.
            Err(_) if serde_json::from_str::<Notice>(answer.trim()).is_ok() => continue,
            Err(e) => return Err(ClientError::Malformed(socket.to_owned(), e.to_string())),
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
