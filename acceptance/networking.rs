//! Bridge networking end to end, inside network namespaces: Terraform, the provider and
//! QEMU run in a "hypervisor host" namespace, clients in namespaces of their own joined to
//! it by veth pairs (198.18.i.2 ↔ 198.18.i.1; see netns.rs). Each test has its own
//! namespaces and state directory, so the bridge, TAP devices and nftables tables it makes
//! are its own, and ends by checking that destroy left none of them.
//!
//! - clients: real client addresses reach the runtime through `host_port` (ingress by
//!   source, per-source rate limits, audit lines), the host's own requests show the gateway,
//!   and removing one unikernel takes its TAP, lease and rules but leaves the bridge to the
//!   last one;
//! - flows: `connects_to` opens exactly the declared east-west flows, one way; `egress`
//!   opens a destination beyond the host; both change in place;
//! - pool: a unikernel taken from a pool is published on its `host_port` at
//!   `publish_address`;
//! - bad input: bad subnets, a subnet overlapping a host route, a bridge sdsec did not make,
//!   a port in use, each refused with a message that names it, nothing left behind;
//! - user network: still serves, and its plan warns that per-source rules cannot tell
//!   clients apart.
//!
//! The libvirt backend's bridge is tested in networking_libvirt.rs.
//!
//! Networking does not depend on the Terraform CLI version: these tests use the first CLI
//! of the matrix only.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use abi::event::{Access, Event};

use crate::harness::{Workspace, clis, policy_tf, provider_tf};
use crate::netns::{Background, Netns, Topology};
use crate::unikernel::{DestroyOnPanic, audit_log, static_app};

/// The provider's defaults: bridge, subnet and gateway.
pub(crate) const BRIDGE: &str = "sdsec0";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);
/// Where the runtime listens in the guest, for an application on 8080.
const RUNTIME_PORT: u16 = 80;

pub(crate) fn workspace(name: &str, net: &Topology) -> Workspace {
    let cli = clis().into_iter().next().expect("a Terraform CLI");
    Workspace::new(&cli, name).in_netns(&net.hv.name)
}

/// `sdsec_unikernel.NAME` running the example API for node `NAME` of the policy, with
/// `args` after `--listen 0.0.0.0:8080` and `extra` lines of HCL.
pub(crate) fn unikernel_tf(name: &str, app: &Path, args: &[&str], extra: &str) -> String {
    let args: Vec<String> = ["--listen", "0.0.0.0:8080"].iter().chain(args).map(|a| format!("{a:?}")).collect();
    format!(
        r#"
resource "sdsec_unikernel" "{name}" {{
  name        = "{name}"
  enforcement = sdsec_security_policy.api.enforcement["{name}"]
  application = {{
    path = "{}"
    args = [{}]
    port = 8080
  }}
{extra}}}
"#,
        app.display(),
        args.join(", ")
    )
}

/// What a client got: the status (none when no HTTP answer came) and the body, or curl's error.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: Option<u16>,
    pub body: String,
    pub error: String,
}

