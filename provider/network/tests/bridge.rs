//! Bridge networking for real: each test runs in a network namespace of its own (see
//! `netns`), where it creates bridges, TAPs and nftables tables as the provider does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod netns;

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;

use netns::{Namespace, PeerEcho, ask, ip, isolated, link, nft, nft_check};
use network::{
    BridgeConfig, BridgeOwner, Drift, EgressProtocol, EgressRule, FlowPolicy, Lease, LeaseKey, Network, NetworkError,
    Owner, ruleset, teardown,
};

fn policy(node: &str, connects_to: &[&str]) -> FlowPolicy {
    FlowPolicy {
        node: node.into(),
        tenant: Some("t".into()),
        connects_to: connects_to.iter().map(|n| (*n).to_owned()).collect(),
        egress: Vec::new(),
    }
}

fn network(state_dir: &Path) -> Network {
    Network::new(state_dir, BridgeConfig::default())
}

/// The `inet` table of the default bridge as nft lists it, `None` when there is none.
fn inet_table() -> Option<String> {
    nft(&["-j", "list", "table", "inet", "sdsec_sdsec0"])
}

#[test]
fn generated_rules_pass_nft_check() {
    isolated("generated_rules_pass_nft_check", || {
        let config = BridgeConfig::default();
        let mut web = Lease {
            ip: Ipv4Addr::new(10, 213, 0, 2),
            tap: "sdt-0123456789".into(),
            mac: "52:54:00:d5:00:02".into(),
            runtime_port: 8080,
            host_port: Some(18080),
            owner: Owner::Instance("i-1".into()),
            policy: policy("web", &["api"]),
        };
        web.policy.egress = vec![
            EgressRule {
                to: "192.0.2.0/24".parse().unwrap(),
                ports: vec![(53, 53), (80, 90)],
                protocol: EgressProtocol::Any,
            },
            EgressRule { to: "198.51.100.7/32".parse().unwrap(), ports: vec![], protocol: EgressProtocol::Tcp },
            EgressRule { to: "203.0.113.0/24".parse().unwrap(), ports: vec![], protocol: EgressProtocol::Any },
        ];
        let api = Lease {
            ip: Ipv4Addr::new(10, 213, 0, 3),
            tap: "sdt-abcdef0123".into(),
            policy: policy("api", &[]),
            ..web.clone()
        };
        nft_check(&ruleset(&config, &[])).unwrap();
        nft_check(&ruleset(&config, &[web.clone(), api])).unwrap();
        let specific =
            BridgeConfig { publish_address: Ipv4Addr::new(192, 0, 2, 1), bridge: "br.x-1".into(), ..config.clone() };
        nft_check(&ruleset(&specific, &[web])).unwrap();
        nft_check(&teardown(&config)).unwrap();
    });
}

