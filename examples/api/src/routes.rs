//! The API: a health probe, an in-memory item collection, statistics, and an echo of the
//! `x-sdsec-*` headers the PEP adds (so tests can see what it forwards).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};

use crate::http::{Request, Response};

/// Enough for examples; past it POST answers 503 rather than grow without bound.
const MAX_ITEMS: usize = 10_000;

#[derive(Debug, Default)]
pub struct State {
    items: Mutex<Items>,
    pub requests: AtomicU64,
    pub connections: AtomicU64,
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
        ("GET", ["whoami"]) => {
            let seen: Map<String, Value> = request
                .headers
                .iter()
                .filter(|(name, _)| name.starts_with("x-sdsec-"))
                .map(|(name, value)| (name.clone(), Value::String(value.clone())))
                .collect();
            Response::json(200, Value::Object(seen))
        }
        (_, ["health"] | ["items"] | ["items", _] | ["admin", "stats"] | ["whoami"]) => {
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
}