impl Answer {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// `GET url` from inside `ns`.
pub(crate) fn get(ns: &Netns, url: &str) -> Answer {
    let out = ns.output("curl", &["-sS", "--max-time", "20", "-w", "\n%{http_code}", url]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    Answer {
        status: code.trim().parse().ok().filter(|c| *c != 0),
        body: body.to_owned(),
        error: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    }
}

/// `n` requests `GET url` from inside `ns`, as fast as one curl sends them; their statuses
/// (0: no answer).
fn burst(ns: &Netns, url: &str, n: usize) -> Vec<u16> {
    let mut args = vec!["-s", "--max-time", "30", "-w", "%{http_code}\n"];
    for _ in 0..n {
        args.extend(["-o", "/dev/null", url]);
    }
    let out = ns.output("curl", &args);
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().parse().unwrap_or(0)).collect()
}

pub(crate) fn attr(ws: &Workspace, address: &str, name: &str) -> String {
    ws.attributes(address)[name].as_str().unwrap_or_default().to_owned()
}

/// The guest address of `address`, checked to be in the default subnet, past the gateway.
pub(crate) fn guest_ip(ws: &Workspace, address: &str) -> Ipv4Addr {
    let ip: Ipv4Addr = attr(ws, address, "ip").parse().unwrap_or_else(|_| panic!("{address} has no ip"));
    let [a, b, c, d] = ip.octets();
    assert!(
        (a, b, c) == (10, 213, 0) && (2..255).contains(&d),
        "{address}: {ip} is not a guest address of 10.213.0.0/24"
    );
    ip
}

/// The per-request events of an instance's audit log, with their kind.
fn accesses(state_dir: &Path, instance: &str) -> Vec<(&'static str, Access<'static>)> {
    Event::scan(&audit_log(state_dir, instance))
        .filter_map(|e| match e {
            Event::Request(a) => Some(("request", a)),
            Event::FirewallDrop(a) => Some(("firewall_drop", a)),
            Event::AuthnFailure(a) => Some(("authn_failure", a)),
            Event::AuthzDeny(a) => Some(("authz_deny", a)),
            _ => None,
        })
        .collect()
}

/// Waits (the runtime writes its audit lines from a queue) until an event of `kind` from
/// `src` for which `also` holds is in the instance's audit log.
pub(crate) fn expect_event(
    state_dir: &Path,
    instance: &str,
    kind: &str,
    src: Ipv4Addr,
    also: impl Fn(&Access<'_>) -> bool,
) -> Access<'static> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = accesses(state_dir, instance)
            .into_iter()
            .find(|(k, a)| *k == kind && a.src.ip() == IpAddr::V4(src) && also(a))
            .map(|(_, a)| a);
        if let Some(access) = found {
            return access;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} event from {src} in the audit log of {instance}:\n{}",
            audit_log(state_dir, instance)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The source addresses of every per-request event in the instance's audit log.
fn sources(state_dir: &Path, instance: &str) -> BTreeSet<IpAddr> {
    accesses(state_dir, instance).iter().map(|(_, a)| a.src.ip()).collect()
}

/// What the state directory's leases file still holds: TAP names and guest addresses.
fn leases_left(state_dir: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(state_dir.join("network/leases.json")) else { return Vec::new() };
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("leases.json ({e}): {text}"));
    // The leases only: the document's own settings (bridge, subnet, publish address) stay.
    let leases = json.get("leases").unwrap_or(&json);
    let mut strings = Vec::new();
    collect_strings(leases, &mut strings);
    strings
        .into_iter()
        .filter(|s| s.starts_with("sdt-") || s.parse::<Ipv4Addr>().is_ok_and(|ip| ip != GATEWAY))
        .collect()
}

fn collect_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                collect_strings(v, out);
            }
        }
        _ => {}
    }
}

pub(crate) fn taps(hv: &Netns) -> Vec<String> {
    hv.links().into_iter().filter(|l| l.starts_with("sdt-")).collect()
}

pub(crate) fn sdsec_tables(hv: &Netns) -> Vec<String> {
    hv.run("nft", &["list", "tables"]).lines().filter(|l| l.contains("sdsec")).map(str::to_owned).collect()
}

/// Nothing of bridge networking is left in the host namespace or the state directory.
pub(crate) fn assert_torn_down(hv: &Netns, state_dir: &Path) {
    assert_eq!(taps(hv), Vec::<String>::new(), "TAP devices left after destroy");
    assert!(!hv.links().iter().any(|l| l == BRIDGE), "the bridge {BRIDGE} is left after destroy: {:?}", hv.links());
    assert_eq!(sdsec_tables(hv), Vec::<String>::new(), "nftables tables left after destroy");
    assert_eq!(leases_left(state_dir), Vec::<String>::new(), "leases left in leases.json after destroy");
    let qemu: Vec<u32> = hv
        .pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains("qemu"))
        })
        .collect();
    assert!(qemu.is_empty(), "QEMU processes left in the host namespace: {qemu:?}");
}

// ---------------------------------------------------------------------------------------
// 1. Clients keep their addresses.

/// `api` admits client 1 and the host only (default deny), `open` everyone; both are rate
/// limited per source (1/s, burst 3) and audit requests and drops.
const CLIENTS_POLICY: &str = r#"tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  policies:
    - only_client1:
        type: sdsec.policies.Firewall
        targets: [api]
        properties:
          default: deny
          ingress:
            - { from: [198.18.1.2/32, 10.213.0.1/32], action: allow }
    - per_source:
        type: sdsec.policies.Firewall
        targets: [api, open]
        properties:
          rate_limit: { requests_per_second: 1, burst: 3, per: source }
    - audit:
        type: sdsec.policies.Audit
        targets: [api, open]
        properties: { events: [request, firewall_drop] }
