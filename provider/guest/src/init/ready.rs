//! Whether the application is ready: it listens, and it answers an HTTP request sent the way
//! the runtime forwards requests (hyper's HTTP/1.1 client over loopback). Any answer counts,
//! even 404 or 500: the application speaks HTTP. An application that accepts connections and
//! closes them unanswered (a server that forks per connection under `strict`, where fork is
//! refused), or never answers, is not ready, and init says why rather than serve 502s.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Nothing accepts connections on the port (yet).
    NotListening,
    /// A connection was accepted; the request got no answer, for this reason.
    NoAnswer(String),
    /// An HTTP answer with this status.
    Answered(u16),
}

impl Probe {
    /// One line, for the link between PID 1 and the proxy process.
    pub fn to_line(&self) -> String {
        match self {
            Probe::NotListening => "not_listening".to_owned(),
            Probe::NoAnswer(why) => format!("no_answer {}", why.replace('\n', " ")),
            Probe::Answered(status) => format!("answered {status}"),
        }
    }

    pub fn from_line(line: &str) -> Option<Probe> {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "not_listening" => Some(Probe::NotListening),
            "no_answer" => Some(Probe::NoAnswer(rest.to_owned())),
            "answered" => rest.parse().ok().map(Probe::Answered),
            _ => None,
        }
    }
}

/// Sends `GET /` to `upstream`, waiting `timeout` at most for the answer's head.
pub async fn probe(upstream: SocketAddr, timeout: Duration) -> Probe {
    let stream = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(upstream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(_)) | Err(_) => return Probe::NotListening,
    };
    let exchange = async {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = http::Request::get("/")
            .header(http::header::HOST, upstream.to_string())
            .header(http::header::USER_AGENT, "sdsec-readiness")
            .body(Empty::<Bytes>::new())
            .unwrap_or_default();
        sender.send_request(request).await
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(response)) => Probe::Answered(response.status().as_u16()),
        Ok(Err(e)) if e.is_canceled() || e.is_incomplete_message() => {
            Probe::NoAnswer("it closed the connection without an answer".into())
        }
        Ok(Err(e)) => Probe::NoAnswer(e.to_string()),
        Err(_) => Probe::NoAnswer(format!("no answer within {timeout:?}")),
    }
}

/// Decides from successive probes when to give up before the deadline: an application that
/// closes connection after connection unanswered for a while will not start answering.
#[derive(Debug, Default)]
pub struct Verdict {
    closed_since: Option<Instant>,
    closed_in_a_row: u32,
}

/// Consecutive unanswered, accepted connections that mean the application cannot answer.
const CLOSED_IN_A_ROW: u32 = 10;
/// ... over at least this long, so a server still starting is not judged too soon.
const CLOSED_FOR: Duration = Duration::from_secs(2);

impl Verdict {
    /// Records a probe; true when the application is hopeless.
    pub fn hopeless(&mut self, probe: &Probe, now: Instant) -> bool {
        match probe {
            Probe::NoAnswer(_) => {
                let since = *self.closed_since.get_or_insert(now);
                self.closed_in_a_row += 1;
                self.closed_in_a_row >= CLOSED_IN_A_ROW && now.saturating_duration_since(since) >= CLOSED_FOR
            }
            _ => {
                *self = Verdict::default();
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const WAIT: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn any_http_answer_counts_and_an_unanswered_connection_does_not() {
        let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let nothing = free.local_addr().unwrap();
        drop(free);
        assert_eq!(probe(nothing, WAIT).await, Probe::NotListening);

        // Accepts and closes at once, as busybox httpd does when its fork is refused.
        let closer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closing = closer.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = closer.accept().await {
                drop(stream);
            }
        });
        let closed = Probe::NoAnswer("it closed the connection without an answer".into());
        assert_eq!(probe(closing, WAIT).await, closed);

        // Accepts and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mute = silent.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                kept.push(stream);
            }
        });
        let quick = Duration::from_millis(300);
        assert_eq!(probe(mute, quick).await, Probe::NoAnswer(format!("no answer within {quick:?}")));
        held.abort();

        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let serving = server.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = server.accept().await {
                let mut head = [0u8; 1024];
                let _ = stream.read(&mut head).await;
                let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await;
            }
        });
        assert_eq!(probe(serving, WAIT).await, Probe::Answered(404));
    }

    #[test]
    fn probes_cross_the_link_unchanged() {
        for probe in [Probe::NotListening, Probe::NoAnswer("it closed\nthe connection".into()), Probe::Answered(404)] {
            let line = probe.to_line();
            assert!(!line.contains('\n'));
            let back = Probe::from_line(&line).unwrap();
            assert_eq!(back.to_line(), line);
        }
        assert_eq!(Probe::from_line("answered x"), None);
    }

    #[test]
    fn only_a_long_run_of_unanswered_connections_is_hopeless() {
        let start = Instant::now();
        let mut verdict = Verdict::default();
        let closed = Probe::NoAnswer("closed".into());
        for i in 0..CLOSED_IN_A_ROW {
            assert!(!verdict.hopeless(&closed, start + Duration::from_millis(u64::from(i))));
        }
        // Many, but too quickly: a server may still be starting.
        assert!(!verdict.hopeless(&Probe::NotListening, start));
        for _ in 0..CLOSED_IN_A_ROW - 1 {
            assert!(!verdict.hopeless(&closed, start));
        }
        assert!(verdict.hopeless(&closed, start + CLOSED_FOR));
    }
}
