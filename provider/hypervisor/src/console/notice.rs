//! The control channel while an instance boots: the instance's key and random seed written
//! first ([`abi::control::Provision`]), then the runtime's ready notice
//! ([`abi::control::Notice`]), how the host learns that a boot is over as soon as it is,
//! rather than at its next look at the audit log. The runtime's write waits while no host is
//! connected, so a notice written before this listener connects is not lost; and QEMU takes
//! nothing from the socket before init opens the port, so the provisioning line waits too.

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use abi::control::{Channel, Key, Notice, NoticeKind, Provision};

use crate::control::ControlChannel;

/// Bytes of unfinished line kept at most: notices are short, anything longer is not one.
const LONGEST_LINE: usize = 64 * 1024;
/// How long writing the provisioning line may take at least (it fits any socket buffer).
const PROVISION_WRITE: Duration = Duration::from_secs(1);

/// Listens on one instance's control channel while it boots.
pub(super) struct NoticeListener {
    channel: ControlChannel,
    key: Key,
    /// Written once, on the first connection that takes it.
    provision: Option<Provision>,
    stream: Option<Box<dyn Channel>>,
    partial: Vec<u8>,
    ready: bool,
    /// A ready notice came under another key: the guest took a key that was not ours.
    forged: bool,
}

impl std::fmt::Debug for NoticeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoticeListener")
            .field("channel", &self.channel)
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl NoticeListener {
    /// `provision` (the guest's key and seed) is written as soon as the socket is there.
    pub(super) fn new(channel: ControlChannel, key: Key, provision: Provision) -> NoticeListener {
        NoticeListener {
            channel,
            key,
            provision: Some(provision),
            stream: None,
            partial: Vec::new(),
            ready: false,
            forged: false,
        }
    }

    /// Connects when QEMU has made the socket, and hands over what is still to provision.
    fn connect(&mut self, wait: Duration) {
        let Ok(mut stream) = self.channel.open() else { return };
        if let Some(provision) = &self.provision {
            // A short line into the socket's buffer: QEMU passes it on once init reads.
            let written = stream
                .set_timeout(wait.max(PROVISION_WRITE))
                .and_then(|()| stream.write_all(provision.line().as_bytes()))
                .and_then(|()| stream.flush());
            if written.is_err() {
                return;
            }
            self.provision = None;
        }
        self.stream = Some(stream);
    }

    /// Whether it holds the channel (so that a notice ends a wait at once).
    pub(super) fn connected(&self) -> bool {
        self.stream.is_some()
    }

    /// Whether a ready notice came under another key than the instance's.
    pub(super) fn forged(&self) -> bool {
        self.forged
    }

    /// Waits `wait` at most for the ready notice; true once it came, authenticated by the
    /// instance's key. Anything else on the channel is ignored: the audit log stays the
    /// judge of failures, and of readiness where no notice comes.
    pub(super) fn wait(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while !self.ready && !self.forged {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if self.stream.is_none() {
                // QEMU makes the socket a moment after it starts.
                self.connect(left);
            }
            let Some(stream) = &mut self.stream else {
                std::thread::sleep(left);
                break;
            };
            let mut chunk = [0u8; 4096];
            let read = stream.set_timeout(left).and_then(|()| stream.read(&mut chunk));
            match read {
                Ok(0) => {
                    // QEMU closed its end: it is going away; the caller sees to that.
                    self.stream = None;
                    std::thread::sleep(left);
                    break;
                }
                Ok(n) => self.take(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
                Err(_) => self.stream = None,
            }
        }
        self.ready
    }

    fn take(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let notice = serde_json::from_slice::<Notice>(&line);
            let Ok(notice) = notice else { continue };
            if notice.notice == NoticeKind::Ready {
                let genuine = notice.verify(&self.key);
                self.ready |= genuine;
                self.forged |= !genuine;
            }
        }
        if self.partial.len() > LONGEST_LINE {
            self.partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::path::Path;

    fn socket(path: &Path) -> ControlChannel {
        ControlChannel::Socket(path.to_owned())
    }

    fn provision(key: &Key) -> Provision {
        Provision::draw(key.clone()).unwrap()
    }

    fn line(notice: &Notice) -> String {
        format!("{}\n", serde_json::to_string(notice).unwrap())
    }

    #[test]
    fn only_a_ready_notice_under_the_instance_key_counts_and_it_counts_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let socket_path = dir.path().join("control.sock");
        let key = Key::generate().unwrap();
        let mut listener = NoticeListener::new(socket(&socket_path), key.clone(), provision(&key));
        // No socket yet: waits and says not yet.
        assert!(!listener.wait(Duration::from_millis(20)));

        let server = UnixListener::bind(&socket_path).unwrap();
        let genuine = Notice::new(&key, NoticeKind::Ready, "sha256:ab".into());
        let (go_on, told) = std::sync::mpsc::channel::<()>();
        let guest = std::thread::spawn(move || {
            let (mut stream, _) = server.accept().unwrap();
            stream.write_all(b"not json\n").unwrap();
            // A notice cut off by a newline in the middle is no notice.
            stream.write_all(&line(&genuine).as_bytes()[..20]).unwrap();
            stream.write_all(b"\n").unwrap();
            told.recv().unwrap();
            // Split across writes, as a virtio port may deliver it.
            let text = line(&genuine);
            let (first, rest) = text.split_at(10);
            stream.write_all(first.as_bytes()).unwrap();
            stream.write_all(rest.as_bytes()).unwrap();
            let _ = told.recv();
        });
        // Neither the garbage nor the broken notice ends the wait.
        assert!(!listener.wait(Duration::from_millis(300)));
        go_on.send(()).unwrap();
        let waiting = Instant::now();
        assert!(listener.wait(Duration::from_secs(30)));
        assert!(waiting.elapsed() < Duration::from_secs(10), "waited {:?} after the notice", waiting.elapsed());
        assert!(listener.wait(Duration::ZERO), "ready stays ready");
        drop(go_on);
        drop(listener);
        guest.join().unwrap();
    }

    #[test]
    fn a_forged_or_other_line_is_not_readiness_and_a_forged_notice_is_told() {
        let key = Key::generate().unwrap();
        let mut listener = NoticeListener::new(socket(Path::new("/nonexistent")), key.clone(), provision(&key));
        listener.take(b"{\"seq\":1,\"ok\":true,\"mac\":\"00\"}\n");
        listener.take(&[b'x'; LONGEST_LINE + 1]);
        assert!(!listener.ready && !listener.forged());
        assert!(listener.partial.is_empty(), "an overlong line is dropped, not kept");
        listener.take(line(&Notice::new(&key, NoticeKind::Ready, "sha256:ab".into())).as_bytes());
        assert!(listener.ready && !listener.forged());
        // A ready notice under another key: the guest holds a key this host did not give it.
        let forged = Notice::new(&Key::generate().unwrap(), NoticeKind::Ready, "sha256:ab".into());
        let mut listener = NoticeListener::new(socket(Path::new("/nonexistent")), key.clone(), provision(&key));
        listener.take(line(&forged).as_bytes());
        assert!(!listener.ready && listener.forged());
        assert!(!listener.wait(Duration::from_secs(5)), "a forged notice ends the wait, unready");
    }
}
