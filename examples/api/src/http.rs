//! Just enough HTTP/1.1: requests with a Content-Length body (or none), keep-alive, and
//! JSON answers. Bounded, so one client cannot make the server hold much memory.

use std::fmt;
use std::io::{BufRead, Read, Write};

pub const MAX_HEAD: usize = 16 * 1024;
pub const MAX_BODY: usize = 64 * 1024;

/// Why a request could not be read; each maps to the status answered before closing.
#[derive(Debug)]
pub enum HttpError {
    Io(std::io::Error),
    Malformed(&'static str),
    HeadTooLarge,
    BodyTooLarge,
    /// Chunked and other transfer codings are not supported.
    TransferEncoding,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Malformed(why) => write!(f, "malformed request: {why}"),
            Self::HeadTooLarge => write!(f, "request head over {MAX_HEAD} bytes"),
            Self::BodyTooLarge => write!(f, "request body over {MAX_BODY} bytes"),
            Self::TransferEncoding => write!(f, "Transfer-Encoding is not supported: send a Content-Length"),
        }
    }
}

impl std::error::Error for HttpError {}

impl HttpError {
    /// The status to answer with, if the connection can still carry an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Io(_) => None,
            Self::Malformed(_) => Some(400),
            Self::HeadTooLarge => Some(431),
            Self::BodyTooLarge => Some(413),
            Self::TransferEncoding => Some(501),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Reads one request. `Ok(None)`: the client closed the connection between requests.
pub fn read_request(reader: &mut impl BufRead) -> Result<Option<Request>, HttpError> {
    let mut head_bytes = 0;
    let mut line = String::new();
    // Blank lines before a request line are tolerated (RFC 9112 section 2.2).
    loop {
        line.clear();
        if read_line(reader, &mut line, &mut head_bytes)? == 0 {
            return Ok(None);
        }
        if !line.trim_end().is_empty() {
            break;
        }
    }
    let mut parts = line.trim_end().split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed("the request line is not METHOD TARGET VERSION"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HttpError::Malformed("bad method"));
    }
    if !target.starts_with('/') {
        return Err(HttpError::Malformed("the target is not an absolute path"));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(HttpError::Malformed("not HTTP/1.0 or HTTP/1.1")),
    };
    let path = target.split('?').next().unwrap_or(target).to_owned();
    let (method, mut headers) = (method.to_owned(), Vec::new());
    loop {
        line.clear();
        if read_line(reader, &mut line, &mut head_bytes)? == 0 {
            return Err(HttpError::Malformed("the connection closed inside the head"));
        }
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').ok_or(HttpError::Malformed("a header line has no colon"))?;
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(HttpError::Malformed("bad header name"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut request = Request { method, path, headers, body: Vec::new(), keep_alive: http11 };
    if request.header("transfer-encoding").is_some() {
        return Err(HttpError::TransferEncoding);
    }
    let mut lengths = request.headers.iter().filter(|(n, _)| n == "content-length").map(|(_, v)| v.as_str());
    let length = match (lengths.next(), lengths.next()) {
        (None, _) => 0,
        (Some(v), None) => v.parse::<usize>().map_err(|_| HttpError::Malformed("bad Content-Length"))?,
        (Some(_), Some(_)) => return Err(HttpError::Malformed("more than one Content-Length")),
    };
    if length > MAX_BODY {
        return Err(HttpError::BodyTooLarge);
    }
    request.body.resize(length, 0);
    reader.read_exact(&mut request.body).map_err(HttpError::Io)?;
    let mut keep_alive = request.keep_alive;
    for token in request.header("connection").unwrap_or_default().split(',') {
        match token.trim().to_ascii_lowercase().as_str() {
            "close" => keep_alive = false,
            "keep-alive" => keep_alive = true,
            _ => {}
        }
    }
    request.keep_alive = keep_alive;
    Ok(Some(request))
}

/// Reads one line, counting it against the head limit before it is all buffered.
fn read_line(reader: &mut impl BufRead, line: &mut String, used: &mut usize) -> Result<usize, HttpError> {
    let left = MAX_HEAD.saturating_sub(*used);
    let mut limited = reader.take(left as u64 + 1);
    let n = limited.read_line(line).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => HttpError::Malformed("the head is not UTF-8"),
        _ => HttpError::Io(e),
    })?;
    *used += n;
    if *used > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    Ok(n)
}

/// One JSON answer (no body for 204).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Option<serde_json::Value>,
}

impl Response {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self { status, body: Some(body) }
    }

    pub fn error(status: u16, message: &str) -> Self {
        Self::json(status, serde_json::json!({ "error": message }))
    }

    pub fn write_to(&self, out: &mut impl Write, keep_alive: bool) -> std::io::Result<()> {
        let body = self.body.as_ref().map(|b| b.to_string()).unwrap_or_default();
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        if self.body.is_some() {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        if !keep_alive {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        head.push_str(&body);
        out.write_all(head.as_bytes())?;
        out.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn parse(text: &str) -> Result<Option<Request>, HttpError> {
        read_request(&mut Cursor::new(text.as_bytes().to_vec()))
    }

    #[test]
    fn requests_with_and_without_bodies() {
        let r = parse("GET /items?x=1 HTTP/1.1\r\nHost: a\r\nX-Sdsec-Principal: alice\r\n\r\n").unwrap().unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str(), r.keep_alive), ("GET", "/items", true));
        assert_eq!(r.header("x-sdsec-principal"), Some("alice"));
        let r =
            parse("POST /items HTTP/1.1\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{\"a\":1}").unwrap().unwrap();
        assert_eq!((r.body.as_slice(), r.keep_alive), (&b"{\"a\":1}"[..], false));
        let r = parse("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!r.keep_alive);
        assert!(parse("").unwrap().is_none());
    }

    #[test]
    fn two_requests_on_one_stream() {
        let mut stream = Cursor::new(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n".to_vec());
        assert_eq!(read_request(&mut stream).unwrap().unwrap().path, "/a");
        assert_eq!(read_request(&mut stream).unwrap().unwrap().path, "/b");
        assert!(read_request(&mut stream).unwrap().is_none());
    }

    #[test]
    fn bad_requests_get_a_status() {
        let status = |text: &str| parse(text).err().and_then(|e| e.status());
        assert_eq!(status("GET /\r\n\r\n"), Some(400));
        assert_eq!(status("get / HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(status("GET / HTTP/2\r\n\r\n"), Some(400));
        assert_eq!(status("GET / HTTP/1.1\r\nno colon\r\n\r\n"), Some(400));
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"), Some(400));
        assert_eq!(status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), Some(501));
        assert_eq!(status(&format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1)), Some(413));
        assert_eq!(status(&format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD))), Some(431));
    }
}
