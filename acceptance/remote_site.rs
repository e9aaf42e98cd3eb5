//! Bridge networking on a libvirt daemon that shares nothing with the provider's machine
//! (`remote_host`): the site's own routed network and one network filter per guest, kept
//! over the connection. The provider's machine routes the site's subnet to the daemon's host,
//! as a client network would; only the test's own namespace and link are addressed.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Workspace, clis, policy_tf, provider_tf};
use crate::networking::{attr, unikernel_tf};
use crate::remote_host::RemoteHost;
use crate::unikernel::{DestroyOnPanic, static_app};

/// `front` may connect to `back`, `out` to `back` and to `ext` (a node of another site, not
/// deployed here); `v2` drops front's `connects_to` and lets `out` reach `server` (the
/// test's own server on the provider's end of the link).
fn policy(v2: bool, server: Ipv4Addr) -> String {
    let front_needs = if v2 { "" } else { "\n      requirements:\n        - connects_to: back" };
    let egress = if v2 {
        format!(
            "\n    - out_egress:\n        type: sdsec.policies.Firewall\n        targets: [out]\n        properties:\n          \
             egress: [ {{ to: {server}/32, ports: [9090], protocol: tcp }} ]"
        )
    } else {
        String::new()
    };
    format!(
        "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    front:\n      \
         type: sdsec.nodes.Unikernel{front_needs}\n    back:\n      type: sdsec.nodes.Unikernel\n    out:\n      \
         type: sdsec.nodes.Unikernel\n      requirements:\n        - connects_to: back\n        - connects_to: ext\n    ext:\n      \
         type: sdsec.nodes.Unikernel\n  policies:\n    - audit:\n        \
         type: sdsec.policies.Audit\n        properties: {{ events: [request, firewall_drop] }}{egress}\n"
    )
}

/// A route to the site's subnet through the daemon's host, removed with it.
struct Route(String);

impl Drop for Route {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["route", "del", &self.0]).status();
    }
}

/// The example API on `listen`, stopped with it.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl(url: &str) -> (Option<u16>, String) {
    let out = Command::new("curl").args(["-sS", "--max-time", "20", "-w", "\n%{http_code}", url]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    (code.trim().parse().ok().filter(|c| *c != 0), body.to_owned())
}