"#;

fn clients_tf(app: &Path, with_open: bool) -> String {
    // "auto" takes the bridge: the provider runs as root.
    let mut tf = provider_tf("  network = \"auto\"\n")
        + &policy_tf("")
        + &unikernel_tf("api", app, &[], "  host_port = 18080\n");
    if with_open {
        tf += &unikernel_tf("open", app, &[], "  host_port = 18081\n");
    }
    tf
}

#[test]
fn bridge_clients_keep_their_addresses_for_ingress_rate_limits_and_audit() {
    let net = Topology::new(2);
    let ws = workspace("net-clients", &net);
    let state_dir = ws.dir.join("sdsec-state");
    let app = static_app();
    let _cleanup = DestroyOnPanic { ws: &ws, vars: Vec::new() };
    let (c1, c2) = (net.client(1), net.client(2));

    ws.write("policy.yaml", CLIENTS_POLICY);
    ws.write("main.tf", &clients_tf(&app, true));
    ws.run(&["apply", "-auto-approve", "-no-color"]).success().lacks("cannot tell clients apart");
    let (api, open) =
        (attr(&ws, "sdsec_unikernel.api", "instance_id"), attr(&ws, "sdsec_unikernel.open", "instance_id"));
    let (api_ip, open_ip) = (guest_ip(&ws, "sdsec_unikernel.api"), guest_ip(&ws, "sdsec_unikernel.open"));
    assert_ne!(api_ip, open_ip);
    assert_eq!(attr(&ws, "sdsec_unikernel.api", "network"), "bridge", "auto is bridge with CAP_NET_ADMIN");
    assert_eq!(attr(&ws, "sdsec_unikernel.api", "endpoint"), "http://0.0.0.0:18080");
    assert_eq!(attr(&ws, "sdsec_unikernel.open", "endpoint"), "http://0.0.0.0:18081");
    let two_taps = taps(&net.hv);
    assert_eq!(two_taps.len(), 2, "one TAP per instance: {:?}", net.hv.links());
    assert!(net.hv.links().iter().any(|l| l == BRIDGE), "no bridge {BRIDGE}: {:?}", net.hv.links());
    let tables = sdsec_tables(&net.hv);
    for table in ["table inet sdsec_sdsec0", "table bridge sdsec_sdsec0"] {
        assert!(tables.iter().any(|t| t == table), "{table} missing: {tables:?}");
    }

    // Ingress by source: client 1 is served, client 2 is dropped, each seen as itself.
    let served = get(&c1.ns, &format!("http://{}:18080/health", c1.host_addr));
    assert_eq!(served.status, Some(200), "client 1 through host_port: {served:?}");
    let refused = get(&c2.ns, &format!("http://{}:18080/health", c2.host_addr));
    assert!(refused.status.is_none() && !refused.error.is_empty(), "client 2 is not admitted: {refused:?}");
    expect_event(&state_dir, &api, "request", c1.addr, |a| {
        a.status == Some(200) && a.path.as_deref() == Some("/health")
    });
    expect_event(&state_dir, &api, "firewall_drop", c2.addr, |a| a.reason.as_deref() == Some("ingress"));

    // The host's own request to 127.0.0.1:host_port shows the gateway address.
    let local = get(&net.hv, "http://127.0.0.1:18080/health");
    assert_eq!(local.status, Some(200), "the host through 127.0.0.1: {local:?}");
    expect_event(&state_dir, &api, "request", GATEWAY, |a| a.status == Some(200));
    let expected: BTreeSet<IpAddr> = [c1.addr, c2.addr, GATEWAY].into_iter().map(IpAddr::V4).collect();
    assert_eq!(sources(&state_dir, &api), expected, "no other source reaches api");

    // Per-source rate limits: client 1's burst meets the limit, client 2 still has its own.
    let statuses = burst(&c1.ns, &format!("http://{}:18081/health", c1.host_addr), 8);
    assert_eq!(statuses.len(), 8, "{statuses:?}");
    assert_eq!(&statuses[..3], &[200, 200, 200], "the burst of 3 is served: {statuses:?}");
    assert!(statuses[3..].contains(&429), "client 1 meets the limit: {statuses:?}");
    let other = get(&c2.ns, &format!("http://{}:18081/health", c2.host_addr));
    println!(
        "clients: api at {api_ip}, open at {open_ip}; client 2 at api: {refused:?}; burst of client 1 at open: {statuses:?}"
    );
    assert_eq!(other.status, Some(200), "client 2 has a bucket of its own: {other:?}");
    expect_event(&state_dir, &open, "firewall_drop", c1.addr, |a| {
        a.status == Some(429) && a.reason.as_deref() == Some("rate_limited")
    });
    expect_event(&state_dir, &open, "request", c2.addr, |a| a.status == Some(200));
    let expected: BTreeSet<IpAddr> = [c1.addr, c2.addr].into_iter().map(IpAddr::V4).collect();
    assert_eq!(sources(&state_dir, &open), expected, "clients are not masqueraded");

    // One unikernel removed: its TAP, lease and rules go; the bridge and tables stay for api.
    ws.write("main.tf", &clients_tf(&app, false));
    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    assert_eq!(attr(&ws, "sdsec_unikernel.api", "instance_id"), api);
    let left = taps(&net.hv);
    assert_eq!(left.len(), 1, "{left:?}");
    let open_tap = two_taps.iter().find(|t| !left.contains(t)).expect("open's TAP is gone");
    let leases = leases_left(&state_dir);
    assert!(!leases.contains(&open_ip.to_string()) && !leases.contains(open_tap), "open's lease is left: {leases:?}");
    assert!(leases.contains(&api_ip.to_string()), "api's lease is kept: {leases:?}");
    assert!(net.hv.links().iter().any(|l| l == BRIDGE), "the bridge goes with the last instance only");
    assert_eq!(sdsec_tables(&net.hv).len(), 2, "the tables go with the last instance only");
    let rules = net.hv.run("nft", &["list", "ruleset"]);
    assert!(
        !rules.contains(&open_ip.to_string()) && !rules.contains(open_tap.as_str()),
        "open's rules are left:\n{rules}"
    );
    assert!(!rules.contains("18081"), "open's published port is left:\n{rules}");
    assert_eq!(get(&c1.ns, &format!("http://{}:18080/health", c1.host_addr)).status, Some(200), "api still serves");
    assert_eq!(get(&c1.ns, &format!("http://{}:18081/health", c1.host_addr)).status, None, "open is unpublished");

    ws.run(&["destroy", "-auto-approve", "-no-color"]).success();
    assert_torn_down(&net.hv, &state_dir);
}

