//! The guest's network: loopback, and the one virtio interface with a static address and
//! a default route (QEMU user networking has no need for DHCP: the address is fixed).
//!
//! Plain rtnetlink requests on a blocking socket: three messages do not need an async
//! netlink stack. Messages are framed here around the crate's message bodies rather than
//! through its `RouteNetlinkMessage` enum, whose every variant would otherwise be linked
//! into the image.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use netlink_packet_core::{
    Emitable, ErrorBuffer, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NLMSG_ERROR,
    NetlinkBuffer,
};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkFlags, LinkHeader};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

const SYS_NET: &str = "/sys/class/net";

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("no network interface appeared in {SYS_NET} within {0:?} (is virtio_net in the image?)")]
    NoInterface(Duration),
    #[error("cannot read {path}: {source}")]
    Sys { path: String, source: std::io::Error },
    #[error("cannot open a netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("{what}: {source}")]
    Request { what: String, source: std::io::Error },
}

/// The settings to apply.
#[derive(Debug, Clone, Copy)]
pub struct Address {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// Brings up `lo` and the first other interface, and returns that interface's name.
pub fn configure(address: Address, wait: Duration) -> Result<String, NetError> {
    let mut rt = Rtnl::open()?;
    let lo = ifindex("lo")?;
    rt.link_up(lo, "lo")?;
    let name = first_interface(wait)?;
    let index = ifindex(&name)?;
    rt.address(libc::RTM_NEWADDR, index, &name, address)?;
    rt.link_up(index, &name)?;
    rt.default_route(index, address.gateway, NLM_F_CREATE | NLM_F_EXCL)?;
    Ok(name)
}

/// Moves the interface [`configure`] set up from `old` to `new` and gives it the hardware
/// address `mac`: what a copy restored from a snapshot needs, as the snapshot holds another
/// copy's. The new address comes first and the default route is replaced, so the guest is
/// never without a route; the old address goes last.
pub fn readdress(old: Address, new: Address, mac: [u8; 6]) -> Result<(), NetError> {
    let mut rt = Rtnl::open()?;
    let name = first_interface(Duration::ZERO)?;
    let index = ifindex(&name)?;
    rt.set_mac(index, &name, mac)?;
    if (old.ip, old.prefix) != (new.ip, new.prefix) {
        rt.address(libc::RTM_NEWADDR, index, &name, new)?;
    }
    rt.replace_default_route(index, new.gateway)?;
    if (old.ip, old.prefix) != (new.ip, new.prefix) {
        rt.address(libc::RTM_DELADDR, index, &name, old)?;
    }
    Ok(())
}

/// The first interface other than `lo`, by name, once the driver has registered it.
fn first_interface(wait: Duration) -> Result<String, NetError> {
    let deadline = Instant::now() + wait;
    loop {
        let mut names: Vec<String> = std::fs::read_dir(SYS_NET)
            .map_err(|source| NetError::Sys { path: SYS_NET.to_owned(), source })?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n != "lo")
            .collect();
        names.sort();
        if let Some(first) = names.into_iter().next() {
            return Ok(first);
        }
        if Instant::now() >= deadline {
            return Err(NetError::NoInterface(wait));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ifindex(name: &str) -> Result<u32, NetError> {
    let path = Path::new(SYS_NET).join(name).join("ifindex");
    let text =
        std::fs::read_to_string(&path).map_err(|source| NetError::Sys { path: path.display().to_string(), source })?;
    text.trim().parse().map_err(|_| NetError::Sys {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("`{}` is not an index", text.trim())),
    })
}

/// The IPv4 broadcast address of a subnet (none for /31 and /32).
pub fn broadcast(ip: Ipv4Addr, prefix: u8) -> Option<Ipv4Addr> {
    (prefix <= 30).then(|| Ipv4Addr::from(u32::from(ip) | (u32::MAX >> prefix)))
}

struct Rtnl {
    socket: Socket,
    sequence: u32,
}

impl Rtnl {
    fn open() -> Result<Self, NetError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetError::Socket)?;
        socket.bind_auto().map_err(NetError::Socket)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(NetError::Socket)?;
        Ok(Self { socket, sequence: 0 })
    }