#[test]
fn attach_two_then_release_both() {
    isolated("attach_two_then_release_both", || {
        let state = tempfile::tempdir().unwrap();
        let network = network(state.path());
        network.check().unwrap();
        let web = network.attach(policy("web", &["api"]), 8080, Some(18080)).unwrap();
        let api = network.attach(policy("api", &[]), 8081, None).unwrap();
        assert_eq!((web.ip, api.ip), (Ipv4Addr::new(10, 213, 0, 2), Ipv4Addr::new(10, 213, 0, 3)));
        assert_eq!((web.prefix, web.gateway), (24, Ipv4Addr::new(10, 213, 0, 1)));
        assert_eq!(web.mac, "52:54:00:d5:00:02");
        assert!(web.tap.starts_with("sdt-") && web.tap.len() == 14, "{}", web.tap);

        let bridge = link("sdsec0").unwrap();
        let canonical = std::fs::canonicalize(state.path()).unwrap();
        assert_eq!(bridge["ifalias"], format!("sdsec:{}", canonical.display()));
        assert_eq!(bridge["linkinfo"]["info_kind"], "bridge");
        assert!(ip(&["-4", "addr", "show", "dev", "sdsec0"]).contains("10.213.0.1/24"));
        for tap in [&web.tap, &api.tap] {
            let port = link(tap).unwrap();
            assert_eq!(port["master"], "sdsec0", "{port}");
            assert_eq!(port["linkinfo"]["info_slave_data"]["isolated"], true, "{port}");
            assert_eq!(port["linkinfo"]["info_data"]["vnet_hdr"], true, "{port}");
        }
        for (sysctl, value) in [
            ("ipv4/conf/sdsec0/proxy_arp_pvlan", "1"),
            ("ipv4/conf/sdsec0/route_localnet", "1"),
            ("ipv4/neigh/sdsec0/proxy_delay", "0"),
            ("ipv4/ip_forward", "1"),
        ] {
            assert_eq!(std::fs::read_to_string(format!("/proc/sys/net/{sysctl}")).unwrap().trim(), value, "{sysctl}");
        }
        let rules = inet_table().unwrap();
        assert!(rules.contains("10.213.0.2") && rules.contains("10.213.0.3") && rules.contains("18080"), "{rules}");
        assert!(nft(&["list", "table", "bridge", "sdsec_sdsec0"]).unwrap().contains(&api.tap));
        let leases = network.leases().unwrap();
        assert_eq!(leases.len(), 2);
        assert!(matches!(leases[0].owner, Owner::Creating { pid, .. } if pid == std::process::id()));

        network.bind(&web.tap, "i-web").unwrap();
        assert_eq!(network.lease("i-web").unwrap().unwrap().ip, web.ip);
        network.release(LeaseKey::Instance("i-web")).unwrap();
        assert!(link(&web.tap).is_none());
        assert!(!inet_table().unwrap().contains("18080"), "the released lease's rules are gone");
        network.release(LeaseKey::Tap(&api.tap)).unwrap();
        assert!(link(&api.tap).is_none() && link("sdsec0").is_none(), "the bridge goes with the last lease");
        assert!(inet_table().is_none() && nft(&["list", "table", "bridge", "sdsec_sdsec0"]).is_none());
        network.release(LeaseKey::Tap(&api.tap)).unwrap();
        network.release(LeaseKey::Instance("i-none")).unwrap();
    });
}

#[test]
fn a_device_we_did_not_create_is_never_touched() {
    isolated("a_device_we_did_not_create_is_never_touched", || {
        // The kernel here has no dummy links: a veth stands for someone else's device.
        ip(&["link", "add", "sdsec0", "type", "veth", "peer", "name", "sdsec0-peer"]);
        let state = tempfile::tempdir().unwrap();
        let network = network(state.path());
        let err = network.attach(policy("web", &[]), 8080, None).unwrap_err();
        assert!(
            matches!(&err, NetworkError::BridgeTaken { owner: BridgeOwner::Foreign { kind: Some(k) }, .. } if k == "veth"),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "the network device `sdsec0` is a veth device sdsec did not create; choose another `bridge` name"
        );
        assert!(matches!(network.check(), Err(NetworkError::BridgeTaken { .. })));
        assert!(network.leases().unwrap().is_empty());
        assert_eq!(link("sdsec0").unwrap()["linkinfo"]["info_kind"], "veth");
        assert!(link("sdsec0").unwrap()["ifalias"].is_null(), "no alias was set on it");
        ip(&["link", "del", "sdsec0"]);

        // Another state directory's bridge is not ours either.
        let other = tempfile::tempdir().unwrap();
        let theirs = self::network(other.path());
        let their_lease = theirs.attach(policy("web", &[]), 8080, None).unwrap();
        let err = network.attach(policy("web", &[]), 8080, None).unwrap_err();
        let canonical = std::fs::canonicalize(other.path()).unwrap().display().to_string();
        assert!(
            matches!(&err, NetworkError::BridgeTaken { owner: BridgeOwner::StateDir(dir), .. } if *dir == canonical),
            "{err}"
        );
        assert!(link(&their_lease.tap).is_some() && inet_table().is_some(), "their bridge and tables are untouched");
        network.release(LeaseKey::Tap(&their_lease.tap)).unwrap();
        assert!(link(&their_lease.tap).is_some(), "a lease of another state directory is not ours to release");
        theirs.release(LeaseKey::Tap(&their_lease.tap)).unwrap();
        assert!(link("sdsec0").is_none());
    });
}