// ---------------------------------------------------------------------------------------
// 2. East-west flows and egress.

/// `front` may connect to `back`, `out` to `back`; nothing else is declared. `v2` removes
/// front's `connects_to` and lets `out` reach the test's server on client 1.
fn flows_policy(v2: bool) -> String {
    let front_needs = if v2 { "" } else { "\n      requirements:\n        - connects_to: back" };
    let egress = if v2 {
        r#"
    - out_egress:
        type: sdsec.policies.Firewall
        targets: [out]
        properties:
          egress: [ { to: 198.18.1.2/32, ports: [9090], protocol: tcp } ]"#
    } else {
        ""
    };
    format!(
        r#"tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    front:
      type: sdsec.nodes.Unikernel{front_needs}
    back:
      type: sdsec.nodes.Unikernel
    out:
      type: sdsec.nodes.Unikernel
      requirements:
        - connects_to: back
  policies:
    - audit:
        type: sdsec.policies.Audit
        properties: {{ events: [request, firewall_drop] }}{egress}
"#
    )
}

/// Each unikernel's `/fetch` goes to one place: front to back (declared), back to out (the
/// reverse of the declared out → back), out to the server on client 1 (egress).
fn flows_tf(app: &Path) -> String {
    provider_tf("  network = \"bridge\"\n")
        + &policy_tf("")
        + &unikernel_tf("out", app, &["--fetch", "http://198.18.1.2:9090/health"], "")
        + &unikernel_tf("back", app, &["--fetch", "http://${sdsec_unikernel.out.ip}:80/health"], "")
        + &unikernel_tf("front", app, &["--fetch", "http://${sdsec_unikernel.back.ip}:80/health"], "")
}

