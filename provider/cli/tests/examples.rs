//! Every node of every example policy boots on real QEMU with the example application and
//! enforces what its policy says to a client the policy does not know: nobody writes a
//! policy of `examples/policies` that cannot run. Needs what `scripts/build.sh` prepares.
//!
//! Seen before: four of the examples admit only the service's port from chosen networks;
//! the runtime judged ingress against its own port and dropped everything, the readiness
//! probe included, and a boot waited its whole timeout.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use support::{field, sdsec, static_binary};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policies");
/// Where a client reaching a guest on QEMU's user network comes from, as the guest sees it.
const USER_NETWORK_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2));
/// Far below the provider's 5-minute create timeout: a boot that waits on a refused probe
/// fails here instead of passing slowly.
const BOOT_TIMEOUT_SECONDS: &str = "120";

/// What a client the policy does not know gets: `None` when the connection is closed
/// without an answer, else the status.
fn anonymous_get(endpoint: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&endpoint, Duration::from_secs(10)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let request = "GET / HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n";
    // A connection the runtime refuses may already be closed: the write can fail.
    let _ = stream.write_all(request.as_bytes());
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).get(9..12).and_then(|s| s.parse().ok())
}

/// The answer the node's plan gives that client.
fn expected(plan: &plan::EnforcementPlan, app_port: u16) -> Option<u16> {
    let runtime = &plan.runtime;
    if !plan::ingress::allows(&runtime.firewall.ingress, USER_NETWORK_CLIENT, app_port) {
        None
    } else if runtime.quarantine {
        Some(503)
    } else if runtime.authentication.is_some() {
        Some(401)
    } else {
        // Whatever the application and the authorization rules answer: some HTTP status.
        Some(0)
    }
}

#[test]
fn every_node_of_every_example_policy_boots_and_enforces() {
    let app = static_binary("sdsec-example-api");
    let mut documents: Vec<PathBuf> = std::fs::read_dir(EXAMPLES)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    documents.sort();
    assert!(documents.len() >= 6, "{documents:?}");
    let state = tempfile::tempdir().unwrap();
    let mut booted = Vec::new();
    let mut failures = Vec::new();
    for document in &documents {
        let text = std::fs::read_to_string(document).unwrap();
        let compiled = sectosca::compile_str(&document.display().to_string(), &text);
        assert!(!compiled.plans.is_empty(), "{}: no plan: {:?}", document.display(), compiled.diagnostics);
        for (node, plan) in &compiled.plans {
            let port = plan.build.port;
            let mut args: Vec<String> =
                ["run".into(), document.display().to_string(), "--node".into(), node.clone()].into();
            args.extend(["--app".into(), app.display().to_string(), "--arg".into(), "--listen".into()]);
            args.extend(["--arg".into(), format!("0.0.0.0:{port}"), "--timeout".into(), BOOT_TIMEOUT_SECONDS.into()]);
            let out = sdsec(state.path(), &args);
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let what = format!("{} node {node}", document.file_name().unwrap().to_string_lossy());
            if !out.status.success() {
                failures.push(format!("{what} did not boot:\n{}", String::from_utf8_lossy(&out.stderr)));
                continue;
            }
            booted.push(field(&stdout, "instance").to_owned());
            let endpoint: SocketAddr = field(&stdout, "endpoint").trim_start_matches("http://").parse().unwrap();
            let (got, want) = (anonymous_get(endpoint), expected(plan, port));
            let agrees = match want {
                Some(0) => got.is_some(),
                want => got == want,
            };
            if !agrees {
                failures.push(format!(
                    "{what}: an unknown client from {USER_NETWORK_CLIENT} got {got:?}, the plan says {want:?}"
                ));
            }
            let stop = sdsec(state.path(), &["stop".into(), booted.last().unwrap().clone()]);
            assert!(stop.status.success(), "{}", String::from_utf8_lossy(&stop.stderr));
        }
    }
    let _ = sdsec(state.path(), &["stop", "--all"]);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(booted.len() >= 9, "every node booted: {booted:?}");
}