#[test]
fn check_names_an_overlapping_route_and_a_foreign_publish_address() {
    isolated("check_names_an_overlapping_route_and_a_foreign_publish_address", || {
        let state = tempfile::tempdir().unwrap();
        ip(&["link", "add", "uplink", "type", "veth", "peer", "name", "uplink-peer"]);
        ip(&["addr", "add", "10.213.7.1/16", "dev", "uplink"]);
        ip(&["link", "set", "uplink", "up"]);
        let err = network(state.path()).check().unwrap_err();
        assert!(err.to_string().contains("overlaps the host's route 10.213.0.0/16 dev uplink"), "{err}");
        assert_eq!(err.setting(), Some(network::Setting::Subnet));

        let elsewhere = BridgeConfig { subnet: "10.214.0.0/24".parse().unwrap(), ..BridgeConfig::default() };
        let foreign = BridgeConfig { publish_address: Ipv4Addr::new(192, 0, 2, 99), ..elsewhere.clone() };
        let err = Network::new(state.path(), foreign).check().unwrap_err();
        assert!(matches!(err, NetworkError::PublishAddressNotLocal { .. }), "{err}");
        let local = BridgeConfig { publish_address: Ipv4Addr::new(10, 213, 7, 1), ..elsewhere.clone() };
        Network::new(state.path(), local.clone()).check().unwrap();

        let network = Network::new(state.path(), elsewhere.clone());
        network.check().unwrap();
        let attached = network.attach(policy("web", &[]), 8080, None).unwrap();
        network.check().expect("the bridge's own routes are not in the way");
        // Another process's settings never republish what is leased elsewhere.
        let err = Network::new(state.path(), local).check().unwrap_err();
        assert!(err.to_string().contains("`publish_address` changed from 0.0.0.0 to 10.213.7.1"), "{err}");

        let moved = BridgeConfig { subnet: "10.215.0.0/24".parse().unwrap(), ..elsewhere };
        let err = Network::new(state.path(), moved.clone()).check().unwrap_err();
        assert!(err.to_string().contains("`subnet` changed from 10.214.0.0/24 to 10.215.0.0/24"), "{err}");
        // Leases on the old subnet can still be released under the new settings.
        Network::new(state.path(), moved).release(LeaseKey::Tap(&attached.tap)).unwrap();
        assert!(link("sdsec0").is_none());
    });
}

#[test]
fn reclaim_drops_leases_of_dead_creators_and_gone_instances() {
    isolated("reclaim_drops_leases_of_dead_creators_and_gone_instances", || {
        let state = tempfile::tempdir().unwrap();
        let network = network(state.path());
        let live = network.attach(policy("web", &[]), 8080, None).unwrap();
        network.bind(&live.tap, "i-live").unwrap();
        let gone = network.attach(policy("api", &[]), 8080, Some(18081)).unwrap();
        network.bind(&gone.tap, "i-gone").unwrap();
        let creating = network.attach(policy("db", &[]), 8080, None).unwrap();

        // A lease whose creator died (a made-up pid and start time) with its TAP.
        let path = state.path().join("network/leases.json");
        let mut document: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let mut dead = document["leases"][2].clone();
        dead["tap"] = "sdt-deadbeef00".into();
        dead["ip"] = "10.213.0.9".into();
        dead["owner"] = serde_json::json!({ "creating": { "pid": 4_000_000, "start_time": 1, "since_ms": 0 } });
        document["leases"].as_array_mut().unwrap().push(dead);
        std::fs::write(&path, serde_json::to_vec(&document).unwrap()).unwrap();
        for orphan in ["sdt-deadbeef00", "sdt-0rphan0000"] {
            ip(&["tuntap", "add", "dev", orphan, "mode", "tap"]);
            ip(&["link", "set", "dev", orphan, "master", "sdsec0"]);
        }

        let reclaimed = network.reclaim(&|id| id == "i-live").unwrap();
        let taps: Vec<&str> = reclaimed.iter().map(|lease| lease.tap.as_str()).collect();
        assert_eq!(taps, [gone.tap.as_str(), "sdt-deadbeef00"]);
        for tap in [gone.tap.as_str(), "sdt-deadbeef00", "sdt-0rphan0000"] {
            assert!(link(tap).is_none(), "{tap} removed");
        }
        assert!(link(&live.tap).is_some() && link(&creating.tap).is_some(), "held leases keep their TAPs");
        assert!(!inet_table().unwrap().contains("18081"));
        assert_eq!(network.leases().unwrap().len(), 2);

        network.release(LeaseKey::Instance("i-live")).unwrap();
        network.release(LeaseKey::Tap(&creating.tap)).unwrap();
        assert!(network.reclaim(&|_| false).unwrap().is_empty());
        assert!(link("sdsec0").is_none() && inet_table().is_none());
    });
}

