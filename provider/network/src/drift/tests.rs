use std::net::Ipv4Addr;

use serde_json::json;

use super::*;
use crate::{FlowPolicy, Lease};

fn leases() -> Vec<Lease> {
    let lease = |last: u8, tap: &str, node: &str, connects_to: &[&str]| Lease {
        ip: Ipv4Addr::new(10, 213, 0, last),
        tap: tap.into(),
        mac: format!("52:54:00:d5:00:{last:02x}"),
        runtime_port: 8080,
        host_port: Some(18080 + u16::from(last)),
        owner: Owner::Instance(format!("i-{last}")),
        policy: FlowPolicy {
            node: node.into(),
            tenant: None,
            connects_to: connects_to.iter().map(|n| (*n).to_owned()).collect(),
            egress: Vec::new(),
        },
    };
    vec![lease(2, "sdt-0000000002", "web", &["api"]), lease(3, "sdt-0000000003", "api", &[])]
}

/// What `nft -j list table` would list after applying `batch`: the same objects with
/// handles and a metainfo, expressions left as written (the comparison never reads them).
fn listing(batch: &Value, family: &str) -> Value {
    let mut objects = vec![json!({ "metainfo": { "version": "1.0.6", "json_schema_version": 1 } })];
    let mut handle = 0;
    for (key, table) in desired_tables(batch) {
        if key.0 != family {
            continue;
        }
        handle += 1;
        objects.push(json!({ "table": { "family": family, "name": key.1, "handle": handle } }));
        for chain in &table.chains {
            let words: Vec<&str> = chain.base.split(' ').collect();
            let prio: i64 = words[5].parse().unwrap();
            objects.push(json!({ "chain": {
                "family": family, "table": key.1, "name": chain.name, "handle": handle,
                "type": words[1], "hook": words[3], "prio": prio, "policy": words[7],
            } }));
            for verdict in &chain.verdicts {
                handle += 1;
                objects.push(json!({ "rule": {
                    "family": family, "table": key.1, "chain": chain.name, "handle": handle,
                    "expr": [{ "match": { "op": "==", "left": { "meta": { "key": "iifname" } }, "right": "x" } },
                             { verdict.as_str(): null }],
                } }));
            }
        }
    }
    json!({ "nftables": objects })
}

fn rules_of<'a>(listing: &'a mut Value, chain: &str) -> Vec<&'a mut Value> {
    listing["nftables"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .filter(|object| object.get("rule").is_some_and(|rule| rule["chain"] == chain))
        .collect()
}

fn sentences(drift: &[Drift]) -> Vec<String> {
    drift.iter().map(ToString::to_string).collect()
}

#[test]
fn a_listing_of_what_was_applied_has_no_drift() {
    let config = BridgeConfig::default();
    let batch = ruleset(&config, &leases());
    for family in ["inet", "bridge"] {
        let live = listing(&batch, family);
        assert_eq!(table_drift(&batch, family, "sdsec_sdsec0", Some(&live)), [], "{family}");
    }
    // With no leases the tables are expected gone.
    let teardown = ruleset::teardown(&config);
    assert_eq!(table_drift(&teardown, "inet", "sdsec_sdsec0", None), []);
}

#[test]
fn missing_and_leftover_tables_are_named() {
    let config = BridgeConfig::default();
    let batch = ruleset(&config, &leases());
    let empty = json!({ "nftables": [{ "metainfo": {} }] });
    assert_eq!(sentences(&table_drift(&batch, "inet", "sdsec_sdsec0", None)), ["table inet sdsec_sdsec0 is missing"]);
    assert_eq!(
        sentences(&table_drift(&batch, "bridge", "sdsec_sdsec0", Some(&empty))),
        ["table bridge sdsec_sdsec0 is missing"]
    );
    let live = listing(&batch, "inet");
    assert_eq!(
        sentences(&table_drift(&ruleset::teardown(&config), "inet", "sdsec_sdsec0", Some(&live))),
        ["table inet sdsec_sdsec0 remains though no instance holds a lease"]
    );
}

