//! The bridge's settings and the checks they pass without asking the host.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Name of the bridge when the configuration gives none.
pub const DEFAULT_BRIDGE: &str = "sdsec0";
/// Guests' subnet when the configuration gives none.
pub const DEFAULT_SUBNET: &str = "10.213.0.0/24";
/// Published ports listen on every address of the host unless told otherwise.
pub const DEFAULT_PUBLISH_ADDRESS: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

/// Prefix of TAP device names: the rest of the name space is the bridge's to choose.
pub(crate) const TAP_PREFIX: &str = "sdt-";
/// Longest interface name the kernel takes (IFNAMSIZ less the terminating NUL).
const MAX_INTERFACE_NAME: usize = 15;
/// Longest prefix that still leaves room for a guest beside network, gateway and broadcast.
const LONGEST_PREFIX: u8 = 29;

/// The bridge of one state directory: its name, the guests' subnet (the gateway is its first
/// host) and the address published ports are reachable on (0.0.0.0: every local address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub publish_address: Ipv4Addr,
}

/// Which attribute of the configuration a problem is about, so the provider can report it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Bridge,
    Subnet,
    PublishAddress,
}

impl Setting {
    /// The attribute's name as users write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Setting::Bridge => "bridge",
            Setting::Subnet => "subnet",
            Setting::PublishAddress => "publish_address",
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A setting no host could accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("`bridge` {name:?} is not a usable interface name: {reason}")]
    BridgeName { name: String, reason: &'static str },
    #[error("`subnet` {subnet} has host bits set; did you mean {network}?")]
    SubnetHostBits { subnet: Ipv4Net, network: Ipv4Net },
    #[error(
        "`subnet` {subnet} is too small: it holds {guests} guest(s) beside the network, gateway and broadcast addresses; use a prefix of /{LONGEST_PREFIX} or shorter"
    )]
    SubnetTooSmall { subnet: Ipv4Net, guests: u32 },
    #[error(
        "`subnet` {subnet} overlaps {range} ({what}), which cannot be routed to guests; choose a private range such as {DEFAULT_SUBNET}"
    )]
    SubnetReserved { subnet: Ipv4Net, range: Ipv4Net, what: &'static str },
    #[error("`publish_address` {address} {reason}")]
    PublishAddress { address: Ipv4Addr, reason: String },
}

impl ConfigError {
    /// The attribute the error belongs on.
    pub fn setting(&self) -> Setting {
        match self {
            ConfigError::BridgeName { .. } => Setting::Bridge,
            ConfigError::SubnetHostBits { .. }
            | ConfigError::SubnetTooSmall { .. }
            | ConfigError::SubnetReserved { .. } => Setting::Subnet,
            ConfigError::PublishAddress { .. } => Setting::PublishAddress,
        }
    }
}

/// Ranges a guest subnet must stay out of, and what each is.
const RESERVED: [(Ipv4Addr, u8, &str); 5] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\""),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
];

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            bridge: DEFAULT_BRIDGE.to_owned(),
            subnet: Ipv4Net::new(Ipv4Addr::new(10, 213, 0, 0), 24).unwrap_or_default(),
            publish_address: DEFAULT_PUBLISH_ADDRESS,
        }
    }
}

impl BridgeConfig {
    /// Checks that need no host: the bridge name is one the kernel takes (1..=15 characters of
    /// `[A-Za-z0-9_.-]`), the subnet is a network with room for guests outside reserved
    /// ranges, and the publish address is one a listener could have.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_bridge()?;
        self.validate_subnet()?;
        self.validate_publish_address()
    }

    fn validate_bridge(&self) -> Result<(), ConfigError> {
        let name = &self.bridge;
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_INTERFACE_NAME {
            Some("the kernel takes at most 15 characters")
        } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
            Some("use only letters, digits, `_`, `.` and `-`")
        } else if name == "." || name == ".." {
            Some("`.` and `..` are not interface names")
        } else if name.starts_with(TAP_PREFIX) {
            Some("names starting with `sdt-` are those of sdsec's TAP devices")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(ConfigError::BridgeName { name: name.clone(), reason }),
            None => Ok(()),
        }
    }

    fn validate_subnet(&self) -> Result<(), ConfigError> {
        let subnet = self.subnet;
        if subnet.network() != subnet.addr() {
            return Err(ConfigError::SubnetHostBits { subnet, network: subnet.trunc() });
        }
        if subnet.prefix_len() > LONGEST_PREFIX {
            return Err(ConfigError::SubnetTooSmall { subnet, guests: guest_capacity(subnet) });
        }
        for (addr, len, what) in RESERVED {
            let range = Ipv4Net::new(addr, len).unwrap_or_default();
            if range.contains(&subnet) || subnet.contains(&range) {
                return Err(ConfigError::SubnetReserved { subnet, range, what });
            }
        }
        Ok(())
    }

    fn validate_publish_address(&self) -> Result<(), ConfigError> {
        let address = self.publish_address;
        let reason = if address.is_multicast() {
            Some("is a multicast address".to_owned())
        } else if address.is_broadcast() {
            Some("is the broadcast address".to_owned())
        } else if self.subnet.contains(&address) {
            Some(format!(
                "lies in `subnet` {}, the guests' own addresses; use 0.0.0.0 or an address of this host",
                self.subnet
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => Err(ConfigError::PublishAddress { address, reason }),
            None => Ok(()),
        }
    }

    /// The host's address on the bridge: the subnet's first host.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet.network()).saturating_add(1))
    }

    /// Name of both nftables tables (inet and bridge), kept to `[A-Za-z0-9_]` and one per
    /// bridge name: letters and digits stay, `_` is `__`, `-` is `_d` and `.` is `_p`
    /// (`sdsec0` → `sdsec_sdsec0`, `br-a` → `sdsec_br_da`), so two bridges never share one.
    pub fn table_name(&self) -> String {
        let mut name = String::from("sdsec_");
        for c in self.bridge.chars() {
            match c {
                '_' => name.push_str("__"),
                '-' => name.push_str("_d"),
                '.' => name.push_str("_p"),
                // validate() admits nothing else; should it, keep the name one-to-one.
                c if c.is_ascii_alphanumeric() => name.push(c),
                c => name.push_str(&format!("_x{:x}_", u32::from(c))),
            }
        }
        name
    }
}