#[test]
fn bridge_flows_follow_connects_to_and_egress_and_change_in_place() {
    let net = Topology::new(1);
    let ws = workspace("net-flows", &net);
    let state_dir = ws.dir.join("sdsec-state");
    let app = static_app();
    let _cleanup = DestroyOnPanic { ws: &ws, vars: Vec::new() };
    let _server = Background::example_api(&net.client(1).ns, &app, "198.18.1.2:9090");
    let fetch = |name: &str| {
        let endpoint = attr(&ws, &format!("sdsec_unikernel.{name}"), "endpoint");
        get(&net.hv, &format!("{endpoint}/fetch"))
    };
    let upstream_ok = serde_json::json!({ "upstream_status": 200 });

    ws.write("policy.yaml", &flows_policy(false));
    ws.write("main.tf", &flows_tf(&app));
    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    let names = ["front", "back", "out"];
    let ids: Vec<String> = names.iter().map(|n| attr(&ws, &format!("sdsec_unikernel.{n}"), "instance_id")).collect();
    let ips: Vec<Ipv4Addr> = names.iter().map(|n| guest_ip(&ws, &format!("sdsec_unikernel.{n}"))).collect();
    for (name, ip) in names.iter().zip(&ips) {
        let endpoint = attr(&ws, &format!("sdsec_unikernel.{name}"), "endpoint");
        assert_eq!(endpoint, format!("http://{ip}:{RUNTIME_PORT}"), "{name} without host_port");
    }

    // Declared: front reaches back, and back's runtime sees front's own address.
    let front = fetch("front");
    assert_eq!((front.status, front.json()), (Some(200), upstream_ok.clone()), "front → back is declared: {front:?}");
    expect_event(&state_dir, &ids[1], "request", ips[0], |a| a.path.as_deref() == Some("/health"));
    // The reverse of a declared flow is not declared.
    let back = fetch("back");
    assert_eq!(back.status, Some(502), "back → out is not declared (out → back is): {back:?}");
    assert!(!sources(&state_dir, &ids[2]).contains(&IpAddr::V4(ips[1])), "back's connection reached out");
    // No egress yet.
    let out = fetch("out");
    assert_eq!(out.status, Some(502), "out → 198.18.1.2:9090 without egress: {out:?}");
    println!("flows before: front {}, back {}, out {}", front.body, back.body, out.body);

    // Egress added, front's connects_to removed: both in place.
    ws.write("policy.yaml", &flows_policy(true));
    ws.run(&["plan", "-no-color"])
        .success()
        .contains("updated in-place")
        .contains("Plan: 0 to add,")
        .contains(", 0 to destroy.")
        .lacks("must be replaced")
        .lacks("forces replacement");
    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    for (name, id) in names.iter().zip(&ids) {
        assert_eq!(&attr(&ws, &format!("sdsec_unikernel.{name}"), "instance_id"), id, "{name} updated in place");
    }
    let out = fetch("out");
    assert_eq!((out.status, out.json()), (Some(200), upstream_ok), "out → 198.18.1.2:9090 with egress: {out:?}");
    let front = fetch("front");
    assert_eq!(front.status, Some(502), "front → back is revoked: {front:?}");
    let back = fetch("back");
    assert_eq!(back.status, Some(502), "back → out is still not declared: {back:?}");
    println!("flows after: front {}, back {}, out {}", front.body, back.body, out.body);
    ws.run(&["plan", "-detailed-exitcode", "-no-color"]).exit_code(0);

    ws.run(&["destroy", "-auto-approve", "-no-color"]).success();
    assert_torn_down(&net.hv, &state_dir);
}

// ---------------------------------------------------------------------------------------
// 3. A pool's member, published.

const POOL_POLICY: &str = r#"tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  policies:
    - audit: { type: sdsec.policies.Audit, targets: [api], properties: { events: [request, firewall_drop] } }
"#;

fn pool_tf(app: &Path, warm: &str) -> String {
    let settings = "  network         = \"bridge\"\n  publish_address = \"198.18.1.1\"\n";
    provider_tf(settings)
        + &policy_tf("")
        + &format!(
            r#"
resource "sdsec_pool" "api" {{
  name        = "api"
  enforcement = sdsec_security_policy.api.enforcement["api"]
  application = {{ path = "{}", args = ["--listen", "0.0.0.0:8080"], port = 8080 }}
  size        = 1
  warm        = "{warm}"
}}
"#,
            app.display()
        )
        + &unikernel_tf("api", app, &[], "  pool        = sdsec_pool.api.id\n  host_port   = 18090\n")
}

