//! The guest's network as both sides assume it: QEMU's user network, with the runtime
//! (the PEP) listening on a fixed port that the host forwards to.

use std::net::Ipv4Addr;

/// An IPv4 address with its prefix, and the default gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// The guest's address on QEMU's user network (slirp hands out 10.0.2.15 behind 10.0.2.2).
pub const GUEST: Network = Network { ip: Ipv4Addr::new(10, 0, 2, 15), prefix: 24, gateway: Ipv4Addr::new(10, 0, 2, 2) };

/// The port the runtime listens on inside the guest, on every address.
pub const RUNTIME_PORT: u16 = 80;
/// The runtime's port when the application itself listens on [`RUNTIME_PORT`].
pub const RUNTIME_PORT_BESIDE: u16 = 81;

/// The runtime's port for an application port: both listen in the same guest.
pub fn runtime_port(app_port: u16) -> u16 {
    if app_port == RUNTIME_PORT { RUNTIME_PORT_BESIDE } else { RUNTIME_PORT }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_listens_beside_the_application() {
        assert_eq!(runtime_port(8080), 80);
        assert_eq!(runtime_port(81), 80);
        assert_eq!(runtime_port(80), 81);
    }
}