#[test]
fn a_port_in_use_or_leased_is_not_published() {
    isolated("a_port_in_use_or_leased_is_not_published", || {
        let state = tempfile::tempdir().unwrap();
        let network = network(state.path());
        let listener = TcpListener::bind("127.0.0.1:18082").unwrap();
        let err = network.check_port(18082, None).unwrap_err();
        assert!(matches!(err, NetworkError::PortInUse { port: 18082, .. }), "{err}");
        let err = network.attach(policy("web", &[]), 8080, Some(18082)).unwrap_err();
        assert!(matches!(err, NetworkError::PortInUse { .. }), "{err}");
        assert!(network.leases().unwrap().is_empty() && link("sdsec0").is_none(), "nothing of the attempt remains");
        drop(listener);

        let web = network.attach(policy("web", &[]), 8080, Some(18082)).unwrap();
        let err = network.attach(policy("api", &[]), 8080, Some(18082)).unwrap_err();
        assert!(err.to_string().contains("already published by an instance being created"), "{err}");
        network.bind(&web.tap, "i-web").unwrap();
        let err = network.check_port(18082, None).unwrap_err();
        assert_eq!(err.to_string(), "host port 18082 is already published by instance i-web");
        network.check_port(18082, Some("i-web")).unwrap();
        assert!(matches!(network.check_port(0, None), Err(NetworkError::PortZero)));

        network.publish("i-web", None).unwrap();
        network.check_port(18082, None).unwrap();
        assert!(!inet_table().unwrap().contains("18082"));
        network.publish("i-web", Some(18083)).unwrap();
        assert!(inet_table().unwrap().contains("18083"));
        assert!(matches!(network.publish("i-none", None), Err(NetworkError::NotLeased(_))));
        network.release(LeaseKey::Instance("i-web")).unwrap();
    });
}

/// Replaces the TAP of `lease` with a veth of the same name whose other end is `eth0` of a
/// guest namespace, configured as the guest would be: the rules of the TAP apply to it.
fn plug_guest(guest: &Namespace, tap: &str, attached: &network::Attachment) {
    ip(&["link", "del", tap]);
    ip(&["link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", &guest.name]);
    ip(&["link", "set", "dev", tap, "master", "sdsec0"]);
    ip(&["link", "set", "dev", tap, "type", "bridge_slave", "isolated", "on"]);
    ip(&["link", "set", "dev", tap, "up"]);
    guest.ip(&["link", "set", "eth0", "address", &attached.mac]);
    guest.ip(&["addr", "add", &format!("{}/{}", attached.ip, attached.prefix), "dev", "eth0"]);
    guest.ip(&["link", "set", "eth0", "up"]);
    guest.ip(&["route", "add", "default", "via", &attached.gateway.to_string()]);
}

