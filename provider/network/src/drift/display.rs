//! How each [`Drift`] reads in a warning: one sentence naming what changed and where.

use std::fmt;

use super::Drift;

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::BridgeMissing { bridge } => write!(f, "bridge {bridge} is missing"),
            Drift::BridgeTaken { bridge, owner } => {
                write!(f, "bridge {bridge} is gone: the device now named {bridge} {owner}")
            }
            Drift::BridgeDown { bridge } => write!(f, "bridge {bridge} is down"),
            Drift::GatewayMissing { bridge, address } => {
                write!(f, "bridge {bridge} lacks its gateway address {address}")
            }
            Drift::Sysctl { name, found, expected } => write!(f, "sysctl {name} is {found}, {expected} expected"),
            Drift::TapMissing { tap, owner } => {
                write!(f, "TAP {tap} of {owner} is missing: the instance has lost its network interface")
            }
            Drift::TapDetached { tap, owner, bridge, master: Some(master) } => {
                write!(f, "TAP {tap} of {owner} is not a port of {bridge} but of {master}")
            }
            Drift::TapDetached { tap, owner, bridge, master: None } => {
                write!(f, "TAP {tap} of {owner} is not a port of {bridge}")
            }
            Drift::TapNotIsolated { tap, owner, bridge } => {
                write!(f, "TAP {tap} of {owner} is not isolated on {bridge}: other guests could reach it directly")
            }
            Drift::TapDown { tap, owner } => write!(f, "TAP {tap} of {owner} is down"),
            Drift::TableMissing { family, table } => write!(f, "table {family} {table} is missing"),
            Drift::ChainMissing { family, table, chain } => {
                write!(f, "chain {chain} of table {family} {table} is missing")
            }
            Drift::ChainChanged { family, table, chain, found, expected } => {
                write!(f, "chain {chain} of table {family} {table} is {found}, {expected} expected")
            }
            Drift::ChainUnexpected { family, table, chain } => {
                write!(f, "table {family} {table} has a chain sdsec did not write: {chain}")
            }
            Drift::RuleCount { family, table, chain, found, expected } => {
                let rules = if *found == 1 { "rule" } else { "rules" };
                write!(f, "chain {chain} of table {family} {table} has {found} {rules}, {expected} expected")
            }
            Drift::Verdicts { family, table, chain, found, expected } => write!(
                f,
                "chain {chain} of table {family} {table} has rules with other verdicts: {found} (expected {expected})"
            ),
            Drift::TableLeftover { family, table } => {
                write!(f, "table {family} {table} remains though no instance holds a lease")
            }
            Drift::BridgeLeftover { bridge } => write!(f, "bridge {bridge} remains though no instance holds a lease"),
            Drift::Site { what } => f.write_str(what),
            Drift::SiteDetached { instance, network, site } => write!(
                f,
                "network {network} on {site} stopped or went while instance {instance} ran on it: its interface was cut \
                 from the network (libvirt reattaches running guests only when its daemon restarts)"
            ),
        }
    }
}
