//! The nftables rules of one bridge, as one JSON batch for `nft -j -f -`: a pure function of
//! the configuration and the leases, so the whole rule set is rewritten on every change and
//! golden-tested as a document.
//!
//! Two tables, both named [`BridgeConfig::table_name`]:
//! - `inet`: published ports (DNAT), masquerading, and the forward/input filters that keep
//!   guests apart. Guests reach each other only through the host (isolated bridge ports with
//!   proxy ARP), so every guest-to-guest packet crosses the forward hook and conntrack.
//! - `bridge`: anti-spoofing at each TAP, before the frame reaches the host's IP stack.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use crate::config::BridgeConfig;
use crate::{EgressProtocol, EgressRule, Lease};

/// Priority of NAT chains before routing (the kernel's `dstnat`).
const DSTNAT: i32 = -100;
/// Priority of NAT chains after routing (the kernel's `srcnat`).
const SRCNAT: i32 = 100;
/// Priority of filter chains in the `inet` family.
const FILTER: i32 = 0;
/// The bridge family's standard `filter` priority (-200, after `dstnat`): sdsec has no
/// bridge NAT, so the anti-spoofing rules see each frame as the guest sent it.
const BRIDGE_FILTER: i32 = -200;

/// The batch that replaces both tables of `config.bridge` with the rules for `leases`, in one
/// transaction: `add` + `delete` + `add` works whether the tables exist or not.
pub fn ruleset(config: &BridgeConfig, leases: &[Lease]) -> Value {
    let mut batch = Batch::new(config.table_name());
    batch.replace_table("inet");
    batch.replace_table("bridge");
    inet_nat(&mut batch, config, leases);
    inet_filter(&mut batch, config, leases);
    bridge_filter(&mut batch, leases);
    json!({ "nftables": batch.commands })
}

/// The batch that removes both tables (after the last lease), whether they exist or not.
pub fn teardown(config: &BridgeConfig) -> Value {
    let mut batch = Batch::new(config.table_name());
    for family in ["inet", "bridge"] {
        let table = batch.table(family);
        batch.commands.push(json!({ "add": { "table": table } }));
        batch.commands.push(json!({ "delete": { "table": table } }));
    }
    json!({ "nftables": batch.commands })
}

fn inet_nat(batch: &mut Batch, config: &BridgeConfig, leases: &[Lease]) {
    let bridge = config.bridge.as_str();
    batch.chain("inet", "nat_prerouting", "nat", "prerouting", DSTNAT);
    batch.chain("inet", "nat_output", "nat", "output", DSTNAT);
    batch.chain("inet", "nat_postrouting", "nat", "postrouting", SRCNAT);
    for lease in leases {
        let Some(host_port) = lease.host_port else { continue };
        let destination = if config.publish_address.is_unspecified() {
            json!({ "match": { "op": "==", "left": { "fib": { "result": "type", "flags": ["daddr"] } }, "right": "local" } })
        } else {
            matches("==", payload("ip", "daddr"), json!(config.publish_address.to_string()))
        };
        let dnat = json!({ "dnat": { "family": "ip", "addr": lease.ip.to_string(), "port": lease.runtime_port } });
        let port = matches("==", payload("tcp", "dport"), json!(host_port));
        // Guests do not reach published ports through the host: they reach one another only
        // as `connects_to` allows. Matched on the source address, which holds whichever
        // device the hook reports as input (the bridge or, with br_netfilter, its port).
        let not_from_guests =
            matches("!=", payload("ip", "saddr"), prefix(config.subnet.network(), config.subnet.prefix_len()));
        // Loopback destinations are the host's own: a packet from the network addressed to
        // 127.0.0.1 is never published (it would pass as the guest's once rewritten).
        let not_to_loopback = matches("!=", payload("ip", "daddr"), prefix(Ipv4Addr::new(127, 0, 0, 0), 8));
        if !config.publish_address.is_loopback() {
            let rule = vec![not_from_guests, not_to_loopback, destination.clone(), port.clone(), dnat.clone()];
            batch.rule("inet", "nat_prerouting", rule);
        }
        batch.rule("inet", "nat_output", vec![destination, port, dnat]);
    }
    // The host's own requests to 127.0.0.1 cannot leave with a loopback source: the guest
    // sees the gateway address instead. Other sources are kept, so the runtime sees clients.
    batch.rule(
        "inet",
        "nat_postrouting",
        vec![
            oifname("==", bridge),
            matches("==", payload("ip", "saddr"), prefix(Ipv4Addr::new(127, 0, 0, 0), 8)),
            masquerade(),
        ],
    );
    batch.rule(
        "inet",
        "nat_postrouting",
        vec![
            matches("==", payload("ip", "saddr"), prefix(config.subnet.network(), config.subnet.prefix_len())),
            oifname("!=", bridge),
            masquerade(),
        ],
    );
}

