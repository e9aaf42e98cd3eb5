//! The host side of bridge networking for protected unikernels.
//!
//! # The model
//!
//! Each state directory has one Linux bridge (default [`DEFAULT_BRIDGE`]) that holds the
//! gateway address, the first host of the subnet (10.213.0.1/24 by default). Every instance
//! gets a TAP device on it (`sdt-` and 10 hex digits), its own address and a MAC derived
//! from that address. The TAPs are *isolated* bridge ports: guests never reach one another
//! at layer 2. The bridge answers ARP for them instead (proxy ARP for private VLANs), so all
//! guest-to-guest traffic is routed through the host, where the `inet` nftables table filters
//! it with conntrack: a guest reaches another only where its [`FlowPolicy::connects_to`]
//! names the other's node (same tenant, the other's runtime port, new connections one way).
//! A `bridge` table drops frames whose MAC or IPv4/ARP source address is not the TAP's lease,
//! and everything but IPv4 and ARP.
//!
//! Published ports: a lease's `host_port` is DNAT-ed to the guest's runtime port on
//! `publish_address` (every local address when 0.0.0.0), for other machines and for the
//! host itself. Clients keep their source address, except the host's own requests to
//! 127.0.0.1, which the guest sees coming from the gateway address. Guests themselves do not
//! reach published ports through the host. Guests reach beyond the host only where their
//! [`FlowPolicy::egress`] rules allow, masqueraded behind the host's address.
//!
//! # What it changes on the host
//!
//! - `net.ipv4.ip_forward` is set to 1 (for the network namespace the provider runs in):
//!   published ports reached from other machines and guests' egress are forwarded. Setting
//!   it also turns forwarding on for every interface, as the kernel does; it is not reset
//!   afterwards, since other software may rely on it by then.
//! - On the bridge only: `forwarding`, `proxy_arp_pvlan`, `route_localnet` (so the host's
//!   requests to 127.0.0.1 can be DNAT-ed to a guest) and `neigh/…/proxy_delay` 0.
//! - Two nftables tables named `sdsec_<bridge>` (families `inet` and `bridge`; characters of
//!   the bridge name other than `[A-Za-z0-9_]` become `_`), rewritten as one transaction on
//!   every change. Their chains accept by default: the host's other traffic is untouched.
//!   Another firewall whose forward chain drops by default still applies to guests' traffic.
//!
//! The bridge is marked as this state directory's by its alias (`sdsec:<state directory>`);
//! a device of that name without this exact alias is never touched. The bridge and both
//! tables are removed when the last lease of the state directory is released.
//!
//! # State
//!
//! `STATE_DIR/network/leases.json` records the leases; `STATE_DIR/network/lock` is locked
//! exclusively for every change and the `ip`/`nft` commands that follow it, so concurrent
//! providers on one state directory take turns.
//!
//! # Drift
//!
//! What others do to the host behind sdsec's back (a firewall reload that flushes the
//! ruleset, a deleted rule, a TAP detached or no longer isolated, the gateway address
//! removed) is found by [`Network::drift`], which compares the host with the lease file, and
//! undone by [`Network::repair`], which re-applies the lease file. A TAP that is gone is only
//! reported: the VM's network interface went with it. See [`Drift`].

mod config;
mod drift;
mod error;
mod host;
mod leases;
mod network;
mod ruleset;
mod site;
pub mod site_xml;

use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use config::{BridgeConfig, ConfigError, DEFAULT_BRIDGE, DEFAULT_PUBLISH_ADDRESS, DEFAULT_SUBNET, Setting};
pub use drift::Drift;
pub use error::{BridgeOwner, NetworkError};
pub use leases::mac_octets;
pub use network::Network;
pub use ruleset::{ruleset, teardown};
pub use site::{FilterHost, HostNetwork, SiteNetwork};

/// How an instance's network is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// A TAP on the state directory's bridge (needs CAP_NET_ADMIN).
    Bridge,
    /// QEMU's user-mode networking (no privileges, no isolation rules of the host).
    User,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Bridge => "bridge",
            NetworkMode::User => "user",
        }
    }
}

impl FromStr for NetworkMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bridge" => Ok(NetworkMode::Bridge),
            "user" => Ok(NetworkMode::User),
            other => Err(format!("unknown network mode {other:?}; expected \"bridge\" or \"user\"")),
        }
    }
}

/// The mode a configuration asks for: `auto` takes bridge networking when it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeChoice {
    Auto,
    Bridge,
    User,
}

