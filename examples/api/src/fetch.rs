//! `--fetch http://IPV4:PORT/path`: `GET /fetch` sends `GET path` to that upstream and
//! reports the status it answered, so tests can see which east-west flows the network lets
//! through. The URL is parsed by hand: IPv4 hosts only, no names to resolve.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::Duration;

/// Connect, write and read timeouts of one fetch.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// The longest status line read from an upstream.
const MAX_STATUS_LINE: u64 = 8 * 1024;

/// Where `GET /fetch` sends its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub addr: SocketAddrV4,
    /// The request target: the URL's path (and query), `/` when the URL has none.
    pub path: String,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.addr, self.path)
    }
}

/// Parses `http://HOST[:PORT][/path]`, HOST an IPv4 address; the port defaults to 80.
pub fn parse_url(url: &str) -> Result<Upstream, String> {
    let bad = |why: &str| format!("--fetch wants http://IPV4:PORT/path, not `{url}`: {why}");
    let rest = url.strip_prefix("http://").ok_or_else(|| bad("only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    if path.chars().any(|c| c.is_ascii_whitespace() || c.is_ascii_control()) {
        return Err(bad("the path holds blanks or control characters"));
    }
    if authority.contains('@') {
        return Err(bad("user information is not supported"));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => {
            let port = port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("the port is not 1-65535"))?;
            (host, port)
        }
        None => (authority, 80),
    };
    let ip: Ipv4Addr = host.parse().map_err(|_| bad("the host is not an IPv4 address"))?;
    let path = path.split('#').next().unwrap_or(path).to_owned();
    Ok(Upstream { addr: SocketAddrV4::new(ip, port), path })
}

/// Why an upstream gave no HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    Refused,
    TimedOut,
    Unreachable,
    /// Closed or reset before a status line arrived.
    Closed,
    /// Something that is not an HTTP/1.x status line.
    NotHttp,
    Other(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused => f.write_str("connection refused"),
            Self::TimedOut => write!(f, "timed out after {} s", TIMEOUT.as_secs()),
            Self::Unreachable => f.write_str("unreachable"),
            Self::Closed => f.write_str("connection closed before an HTTP status"),
            Self::NotHttp => f.write_str("the answer is not HTTP"),
            Self::Other(e) => f.write_str(e),
        }
    }
}

impl From<std::io::Error> for FetchError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => Self::Refused,
            K::TimedOut | K::WouldBlock => Self::TimedOut,
            K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => Self::Unreachable,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => Self::Closed,
            _ => Self::Other(e.to_string()),
        }
    }
}

/// Sends `GET path` to the upstream and returns the status it answered.
pub fn get(upstream: &Upstream) -> Result<u16, FetchError> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::V4(upstream.addr), TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let request = format!("GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", upstream.path, upstream.addr);
    stream.write_all(request.as_bytes())?;
    let mut line = Vec::new();
    BufReader::new(stream.take(MAX_STATUS_LINE)).read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(FetchError::Closed);
    }
    let line = String::from_utf8_lossy(&line);
    let mut parts = line.split(' ');
    match (parts.next(), parts.next()) {
        (Some("HTTP/1.1" | "HTTP/1.0"), Some(code)) if code.len() == 3 => {
            code.parse().ok().filter(|c| (100..600).contains(c)).ok_or(FetchError::NotHttp)
        }
        _ => Err(FetchError::NotHttp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let up = parse_url("http://10.213.0.3:80/health").unwrap();
        assert_eq!((up.addr, up.path.as_str()), ("10.213.0.3:80".parse().unwrap(), "/health"));
        assert_eq!(up.to_string(), "http://10.213.0.3:80/health");
        let up = parse_url("http://198.18.1.2:9000").unwrap();
        assert_eq!((up.addr.port(), up.path.as_str()), (9000, "/"));
        assert_eq!(parse_url("http://127.0.0.1/a/b?x=1#frag").unwrap().path, "/a/b?x=1");
        assert_eq!(parse_url("http://127.0.0.1/").unwrap().addr.port(), 80);
        for bad in [
            "https://10.0.0.1:443/",
            "10.0.0.1:80/",
            "http://example.com:80/",
            "http://[::1]:80/",
            "http://10.0.0.1:0/",
            "http://10.0.0.1:70000/",
            "http://10.0.0.1:x/",
            "http://10.0.0.1:/",
            "http://u@10.0.0.1:80/",
            "http://10.0.0.1:80/a b",
            "http://:80/",
            "http://300.1.1.1:80/",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn io_errors_name_the_reason() {
        use std::io::{Error, ErrorKind};
        assert_eq!(FetchError::from(Error::from(ErrorKind::ConnectionRefused)).to_string(), "connection refused");
        assert!(FetchError::from(Error::from(ErrorKind::WouldBlock)).to_string().starts_with("timed out"));
        assert_eq!(FetchError::from(Error::from(ErrorKind::HostUnreachable)).to_string(), "unreachable");
        assert_eq!(FetchError::from(Error::from(ErrorKind::NetworkUnreachable)), FetchError::Unreachable);
    }
}
