//! The readiness probe: one plain HTTP/1.1 GET, answered 200 by the enforcement runtime's
//! health path once the application is up.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// How the host tells that a booting instance serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The address the host's probe comes from as the guest sees it (QEMU's user network:
    /// 10.0.2.2; a bridge: its gateway address). Named in errors: it is what ingress rules
    /// must admit for the probe to be answered.
    pub source: IpAddr,
    /// Whether to send the HTTP probe at all. `false` when the node's ingress rules refuse
    /// `source`: the runtime's `ready` event on the audit channel (it has passed one request
    /// to the application and got an answer) is then the readiness.
    pub http: bool,
}

impl Default for Probe {
    /// An HTTP probe from QEMU's user network.
    fn default() -> Probe {
        Probe { source: IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2)), http: true }
    }
}

/// Why a probe got no status code.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The peer accepted, then closed or reset the connection before any answer: what an
    /// ingress rule that drops the probe's source looks like.
    #[error("the connection was {0} without an answer")]
    Dropped(&'static str),
    #[error("no answer: {0}")]
    Io(std::io::Error),
    #[error("not an HTTP answer: {0:?}")]
    NotHttp(String),
}

impl ProbeError {
    /// Whether the connection was closed or reset without an answer.
    pub fn dropped(&self) -> bool {
        matches!(self, ProbeError::Dropped(_))
    }
}

fn read_failed(e: std::io::Error) -> ProbeError {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            ProbeError::Dropped("reset")
        }
        _ => ProbeError::Io(e),
    }
}

/// The status code of `GET path` at `addr`, or why there was none.
pub fn http_status(addr: SocketAddr, path: &str, timeout: Duration) -> Result<u16, ProbeError> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(ProbeError::Connect)?;
    stream.set_read_timeout(Some(timeout)).map_err(ProbeError::Io)?;
    stream.set_write_timeout(Some(timeout)).map_err(ProbeError::Io)?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: sdsec-probe\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(read_failed)?;
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < 12 {
        match stream.read(&mut head[len..]).map_err(read_failed)? {
            0 if len == 0 => return Err(ProbeError::Dropped("closed")),
            0 => break,
            n => len += n,
        }
    }
    let line = String::from_utf8_lossy(&head[..len]).into_owned();
    let code = line.strip_prefix("HTTP/1.1 ").or_else(|| line.strip_prefix("HTTP/1.0 ")).and_then(|r| r.get(..3));
    code.and_then(|c| c.parse().ok()).ok_or(ProbeError::NotHttp(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn reads_the_status_and_refuses_garbage() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for answer in ["HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", "SSH-2.0-nope\r\n", ""] {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).unwrap();
                s.write_all(answer.as_bytes()).unwrap();
            }
        });
        assert_eq!(http_status(addr, "/health", Duration::from_secs(5)).unwrap(), 200);
        let garbage = http_status(addr, "/health", Duration::from_secs(5)).unwrap_err();
        assert!(garbage.to_string().contains("not an HTTP") && !garbage.dropped(), "{garbage}");
        let closed = http_status(addr, "/health", Duration::from_secs(5)).unwrap_err();
        assert!(closed.dropped(), "accepted and closed without a byte: {closed}");
        server.join().unwrap();
    }
}
