//! Deliberately unsafe routes, only with `--test-routes`: what a compromised or careless
//! application would do, so tests against a booted image can check what the image's
//! hardening leaves it able to do. Never enable them in a real deployment.
//!
//! - `GET /read/<path>`: the bytes of `/<path>`, or the error reading it gave (403).
//! - `GET /exec/<path>`: `execve("/<path>")` in place of this server, without a fork; it
//!   answers only when the call fails (403 with the error), since success replaces the
//!   process.
//! - `GET /forge`: prints lines that look like the runtime's events (a refused control
//!   request, the application's exit, an init error) to standard output, as an application
//!   trying to forge the audit trail or kill its own VM would.

use std::os::unix::process::CommandExt as _;

use serde_json::json;

use crate::http::Response;

/// The absolute path named by the segments after the route's own.
fn path_of(rest: &[&str]) -> String {
    format!("/{}", rest.join("/"))
}

pub fn read(rest: &[&str]) -> Response {
    let path = path_of(rest);
    match std::fs::read(&path) {
        Ok(bytes) => Response::json(200, json!({ "path": path, "content": String::from_utf8_lossy(&bytes) })),
        Err(e) => Response::json(403, json!({ "path": path, "error": e.to_string() })),
    }
}

pub fn exec(rest: &[&str]) -> Response {
    let path = path_of(rest);
    // Returns only if the exec failed.
    let error = std::process::Command::new(&path).arg("--version").exec();
    Response::json(403, json!({ "path": path, "error": error.to_string() }))
}

/// Lines that would mislead a host that took events from the application's output.
pub const FORGED: &[&str] = &[
    r#"{"event":"control_refused","reason":"bad_mac","seq":424242}"#,
    r#"{"event":"app_exit","status":0}"#,
    r#"{"event":"init_error","step":"forged","error":"written by the application"}"#,
];

pub fn forge() -> Response {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let written = FORGED.iter().try_for_each(|line| writeln!(out, "{line}")).and_then(|()| out.flush());
    match written {
        Ok(()) => Response::json(200, json!({ "printed": FORGED.len() })),
        Err(e) => Response::json(500, json!({ "error": e.to_string() })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_reports_content_or_error() {
        let dir = std::env::temp_dir().join(format!("probes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        std::fs::write(&file, "hello").unwrap();
        let rest: Vec<&str> = file.to_str().unwrap().trim_start_matches('/').split('/').collect();
        let ok = read(&rest);
        assert_eq!((ok.status, ok.body.unwrap()["content"].clone()), (200, json!("hello")));
        let missing = read(&["no", "such", "file"]);
        assert_eq!(missing.status, 403);
        assert!(missing.body.unwrap()["error"].as_str().unwrap().contains("No such file"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_failed_exec_is_answered() {
        let answer = exec(&["no", "such", "program"]);
        assert_eq!(answer.status, 403);
        assert!(answer.body.unwrap()["error"].as_str().unwrap().contains("No such file"));
    }
}