/// Both kinds of warm member: a paused instance, and a copy of the image's snapshot, which
/// takes its own address, MAC and key on the bridge when it is resumed.
#[test]
fn bridge_publishes_a_unikernel_taken_from_a_pool_on_its_host_port() {
    for warm in ["paused", "snapshot"] {
        publishes_a_pool_member(warm);
    }
}

fn publishes_a_pool_member(warm: &str) {
    let net = Topology::new(2);
    let ws = workspace(&format!("net-pool-{warm}"), &net);
    let state_dir = ws.dir.join("sdsec-state");
    let app = static_app();
    let _cleanup = DestroyOnPanic { ws: &ws, vars: Vec::new() };
    let (c1, c2) = (net.client(1), net.client(2));

    ws.write("policy.yaml", POOL_POLICY);
    ws.write("main.tf", &pool_tf(&app, warm));
    ws.run(&["apply", "-auto-approve", "-no-color"]).success().lacks("did not come from its pool");
    let id = attr(&ws, "sdsec_unikernel.api", "instance_id");
    let ip = guest_ip(&ws, "sdsec_unikernel.api");
    let log = audit_log(&state_dir, &id);
    let resumed = Event::scan(&log).any(|e| matches!(e, Event::Resumed { .. }));
    assert_eq!(resumed, warm == "snapshot", "{warm}: a copy of the snapshot, resumed: {log}");
    if warm == "snapshot" {
        // The copy answers at its own address on the bridge, under its own key only.
        let direct = get(&net.hv, &format!("http://{ip}:80/health"));
        assert_eq!(direct.status, Some(200), "the copy at {ip}: {direct:?}");
        let snapshots = state_dir.join("snapshots");
        let record = std::fs::read_dir(&snapshots).unwrap().flatten().find(|e| e.path().is_dir()).unwrap();
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(record.path().join("snapshot.json")).unwrap()).unwrap();
        let snapshot_key = abi::control::Key::from_hex(record["key"].as_str().unwrap()).unwrap();
        let qemu = hypervisor::qemu::Qemu::new(&state_dir, hypervisor::AccelChoice::Auto).unwrap();
        let channel = hypervisor::Hypervisor::control(&qemu, &id.parse().unwrap()).unwrap();
        let command = abi::control::Command::Status;
        let snapshot_channel = hypervisor::ControlEndpoint { key: snapshot_key, ..channel };
        let status = snapshot_channel.call(command, Duration::from_secs(20));
        assert!(status.is_err(), "the snapshot's key is refused by the copy: {status:?}");
    }
    assert_eq!(attr(&ws, "sdsec_unikernel.api", "endpoint"), "http://198.18.1.1:18090");

    // Published on publish_address only, for every client that reaches that address.
    let served = get(&c1.ns, "http://198.18.1.1:18090/health");
    assert_eq!(served.status, Some(200), "client 1 at publish_address: {served:?}");
    let routed = get(&c2.ns, "http://198.18.1.1:18090/health");
    assert_eq!(routed.status, Some(200), "client 2 at publish_address, through the host: {routed:?}");
    let elsewhere = get(&c2.ns, &format!("http://{}:18090/health", c2.host_addr));
    assert!(
        elsewhere.status.is_none() && !elsewhere.error.is_empty(),
        "not published on the host's other addresses: {elsewhere:?}"
    );
    expect_event(&state_dir, &id, "request", c1.addr, |a| a.status == Some(200));
    expect_event(&state_dir, &id, "request", c2.addr, |a| a.status == Some(200));

    ws.run(&["destroy", "-auto-approve", "-no-color"]).success();
    assert_torn_down(&net.hv, &state_dir);
}

// ---------------------------------------------------------------------------------------
// 5. Bad input.

fn one_unikernel_tf(app: &Path, settings: &str, extra: &str) -> String {
    provider_tf(settings) + &policy_tf("") + &unikernel_tf("api", app, &[], extra)
}

