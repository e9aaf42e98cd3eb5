//! Bridge networking on the libvirt backend, inside network namespaces as in networking.rs.
//! The provider creates the TAP in its own network namespace and QEMU, started by libvirtd,
//! opens it by name, so the test starts a libvirt daemon of its own inside the "hypervisor
//! host" namespace (and a private mount namespace: see `netns::Libvirtd`); Terraform and the
//! provider run there too and reach the daemon through its socket.

use std::time::Instant;

use crate::harness::{policy_tf, provider_tf};
use crate::netns::{Libvirtd, Topology};
use crate::networking::{
    BRIDGE, assert_torn_down, attr, expect_event, get, guest_ip, sdsec_tables, taps, unikernel_tf, workspace,
};
use crate::unikernel::{DestroyOnPanic, static_app};

/// `api` admits client 1 only (default deny), and the host (the bridge's gateway address), whose
/// health probe tells the provider the unikernel is ready; it audits requests and drops.
const POLICY: &str = r#"tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  policies:
    - only_client1:
        type: sdsec.policies.Firewall
        targets: [api]
        properties:
          default: deny
          ingress:
            - { from: [198.18.1.2/32, 10.213.0.1/32], action: allow }
    - audit:
        type: sdsec.policies.Audit
        targets: [api]
        properties: { events: [request, firewall_drop] }
"#;

#[test]
fn bridge_on_libvirt_keeps_client_addresses_and_leaves_nothing() {
    let started = Instant::now();
    let net = Topology::new(2);
    let Some(libvirtd) = Libvirtd::start(&net.hv) else { return };
    let daemon_up = started.elapsed();
    let ws = workspace("net-libvirt", &net);
    let state_dir = ws.dir.join("sdsec-state");
    let app = static_app();
    let _cleanup = DestroyOnPanic { ws: &ws, vars: Vec::new() };
    let (c1, c2) = (net.client(1), net.client(2));

    let settings =
        format!("  hypervisor  = \"libvirt\"\n  libvirt_uri = \"{}\"\n  network     = \"bridge\"\n", libvirtd.uri);
    ws.write("policy.yaml", POLICY);
    ws.write(
        "main.tf",
        &(provider_tf(&settings) + &policy_tf("") + &unikernel_tf("api", &app, &[], "  host_port = 18100\n")),
    );
    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    let applied = started.elapsed();
    let id = attr(&ws, "sdsec_unikernel.api", "instance_id");
    assert_eq!(attr(&ws, "sdsec_unikernel.api", "network"), "bridge");
    let ip = guest_ip(&ws, "sdsec_unikernel.api");
    assert_eq!(attr(&ws, "sdsec_unikernel.api", "endpoint"), "http://0.0.0.0:18100");
    // The test's daemon runs it, on a TAP of the bridge in the host namespace.
    assert_eq!(libvirtd.domains(), vec![format!("sdsec-{id}")], "{}", libvirtd.logs());
    assert_eq!(taps(&net.hv).len(), 1, "one TAP: {:?}", net.hv.links());
    assert!(net.hv.links().iter().any(|l| l == BRIDGE), "no bridge {BRIDGE}: {:?}", net.hv.links());
    assert_eq!(sdsec_tables(&net.hv).len(), 2, "the inet and bridge tables");

    // Client 1 is served and seen as itself; client 2 is dropped, also seen as itself.
    let served = get(&c1.ns, &format!("http://{}:18100/health", c1.host_addr));
    assert_eq!(served.status, Some(200), "client 1 through host_port: {served:?}");
    let refused = get(&c2.ns, &format!("http://{}:18100/health", c2.host_addr));
    assert!(refused.status.is_none() && !refused.error.is_empty(), "client 2 is not admitted: {refused:?}");
    expect_event(&state_dir, &id, "request", c1.addr, |a| {
        a.status == Some(200) && a.path.as_deref() == Some("/health")
    });
    expect_event(&state_dir, &id, "firewall_drop", c2.addr, |a| a.reason.as_deref() == Some("ingress"));
    println!("libvirt bridge: {id} at {ip}; client 1 got {:?}, client 2: {}", served.status, refused.error);

    let destroying = Instant::now();
    ws.run(&["destroy", "-auto-approve", "-no-color"]).success();
    let destroyed = destroying.elapsed();
    assert_torn_down(&net.hv, &state_dir);
    assert_eq!(libvirtd.domains(), Vec::<String>::new(), "domains left in the daemon after destroy");
    println!(
        "libvirt bridge timings: daemon up {daemon_up:.1?}, applied at {applied:.1?}, destroy {destroyed:.1?}, total {:.1?}",
        started.elapsed()
    );
}
