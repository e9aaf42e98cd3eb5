//! Drift: where the host no longer matches the lease file, and its repair.
//!
//! The lease file says what the host should have: with leases, our bridge holding the
//! gateway address, an isolated port per lease and both nftables tables as [`ruleset`]
//! writes them; with none, neither bridge nor tables. Anything else happened behind sdsec's
//! back: a firewall reload or `nft flush ruleset` (which silently opens guests to one
//! another, as the host's forward policy then decides), a deleted rule, a TAP detached from
//! the bridge or no longer isolated, the gateway address removed.
//!
//! Rules are compared by count (and by verdict) per chain, not expression by expression: nft
//! normalises expressions when it lists them, so the listing never equals the batch that
//! wrote it. A rule replaced by another with the same verdict goes unnoticed; a flushed table
//! or chain, a deleted rule, an added one, or an `accept` in place of a `drop` does not.
//!
//! [`ruleset`]: crate::ruleset()

use std::collections::BTreeMap;
use std::path::Path;

use ipnet::Ipv4Net;
use serde_json::Value;

use crate::config::BridgeConfig;
use crate::error::BridgeOwner;
use crate::leases::Document;
use crate::network::BridgeState;
use crate::{Network, NetworkError, Owner, host, ruleset};

/// One way the host differs from what the lease file says it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Leases are held on a bridge that does not exist.
    BridgeMissing {
        bridge: String,
    },
    /// The device named like the leases' bridge is not ours (never touched, so not repaired).
    BridgeTaken {
        bridge: String,
        owner: BridgeOwner,
    },
    BridgeDown {
        bridge: String,
    },
    GatewayMissing {
        bridge: String,
        address: Ipv4Net,
    },
    /// A sysctl the bridge needs (`name` as `sysctl` writes it) has another value.
    Sysctl {
        name: String,
        found: String,
        expected: &'static str,
    },
    /// The TAP of a lease is gone: the VM's network interface went with it, and a new TAP
    /// of that name would not be the VM's (so not repaired).
    TapMissing {
        tap: String,
        owner: Owner,
    },
    /// The TAP is not a port of the bridge (`master`: whose port it is, if any).
    TapDetached {
        tap: String,
        owner: Owner,
        bridge: String,
        master: Option<String>,
    },
    /// The TAP is a port of the bridge but not an isolated one: guests on the bridge could
    /// reach it directly, around the host's rules.
    TapNotIsolated {
        tap: String,
        owner: Owner,
        bridge: String,
    },
    TapDown {
        tap: String,
        owner: Owner,
    },
    TableMissing {
        family: String,
        table: String,
    },
    ChainMissing {
        family: String,
        table: String,
        chain: String,
    },
    /// A chain whose type, hook, priority or policy differ (each described in words).
    ChainChanged {
        family: String,
        table: String,
        chain: String,
        found: String,
        expected: String,
    },
    /// A chain sdsec does not write, in one of its tables.
    ChainUnexpected {
        family: String,
        table: String,
        chain: String,
    },
    RuleCount {
        family: String,
        table: String,
        chain: String,
        found: usize,
        expected: usize,
    },
    /// As many rules as expected but with other verdicts (each a summary like `5 accept, 4 drop`).
    Verdicts {
        family: String,
        table: String,
        chain: String,
        found: String,
        expected: String,
    },
    /// A table that should have gone with the last lease.
    TableLeftover {
        family: String,
        table: String,
    },
    /// Our bridge, left though no lease is held.
    BridgeLeftover {
        bridge: String,
    },
    /// A remote site's network or filter no longer matches the leases ([`crate::SiteNetwork`]).
    Site {
        what: String,
    },
    /// A remote site's network stopped or went while `instance` ran on it: its interface was
    /// cut from the network, which restarting it does not undo.
    SiteDetached {
        instance: String,
        network: String,
        site: String,
    },
}

impl Drift {
    /// Whether [`Network::repair`] can restore it: everything but a missing TAP and a bridge
    /// name taken by a device that is not ours.
    pub fn repairable(&self) -> bool {
        !matches!(self, Drift::TapMissing { .. } | Drift::BridgeTaken { .. } | Drift::SiteDetached { .. })
    }

