//! Starts the real binary on a free port and talks HTTP/1.1 to it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    start_with(&[])
}

fn start_with(extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sdsec-example-api"))
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("a first line");
    let addr = line.trim().strip_prefix("listening on ").expect("the bound address").to_owned();
    Server { child, addr }
}

/// Reads one response: status, headers (lower-case names) and body, by Content-Length.
fn response(reader: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>, String) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap();
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, headers, String::from_utf8(body).unwrap())
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection_and_unknown_paths_are_404() {
    let server = start();
    let stream = TcpStream::connect(&server.addr).unwrap();
    let mut out = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);

    out.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let (status, headers, body) = response(&mut reader);
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    assert!(!headers.iter().any(|(n, v)| n == "connection" && v == "close"), "{headers:?}");

    let item = r#"{"name":"first"}"#;
    write!(out, "POST /items HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{item}", item.len()).unwrap();
    let (status, _, body) = response(&mut reader);
    assert_eq!((status, body.as_str()), (201, r#"{"id":1,"name":"first"}"#));

    out.write_all(b"GET /nowhere HTTP/1.1\r\nHost: t\r\nX-Sdsec-Principal: alice\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (status, headers, body) = response(&mut reader);
    assert_eq!((status, body.as_str()), (404, r#"{"error":"not found"}"#));
    assert!(headers.iter().any(|(n, v)| n == "connection" && v == "close"), "{headers:?}");
    // The server closes after `Connection: close`.
    let mut rest = Vec::new();
    assert_eq!(reader.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn whoami_echoes_the_headers_the_pep_adds() {
    let server = start();
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.write_all(b"GET /whoami HTTP/1.1\r\nHost: t\r\nX-Sdsec-Principal: alice\r\nX-Other: no\r\n\r\n").unwrap();
    let (status, _, body) = response(&mut BufReader::new(stream));
    assert_eq!((status, body.as_str()), (200, r#"{"x-sdsec-principal":"alice"}"#));
}

#[test]
fn fetch_reports_what_the_configured_upstream_answers() {
    let upstream = start();
    let server = start_with(&["--fetch", &format!("http://{}/health", upstream.addr)]);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.write_all(b"GET /fetch HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let (status, _, body) = response(&mut BufReader::new(stream));
    assert_eq!((status, body.as_str()), (200, r#"{"upstream_status":200}"#));

    let bad =
        Command::new(env!("CARGO_BIN_EXE_sdsec-example-api")).args(["--fetch", "http://localhost/"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("the host is not an IPv4 address"));
}
