//! The nftables batch as a document: golden files for whole rule sets (rewritten with
//! `UPDATE_GOLDEN=1`), and the properties that matter checked on the JSON itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::Ipv4Addr;
use std::path::PathBuf;

use network::{BridgeConfig, EgressProtocol, EgressRule, FlowPolicy, Lease, Owner, ruleset, teardown};
use serde_json::{Value, json};

fn lease(last: u8, node: &str, tenant: Option<&str>, connects_to: &[&str], host_port: Option<u16>) -> Lease {
    Lease {
        ip: Ipv4Addr::new(10, 213, 0, last),
        tap: format!("sdt-00000000{last:02x}"),
        mac: format!("52:54:00:d5:00:{last:02x}"),
        runtime_port: 8000 + u16::from(last),
        host_port,
        owner: Owner::Instance(format!("i-{last}")),
        policy: FlowPolicy {
            node: node.into(),
            tenant: tenant.map(str::to_owned),
            connects_to: connects_to.iter().map(|n| (*n).to_owned()).collect(),
            egress: Vec::new(),
        },
    }
}

/// web → api of tenant a, published; api of tenant a; api of tenant b (unpublished) that
/// web of tenant a names too; egress of every kind on web.
fn scenario() -> Vec<Lease> {
    let mut web = lease(2, "web", Some("a"), &["api"], Some(8080));
    web.policy.egress = vec![
        EgressRule { to: "192.0.2.0/24".parse().unwrap(), ports: vec![(443, 443)], protocol: EgressProtocol::Tcp },
        EgressRule {
            to: "198.51.100.53/32".parse().unwrap(),
            ports: vec![(53, 53), (5300, 5310)],
            protocol: EgressProtocol::Any,
        },
        EgressRule { to: "203.0.113.0/24".parse().unwrap(), ports: vec![], protocol: EgressProtocol::Any },
        EgressRule { to: "203.0.113.0/24".parse().unwrap(), ports: vec![], protocol: EgressProtocol::Udp },
    ];
    vec![web, lease(3, "api", Some("a"), &[], Some(9090)), lease(4, "api", Some("b"), &[], None)]
}

fn golden(name: &str, actual: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(actual).unwrap() + "\n").unwrap();
        return;
    }
    let expected: Value = serde_json::from_slice(
        &std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to write it)", path.display())),
    )
    .unwrap();
    assert!(expected == *actual, "{} differs; run with UPDATE_GOLDEN=1 and review the diff", path.display());
}

#[test]
fn golden_rule_sets() {
    let config = BridgeConfig::default();
    golden("no_leases", &ruleset(&config, &[]));
    golden("tenants_flows_egress", &ruleset(&config, &scenario()));
    let specific =
        BridgeConfig { publish_address: Ipv4Addr::new(192, 0, 2, 10), bridge: "br-x.1".into(), ..config.clone() };
    golden("publish_address", &ruleset(&specific, &[lease(2, "web", None, &[], Some(8080))]));
    golden("teardown", &teardown(&config));
}

fn commands(batch: &Value) -> &Vec<Value> {
    batch["nftables"].as_array().unwrap()
}

/// The expressions of every rule in `family`'s chain `chain`.
fn rules<'a>(batch: &'a Value, family: &str, chain: &str) -> Vec<&'a Vec<Value>> {
    commands(batch)
        .iter()
        .filter_map(|c| c.pointer("/add/rule"))
        .filter(|r| r["family"] == family && r["chain"] == chain)
        .map(|r| r["expr"].as_array().unwrap())
        .collect()
}

/// The right-hand side of the rule's equality match on `left`, if it has one.
fn matched<'a>(expr: &'a [Value], left: &Value) -> Option<&'a Value> {
    matched_by(expr, "==", left)
}

fn matched_by<'a>(expr: &'a [Value], op: &str, left: &Value) -> Option<&'a Value> {
    expr.iter().find(|e| e["match"]["left"] == *left && e["match"]["op"] == op).map(|e| &e["match"]["right"])
}

