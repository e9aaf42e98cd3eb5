//! What can go wrong on the host, each saying how to fix it where there is a way.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;

use crate::config::{ConfigError, Setting};

/// Who holds a device named like the bridge, when it is not this state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeOwner {
    /// Another state directory's bridge (its alias names that directory).
    StateDir(String),
    /// A remote site's network marked with another owner token: another state directory's,
    /// or this one's reached through another spelling of `libvirt_uri`.
    Site { token: String },
    /// A device sdsec did not create; `kind` is its link type (`veth`, `bridge`, …) if it has one.
    Foreign { kind: Option<String> },
}

impl std::fmt::Display for BridgeOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BridgeOwner::StateDir(dir) => write!(f, "is the bridge of another state directory ({dir})"),
            BridgeOwner::Site { token } => write!(
                f,
                "is the network of another sdsec state directory, or of this one reached through another spelling of `libvirt_uri` (owner token {token})"
            ),
            BridgeOwner::Foreign { kind: Some(kind) } => write!(f, "is a {kind} device sdsec did not create"),
            BridgeOwner::Foreign { kind: None } => f.write_str("is a device sdsec did not create"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("`{tool}` is not installed; install Debian's {package} (apt-get install {package})")]
    ToolMissing { tool: &'static str, package: &'static str },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
    #[error("cannot understand the output of `{command}`: {reason}")]
    Output { command: String, reason: String },
    #[error(transparent)]
    Io(#[from] fsutil::IoError),
    #[error("cannot draw a random TAP name: {0}")]
    Random(#[from] fsutil::RandomError),
    #[error("{path} is not a lease file sdsec can read ({reason}); move it away if no instance uses bridge networking")]
    State { path: PathBuf, reason: String },
    #[error("the network device `{bridge}` {owner}; choose another `bridge` name")]
    BridgeTaken { bridge: String, owner: BridgeOwner },
    #[error("`subnet` {subnet} overlaps the host's route {route}; choose a subnet no route of this host covers")]
    SubnetOverlapsRoute { subnet: Ipv4Net, route: String },
    #[error(
        "`publish_address` {address} is not an address of this host (see `ip -4 addr`); use 0.0.0.0 or one of them"
    )]
    PublishAddressNotLocal { address: Ipv4Addr },
    #[error(
        "`{setting}` changed from {recorded} to {requested} while instances hold leases on the old one ({}); destroy them first or keep the old value",
        holders.join(", ")
    )]
    SettingChanged { setting: Setting, recorded: String, requested: String, holders: Vec<String> },
    #[error(
        "network = \"bridge\" needs CAP_NET_ADMIN (to create the bridge, TAP devices and nftables rules), which this process lacks; run the provider as root or with that capability, or use network = \"user\" (or \"auto\")"
    )]
    NoCapNetAdmin,
    #[error("host port {port} is already published by {holder}")]
    PortLeased { port: u16, holder: String },
    #[error(
        "host port {port} is in use on {address} by a process of this host (publishing it would hide that service): {source}"
    )]
    PortInUse {
        port: u16,
        address: Ipv4Addr,
        #[source]
        source: std::io::Error,
    },
    #[error("host port 0 cannot be published; choose a port from 1 to 65535")]
    PortZero,
    #[error("`subnet` {subnet} is full: all {leases} guest addresses are leased; choose a larger subnet")]
    SubnetFull { subnet: Ipv4Net, leases: usize },
    #[error(
        "network {network} on {site} holds {found}, not `subnet` {subnet}; set `subnet` back, or remove the network there (`virsh net-destroy {network}; virsh net-undefine {network}`) once no guest uses it"
    )]
    SiteNetworkMoved { network: String, site: String, found: String, subnet: ipnet::Ipv4Net },
    #[error("the hypervisor host at {site}: {reason}")]
    Site { site: String, reason: String },
    #[error(
        "the network filter of {instance} would have {rules} rules, more than the {max} libvirt's priorities leave room for: its node's egress rules and port ranges, peers, and the flows of other instances to and from it all count; declare fewer of them"
    )]
    SiteFilterTooLarge { instance: String, rules: usize, max: usize },
    #[error("no lease of {0}")]
    NotLeased(String),
    #[error("instance {instance} already holds the lease of {tap}")]
    InstanceHasLease { instance: String, tap: String },
}

impl NetworkError {
    /// The configuration attribute the error belongs on, when it is about one.
    pub fn setting(&self) -> Option<Setting> {
        match self {
            NetworkError::Config(err) => Some(err.setting()),
            NetworkError::BridgeTaken { .. } => Some(Setting::Bridge),
            NetworkError::SubnetOverlapsRoute { .. } | NetworkError::SubnetFull { .. } => Some(Setting::Subnet),
            NetworkError::PublishAddressNotLocal { .. } => Some(Setting::PublishAddress),
            NetworkError::SettingChanged { setting, .. } => Some(*setting),
            _ => None,
        }
    }
}