#[test]
fn bridge_refuses_bad_subnets_foreign_bridges_and_ports_in_use() {
    let net = Topology::new(1);
    let ws = workspace("net-bad-input", &net);
    let state_dir = ws.dir.join("sdsec-state");
    let app = static_app();
    let _cleanup = DestroyOnPanic { ws: &ws, vars: Vec::new() };
    ws.write("policy.yaml", POOL_POLICY);
    let apply = |settings: &str, extra: &str| {
        ws.write("main.tf", &one_unikernel_tf(&app, settings, extra));
        let run = ws.run(&["apply", "-auto-approve", "-no-color"]).failure();
        let stderr = run.stderr().replace(['│', '╷', '╵'], " ");
        let error = stderr.split_whitespace().collect::<Vec<_>>().join(" ");
        println!("bad input {}: {error}", settings.trim().replace('\n', ";"));
        run
    };

    apply("  network = \"bridged\"\n", "").contains("network").contains("bridged");
    apply("  network = \"bridge\"\n  subnet = \"10.213.0.5/24\"\n", "").contains("subnet").contains("10.213.0.5/24");
    apply("  network = \"bridge\"\n  subnet = \"10.213.0.0/30\"\n", "").contains("subnet").contains("/30");
    // The host routes 198.18.1.0/24 to client 1: a subnet holding it is refused, naming it.
    apply("  network = \"bridge\"\n  subnet = \"198.18.0.0/23\"\n", "").contains("subnet").contains("198.18.1.0/24");

    // A device sdsec did not create is refused and left as it was: a bridge of someone else's
    // (the same kind of device as sdsec's, without its alias; this kernel has no dummy links).
    net.hv.ip(&["link", "add", "sdxforeign0", "type", "bridge"]);
    net.hv.ip(&["addr", "add", "198.19.255.1/24", "dev", "sdxforeign0"]);
    net.hv.ip(&["link", "set", "sdxforeign0", "up"]);
    let before = net.hv.ip(&["addr", "show", "sdxforeign0"]);
    apply("  network = \"bridge\"\n  bridge = \"sdxforeign0\"\n", "").contains("bridge").contains("sdxforeign0");
    let after = net.hv.ip(&["addr", "show", "sdxforeign0"]);
    assert_eq!(after, before, "the foreign bridge was changed");
    assert!(!after.contains("alias"), "{after}");
    assert!(!net.hv.links().iter().any(|l| l.starts_with("sdt-")), "a TAP was added to the foreign bridge");

    // A host_port something else listens on.
    let listener = Background::example_api(&net.hv, &app, "0.0.0.0:18080");
    apply("  network = \"bridge\"\n", "  host_port = 18080\n").contains("host_port").contains("18080");
    drop(listener);

    assert_torn_down(&net.hv, &state_dir);
    let instances: Vec<_> = std::fs::read_dir(state_dir.join("instances"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(instances.is_empty(), "instances left by refused applies: {instances:?}");
}

// ---------------------------------------------------------------------------------------
// 6. The user network.

const USER_POLICY: &str = r#"tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  policies:
    - per_source:
        type: sdsec.policies.Firewall
        targets: [api]
        properties:
          rate_limit: { requests_per_second: 20, burst: 20, per: source }
"#;

#[test]
fn user_network_still_serves_and_warns_that_per_source_rules_cannot_tell_clients_apart() {
    let net = Topology::new(0);
    let ws = workspace("net-user", &net);
    let state_dir = ws.dir.join("sdsec-state");
    let app = static_app();
    let _cleanup = DestroyOnPanic { ws: &ws, vars: Vec::new() };
    ws.write("policy.yaml", USER_POLICY);
    ws.write("main.tf", &one_unikernel_tf(&app, "  network = \"user\"\n", ""));

    ws.run(&["plan", "-no-color"]).success().contains("Warning").contains("cannot tell clients apart");
    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    let endpoint = attr(&ws, "sdsec_unikernel.api", "endpoint");
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    assert_eq!(ws.attributes("sdsec_unikernel.api")["ip"], serde_json::Value::Null);
    assert_eq!(attr(&ws, "sdsec_unikernel.api", "network"), "user");
    let served = get(&net.hv, &format!("{endpoint}/health"));
    assert_eq!(served.status, Some(200), "{served:?}");
    // No bridge networking on the host at all.
    assert_no_bridge_networking(&net.hv, &state_dir);

    ws.run(&["destroy", "-auto-approve", "-no-color"]).success();
    assert_torn_down(&net.hv, &state_dir);
}

/// Under the user network, while the VM runs: no TAP, bridge, table or lease.
fn assert_no_bridge_networking(hv: &Netns, state_dir: &Path) {
    assert_eq!(taps(hv), Vec::<String>::new());
    assert!(!hv.links().iter().any(|l| l == BRIDGE), "{:?}", hv.links());
    assert_eq!(sdsec_tables(hv), Vec::<String>::new());
    assert_eq!(leases_left(state_dir), Vec::<String>::new());
}