    /// The instance whose TAP it is about, for drift of a TAP bound to an instance.
    pub fn instance(&self) -> Option<&str> {
        match self {
            Drift::TapMissing { owner: Owner::Instance(id), .. }
            | Drift::TapDetached { owner: Owner::Instance(id), .. }
            | Drift::TapNotIsolated { owner: Owner::Instance(id), .. }
            | Drift::TapDown { owner: Owner::Instance(id), .. }
            | Drift::SiteDetached { instance: id, .. } => Some(id),
            _ => None,
        }
    }
}

impl Network {
    /// How the host differs from the lease file (read under the shared lock): empty when
    /// it matches, and when bridge networking was never used in this state directory.
    pub fn drift(&self) -> Result<Vec<Drift>, NetworkError> {
        if !self.store.exists() {
            return Ok(Vec::new());
        }
        let locked = self.store.lock(false)?;
        let document = self.store.load(&locked, &self.config)?;
        self.inspect(&document)
    }

    /// [`Network::drift`], then, under the same exclusive lock, makes the host match the
    /// lease file again: the bridge, its address and settings, both tables, and the ports
    /// of TAPs detached, no longer isolated or down. Returns what was found, repaired or
    /// not: a missing TAP is not recreated (the VM's interface is gone for good), and a
    /// bridge name taken by a device that is not ours stops the repair.
    pub fn repair(&self) -> Result<Vec<Drift>, NetworkError> {
        if !self.store.exists() {
            return Ok(Vec::new());
        }
        let locked = self.store.lock(true)?;
        let document = self.store.load(&locked, &self.config)?;
        let found = self.inspect(&document)?;
        let blocked = found.iter().any(|drift| matches!(drift, Drift::BridgeTaken { .. }));
        if blocked || !found.iter().any(Drift::repairable) {
            return Ok(found);
        }
        let config = document.effective(&self.config);
        self.sync(&locked, &config, &document)?;
        for drift in &found {
            if let Drift::TapDetached { tap, .. } | Drift::TapNotIsolated { tap, .. } | Drift::TapDown { tap, .. } =
                drift
            {
                host::attach_port(tap, &config.bridge)?;
            }
        }
        Ok(found)
    }

    /// The host compared with `document` (call with the lock held).
    fn inspect(&self, document: &Document) -> Result<Vec<Drift>, NetworkError> {
        let config = document.effective(&self.config);
        let devices = host::devices()?;
        let device = |name: &str| devices.iter().find(|device| device.name == name);
        let bridge = config.bridge.clone();
        let state = match device(&bridge) {
            None => BridgeState::Absent,
            Some(found) => self.whose(found.alias.clone(), found.kind.clone())?,
        };
        let mut found = Vec::new();
        if document.leases.is_empty() {
            match state {
                // Tables named after someone else's bridge are theirs.
                BridgeState::Taken(_) => return Ok(found),
                BridgeState::Ours => found.push(Drift::BridgeLeftover { bridge }),
                BridgeState::Absent => {}
            }
            found.extend(tables_drift(&config, &ruleset::teardown(&config))?);
            return Ok(found);
        }
        let taken = match state {
            BridgeState::Absent => {
                found.push(Drift::BridgeMissing { bridge: bridge.clone() });
                false
            }
            BridgeState::Taken(owner) => {
                found.push(Drift::BridgeTaken { bridge: bridge.clone(), owner });
                true
            }
            BridgeState::Ours => {
                if let Some(ours) = device(&bridge) {
                    if !ours.up {
                        found.push(Drift::BridgeDown { bridge: bridge.clone() });
                    }
                    let address = Ipv4Net::new(config.gateway(), config.subnet.prefix_len())
                        .unwrap_or_else(|_| Ipv4Net::from(config.gateway()));
                    if !ours.ipv4.contains(&address) {
                        found.push(Drift::GatewayMissing { bridge: bridge.clone(), address });
                    }
                }
                for (path, expected) in host::bridge_sysctls(&bridge) {
                    let value = host::read_sysctl(&path)?;
                    if value != expected {
                        found.push(Drift::Sysctl { name: sysctl_name(&path), found: value, expected });
                    }
                }
                false
            }
        };
        for lease in &document.leases {
            let (tap, owner) = (lease.tap.clone(), lease.owner.clone());
            let Some(port) = device(&lease.tap) else {
                found.push(Drift::TapMissing { tap, owner });
                continue;
            };
            if taken {
                continue;
            }
            if port.master.as_deref() != Some(bridge.as_str()) {
                let master = port.master.clone();
                found.push(Drift::TapDetached {
                    tap: tap.clone(),
                    owner: owner.clone(),
                    bridge: bridge.clone(),
                    master,
                });
            } else if !port.isolated {
                found.push(Drift::TapNotIsolated { tap: tap.clone(), owner: owner.clone(), bridge: bridge.clone() });
            }
            if !port.up {
                found.push(Drift::TapDown { tap, owner });
            }
        }
        if !taken {
            found.extend(tables_drift(&config, &ruleset(&config, &document.leases))?);
        }
        Ok(found)
    }
}