fn inet_filter(batch: &mut Batch, config: &BridgeConfig, leases: &[Lease]) {
    let bridge = config.bridge.as_str();
    // Policy accept: the host's other traffic is none of these chains' business.
    batch.chain("inet", "forward", "filter", "forward", FILTER);
    batch.chain("inet", "input", "filter", "input", FILTER);
    batch.chain("inet", "output", "filter", "output", FILTER);

    batch.rule("inet", "forward", vec![iifname("==", bridge), ct_state(&["established", "related"]), accept()]);
    batch.rule("inet", "forward", vec![oifname("==", bridge), ct_state(&["established", "related"]), accept()]);
    for from in leases {
        for to in leases {
            let allowed = from.tap != to.tap
                && from.policy.tenant == to.policy.tenant
                && from.policy.connects_to.contains(&to.policy.node);
            if allowed {
                batch.rule(
                    "inet",
                    "forward",
                    vec![
                        iifname("==", bridge),
                        oifname("==", bridge),
                        matches("==", payload("ip", "saddr"), json!(from.ip.to_string())),
                        matches("==", payload("ip", "daddr"), json!(to.ip.to_string())),
                        matches("==", payload("tcp", "dport"), json!(to.runtime_port)),
                        ct_state(&["new"]),
                        accept(),
                    ],
                );
            }
        }
    }
    for lease in leases.iter().filter(|lease| lease.host_port.is_some()) {
        batch.rule(
            "inet",
            "forward",
            vec![
                oifname("==", bridge),
                matches("==", payload("ip", "daddr"), json!(lease.ip.to_string())),
                matches("==", payload("tcp", "dport"), json!(lease.runtime_port)),
                json!({ "match": { "op": "in", "left": { "ct": { "key": "status" } }, "right": "dnat" } }),
                accept(),
            ],
        );
    }
    for lease in leases {
        for rule in &lease.policy.egress {
            for protocol_match in egress_matches(rule) {
                // The destination the guest chose: a port another state directory of this
                // host publishes is rewritten to its guest before this chain sees it.
                let mut expr = vec![
                    iifname("==", bridge),
                    oifname("!=", bridge),
                    matches("==", payload("ip", "saddr"), json!(lease.ip.to_string())),
                    matches("==", original("daddr", Some("ip")), network(rule.to)),
                ];
                expr.extend(protocol_match);
                expr.push(accept());
                batch.rule("inet", "forward", expr);
            }
        }
    }
    batch.rule("inet", "forward", vec![iifname("==", bridge), drop_packet()]);
    batch.rule("inet", "forward", vec![oifname("==", bridge), drop_packet()]);

    // Guests reach nothing of the host itself but replies to the host's own requests.
    batch.rule("inet", "input", vec![iifname("==", bridge), ct_state(&["established", "related"]), accept()]);
    batch.rule("inet", "input", vec![iifname("==", bridge), drop_packet()]);
    // Guest-to-guest packets leave by the port they came in: the host would otherwise tell
    // the sender to go direct, which the isolated ports do not allow.
    batch.rule(
        "inet",
        "output",
        vec![oifname("==", bridge), matches("==", payload("icmp", "type"), json!("redirect")), drop_packet()],
    );
}

/// The protocol and port matches of one egress rule: one list per rule to emit.
fn egress_matches(rule: &EgressRule) -> Vec<Vec<Value>> {
    let protocols: &[&str] = match rule.protocol {
        EgressProtocol::Tcp => &["tcp"],
        EgressProtocol::Udp => &["udp"],
        EgressProtocol::Any if rule.ports.is_empty() => return vec![Vec::new()],
        EgressProtocol::Any => &["tcp", "udp"],
    };
    protocols
        .iter()
        .map(|protocol| {
            let l4proto = matches("==", json!({ "meta": { "key": "l4proto" } }), json!(protocol));
            if rule.ports.is_empty() {
                vec![l4proto]
            } else {
                vec![l4proto, matches("==", original("proto-dst", None), ports(&rule.ports))]
            }
        })
        .collect()
}