#[test]
fn traffic_follows_the_rules() {
    isolated("traffic_follows_the_rules", || {
        // A remote machine on an uplink of the host, 198.51.100.2; the host is .1 there.
        let remote = Namespace::new("r");
        ip(&["link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns", &remote.name]);
        ip(&["addr", "add", "198.51.100.1/24", "dev", "uplink"]);
        ip(&["link", "set", "uplink", "up"]);
        remote.ip(&["addr", "add", "198.51.100.2/24", "dev", "eth0"]);
        remote.ip(&["link", "set", "eth0", "up"]);
        // An address of the host other than loopback and the gateway.
        ip(&["addr", "add", "192.0.2.1/32", "dev", "lo"]);

        let state = tempfile::tempdir().unwrap();
        let network = network(state.path());
        let mut web_policy = policy("web", &["api"]);
        web_policy.egress = vec![EgressRule {
            to: "198.51.100.0/24".parse().unwrap(),
            ports: vec![(7000, 7000)],
            protocol: EgressProtocol::Tcp,
        }];
        let api = network.attach(policy("api", &[]), 8080, Some(18080)).unwrap();
        let web = network.attach(web_policy, 8080, None).unwrap();
        let (api_ns, web_ns) = (Namespace::new("g"), Namespace::new("g"));
        plug_guest(&api_ns, &api.tap, &api);
        plug_guest(&web_ns, &web.tap, &web);
        let _servers = [
            PeerEcho::start(&api_ns, 8080),
            PeerEcho::start(&web_ns, 8080),
            PeerEcho::start(&remote, 7000),
            PeerEcho::start(&remote, 7001),
        ];
        let (api_ip, web_ip) = (api.ip.to_string(), web.ip.to_string());

        // Published: the host's own loopback requests arrive from the gateway; other
        // clients keep their address.
        assert_eq!(ask(None, "127.0.0.1", 18080), "10.213.0.1");
        assert_eq!(ask(None, "192.0.2.1", 18080), "192.0.2.1");
        assert_eq!(ask(Some(&remote), "198.51.100.1", 18080), "198.51.100.2");
        // East-west: web may open connections to api, never the other way.
        assert_eq!(ask(Some(&web_ns), &api_ip, 8080), web_ip);
        assert!(ask(Some(&api_ns), &web_ip, 8080).starts_with("blocked"));
        // Guests reach nothing of the host, published ports included.
        assert!(ask(Some(&web_ns), "10.213.0.1", 18080).starts_with("blocked"));
        // Egress: only the allowed port, masqueraded behind the host's address.
        assert_eq!(ask(Some(&web_ns), "198.51.100.2", 7000), "198.51.100.1");
        assert!(ask(Some(&web_ns), "198.51.100.2", 7001).starts_with("blocked"));
        // A guest sending from a MAC other than its lease's gets nowhere, though the same
        // connection from its own MAC is allowed.
        web_ns.ip(&["link", "set", "eth0", "address", "52:54:00:00:00:99"]);
        ip(&["neigh", "flush", "dev", "sdsec0"]);
        assert!(ask(Some(&web_ns), &api_ip, 8080).starts_with("blocked"));
        web_ns.ip(&["link", "set", "eth0", "address", &web.mac]);
        assert_eq!(ask(Some(&web_ns), &api_ip, 8080), web_ip);

        // Policies change in place.
        network.bind(&web.tap, "i-web").unwrap();
        network.set_policy("i-web", policy("web", &[])).unwrap();
        assert!(ask(Some(&web_ns), &api_ip, 8080).starts_with("blocked"));
        network.release(LeaseKey::Instance("i-web")).unwrap();
        network.release(LeaseKey::Tap(&api.tap)).unwrap();
        assert!(link("sdsec0").is_none());
    });
}

/// Drift as the sentences users read.
fn sentences(drift: Result<Vec<Drift>, NetworkError>) -> Vec<String> {
    drift.unwrap().iter().map(ToString::to_string).collect()
}