/// `net.ipv4.conf.sdsec0.forwarding` for /proc/sys/net/ipv4/conf/sdsec0/forwarding.
fn sysctl_name(path: &Path) -> String {
    let relative = path.strip_prefix("/proc/sys").unwrap_or(path);
    relative.iter().map(|part| part.to_string_lossy()).collect::<Vec<_>>().join(".")
}

/// Both tables of `config` as listed now, against what `desired` leaves.
fn tables_drift(config: &BridgeConfig, desired: &Value) -> Result<Vec<Drift>, NetworkError> {
    let table = config.table_name();
    let mut found = Vec::new();
    for family in ["inet", "bridge"] {
        let live = host::list_table(family, &table)?;
        found.extend(table_drift(desired, family, &table, live.as_ref()));
    }
    Ok(found)
}

/// How table `family` `table` as `nft -j list table` lists it (`None`: there is no such
/// table) differs from what the batch `desired` leaves of it (`nft -j -f` input, as
/// [`ruleset`] and [`ruleset::teardown`] make).
pub(crate) fn table_drift(desired: &Value, family: &str, table: &str, live: Option<&Value>) -> Vec<Drift> {
    let key = (family.to_owned(), table.to_owned());
    let expected = desired_tables(desired).remove(&key);
    let found = live.and_then(|listing| listed_tables(listing).remove(&key));
    let (family, table) = key;
    let (expected, found) = match (expected, found) {
        (None, None) => return Vec::new(),
        (Some(_), None) => return vec![Drift::TableMissing { family, table }],
        (None, Some(_)) => return vec![Drift::TableLeftover { family, table }],
        (Some(expected), Some(found)) => (expected, found),
    };
    let mut drift = Vec::new();
    for want in &expected.chains {
        let chain = want.name.clone();
        let (family, table) = (family.clone(), table.clone());
        let Some(have) = found.chains.iter().find(|have| have.name == want.name) else {
            drift.push(Drift::ChainMissing { family, table, chain });
            continue;
        };
        if have.base != want.base {
            let (found, expected) = (have.base.clone(), want.base.clone());
            drift.push(Drift::ChainChanged { family, table, chain, found, expected });
        } else if have.verdicts.len() != want.verdicts.len() {
            let (found, expected) = (have.verdicts.len(), want.verdicts.len());
            drift.push(Drift::RuleCount { family, table, chain, found, expected });
        } else if verdict_summary(&have.verdicts) != verdict_summary(&want.verdicts) {
            let (found, expected) = (verdict_summary(&have.verdicts), verdict_summary(&want.verdicts));
            drift.push(Drift::Verdicts { family, table, chain, found, expected });
        }
    }
    for have in &found.chains {
        if !expected.chains.iter().any(|want| want.name == have.name) {
            let (family, table, chain) = (family.clone(), table.clone(), have.name.clone());
            drift.push(Drift::ChainUnexpected { family, table, chain });
        }
    }
    drift
}

/// One table's chains in order.
#[derive(Debug, Default)]
struct Table {
    chains: Vec<Chain>,
}