/// Inclusive port ranges as one nft value: a number, a range, or a set of them.
fn ports(ranges: &[(u16, u16)]) -> Value {
    let elements: Vec<Value> = ranges
        .iter()
        .map(|&(low, high)| if low == high { json!(low) } else { json!({ "range": [low.min(high), low.max(high)] }) })
        .collect();
    match elements.as_slice() {
        [single] => single.clone(),
        _ => json!({ "set": elements }),
    }
}

fn bridge_filter(batch: &mut Batch, leases: &[Lease]) {
    batch.chain("bridge", "prerouting", "filter", "prerouting", BRIDGE_FILTER);
    for lease in leases {
        let tap = lease.tap.as_str();
        let ip = json!(lease.ip.to_string());
        let ether_type = |t: &str| matches("==", payload("ether", "type"), json!(t));
        batch.rule(
            "bridge",
            "prerouting",
            vec![iifname("==", tap), matches("!=", payload("ether", "saddr"), json!(lease.mac)), drop_packet()],
        );
        batch.rule(
            "bridge",
            "prerouting",
            vec![
                iifname("==", tap),
                ether_type("ip"),
                matches("!=", payload("ip", "saddr"), ip.clone()),
                drop_packet(),
            ],
        );
        batch.rule(
            "bridge",
            "prerouting",
            vec![iifname("==", tap), ether_type("arp"), matches("!=", payload("arp", "saddr ip"), ip), drop_packet()],
        );
        // IPv6 and everything else but IPv4 and ARP: guests are addressed over IPv4 only.
        batch.rule(
            "bridge",
            "prerouting",
            vec![
                iifname("==", tap),
                matches("!=", payload("ether", "type"), json!({ "set": ["ip", "arp"] })),
                drop_packet(),
            ],
        );
    }
}

/// Commands of one batch, all on tables of one name.
struct Batch {
    table: String,
    commands: Vec<Value>,
}

impl Batch {
    fn new(table: String) -> Batch {
        Batch { table, commands: Vec::new() }
    }

    fn table(&self, family: &str) -> Value {
        json!({ "family": family, "name": self.table })
    }

    fn replace_table(&mut self, family: &str) {
        let table = self.table(family);
        self.commands.push(json!({ "add": { "table": table } }));
        self.commands.push(json!({ "delete": { "table": table } }));
        self.commands.push(json!({ "add": { "table": table } }));
    }

    fn chain(&mut self, family: &str, name: &str, kind: &str, hook: &str, priority: i32) {
        self.commands.push(json!({ "add": { "chain": {
            "family": family, "table": self.table, "name": name,
            "type": kind, "hook": hook, "prio": priority, "policy": "accept",
        } } }));
    }

    fn rule(&mut self, family: &str, chain: &str, expr: Vec<Value>) {
        self.commands.push(json!({ "add": { "rule": {
            "family": family, "table": self.table, "chain": chain, "expr": expr,
        } } }));
    }
}

fn matches(op: &str, left: Value, right: Value) -> Value {
    json!({ "match": { "op": op, "left": left, "right": right } })
}

/// A field of the connection as it was first seen (before any DNAT).
fn original(key: &str, family: Option<&str>) -> Value {
    match family {
        Some(family) => json!({ "ct": { "key": key, "family": family, "dir": "original" } }),
        None => json!({ "ct": { "key": key, "dir": "original" } }),
    }
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({ "payload": { "protocol": protocol, "field": field } })
}

fn prefix(addr: Ipv4Addr, len: u8) -> Value {
    json!({ "prefix": { "addr": addr.to_string(), "len": len } })
}

/// A network as nft writes it: a single address for a /32, else a prefix.
fn network(net: ipnet::Ipv4Net) -> Value {
    if net.prefix_len() == 32 { json!(net.addr().to_string()) } else { prefix(net.network(), net.prefix_len()) }
}

fn iifname(op: &str, name: &str) -> Value {
    matches(op, json!({ "meta": { "key": "iifname" } }), json!(name))
}

fn oifname(op: &str, name: &str) -> Value {
    matches(op, json!({ "meta": { "key": "oifname" } }), json!(name))
}

fn ct_state(states: &[&str]) -> Value {
    json!({ "match": { "op": "in", "left": { "ct": { "key": "state" } }, "right": states } })
}

fn accept() -> Value {
    json!({ "accept": null })
}

fn drop_packet() -> Value {
    json!({ "drop": null })
}

fn masquerade() -> Value {
    json!({ "masquerade": null })
}