impl FromStr for ModeChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(ModeChoice::Auto),
            "bridge" => Ok(ModeChoice::Bridge),
            "user" => Ok(ModeChoice::User),
            other => Err(format!("unknown network mode {other:?}; expected \"auto\", \"bridge\" or \"user\"")),
        }
    }
}

impl ModeChoice {
    /// The mode to use and why, in words for a plan or a log.
    pub fn resolve(self) -> (NetworkMode, &'static str) {
        match self {
            ModeChoice::Bridge => (NetworkMode::Bridge, "configured: bridge"),
            ModeChoice::User => (NetworkMode::User, "configured: user"),
            ModeChoice::Auto if has_cap_net_admin() => (NetworkMode::Bridge, "auto: the provider has CAP_NET_ADMIN"),
            ModeChoice::Auto => {
                (NetworkMode::User, "auto: the provider lacks CAP_NET_ADMIN, which bridge networking needs")
            }
        }
    }
}

/// Whether no process of this host listens on `address`:`port` (a port published by DNAT
/// would hide it, and QEMU's user network could not bind it).
pub fn check_listener(address: Ipv4Addr, port: u16) -> Result<(), NetworkError> {
    std::net::TcpListener::bind((address, port)).map(drop).map_err(|source| NetworkError::PortInUse {
        port,
        address,
        source,
    })
}

/// Whether this process may configure network devices and nftables (CAP_NET_ADMIN, bit 12
/// of `CapEff` in /proc/self/status).
pub fn has_cap_net_admin() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return false };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

/// What an instance may reach: other guests of its tenant whose node it names, and
/// destinations beyond the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowPolicy {
    /// This instance's node name, as other policies' `connects_to` name it.
    pub node: String,
    /// Guests of different tenants never reach one another; every policy without a tenant
    /// shares the one default tenant.
    pub tenant: Option<String>,
    pub connects_to: Vec<String>,
    pub egress: Vec<EgressRule>,
}

/// One destination beyond the host a guest may open connections to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRule {
    pub to: ipnet::Ipv4Net,
    /// Inclusive destination port ranges; empty means any port.
    pub ports: Vec<(u16, u16)>,
    pub protocol: EgressProtocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EgressProtocol {
    Tcp,
    Udp,
    /// TCP and UDP when ports are given; every protocol when they are not.
    Any,
}

/// One instance's place on the bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub tap: String,
    pub mac: String,
    /// The port the guest's runtime listens on.
    pub runtime_port: u16,
    /// The host port published to `runtime_port`, if any.
    pub host_port: Option<u16>,
    pub owner: Owner,
    pub policy: FlowPolicy,
}

/// Who holds a lease: a process still booting the instance, or the instance itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// Taken by `attach` in process `pid` (its start time in clock ticks after boot, field 22
    /// of /proc/PID/stat, tells it from a later process with the same id) at `since_ms`.
    Creating { pid: u32, start_time: u64, since_ms: u64 },
    /// Bound to an instance after it booted.
    Instance(String),
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Creating { pid, .. } => write!(f, "an instance being created (process {pid})"),
            Owner::Instance(id) => write!(f, "instance {id}"),
        }
    }
}

/// What a VM needs to use its lease: the TAP to open and the guest's address settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub tap: String,
    pub mac: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// Which lease to release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKey<'a> {
    Tap(&'a str),
    Instance(&'a str),
}

impl std::fmt::Display for LeaseKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseKey::Tap(tap) => write!(f, "TAP {tap}"),
            LeaseKey::Instance(id) => write!(f, "instance {id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_resolve() {
        assert_eq!("bridge".parse::<NetworkMode>(), Ok(NetworkMode::Bridge));
        assert_eq!(NetworkMode::User.as_str().parse::<NetworkMode>(), Ok(NetworkMode::User));
        assert!("tap".parse::<NetworkMode>().is_err());
        assert_eq!(ModeChoice::User.resolve().0, NetworkMode::User);
        let (mode, why) = "auto".parse::<ModeChoice>().unwrap().resolve();
        assert_eq!(mode == NetworkMode::Bridge, has_cap_net_admin(), "{why}");
    }

    #[test]
    fn owners_serialize_as_tagged_objects() {
        let owner = Owner::Creating { pid: 7, start_time: 9, since_ms: 11 };
        let json = serde_json::to_value(&owner).unwrap();
        assert_eq!(json, serde_json::json!({ "creating": { "pid": 7, "start_time": 9, "since_ms": 11 } }));
        assert_eq!(
            serde_json::to_value(Owner::Instance("i-1".into())).unwrap(),
            serde_json::json!({ "instance": "i-1" })
        );
    }
}
