//! The instance's own key and random seed, read first thing from the control channel
//! ([`abi::control::Provision`]) when the host marks the command line `sdsec.provision=1`.
//!
//! Read before anything asks for randomness (getrandom(2) blocks until the kernel is
//! seeded) and before the application exists. Lines are taken a byte at a time until one is
//! a provisioning line; any other (a request from a client that reached the socket before
//! the host's boot did) is passed over, unanswered. The port is then closed, which drops
//! anything unread: the host sends nothing after the line until the runtime's notice, once
//! the control thread has opened the port again.

use std::io::Read;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use abi::control::{Key, MAX_PROVISION_LINE, PORT_NAME, Provision};

use super::entropy::{self, EntropyError};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(
        "no virtio-serial port named {PORT_NAME} appeared within {0:?}; the host must give the instance a control channel"
    )]
    NoPort(Duration),
    #[error("cannot read the control port {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the host sent no key on the control channel within {0:?}")]
    Timeout(Duration),
    #[error("a line on the control channel is not the instance's key and seed: {0}")]
    Malformed(String),
    #[error(transparent)]
    Entropy(#[from] EntropyError),
}

/// Waits `wait` at most for the port and the host's line; credits the seed to the kernel
/// and returns the key.
pub fn receive(wait: Duration) -> Result<Key, ProvisionError> {
    let deadline = Instant::now() + wait;
    let port = super::port::find(PORT_NAME, deadline).ok_or(ProvisionError::NoPort(wait))?;
    let read_error = |source| ProvisionError::Read { path: port.display().to_string(), source };
    // Closed when this returns: the control thread opens the port for itself.
    let file = std::fs::File::open(&port).map_err(read_error)?;
    let provision = loop {
        let line = read_line(&file, deadline).map_err(|e| match e {
            LineError::Io(source) => read_error(source),
            LineError::Timeout => ProvisionError::Timeout(wait),
            LineError::TooLong => ProvisionError::Malformed(format!("longer than {MAX_PROVISION_LINE} bytes")),
        })?;
        if let Ok(provision) = Provision::parse(&line) {
            break provision;
        }
    };
    entropy::seed(&provision.entropy.0)?;
    Ok(provision.key)
}

#[derive(Debug)]
enum LineError {
    Io(std::io::Error),
    Timeout,
    TooLong,
}

/// One line (without its newline) from `source`, read a byte at a time so that nothing
/// after it is taken; gives up at `deadline`.
fn read_line<S: AsFd>(source: &S, deadline: Instant) -> Result<Vec<u8>, LineError>
where
    for<'a> &'a S: Read,
{
    let mut line = Vec::new();
    let mut reader = source;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LineError::Timeout);
        }
        let timeout = rustix::event::Timespec::try_from(left).ok();
        let mut fds = [rustix::event::PollFd::new(source, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(LineError::Io(e.into())),
        }
        let mut byte = [0u8; 1];
        match reader.read(&mut byte) {
            // The host end is not connected yet: the port reads as closed until it is.
            Ok(0) => std::thread::sleep(Duration::from_millis(10)),
            Ok(_) if byte[0] == b'\n' => return Ok(line),
            Ok(_) if line.len() >= MAX_PROVISION_LINE => return Err(LineError::TooLong),
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(LineError::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn one_line_is_taken_and_nothing_after_it() {
        let (mut host, guest) = UnixStream::pair().unwrap();
        let provision = Provision::draw(Key::generate().unwrap()).unwrap();
        host.write_all(format!("{}{{\"next\":1}}\n", provision.line()).as_bytes()).unwrap();
        let line = read_line(&guest, Instant::now() + Duration::from_secs(5)).unwrap();
        assert_eq!(Provision::parse(&line).unwrap(), provision);
        let mut rest = [0u8; 11];
        (&guest).read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b"{\"next\":1}\n", "nothing after the line is read");
    }

    #[test]
    fn silence_ends_at_the_deadline_and_an_endless_line_is_refused() {
        let (mut host, guest) = UnixStream::pair().unwrap();
        let started = Instant::now();
        assert!(matches!(read_line(&guest, started + Duration::from_millis(200)), Err(LineError::Timeout)));
        assert!(started.elapsed() < Duration::from_secs(5));
        host.write_all(&[b'x'; MAX_PROVISION_LINE + 10]).unwrap();
        assert!(matches!(read_line(&guest, Instant::now() + Duration::from_secs(5)), Err(LineError::TooLong)));
    }
}
