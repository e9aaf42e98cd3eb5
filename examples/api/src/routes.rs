//! The API: a health probe, an in-memory item collection, statistics, an echo of the
//! `x-sdsec-*` headers the PEP adds (`/whoami`) and of every header received (`/headers`),
//! so tests can see what it forwards, and `/fetch`, which
//! reports what the `--fetch` upstream answers (so tests can see which flows get through).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};

use crate::fetch::{self, Upstream};
use crate::http::{Request, Response};

/// Enough for examples; past it POST answers 503 rather than grow without bound.
const MAX_ITEMS: usize = 10_000;

#[derive(Debug, Default)]
pub struct State {
    items: Mutex<Items>,
    pub requests: AtomicU64,
    pub connections: AtomicU64,
    /// Where `GET /fetch` sends its request (`--fetch`).
    pub fetch: Option<Upstream>,
    /// `--test-routes`: the deliberately unsafe `/read/...` and `/exec/...` ([`crate::probes`]).
    pub test_routes: bool,
}

#[derive(Debug, Default)]
struct Items {
    next_id: u64,
    by_id: BTreeMap<u64, Value>,
}

impl State {
    fn items(&self) -> std::sync::MutexGuard<'_, Items> {
        // A panic while holding the lock cannot leave the map half-changed: keep serving.
        self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub fn handle(state: &State, request: &Request) -> Response {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["health"]) => Response::json(200, json!({ "status": "ok" })),
        ("GET", ["items"]) => Response::json(200, Value::Array(state.items().by_id.values().cloned().collect())),
        ("POST", ["items"]) => create(state, &request.body),
        ("GET", ["items", id]) => match id.parse().ok().and_then(|id: u64| state.items().by_id.get(&id).cloned()) {
            Some(item) => Response::json(200, item),
            None => Response::error(404, "no such item"),
        },
        ("DELETE", ["items", id]) => match id.parse().ok().and_then(|id: u64| state.items().by_id.remove(&id)) {
            Some(_) => Response { status: 204, body: None },
            None => Response::error(404, "no such item"),
        },
        ("GET", ["admin", "stats"]) => Response::json(
            200,
            json!({
                "requests": state.requests.load(Ordering::Relaxed),
                "connections": state.connections.load(Ordering::Relaxed),
                "items": state.items().by_id.len(),
            }),
        ),
        ("GET", ["fetch"]) => match &state.fetch {
            None => Response::error(404, "no --fetch URL configured"),
            Some(upstream) => match fetch::get(upstream) {
                Ok(status) => Response::json(200, json!({ "upstream_status": status })),
                Err(e) => Response::error(502, &format!("{upstream}: {e}")),
            },
        },
        ("GET", ["whoami"]) => {
            let seen: Map<String, Value> = request
                .headers
                .iter()
                .filter(|(name, _)| name.starts_with("x-sdsec-"))
                .map(|(name, value)| (name.clone(), Value::String(value.clone())))
                .collect();
            Response::json(200, Value::Object(seen))
        }
        ("GET", ["headers"]) => {
            // Every header as received, names lower-cased, values in order: what a test
            // against a booted image needs to see what the runtime passed on (or did not).
            let mut seen: Map<String, Value> = Map::new();
            for (name, value) in &request.headers {
                if let Value::Array(values) = seen.entry(name.clone()).or_insert_with(|| Value::Array(Vec::new())) {
                    values.push(Value::String(value.clone()));
                }
            }
            Response::json(200, Value::Object(seen))
        }
        ("GET", ["read", rest @ ..]) if state.test_routes => crate::probes::read(rest),
        ("GET", ["exec", rest @ ..]) if state.test_routes => crate::probes::exec(rest),
        ("GET", ["forge"]) if state.test_routes => crate::probes::forge(),
        (_, ["health"] | ["items"] | ["items", _] | ["admin", "stats"] | ["whoami"] | ["headers"] | ["fetch"]) => {
            Response::error(405, "method not allowed")
        }
        _ => Response::error(404, "not found"),
    }
}