fn virsh(uri: &str, args: &[&str]) -> String {
    let out = Command::new("virsh").args(["-c", uri]).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_remote_site_keeps_flows_egress_and_client_addresses_in_its_own_filters() {
    let site = RemoteHost::start(52);
    let daemon: Ipv4Addr = site.uri.split("//").nth(1).unwrap().split('/').next().unwrap().parse().unwrap();
    // The provider's end of the link: where the provider's requests come from, and the
    // egress test's server.
    let here = Ipv4Addr::from(u32::from(daemon) - 1);
    let subnet = format!("10.215.{}.0/24", std::process::id() % 250);
    let status = Command::new("ip").args(["route", "replace", &subnet, "via", &daemon.to_string()]).status().unwrap();
    assert!(status.success());
    let _route = Route(subnet.clone());
    let app = static_app();
    let child = Command::new(&app).args(["--listen", &format!("{here}:9090")]).stdout(Stdio::null()).spawn().unwrap();
    let _server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&SocketAddr::from((here, 9090)), Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "the test's server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    let cli = clis().into_iter().next().expect("a Terraform CLI");
    let ws = Workspace::new(&cli, "remote-site");
    let _cleanup = DestroyOnPanic { ws: &ws, vars: Vec::new() };
    let settings = format!(
        "  hypervisor  = \"libvirt\"\n  libvirt_uri = \"{}\"\n  network     = \"bridge\"\n  bridge      = \"sdsec-site\"\n  \
         subnet      = \"{subnet}\"\n",
        site.uri
    );
    let main_with = |out_extra: &str| {
        provider_tf(&settings)
            + &policy_tf("")
            + &unikernel_tf("out", &app, &["--fetch", &format!("http://{here}:9090/health")], out_extra)
            + &unikernel_tf("back", &app, &["--fetch", "http://${sdsec_unikernel.out.ip}:80/health"], "")
            + &unikernel_tf("front", &app, &["--fetch", "http://${sdsec_unikernel.back.ip}:80/health"], "")
    };
    let main = || main_with("");
    ws.write("policy.yaml", &policy(false, here));
    ws.write("main.tf", &main());
    // A host port means nothing on a remote site: refused at plan, on the attribute.
    ws.write(
        "extra.tf",
        &unikernel_tf("published", &app, &[], "  host_port   = 18123\n").replace("[\"published\"]", "[\"out\"]"),
    );
    ws.run(&["plan", "-no-color"]).failure().contains("host_port").contains("route to the daemon");
    ws.write("extra.tf", "");

    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    let names = ["front", "back", "out"];
    let ids: Vec<String> = names.iter().map(|n| attr(&ws, &format!("sdsec_unikernel.{n}"), "instance_id")).collect();
    let ips: Vec<Ipv4Addr> =
        names.iter().map(|n| attr(&ws, &format!("sdsec_unikernel.{n}"), "ip").parse().unwrap()).collect();
    for (name, ip) in names.iter().zip(&ips) {
        let prefix = subnet.trim_end_matches("0/24");
        assert!(ip.to_string().starts_with(prefix), "{name} at {ip}, outside {subnet}");
        assert_eq!(attr(&ws, &format!("sdsec_unikernel.{name}"), "endpoint"), format!("http://{ip}:80"));
        assert_eq!(attr(&ws, &format!("sdsec_unikernel.{name}"), "network"), "bridge");
    }
    // The site keeps one filter per guest, and its network, over the connection.
    let filters = virsh(&site.uri, &["nwfilter-list"]);
    let ours: Vec<String> = filters.split_whitespace().filter(|w| w.starts_with("sdsec-")).map(str::to_owned).collect();
    assert_eq!(ours.len(), 3, "{filters}");
    let network = virsh(&site.uri, &["net-dumpxml", "sdsec-site"]);
    let token = ours[0].split('-').nth(1).unwrap();
    assert!(
        network.contains(&format!("owner='{token}'")) || network.contains(&format!("owner=\"{token}\"")),
        "{network}"
    );
    assert!(ours.iter().all(|name| name.starts_with(&format!("sdsec-{token}-"))), "{ours:?}");

    let fetch = |i: usize| curl(&format!("http://{}:80/fetch", ips[i]));
    let audit = |i: usize| {
        let log = site.var_lib.join("sdsec-pools/sdsec").join(format!("sdsec-{}.audit.log", ids[i]));
        std::fs::read_to_string(&log).unwrap_or_default()
    };
    // Served from the provider's machine, whose own address the guest sees.
    let (status, _) = curl(&format!("http://{}:80/health", ips[0]));
    assert_eq!(status, Some(200), "served at the guest's own address");
    let (status, body) = fetch(0);
    assert_eq!(
        (status, body.contains("\"upstream_status\":200")),
        (Some(200), true),
        "front → back is declared: {body}"
    );
    assert!(audit(1).contains(&format!("\"{}:", ips[0])), "back saw front's own address: {}", audit(1));
    assert!(audit(0).contains(&format!("\"{here}:")), "front saw the provider's address: {}", audit(0));
    let (status, body) = fetch(1);
    assert_eq!(status, Some(502), "back → out is not declared (out → back is): {body}");
    let (status, body) = fetch(2);
    assert_eq!(status, Some(502), "out → the server without egress: {body}");

    // A peer elsewhere: `ext` runs at another site, here the test's server. Only a node
    // `out` connects_to can be one, checked at plan on the entry.
    let peer = |node: &str| format!("  peers       = {{ {node} = \"http://{here}:9090\" }}\n");
    ws.write("main.tf", &main_with(&peer("front")));
    ws.run(&["plan", "-no-color"]).failure().contains("Invalid peer").contains("does not `connects_to` `front`");
    ws.write("main.tf", &main_with(&peer("ext")));
    ws.run(&["apply", "-auto-approve", "-no-color"]).success().contains("0 added, 1 changed, 0 destroyed");
    assert_eq!(attr(&ws, "sdsec_unikernel.out", "instance_id"), ids[2], "out updated in place");
    let (status, body) = fetch(2);
    assert_eq!(status, Some(200), "out → its peer elsewhere: {body}");
    ws.write("main.tf", &main());
    ws.run(&["apply", "-auto-approve", "-no-color"]).success().contains("0 added, 1 changed, 0 destroyed");
    let (status, body) = fetch(2);
    assert_eq!(status, Some(502), "the peer removed, the flow is revoked: {body}");

    // Egress added, front's connects_to removed: both in place, filters rewritten.
    ws.write("policy.yaml", &policy(true, here));
    ws.run(&["apply", "-auto-approve", "-no-color"]).success();
    for (name, id) in names.iter().zip(&ids) {
        assert_eq!(&attr(&ws, &format!("sdsec_unikernel.{name}"), "instance_id"), id, "{name} updated in place");
    }
    let (status, body) = fetch(2);
    assert_eq!(status, Some(200), "out → the server with egress: {body}");
    let (status, body) = fetch(0);
    assert_eq!(status, Some(502), "front → back is revoked: {body}");

    // Nothing changed: a plan reports no drift.
    ws.run(&["plan", "-no-color"]).success().lacks("drifted");
    // A filter loosened behind sdsec's back (its default deny turned accept) is reported
    // at plan and restored.
    let name = &ours[0];
    let defined = virsh(&site.uri, &["nwfilter-dumpxml", name]);
    let drop = ["action='drop'", "action=\"drop\""].into_iter().find(|d| defined.contains(d)).expect("a drop rule");
    let (head, tail) = defined.rsplit_once(drop).unwrap();
    let loosened = ws.dir.join("loosened.xml");
    std::fs::write(&loosened, format!("{head}{}{tail}", drop.replace("drop", "accept"))).unwrap();
    let redefined = Command::new("virsh").args(["-c", &site.uri, "nwfilter-define"]).arg(&loosened).status().unwrap();
    assert!(redefined.success());
    assert_ne!(virsh(&site.uri, &["nwfilter-dumpxml", name]), defined);
    ws.run(&["plan", "-no-color"]).success().contains("drifted").contains(name.as_str());
    assert_eq!(virsh(&site.uri, &["nwfilter-dumpxml", name]), defined, "refresh restores {name}");
    ws.run(&["plan", "-no-color"]).success().lacks("drifted");

    ws.run(&["destroy", "-auto-approve", "-no-color"]).success();
    assert!(!virsh(&site.uri, &["nwfilter-list"]).contains("sdsec-"), "no filter is left");
    assert!(!virsh(&site.uri, &["net-list", "--all", "--name"]).contains("sdsec-site"), "the network is gone");
    assert!(virsh(&site.uri, &["list", "--all", "--name"]).trim().is_empty(), "no domain is left");
}