fn ip(field: &str) -> Value {
    json!({ "payload": { "protocol": "ip", "field": field } })
}

/// (source, destination, port) of every guest-to-guest accept.
fn east_west(batch: &Value) -> Vec<(String, String, u64)> {
    let iif = json!({ "meta": { "key": "iifname" } });
    let oif = json!({ "meta": { "key": "oifname" } });
    rules(batch, "inet", "forward")
        .into_iter()
        .filter(|expr| matched(expr, &iif) == Some(&json!("sdsec0")) && matched(expr, &oif) == Some(&json!("sdsec0")))
        .filter(|expr| expr.last() == Some(&json!({ "accept": null })))
        .map(|expr| {
            let tcp = json!({ "payload": { "protocol": "tcp", "field": "dport" } });
            (
                matched(expr, &ip("saddr")).unwrap().as_str().unwrap().to_owned(),
                matched(expr, &ip("daddr")).unwrap().as_str().unwrap().to_owned(),
                matched(expr, &tcp).unwrap().as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn connects_to_allows_one_direction_one_port_within_the_tenant() {
    let batch = ruleset(&BridgeConfig::default(), &scenario());
    // web (a) names api: only a's api on its runtime port, never b's api, never api → web.
    assert_eq!(east_west(&batch), vec![("10.213.0.2".to_owned(), "10.213.0.3".to_owned(), 8003)]);
}

#[test]
fn no_east_west_accept_across_tenants() {
    let leases = vec![lease(2, "web", Some("a"), &["api"], None), lease(3, "api", Some("b"), &["web"], None)];
    assert_eq!(east_west(&ruleset(&BridgeConfig::default(), &leases)), vec![]);
    let untenanted = vec![lease(2, "web", None, &["api"], None), lease(3, "api", None, &[], None)];
    assert_eq!(east_west(&ruleset(&BridgeConfig::default(), &untenanted)).len(), 1, "no tenant is one tenant");
}

#[test]
fn a_lease_without_host_port_publishes_nothing() {
    let batch = ruleset(&BridgeConfig::default(), &[lease(2, "web", None, &[], None)]);
    for chain in ["nat_prerouting", "nat_output"] {
        assert!(rules(&batch, "inet", chain).is_empty(), "{chain}");
    }
    let text = serde_json::to_string(&batch).unwrap();
    assert!(!text.contains("dnat"), "no DNAT rule nor ct status dnat accept: {text}");
}

#[test]
fn published_ports_are_dnat_ed_on_every_local_address_or_the_one_given() {
    let leases = [lease(2, "web", None, &[], Some(8080))];
    let batch = ruleset(&BridgeConfig::default(), &leases);
    let output = rules(&batch, "inet", "nat_output");
    assert_eq!(output.len(), 1);
    assert_eq!(output[0][0]["match"]["left"], json!({ "fib": { "result": "type", "flags": ["daddr"] } }));
    assert_eq!(output[0].last().unwrap(), &json!({ "dnat": { "family": "ip", "addr": "10.213.0.2", "port": 8002 } }));
    let prerouting = rules(&batch, "inet", "nat_prerouting");
    assert_eq!(
        matched_by(prerouting[0], "!=", &ip("saddr")),
        Some(&json!({ "prefix": { "addr": "10.213.0.0", "len": 24 } }))
    );
    assert_eq!(
        matched_by(prerouting[0], "!=", &ip("daddr")),
        Some(&json!({ "prefix": { "addr": "127.0.0.0", "len": 8 } })),
        "a packet from the network addressed to 127.0.0.1 is never published"
    );
    let specific = BridgeConfig { publish_address: Ipv4Addr::new(192, 0, 2, 10), ..BridgeConfig::default() };
    let output = ruleset(&specific, &leases);
    assert_eq!(matched(rules(&output, "inet", "nat_output")[0], &ip("daddr")), Some(&json!("192.0.2.10")));
    assert_eq!(rules(&output, "inet", "nat_prerouting").len(), 1);
    let loopback = BridgeConfig { publish_address: Ipv4Addr::LOCALHOST, ..BridgeConfig::default() };
    let output = ruleset(&loopback, &leases);
    assert!(rules(&output, "inet", "nat_prerouting").is_empty(), "published on loopback: for the host alone");
    assert_eq!(rules(&output, "inet", "nat_output").len(), 1);
}

#[test]
fn the_batch_deletes_and_re_adds_both_tables() {
    let batch = ruleset(&BridgeConfig::default(), &scenario());
    let tables: Vec<String> = commands(&batch)
        .iter()
        .filter_map(|c| {
            let (verb, body) = c.as_object()?.iter().next()?;
            let table = body.get("table")?;
            Some(format!("{verb} {} {}", table["family"].as_str()?, table["name"].as_str()?))
        })
        .collect();
    let expected = ["add inet", "delete inet", "add inet", "add bridge", "delete bridge", "add bridge"]
        .map(|s| format!("{s} sdsec_sdsec0"));
    assert_eq!(tables, expected);
    let teardown = teardown(&BridgeConfig::default());
    assert_eq!(commands(&teardown).len(), 4, "add + delete of each table, nothing else");
}

#[test]
fn every_tap_is_held_to_its_mac_and_address() {
    let leases = scenario();
    let batch = ruleset(&BridgeConfig::default(), &leases);
    let anti_spoofing = rules(&batch, "bridge", "prerouting");
    assert_eq!(anti_spoofing.len(), 4 * leases.len());
    let tap_rules: Vec<_> =
        anti_spoofing.iter().filter(|expr| expr[0]["match"]["right"] == json!(leases[0].tap)).collect();
    let ether_saddr = json!({ "payload": { "protocol": "ether", "field": "saddr" } });
    assert_eq!(matched_by(tap_rules[0], "!=", &ether_saddr), Some(&json!("52:54:00:d5:00:02")));
    assert_eq!(matched_by(tap_rules[1], "!=", &ip("saddr")), Some(&json!("10.213.0.2")));
    let arp_saddr = json!({ "payload": { "protocol": "arp", "field": "saddr ip" } });
    assert_eq!(matched_by(tap_rules[2], "!=", &arp_saddr), Some(&json!("10.213.0.2")));
    assert!(tap_rules.iter().all(|expr| expr.last() == Some(&json!({ "drop": null }))));
}

#[test]
fn egress_any_without_ports_matches_every_protocol() {
    let batch = ruleset(&BridgeConfig::default(), &scenario());
    // Matched on the destination the guest chose, before any DNAT of this host's.
    let original = json!({ "ct": { "key": "daddr", "family": "ip", "dir": "original" } });
    let to = json!({ "prefix": { "addr": "203.0.113.0", "len": 24 } });
    let egress: Vec<_> =
        rules(&batch, "inet", "forward").into_iter().filter(|expr| matched(expr, &original) == Some(&to)).collect();
    assert_eq!(egress.len(), 2, "any (no protocol match) and udp");
    assert_eq!(egress[0].len(), 5, "iifname, oifname, saddr, daddr, accept: {:?}", egress[0]);
    assert!(rules(&batch, "inet", "forward").iter().all(|expr| matched(expr, &ip("daddr")) != Some(&to)));
    let dns = json!("198.51.100.53");
    let both: Vec<_> =
        rules(&batch, "inet", "forward").into_iter().filter(|expr| matched(expr, &original) == Some(&dns)).collect();
    assert_eq!(both.len(), 2, "tcp and udp");
    let port = json!({ "ct": { "key": "proto-dst", "dir": "original" } });
    assert!(both.iter().all(|expr| matched(expr, &port).is_some()), "{both:?}");
}