#[test]
fn a_deleted_or_added_rule_changes_the_count() {
    let batch = ruleset(&BridgeConfig::default(), &leases());
    let mut live = listing(&batch, "inet");
    let expected = rules_of(&mut live, "forward").len();
    let position = live["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .position(|object| object.get("rule").is_some_and(|rule| rule["chain"] == "forward"))
        .unwrap();
    live["nftables"].as_array_mut().unwrap().remove(position);
    let drift = table_drift(&batch, "inet", "sdsec_sdsec0", Some(&live));
    assert_eq!(
        sentences(&drift),
        [format!("chain forward of table inet sdsec_sdsec0 has {} rules, {expected} expected", expected - 1)]
    );

    // A flushed chain, and a rule added to another.
    let mut live = listing(&batch, "inet");
    live["nftables"].as_array_mut().unwrap().retain(|object| object.get("rule").is_none_or(|r| r["chain"] != "input"));
    let extra = json!({ "rule": { "family": "inet", "table": "sdsec_sdsec0", "chain": "output", "expr": [{ "accept": null }] } });
    live["nftables"].as_array_mut().unwrap().push(extra);
    assert_eq!(
        sentences(&table_drift(&batch, "inet", "sdsec_sdsec0", Some(&live))),
        [
            "chain input of table inet sdsec_sdsec0 has 0 rules, 2 expected",
            "chain output of table inet sdsec_sdsec0 has 2 rules, 1 expected",
        ]
    );
}

#[test]
fn a_drop_turned_accept_changes_the_verdicts() {
    let batch = ruleset(&BridgeConfig::default(), &leases());
    let mut live = listing(&batch, "inet");
    for rule in rules_of(&mut live, "input") {
        let expr = rule["rule"]["expr"].as_array_mut().unwrap();
        *expr.last_mut().unwrap() = json!({ "accept": null });
    }
    assert_eq!(
        sentences(&table_drift(&batch, "inet", "sdsec_sdsec0", Some(&live))),
        ["chain input of table inet sdsec_sdsec0 has rules with other verdicts: 2 accept (expected 1 accept, 1 drop)"]
    );
}

#[test]
fn chains_missing_changed_or_foreign_are_named() {
    let batch = ruleset(&BridgeConfig::default(), &leases());
    let mut live = listing(&batch, "inet");
    let objects = live["nftables"].as_array_mut().unwrap();
    objects.retain(|object| {
        let chain = object.get("chain").map(|chain| &chain["name"]);
        let rule = object.get("rule").map(|rule| &rule["chain"]);
        chain.or(rule) != Some(&json!("nat_output"))
    });
    for object in objects.iter_mut() {
        if let Some(chain) = object.get_mut("chain").filter(|chain| chain["name"] == "forward") {
            chain["policy"] = json!("drop");
        }
    }
    objects.push(json!({ "chain": { "family": "inet", "table": "sdsec_sdsec0", "name": "mine", "handle": 99 } }));
    assert_eq!(
        sentences(&table_drift(&batch, "inet", "sdsec_sdsec0", Some(&live))),
        [
            "chain nat_output of table inet sdsec_sdsec0 is missing",
            "chain forward of table inet sdsec_sdsec0 is type filter hook forward priority 0 policy drop, \
         type filter hook forward priority 0 policy accept expected",
            "table inet sdsec_sdsec0 has a chain sdsec did not write: mine",
        ]
    );
}

#[test]
fn drift_of_devices_reads_as_sentences() {
    let owner = Owner::Instance("i-0123456789abcdef".into());
    let tap = "sdt-0123456789".to_owned();
    let bridge = "sdsec0".to_owned();
    let cases = [
        (
            Drift::TapMissing { tap: tap.clone(), owner: owner.clone() },
            "TAP sdt-0123456789 of instance i-0123456789abcdef is missing: the instance has lost its network interface",
        ),
        (
            Drift::TapDetached { tap: tap.clone(), owner: owner.clone(), bridge: bridge.clone(), master: None },
            "TAP sdt-0123456789 of instance i-0123456789abcdef is not a port of sdsec0",
        ),
        (
            Drift::TapNotIsolated { tap: tap.clone(), owner: owner.clone(), bridge: bridge.clone() },
            "TAP sdt-0123456789 of instance i-0123456789abcdef is not isolated on sdsec0: other guests could reach it directly",
        ),
        (
            Drift::GatewayMissing { bridge: bridge.clone(), address: "10.213.0.1/24".parse().unwrap() },
            "bridge sdsec0 lacks its gateway address 10.213.0.1/24",
        ),
        (
            Drift::BridgeTaken { bridge: bridge.clone(), owner: BridgeOwner::Foreign { kind: Some("veth".into()) } },
            "bridge sdsec0 is gone: the device now named sdsec0 is a veth device sdsec did not create",
        ),
        (
            Drift::Sysctl { name: "net.ipv4.conf.sdsec0.proxy_arp_pvlan".into(), found: "0".into(), expected: "1" },
            "sysctl net.ipv4.conf.sdsec0.proxy_arp_pvlan is 0, 1 expected",
        ),
    ];
    for (drift, sentence) in cases {
        assert_eq!(drift.to_string(), sentence);
    }
    let missing = Drift::TapMissing { tap, owner };
    assert!(!missing.repairable());
    assert_eq!(missing.instance(), Some("i-0123456789abcdef"));
    assert!(Drift::BridgeMissing { bridge }.repairable());
    assert_eq!(sysctl_name(Path::new("/proc/sys/net/ipv4/conf/sdsec0/forwarding")), "net.ipv4.conf.sdsec0.forwarding");
}
