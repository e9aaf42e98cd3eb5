//! Slow clients and floods, on loopback and fast: the plans set timeouts of a second and
//! caps of a few connections. Each must end in a bounded time with the documented answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{Guest, plan};
use plan::{AuditEvent, EnforcementPlan};

fn tight(edit: impl FnOnce(&mut plan::HttpPlan)) -> EnforcementPlan {
    let mut p = plan("firewall");
    p.runtime.audit.events = vec![AuditEvent::FirewallDrop];
    edit(&mut p.runtime.firewall.http);
    p
}

/// A connection from the loopback address `from` (127.0.0.0/8 is all loopback), so that
/// one test can be several sources.
fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((from, 0))).unwrap();
        socket.connect(to).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

/// Whether the runtime closed `stream` without a byte, within a few seconds.
fn closed_silently(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    matches!(stream.read(&mut buf), Ok(0) | Err(_)) && !matches!(stream.read(&mut buf), Ok(n) if n > 0)
}

fn get_on(stream: &mut TcpStream) -> common::Reply {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A connection closed at accept may refuse the write: the reply then says status 0.
    let _ = stream.write_all(b"GET /x HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n");
    common::read_reply(stream)
}

#[test]
fn a_slow_body_is_cut_off_with_408() {
    let g = Guest::start(&tight(|h| h.body_timeout_seconds = 1));
    let mut stream = TcpStream::connect(g.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(b"POST /x HTTP/1.1\r\nHost: api\r\nContent-Length: 10\r\n\r\nab").unwrap();
    let started = Instant::now();
    // The other eight bytes never come.
    let r = common::read_reply(&mut stream);
    assert_eq!(r.status, 408);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    g.audit(|v| v["event"] == "firewall_drop" && v["reason"] == "body_timeout");
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    // A long head timeout: only the idle timeout can close these in time.
    let g = Guest::start(&tight(|h| {
        h.idle_timeout_seconds = 1;
        h.header_timeout_seconds = 60;
    }));
    let mut fresh = TcpStream::connect(g.addr).unwrap();
    let started = Instant::now();
    assert!(closed_silently(&mut fresh), "a connection that never sends is closed");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());

    let mut kept = TcpStream::connect(g.addr).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    kept.write_all(b"GET /fixed HTTP/1.1\r\nHost: api\r\n\r\n").unwrap();
    let mut answer = vec![0u8; 4096];
    let n = kept.read(&mut answer).unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 203"));
    let started = Instant::now();
    // Kept alive, then idle: closed (what remains of the answer, then the end).
    let mut rest = Vec::new();
    let _ = kept.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

#[test]
fn a_slow_head_is_cut_off_even_with_a_long_idle_timeout() {
    let g = Guest::start(&tight(|h| {
        h.idle_timeout_seconds = 60;
        h.header_timeout_seconds = 1;
    }));
    let mut stream = TcpStream::connect(g.addr).unwrap();
    stream.write_all(b"GET /x HTTP/1.1\r\nHost: api\r\nX-Slow: ").unwrap();
    let started = Instant::now();
    assert!(closed_silently(&mut stream));
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    g.audit(|v| v["event"] == "firewall_drop" && v["reason"] == "header_timeout");
}

#[test]
fn connections_over_the_per_source_cap_are_closed_at_accept() {
    let g = Guest::start(&tight(|h| h.max_connections_per_source = 2));
    let mut first = connect_from([127, 0, 0, 1], g.addr);
    let _second = connect_from([127, 0, 0, 1], g.addr);
    std::thread::sleep(Duration::from_millis(300));
    let mut third = connect_from([127, 0, 0, 1], g.addr);
    assert!(closed_silently(&mut third), "the third connection from one source is closed");
    g.audit(|v| v["event"] == "firewall_drop" && v["reason"] == "source_connection_limit");
    let mut other = connect_from([127, 0, 0, 2], g.addr);
    assert_eq!(get_on(&mut other).status, 200, "another source has its own count");
    assert_eq!(get_on(&mut first).status, 200, "admitted connections are served");
    std::thread::sleep(Duration::from_millis(300));
    let mut again = connect_from([127, 0, 0, 1], g.addr);
    assert_eq!(get_on(&mut again).status, 200, "a closed connection gives its slot back");
}

#[test]
fn connections_over_the_global_cap_are_closed_at_accept() {
    let g = Guest::start(&tight(|h| h.max_connections = 3));
    let _held: Vec<TcpStream> =
        [[127, 0, 0, 1], [127, 0, 0, 2], [127, 0, 0, 3]].into_iter().map(|from| connect_from(from, g.addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut over = connect_from([127, 0, 0, 4], g.addr);
    assert!(closed_silently(&mut over));
    g.audit(|v| v["event"] == "firewall_drop" && v["reason"] == "connection_limit");
}

/// An application that answers each request after `delay`, one connection at a time each.
fn slow_app(delay: Duration) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    std::thread::sleep(delay);
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow");
                }
            });
        }
    });
    addr
}

#[test]
fn requests_wait_a_bounded_time_for_an_upstream_connection_then_503() {
    let p = tight(|h| {
        h.max_upstream_connections = 1;
        h.upstream_wait_seconds = 1;
    });
    let g = Guest::start_to(&p, slow_app(Duration::from_secs(3)));
    let addr = g.addr;
    let first =
        std::thread::spawn(move || common::send(addr, b"GET /a HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n"));
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let second = g.get("/b", "");
    assert_eq!(second.status, 503, "the only upstream connection is busy");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let line = g.audit(|v| v["event"] == "upstream_error");
    assert_eq!(line["reason"], "upstream_busy", "{line}");
    assert_eq!(first.join().unwrap().status, 200, "the request holding it is answered");
}

#[test]
fn connection_caps_are_reconfigured_in_place() {
    let g = Guest::start(&tight(|h| h.max_connections_per_source = 1));
    let _held = connect_from([127, 0, 0, 1], g.addr);
    std::thread::sleep(Duration::from_millis(300));
    let mut refused = connect_from([127, 0, 0, 1], g.addr);
    assert!(closed_silently(&mut refused), "one connection per source at first");
    g.reload(&tight(|h| h.max_connections_per_source = 4));
    // The swap is asynchronous: the signal is handled on the runtime's own time.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut next = connect_from([127, 0, 0, 1], g.addr);
        if get_on(&mut next).status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the raised cap never applied");
        std::thread::sleep(Duration::from_millis(100));
    }
}