fn create(state: &State, body: &[u8]) -> Response {
    let Ok(Value::Object(mut item)) = serde_json::from_slice::<Value>(body) else {
        return Response::error(400, "the body must be a JSON object");
    };
    let mut items = state.items();
    if items.by_id.len() >= MAX_ITEMS {
        return Response::error(503, "too many items");
    }
    items.next_id += 1;
    let id = items.next_id;
    item.insert("id".to_owned(), json!(id));
    let item = Value::Object(item);
    items.by_id.insert(id, item.clone());
    Response::json(201, item)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(state: &State, method: &str, path: &str, body: &str) -> Response {
        let request = Request {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: vec![("x-sdsec-principal".to_owned(), "alice".to_owned()), ("host".to_owned(), "a".to_owned())],
            body: body.as_bytes().to_vec(),
            keep_alive: true,
        };
        handle(state, &request)
    }

    #[test]
    fn items_round_trip() {
        let state = State::default();
        let created = call(&state, "POST", "/items", r#"{"name":"x"}"#);
        assert_eq!((created.status, created.body), (201, Some(json!({"name": "x", "id": 1}))));
        assert_eq!(call(&state, "GET", "/items/1", "").body, Some(json!({"name": "x", "id": 1})));
        assert_eq!(call(&state, "DELETE", "/items/1", "").status, 204);
        assert_eq!(call(&state, "GET", "/items/1", "").status, 404);
        assert_eq!(call(&state, "POST", "/items", "[1]").status, 400);
        assert_eq!(call(&state, "PUT", "/items", "").status, 405);
        assert_eq!(call(&state, "GET", "/whoami", "").body, Some(json!({"x-sdsec-principal": "alice"})));
        assert_eq!(call(&state, "GET", "/admin/stats", "").body.map(|b| b["requests"].clone()), Some(json!(8)));
    }

    #[test]
    fn headers_echoes_every_header_received() {
        let state = State::default();
        let request = Request {
            method: "GET".to_owned(),
            path: "/headers".to_owned(),
            headers: vec![
                ("x-forwarded-for".to_owned(), "10.0.0.1".to_owned()),
                ("x_sdsec_principal".to_owned(), "a".to_owned()),
                ("x-forwarded-for".to_owned(), "10.0.0.2".to_owned()),
            ],
            body: Vec::new(),
            keep_alive: true,
        };
        assert_eq!(
            handle(&state, &request).body,
            Some(json!({"x-forwarded-for": ["10.0.0.1", "10.0.0.2"], "x_sdsec_principal": ["a"]}))
        );
        assert_eq!(call(&state, "POST", "/headers", "").status, 405);
    }

    /// A local upstream that answers each connection with `answer` (none: it says nothing and
    /// holds the connection until the client gives up).
    fn upstream(answer: Option<&'static str>) -> (State, std::thread::JoinHandle<String>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/health?probe=1", listener.local_addr().unwrap());
        let state = State { fetch: Some(fetch::parse_url(&url).unwrap()), ..State::default() };
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            match answer {
                Some(answer) => (&stream).write_all(answer.as_bytes()).unwrap(),
                // Waits until the client closes (after its read timeout).
                None => while reader.read(&mut [0; 64]).is_ok_and(|n| n > 0) {},
            }
            request_line
        });
        (state, server)
    }

    #[test]
    fn fetch_reports_the_upstream_status() {
        let (state, server) = upstream(Some("HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n"));
        let answer = call(&state, "GET", "/fetch", "");
        assert_eq!((answer.status, answer.body), (200, Some(json!({"upstream_status": 418}))));
        assert_eq!(server.join().unwrap(), "GET /health?probe=1 HTTP/1.1\r\n");
        assert_eq!(call(&state, "POST", "/fetch", "").status, 405);
    }

    #[test]
    fn fetch_without_an_http_answer_is_502_with_the_reason() {
        let error = |r: Response| (r.status, r.body.and_then(|b| b["error"].as_str().map(str::to_owned)));

        // Nothing listens: refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let state =
            State { fetch: Some(fetch::parse_url(&format!("http://127.0.0.1:{port}/")).unwrap()), ..State::default() };
        let (status, message) = error(call(&state, "GET", "/fetch", ""));
        assert_eq!(status, 502);
        assert!(
            message.as_deref().is_some_and(|m| m.contains("refused") && m.contains(&port.to_string())),
            "{message:?}"
        );

        // Accepted but never answered: timed out.
        let (state, server) = upstream(None);
        let (status, message) = error(call(&state, "GET", "/fetch", ""));
        assert_eq!(status, 502);
        assert!(message.as_deref().is_some_and(|m| m.contains("timed out")), "{message:?}");
        server.join().unwrap();

        // Not HTTP.
        let (state, server) = upstream(Some("SSH-2.0-OpenSSH\r\n"));
        assert_eq!(
            error(call(&state, "GET", "/fetch", "")),
            (502, Some(format!("{}: the answer is not HTTP", state.fetch.as_ref().unwrap())))
        );
        server.join().unwrap();

        // No --fetch at all.
        let none = call(&State::default(), "GET", "/fetch", "");
        assert_eq!((none.status, none.body), (404, Some(json!({"error": "no --fetch URL configured"}))));
    }
}
