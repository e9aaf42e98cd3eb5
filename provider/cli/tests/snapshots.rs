//! Snapshot starts on real QEMU through `sdsec run --snapshot`: the first start makes the
//! image's snapshot, each start is a copy of it that serves and enforces, is resumed with
//! its own control key (the snapshot's is refused), the host's clock and its own audit log,
//! and a snapshot damaged behind sdsec's back is never started: it is made again, as is one
//! that verifies but QEMU refuses to load. Needs
//! what `scripts/build.sh` prepares (sdsec's kernel, the static runtime and example).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod support;

use abi::control::{self, Command, Key};
use abi::event::Event;
use support::{QUICKSTART, QUICKSTART_TOKEN, field, items_status as status, ok, sdsec, static_binary};

const POLICY: &str = QUICKSTART;
const TOKEN: &str = QUICKSTART_TOKEN;

/// `sdsec run --snapshot` of the quickstart's API.
fn run(state: &Path) -> std::process::Output {
    let app = static_binary("sdsec-example-api").display().to_string();
    let args =
        ["run", POLICY, "--node", "api", "--app", &app, "--arg", "--listen", "--arg", "0.0.0.0:8080", "--snapshot"];
    sdsec(state, &args)
}

/// Starts a copy; returns its id and endpoint.
fn start(state: &Path) -> (String, SocketAddr) {
    let out = ok(run(state));
    (field(&out, "instance").to_owned(), field(&out, "endpoint").trim_start_matches("http://").parse().unwrap())
}

fn snapshot_dir(state: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(state.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(dirs.len(), 1, "one snapshot for one image: {dirs:?}");
    dirs[0].clone()
}

fn record(state: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(snapshot_dir(state).join("snapshot.json")).unwrap()).unwrap()
}

fn status_with(state: &Path, id: &str, key: &Key) -> Result<control::Reply, control::ClientError> {
    let socket = state.join("instances").join(id).join("control.sock");
    control::call(&socket, key, Command::Status, Duration::from_secs(20))
}

/// Seconds since the epoch of an RFC 3339 UTC time (`YYYY-MM-DDTHH:MM:SS…Z`).
fn unix_seconds(ts: &str) -> i64 {
    let n = |range: std::ops::Range<usize>| ts[range].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days since the epoch in the civil calendar.
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + (153 * m + 2) / 5 + d - 1 - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

/// Serves and enforces, was resumed (clock set to the host's), answers its own key only.
fn check_copy(state: &Path, id: &str, endpoint: SocketAddr, snapshot_key: &Key) {
    assert_eq!(status(endpoint, None), 401, "{id}: no token");
    assert_eq!(status(endpoint, Some(TOKEN)), 200, "{id}: with the token");
    let log = std::fs::read_to_string(state.join("instances").join(id).join("audit.log")).unwrap();
    let resumed: Vec<String> =
        Event::scan(&log).filter_map(|e| if let Event::Resumed { ts } = e { Some(ts) } else { None }).collect();
    assert_eq!(resumed.len(), 1, "{id}: {log}");
    // The snapshot's clock stopped when it was saved; the copy's reads the host's.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let at = unix_seconds(&resumed[0]);
    assert!((now - at).abs() < 300, "{id}: resumed at {} ({at}), the host says {now}", resumed[0]);
    let own = Key::read(&state.join("instances").join(id).join("control.key")).unwrap();
    assert!(status_with(state, id, &own).is_ok(), "{id}: its own key");
    assert!(status_with(state, id, snapshot_key).is_err(), "{id}: the snapshot's key is refused");
}

#[test]
fn copies_of_a_snapshot_serve_with_their_own_keys_and_a_damaged_snapshot_is_made_again() {
    let state = tempfile::tempdir().unwrap();
    let state = state.path();
    let (first, first_at) = start(state);
    let (second, second_at) = start(state);
    let made = record(state);
    let snapshot_key = Key::from_hex(made["key"].as_str().unwrap()).unwrap();
    let checks = std::panic::catch_unwind(|| {
        check_copy(state, &first, first_at, &snapshot_key);
        check_copy(state, &second, second_at, &snapshot_key);
        let keys: Vec<String> = [&first, &second]
            .iter()
            .map(|id| std::fs::read_to_string(state.join("instances").join(id).join("control.key")).unwrap())
            .collect();
        assert_ne!(keys[0], keys[1], "each copy has a key of its own");

        // One byte changed behind sdsec's back: never started, made again.
        let state_file = snapshot_dir(state).join("state");
        std::fs::set_permissions(&state_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut bytes = std::fs::read(&state_file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&state_file, &bytes).unwrap();
        let (third, third_at) = start(state);
        assert_ne!(record(state)["key"], made["key"], "the damaged snapshot was made again");
        let snapshot_key = Key::from_hex(record(state)["key"].as_str().unwrap()).unwrap();
        check_copy(state, &third, third_at, &snapshot_key);
        ok(sdsec(state, &["stop", &third]));

        // A stream that verifies but QEMU refuses (as one saved under another host's CPU
        // would be): the start that meets it fails, says so and removes it; the next start
        // makes it again.
        let dir = snapshot_dir(state);
        let junk = b"not QEMU's migration stream\n".repeat(1000);
        std::fs::set_permissions(dir.join("state"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.join("state"), &junk).unwrap();
        let mut verifies = record(state);
        verifies["state_sha256"] = plan::sha256_digest(&junk).into();
        verifies["size"] = junk.len().into();
        std::fs::write(dir.join("snapshot.json"), verifies.to_string()).unwrap();
        let refused = run(state);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "a copy of a stream QEMU refuses started");
        assert!(stderr.contains("does not load on this host"), "{stderr}");
        assert!(stderr.contains("removed and is made again at the next start"), "{stderr}");
        assert!(!dir.exists(), "the snapshot that does not load was removed");
        let (fourth, fourth_at) = start(state);
        let snapshot_key = Key::from_hex(record(state)["key"].as_str().unwrap()).unwrap();
        check_copy(state, &fourth, fourth_at, &snapshot_key);
        ok(sdsec(state, &["stop", &fourth]));
    });
    ok(sdsec(state, &["stop", &first, &second]));
    if let Err(e) = checks {
        std::panic::resume_unwind(e);
    }
    // gc takes the snapshot with the last image.
    ok(sdsec(state, &["images", "gc"]));
    let left = std::fs::read_dir(state.join("snapshots")).unwrap().flatten().filter(|e| e.path().is_dir()).count();
    assert_eq!(left, 0, "the snapshot went with its image");
}