/// Guests a subnet holds: every address but network, gateway and broadcast.
fn guest_capacity(subnet: Ipv4Net) -> u32 {
    let addresses = 1u64 << (32 - u32::from(subnet.prefix_len()));
    u32::try_from(addresses.saturating_sub(3)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bridge_name_has_a_table_of_its_own() {
        let table = |bridge: &str| BridgeConfig { bridge: bridge.to_owned(), ..BridgeConfig::default() }.table_name();
        assert_eq!(table("sdsec0"), "sdsec_sdsec0");
        let names = ["sdsec-a", "sdsec.a", "sdsec_a", "sdsec_da", "sdsec_pa"];
        let tables: std::collections::BTreeSet<String> = names.iter().map(|n| table(n)).collect();
        assert_eq!(tables.len(), names.len(), "{tables:?}");
        assert!(tables.iter().all(|t| t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')), "{tables:?}");
    }

    fn config(bridge: &str, subnet: &str) -> BridgeConfig {
        BridgeConfig { bridge: bridge.into(), subnet: subnet.parse().unwrap(), ..BridgeConfig::default() }
    }

    #[test]
    fn the_defaults_are_valid() {
        let config = BridgeConfig::default();
        config.validate().unwrap();
        assert_eq!(config.subnet.to_string(), DEFAULT_SUBNET);
        assert_eq!(config.gateway(), Ipv4Addr::new(10, 213, 0, 1));
        assert_eq!(config.table_name(), "sdsec_sdsec0");
    }

    #[test]
    fn bridge_names_the_kernel_refuses_are_refused() {
        for name in ["", "a-name-longer-than15", "br 0", "br/0", "..", "sdt-1"] {
            let err = config(name, DEFAULT_SUBNET).validate().unwrap_err();
            assert_eq!(err.setting(), Setting::Bridge, "{name:?}: {err}");
        }
        config("br-0.x_1", DEFAULT_SUBNET).validate().unwrap();
        assert_eq!(config("br-0.x_1", DEFAULT_SUBNET).table_name(), "sdsec_br_d0_px__1");
    }

    #[test]
    fn a_subnet_with_host_bits_suggests_the_network() {
        let err = config("sdsec0", "10.213.0.7/24").validate().unwrap_err();
        assert_eq!(err.setting(), Setting::Subnet);
        assert!(err.to_string().contains("did you mean 10.213.0.0/24?"), "{err}");
    }

    #[test]
    fn a_subnet_too_small_says_how_many_guests_it_holds() {
        let err = config("sdsec0", "10.213.0.0/30").validate().unwrap_err();
        assert!(err.to_string().contains("holds 1 guest(s)"), "{err}");
        let err = config("sdsec0", "10.213.0.0/32").validate().unwrap_err();
        assert!(err.to_string().contains("holds 0 guest(s)"), "{err}");
        config("sdsec0", "10.213.0.0/29").validate().unwrap();
    }

    #[test]
    fn reserved_ranges_are_refused() {
        for subnet in ["127.1.0.0/24", "169.254.0.0/24", "224.0.0.0/24", "0.0.0.0/24", "0.0.0.0/1", "240.0.0.0/8"] {
            let err = config("sdsec0", subnet).validate().unwrap_err();
            assert!(matches!(err, ConfigError::SubnetReserved { .. }), "{subnet}: {err}");
        }
    }

    #[test]
    fn a_publish_address_inside_the_subnet_or_multicast_is_refused() {
        for address in [Ipv4Addr::new(10, 213, 0, 1), Ipv4Addr::new(239, 1, 1, 1), Ipv4Addr::BROADCAST] {
            let config = BridgeConfig { publish_address: address, ..BridgeConfig::default() };
            assert_eq!(config.validate().unwrap_err().setting(), Setting::PublishAddress);
        }
    }
}