    fn link_up(&mut self, index: u32, name: &str) -> Result<(), NetError> {
        let link = LinkHeader { index, flags: LinkFlags::Up, change_mask: LinkFlags::Up, ..Default::default() };
        self.request(libc::RTM_SETLINK, &link, 0, &format!("cannot bring {name} up"))
    }

    /// Sets the interface's hardware address (a live change: virtio-net tells the device).
    fn set_mac(&mut self, index: u32, name: &str, mac: [u8; 6]) -> Result<(), NetError> {
        let what = format!("cannot set the hardware address of {name}");
        self.request(libc::RTM_SETLINK, &HardwareAddress { index, mac }, 0, &what)
    }

    /// Adds (`RTM_NEWADDR`) or removes (`RTM_DELADDR`) an address.
    fn address(&mut self, kind: u16, index: u32, name: &str, a: Address) -> Result<(), NetError> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = a.prefix;
        msg.header.scope = AddressScope::Universe;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(IpAddr::V4(a.ip)));
        msg.attributes.push(AddressAttribute::Address(IpAddr::V4(a.ip)));
        if let Some(b) = broadcast(a.ip, a.prefix) {
            msg.attributes.push(AddressAttribute::Broadcast(b));
        }
        if kind == libc::RTM_DELADDR {
            let what = format!("cannot remove {}/{} from {name}", a.ip, a.prefix);
            return self.request(kind, &msg, 0, &what);
        }
        let what = format!("cannot set {}/{} on {name}", a.ip, a.prefix);
        self.request(kind, &msg, NLM_F_CREATE | NLM_F_EXCL, &what)
    }

    fn replace_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> Result<(), NetError> {
        self.default_route(index, gateway, NLM_F_CREATE | NLM_F_REPLACE)
    }

    fn default_route(&mut self, index: u32, gateway: Ipv4Addr, flags: u16) -> Result<(), NetError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        msg.attributes.push(RouteAttribute::Oif(index));
        let what = format!("cannot set the default route via {gateway}");
        self.request(libc::RTM_NEWROUTE, &msg, flags, &what)
    }

    /// Sends one request and waits for its acknowledgement. EEXIST counts as done: the
    /// setting is what was asked for.
    fn request(&mut self, kind: u16, body: &dyn Emitable, flags: u16, what: &str) -> Result<(), NetError> {
        let failed = |source| NetError::Request { what: what.to_owned(), source };
        self.sequence += 1;
        let out = frame(kind, NLM_F_REQUEST | NLM_F_ACK | flags, self.sequence, body);
        self.socket.send(&out, 0).map_err(failed)?;
        loop {
            let mut buf = Vec::with_capacity(8192);
            self.socket.recv(&mut buf, 0).map_err(failed)?;
            if let Some(code) = ack(&buf, self.sequence) {
                return match code {
                    0 => Ok(()),
                    code if code.abs() == libc::EEXIST => Ok(()),
                    code => Err(failed(std::io::Error::from_raw_os_error(code.abs()))),
                };
            }
        }
    }
}

/// `RTM_SETLINK`'s body for a new hardware address: the link header and one `IFLA_ADDRESS`
/// attribute, framed here so that the crate's whole link attribute enum stays out of the
/// image.
struct HardwareAddress {
    index: u32,
    mac: [u8; 6],
}

/// `IFLA_ADDRESS`, and an attribute's header (length, type) and alignment.
const IFLA_ADDRESS: u16 = 1;
const ATTRIBUTE_HEADER: usize = 4;
const ATTRIBUTE_ALIGN: usize = 4;

impl Emitable for HardwareAddress {
    fn buffer_len(&self) -> usize {
        let header = LinkHeader::default();
        header.buffer_len() + (ATTRIBUTE_HEADER + self.mac.len()).next_multiple_of(ATTRIBUTE_ALIGN)
    }

