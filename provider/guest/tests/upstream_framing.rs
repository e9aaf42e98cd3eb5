//! An application whose answers are malformed or ambiguous (it may be hostile): the client
//! gets 502, the audit trail says why, and the connection such an answer came on is never
//! used again, so nothing the application sent after it can pass for another answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::{Guest, plan};

/// Answers that leave the end of the answer in doubt; each is followed, on the same
/// connection, by bytes that would read as a next answer.
const MALFORMED: &[(&str, &str)] = &[
    ("/two-lengths", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 45\r\n\r\nhello"),
    ("/length-list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello"),
    ("/length-and-chunked", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("/gzip-chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    ("/bad-chunk-size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"),
    ("/bare-lf-chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"),
    ("/switching", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"),
    ("/not-http", "SSH-2.0-OpenSSH_9.2\r\n\r\n"),
];

/// What the next answer on a spoiled connection would be, were it read.
const SMUGGLED: &str = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Smuggled: 1\r\n\r\nsmuggled";

/// Each connection's requests, in order: what the test checks reuse with.
type Log = Arc<Mutex<Vec<(usize, String)>>>;

fn answer(path: &str) -> String {
    match path {
        "/good" => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".into(),
        "/chunked" => {
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
                .into()
        }
        // Longer than its length says: the rest must not reach anyone.
        "/overlong" => format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok{SMUGGLED}"),
        "/no-content-with-body" => format!("HTTP/1.1 204 No Content\r\nContent-Length: 45\r\n\r\n{SMUGGLED}"),
        "/huge-head" => format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok", "b".repeat(70_000)),
        _ => match MALFORMED.iter().find(|(p, _)| *p == path) {
            Some((_, text)) => format!("{text}{SMUGGLED}"),
            None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into(),
        },
    }
}

/// Serves one connection: reads request heads (no bodies) and writes the scripted answers.
fn serve(mut stream: TcpStream, id: usize, log: &Log) {
    let mut pending = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
            pending.drain(..end + 4);
            let path = head.split(' ').nth(1).unwrap_or("").to_owned();
            log.lock().unwrap().push((id, path.clone()));
            if stream.write_all(answer(&path).as_bytes()).is_err() {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
    }
}

fn scripted_app() -> (SocketAddr, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Log::default();
    let shared = Arc::clone(&log);
    std::thread::spawn(move || {
        for (id, stream) in listener.incoming().map_while(Result::ok).enumerate() {
            let log = Arc::clone(&shared);
            std::thread::spawn(move || serve(stream, id, &log));
        }
    });
    (addr, log)
}

/// Whether any connection carried a request after one of `spoiled` paths was answered on it.
fn reused_after(log: &Log, spoiled: &[&str]) -> Vec<(usize, String)> {
    let log = log.lock().unwrap();
    let mut after = Vec::new();
    for (i, (id, path)) in log.iter().enumerate() {
        if spoiled.contains(&path.as_str()) {
            after.extend(log[i + 1..].iter().filter(|(other, _)| other == id).cloned());
        }
    }
    after
}

#[test]
fn a_malformed_answer_is_502_and_its_connection_is_not_reused() {
    let (app, log) = scripted_app();
    let g = Guest::start_to(&plan("firewall"), app);
    for _ in 0..6 {
        assert_eq!(g.get("/good", "").body, b"ok");
    }
    let kept = log.lock().unwrap().iter().map(|(id, _)| *id).max().unwrap_or(0) + 1;
    assert!(kept < 6, "connections to the application are kept alive: {kept} for 6 requests");
    for (path, _) in MALFORMED {
        let reply = g.get(path, "");
        assert_eq!(reply.status, 502, "{path}: {:?}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.header("x-smuggled"), None, "{path}");
        let line = g.audit(|v| v["event"] == "upstream_error" && v["path"] == *path);
        assert_eq!(line["reason"], "invalid_answer", "{path}: {line}");
        for _ in 0..4 {
            let next = g.get("/good", "");
            assert_eq!((next.status, next.body.as_slice()), (200, &b"ok"[..]), "after {path}");
        }
    }
    let spoiled: Vec<&str> = MALFORMED.iter().map(|(p, _)| *p).collect();
    assert_eq!(reused_after(&log, &spoiled), [], "connections reused after a malformed answer");
}

#[test]
fn bytes_after_an_answer_never_reach_another_client() {
    let (app, log) = scripted_app();
    let g = Guest::start_to(&plan("firewall"), app);
    for spoiled in ["/overlong", "/no-content-with-body"] {
        let reply = g.get(spoiled, "");
        assert!(matches!(reply.status, 200 | 204), "{spoiled}: {reply:?}");
        assert!(!String::from_utf8_lossy(&reply.body).contains("smuggled"), "{spoiled}: {reply:?}");
        for _ in 0..4 {
            let next = g.get("/good", "");
            assert_eq!((next.status, next.body.as_slice()), (200, &b"ok"[..]), "after {spoiled}");
            assert_eq!(next.header("x-smuggled"), None);
        }
    }
    assert_eq!(reused_after(&log, &["/overlong", "/no-content-with-body"]), []);
}

#[test]
fn chunked_answers_are_passed_on_and_oversized_heads_refused() {
    let (app, log) = scripted_app();
    let g = Guest::start_to(&plan("firewall"), app);
    let reply = g.get("/chunked", "");
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"abcde"[..]));
    // The connection a chunked answer came on is kept: its end was certain.
    assert_eq!(g.get("/good", "").body, b"ok");
    let reply = g.get("/huge-head", "");
    assert_eq!(reply.status, 502);
    let line = g.audit(|v| v["event"] == "upstream_error" && v["path"] == "/huge-head");
    assert_eq!(line["reason"], "invalid_answer", "{line}");
    assert_eq!(reused_after(&log, &["/huge-head"]), []);
}
