//! `sdsec-example-api [--listen ADDR:PORT] [--fetch http://IPV4:PORT/path] [--test-routes]
//! [--process-per-connection]`: a small JSON API over HTTP/1.1, std only, to put behind the
//! sdsec runtime in example and acceptance images. With `--fetch`, `GET /fetch` makes one
//! outbound request and reports its status. `--test-routes` adds deliberately unsafe routes
//! ([`probes`]); `--process-per-connection` serves each connection in a new process, as
//! inetd-style servers (BusyBox httpd) do, which `strict` hardening does not allow.
//!
//! Prints `listening on ADDR` once bound (port 0 picks a free one). One thread per
//! connection, capped; keep-alive with Content-Length bodies.

mod fetch;
mod http;
mod probes;
mod routes;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use routes::State;

const USAGE: &str = "usage: sdsec-example-api [--listen ADDR:PORT (default 0.0.0.0:8080)] \
                     [--fetch http://IPV4:PORT/path] [--test-routes] [--process-per-connection]";
/// The flag a process started for one connection gets: the connection is its standard input.
const SERVE_STDIN: &str = "--serve-stdin";
const MAX_CONNECTIONS: u64 = 256;
/// An idle keep-alive connection is closed after this long.
const IDLE: Duration = Duration::from_secs(30);

struct Args {
    listen: SocketAddr,
    state: State,
    process_per_connection: bool,
    serve_stdin: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
        state: State::default(),
        process_per_connection: false,
        serve_stdin: false,
    };
    let (listen, state) = (&mut parsed.listen, &mut parsed.state);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--listen" => {
                let value = args.next().ok_or("--listen needs a value")?;
                *listen = value.parse().map_err(|_| format!("--listen wants ADDR:PORT, not `{value}`"))?;
            }
            "--fetch" => state.fetch = Some(fetch::parse_url(&args.next().ok_or("--fetch needs a URL")?)?),
            "--test-routes" => state.test_routes = true,
            "--process-per-connection" => parsed.process_per_connection = true,
            SERVE_STDIN => parsed.serve_stdin = true,
            _ => return Err(format!("unknown argument `{flag}`")),
        }
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("sdsec-example-api: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (addr, state) = (args.listen, args.state);
    if args.serve_stdin {
        return serve_stdin(&state);
    }
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sdsec-example-api: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    println!("listening on {bound}");
    let _ = std::io::stdout().flush();
    let state = Arc::new(state);
    for stream in listener.incoming() {
        // Accept errors (a reset before accept, out of descriptors) end one connection only.
        let Ok(stream) = stream else { continue };
        if args.process_per_connection {
            spawn_for(stream);
            continue;
        }
        if state.connections.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            state.connections.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        let spawned = std::thread::Builder::new().spawn({
            let state = Arc::clone(&state);
            move || {
                serve(&state, stream);
                state.connections.fetch_sub(1, Ordering::Relaxed);
            }
        });
        if spawned.is_err() {
            state.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }
    ExitCode::SUCCESS
}

/// Serves `stream` in a new process of this program (the flags that matter are passed on).
fn spawn_for(stream: TcpStream) {
    let (Ok(exe), Ok(input)) = (std::env::current_exe(), stream.try_clone()) else { return };
    let mut command = std::process::Command::new(exe);
    command.arg(SERVE_STDIN).args(std::env::args().skip(1).filter(|a| a == "--test-routes"));
    command.stdin(std::os::fd::OwnedFd::from(input)).stdout(std::os::fd::OwnedFd::from(stream));
    match command.spawn() {
        // Reaped by a thread of its own: the accept loop must not wait for a client.
        Ok(mut child) => drop(std::thread::Builder::new().spawn(move || child.wait())),
        // The connection closes unanswered, as a forking server's does when fork fails.
        Err(e) => eprintln!("sdsec-example-api: cannot start a process for a connection: {e}"),
    }
}

/// The process started for one connection: serves it on standard input, then exits.
fn serve_stdin(state: &State) -> ExitCode {
    use std::os::fd::AsFd as _;
    let Ok(owned) = std::io::stdin().as_fd().try_clone_to_owned() else { return ExitCode::FAILURE };
    serve(state, TcpStream::from(owned));
    ExitCode::SUCCESS
}

fn serve(state: &State, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(IDLE));
    let _ = stream.set_nodelay(true);
    let Ok(mut out) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    loop {
        match http::read_request(&mut reader) {
            Ok(Some(request)) => {
                let response = routes::handle(state, &request);
                if response.write_to(&mut out, request.keep_alive).is_err() || !request.keep_alive {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                if let Some(status) = e.status() {
                    let _ = http::Response::error(status, &e.to_string()).write_to(&mut out, false);
                }
                return;
            }
        }
    }
}