    fn emit(&self, buffer: &mut [u8]) {
        let header = LinkHeader { index: self.index, ..Default::default() };
        let at = header.buffer_len();
        header.emit(&mut buffer[..at]);
        let len = (ATTRIBUTE_HEADER + self.mac.len()) as u16;
        buffer[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        buffer[at + 2..at + 4].copy_from_slice(&IFLA_ADDRESS.to_ne_bytes());
        buffer[at + 4..at + 10].copy_from_slice(&self.mac);
    }
}

/// One netlink message: the 16-byte header, then the body.
fn frame(kind: u16, flags: u16, sequence: u32, body: &dyn Emitable) -> Vec<u8> {
    const HEADER: usize = 16;
    let len = HEADER + body.buffer_len();
    let mut out = vec![0; len];
    let mut message = NetlinkBuffer::new(&mut out[..]);
    message.set_length(u32::try_from(len).unwrap_or(u32::MAX));
    message.set_message_type(kind);
    message.set_flags(flags);
    message.set_sequence_number(sequence);
    body.emit(message.payload_mut());
    out
}

/// The error code of the acknowledgement of request `sequence` in a datagram (0: done),
/// if there is one. Only the header and the error code are read: decoding whole route
/// messages would pull every attribute parser of the crate into the image.
pub fn ack(datagram: &[u8], sequence: u32) -> Option<i32> {
    let mut rest = datagram;
    while let Ok(message) = NetlinkBuffer::new_checked(rest) {
        if message.sequence_number() == sequence && message.message_type() == NLMSG_ERROR {
            return ErrorBuffer::new_checked(message.payload()).ok().map(|e| e.code().map_or(0, |c| c.get()));
        }
        let len = usize::try_from(message.length()).ok()?.next_multiple_of(4);
        rest = rest.get(len..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_are_found_by_sequence() {
        // Two messages: a NEWLINK notification (type 16) and the error reply to request 7.
        let mut datagram = Vec::new();
        let header = |len: u32, kind: u16, seq: u32| {
            [&len.to_le_bytes()[..], &kind.to_le_bytes(), &0u16.to_le_bytes(), &seq.to_le_bytes(), &0u32.to_le_bytes()]
                .concat()
        };
        datagram.extend(header(20, 16, 7));
        datagram.extend([0u8; 4]);
        datagram.extend(header(36, 2, 7));
        datagram.extend((-libc::EEXIST).to_le_bytes());
        datagram.extend(header(16, 0, 7));
        assert_eq!(ack(&datagram, 7), Some(-libc::EEXIST));
        assert_eq!(ack(&datagram, 8), None);
        let mut done = header(36, 2, 3);
        done.extend(0i32.to_le_bytes());
        done.extend(header(16, 0, 3));
        assert_eq!(ack(&done, 3), Some(0));
    }

    #[test]
    fn link_up_is_framed_like_iproute2() {
        let link = LinkHeader { index: 2, flags: LinkFlags::Up, change_mask: LinkFlags::Up, ..Default::default() };
        let bytes = frame(libc::RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, 9, &link);
        let mut expected = vec![32, 0, 0, 0, 19, 0, 5, 0, 9, 0, 0, 0, 0, 0, 0, 0];
        // ifinfomsg: family, pad, type, index, flags, change mask.
        expected.extend([0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn a_new_hardware_address_is_framed_like_iproute2() {
        let bytes = frame(
            libc::RTM_SETLINK,
            NLM_F_REQUEST | NLM_F_ACK,
            4,
            &HardwareAddress { index: 2, mac: [0x52, 0x54, 0, 0xd5, 0, 7] },
        );
        let mut expected = vec![44, 0, 0, 0, 19, 0, 5, 0, 4, 0, 0, 0, 0, 0, 0, 0];
        expected.extend([0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        // rtattr: length 10, IFLA_ADDRESS, six bytes, two of padding.
        expected.extend([10, 0, 1, 0, 0x52, 0x54, 0, 0xd5, 0, 7, 0, 0]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn broadcast_addresses() {
        assert_eq!(broadcast(Ipv4Addr::new(10, 0, 2, 15), 24), Some(Ipv4Addr::new(10, 0, 2, 255)));
        assert_eq!(broadcast(Ipv4Addr::new(10, 0, 2, 15), 8), Some(Ipv4Addr::new(10, 255, 255, 255)));
        assert_eq!(broadcast(Ipv4Addr::new(10, 0, 2, 15), 31), None);
    }
}