#[derive(Debug)]
struct Chain {
    name: String,
    /// Type, hook, priority and policy in words (`type filter hook forward priority 0 policy
    /// accept`), or `a regular chain`.
    base: String,
    /// The verdict (last expression) of each rule, in order.
    verdicts: Vec<String>,
}

impl Table {
    fn chain(&mut self, name: &str) -> &mut Chain {
        let index = match self.chains.iter().position(|chain| chain.name == name) {
            Some(index) => index,
            None => {
                self.chains.push(Chain { name: name.to_owned(), base: base(&Value::Null), verdicts: Vec::new() });
                self.chains.len() - 1
            }
        };
        &mut self.chains[index]
    }
}

type Tables = BTreeMap<(String, String), Table>;

fn text(object: &Value, key: &str) -> String {
    object.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// The table an object (a table, chain or rule) belongs to.
fn table_key(object: &Value, name_key: &str) -> (String, String) {
    (text(object, "family"), text(object, name_key))
}

/// What a batch leaves: its `add` and `delete` commands on tables, chains and rules applied
/// in order to no tables (the batches of this crate replace their tables whole).
fn desired_tables(batch: &Value) -> Tables {
    let mut tables = Tables::new();
    let commands = batch.get("nftables").and_then(Value::as_array).into_iter().flatten();
    for command in commands {
        if let Some(add) = command.get("add") {
            if let Some(table) = add.get("table") {
                tables.entry(table_key(table, "name")).or_default();
            } else if let Some(chain) = add.get("chain") {
                let table = tables.entry(table_key(chain, "table")).or_default();
                table.chain(&text(chain, "name")).base = base(chain);
            } else if let Some(rule) = add.get("rule") {
                let table = tables.entry(table_key(rule, "table")).or_default();
                table.chain(&text(rule, "chain")).verdicts.push(verdict(rule));
            }
        } else if let Some(table) = command.get("delete").and_then(|delete| delete.get("table")) {
            tables.remove(&table_key(table, "name"));
        }
    }
    tables
}

/// What `nft -j list table` (or `list ruleset`) lists.
fn listed_tables(listing: &Value) -> Tables {
    let mut tables = Tables::new();
    let objects: Vec<&Value> = listing.get("nftables").and_then(Value::as_array).into_iter().flatten().collect();
    for table in objects.iter().filter_map(|object| object.get("table")) {
        tables.entry(table_key(table, "name")).or_default();
    }
    // Chains before rules, whatever order they are listed in.
    for chain in objects.iter().filter_map(|object| object.get("chain")) {
        tables.entry(table_key(chain, "table")).or_default().chain(&text(chain, "name")).base = base(chain);
    }
    for rule in objects.iter().filter_map(|object| object.get("rule")) {
        tables.entry(table_key(rule, "table")).or_default().chain(&text(rule, "chain")).verdicts.push(verdict(rule));
    }
    tables
}

/// A chain's type, hook, priority and policy in words.
fn base(chain: &Value) -> String {
    let Some(hook) = chain.get("hook").and_then(Value::as_str) else { return "a regular chain".to_owned() };
    let prio = match chain.get("prio") {
        Some(Value::String(name)) => name.clone(),
        Some(value) => value.to_string(),
        None => "?".to_owned(),
    };
    let policy = chain.get("policy").and_then(Value::as_str).unwrap_or("accept");
    format!("type {} hook {hook} priority {prio} policy {policy}", text(chain, "type"))
}

/// The kind of a rule's last expression: `accept`, `drop`, `dnat`, `masquerade`…
fn verdict(rule: &Value) -> String {
    rule.get("expr")
        .and_then(Value::as_array)
        .and_then(|expr| expr.last())
        .and_then(Value::as_object)
        .and_then(|last| last.keys().next().cloned())
        .unwrap_or_else(|| "no verdict".to_owned())
}

/// `5 accept, 4 drop`: how many rules end in each verdict.
fn verdict_summary(verdicts: &[String]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for verdict in verdicts {
        *counts.entry(verdict.as_str()).or_default() += 1;
    }
    counts.iter().map(|(verdict, count)| format!("{count} {verdict}")).collect::<Vec<_>>().join(", ")
}

mod display;
#[cfg(test)]
mod tests;