/// The handles of the rules of chain `chain` in the `inet` table, in order.
fn rule_handles(chain: &str) -> Vec<u64> {
    let listing: serde_json::Value = serde_json::from_str(&inet_table().unwrap()).unwrap();
    listing["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|object| object.get("rule"))
        .filter(|rule| rule["chain"] == chain)
        .map(|rule| rule["handle"].as_u64().unwrap())
        .collect()
}

#[test]
fn drift_is_named_and_repaired() {
    isolated("drift_is_named_and_repaired", || {
        let state = tempfile::tempdir().unwrap();
        let network = network(state.path());
        assert!(network.drift().unwrap().is_empty(), "no lease file: nothing to compare");
        let web = network.attach(policy("web", &["api"]), 8080, Some(18080)).unwrap();
        let api = network.attach(policy("api", &[]), 8081, None).unwrap();
        network.bind(&web.tap, "i-web").unwrap();
        network.bind(&api.tap, "i-api").unwrap();
        assert_eq!(sentences(network.drift()), Vec::<String>::new(), "what attach applied is what nft lists");
        assert!(network.repair().unwrap().is_empty());

        // A firewall reload: both tables gone, east-west traffic left to the host's policy.
        nft(&["flush", "ruleset"]).unwrap();
        let missing = ["table inet sdsec_sdsec0 is missing", "table bridge sdsec_sdsec0 is missing"];
        assert_eq!(sentences(network.drift()), missing);
        assert_eq!(sentences(network.repair()), missing);
        assert!(network.drift().unwrap().is_empty());
        assert!(inet_table().unwrap().contains("18080") && inet_table().unwrap().contains("10.213.0.3"));

        // One rule deleted by its handle.
        let forward = rule_handles("forward");
        let handle = forward[0].to_string();
        nft(&["delete", "rule", "inet", "sdsec_sdsec0", "forward", "handle", &handle]).unwrap();
        let count = format!(
            "chain forward of table inet sdsec_sdsec0 has {} rules, {} expected",
            forward.len() - 1,
            forward.len()
        );
        assert_eq!(sentences(network.drift()), std::slice::from_ref(&count));
        assert_eq!(sentences(network.repair()), [count]);
        assert_eq!(rule_handles("forward").len(), forward.len());
        assert!(network.drift().unwrap().is_empty());

        // The guests' drop at the host's input turned into an accept: as many rules, another verdict.
        let input = rule_handles("input");
        let last = input.last().unwrap().to_string();
        nft(&["replace", "rule", "inet", "sdsec_sdsec0", "input", "handle", &last, "iifname", "sdsec0", "accept"])
            .unwrap();
        assert_eq!(
            sentences(network.drift()),
            [
                "chain input of table inet sdsec_sdsec0 has rules with other verdicts: 2 accept (expected 1 accept, 1 drop)"
            ]
        );
        network.repair().unwrap();
        assert!(network.drift().unwrap().is_empty());

        // A TAP detached from the bridge, another no longer isolated, the gateway address and
        // a sysctl gone.
        ip(&["link", "set", "dev", &web.tap, "nomaster"]);
        ip(&["link", "set", "dev", &api.tap, "type", "bridge_slave", "isolated", "off"]);
        ip(&["addr", "flush", "dev", "sdsec0"]);
        std::fs::write("/proc/sys/net/ipv4/conf/sdsec0/proxy_arp_pvlan", "0").unwrap();
        let expected = [
            "bridge sdsec0 lacks its gateway address 10.213.0.1/24".to_owned(),
            "sysctl net.ipv4.conf.sdsec0.proxy_arp_pvlan is 0, 1 expected".to_owned(),
            format!("TAP {} of instance i-web is not a port of sdsec0", web.tap),
            format!(
                "TAP {} of instance i-api is not isolated on sdsec0: other guests could reach it directly",
                api.tap
            ),
        ];
        assert_eq!(sentences(network.drift()), expected);
        assert_eq!(sentences(network.repair()), expected);
        assert!(network.drift().unwrap().is_empty());
        for tap in [&web.tap, &api.tap] {
            let port = link(tap).unwrap();
            assert_eq!(port["master"], "sdsec0", "{port}");
            assert_eq!(port["linkinfo"]["info_slave_data"]["isolated"], true, "{port}");
        }
        assert!(ip(&["-4", "addr", "show", "dev", "sdsec0"]).contains("10.213.0.1/24"));

        // The bridge deleted: made anew with our alias, the surviving TAP put back on it.
        ip(&["link", "del", "sdsec0"]);
        assert_eq!(
            sentences(network.drift()),
            [
                "bridge sdsec0 is missing".to_owned(),
                format!("TAP {} of instance i-web is not a port of sdsec0", web.tap),
                format!("TAP {} of instance i-api is not a port of sdsec0", api.tap),
            ]
        );
        network.repair().unwrap();
        assert!(network.drift().unwrap().is_empty());
        let canonical = std::fs::canonicalize(state.path()).unwrap();
        assert_eq!(link("sdsec0").unwrap()["ifalias"], format!("sdsec:{}", canonical.display()));

        // A TAP deleted: its VM's interface is gone; it is reported, never recreated.
        ip(&["link", "del", &web.tap]);
        let lost =
            [format!("TAP {} of instance i-web is missing: the instance has lost its network interface", web.tap)];
        assert_eq!(sentences(network.repair()), lost);
        assert!(!network.repair().unwrap()[0].repairable());
        assert!(link(&web.tap).is_none());
        assert_eq!(network.drift().unwrap()[0].instance(), Some("i-web"));

        // With no lease left, tables and bridge of ours are leftovers.
        network.release(LeaseKey::Instance("i-web")).unwrap();
        network.release(LeaseKey::Instance("i-api")).unwrap();
        assert!(network.drift().unwrap().is_empty() && link("sdsec0").is_none());
        nft(&["add", "table", "inet", "sdsec_sdsec0"]).unwrap();
        assert_eq!(sentences(network.drift()), ["table inet sdsec_sdsec0 remains though no instance holds a lease"]);
        network.repair().unwrap();
        assert!(inet_table().is_none() && network.drift().unwrap().is_empty());
    });
}
