//! What a site network is on a libvirt daemon: the network (a routed bridge holding the
//! gateway address) and one network filter per lease, in libvirt's XML.
//!
//! # A port's filter
//!
//! libvirt applies a port's filter in two layers, and both are needed:
//! - ebtables, for every frame to and from the port: the MAC, IPv4 and ARP source addresses
//!   must be the lease's (no spoofing), nothing but IPv4 and ARP passes, and IPv4 towards
//!   the guest is let in only for its runtime port and for the replies of the connections it
//!   may open (stateless: routed packets towards a port never meet the layer below);
//! - iptables with connection tracking, for IPv4 crossing the bridge from the guest, and
//!   between guests: new connections from the guest only to the runtime ports of the guests
//!   its policy names (same tenant) and to its egress destinations beyond the site; into the
//!   guest, from other guests only where their policy names it, from the gateway (the
//!   daemon's host), and from beyond the site (clients, whose addresses reach the guest
//!   unchanged: the network routes, it does not translate).
//!
//! libvirt adds the reply direction of every stateful rule itself.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::{BridgeConfig, EgressProtocol, Lease, NetworkError};

/// The guest kernel's default ephemeral port range (`net.ipv4.ip_local_port_range`): where
/// the replies of the connections a guest opens arrive.
const EPHEMERAL: (u16, u16) = (32768, 60999);

/// The namespace of sdsec's element in the network's `<metadata>`.
pub const NAMESPACE: &str = "https://github.com/sdsec/terraform-provider-sdsec/xmlns/site-network/1";

/// The network's XML: routed, no DHCP and no DNS (guests get their address on the kernel
/// command line), marked as `owner`'s. Its UUID is `owner`'s for that name, so that a
/// network of that name another defined meanwhile is never redefined as ours.
pub fn network_xml(config: &BridgeConfig, owner: &str) -> String {
    format!(
        "<network>\n  <name>{name}</name>\n  <uuid>{uuid}</uuid>\n  <metadata>\n    <sdsec:site xmlns:sdsec='{NAMESPACE}' owner='{owner}'/>\n  </metadata>\n  \
         <forward mode='route'/>\n  <bridge name='{name}' stp='off' delay='0'/>\n  <dns enable='no'/>\n  \
         <ip address='{gateway}' prefix='{prefix}'/>\n</network>\n",
        name = escape(&config.bridge),
        uuid = stable_uuid(&format!("{owner}/{}", config.bridge)),
        owner = escape(owner),
        gateway = config.gateway(),
        prefix = config.subnet.prefix_len(),
    )
}

/// The owner a network's XML names, if it is a site network of sdsec's.
pub fn owner_of(xml: &str) -> Option<String> {
    let start = xml.find("<sdsec:site ")?;
    let element = &xml[start..];
    let element = &element[..element.find('>')?];
    let value = element.split("owner=").nth(1)?;
    let quote = value.chars().next()?;
    let value = &value[1..];
    Some(unescape(&value[..value.find(quote)?]))
}

/// The gateway address and prefix length of a network's XML, as libvirt writes them back.
pub fn address_of(xml: &str) -> Option<(Ipv4Addr, u8)> {
    let element = &xml[xml.find("<ip ")?..];
    let element = &element[..element.find('>')?];
    let attribute = |name: &str| {
        let value = element.split(&format!(" {name}=")).nth(1)?;
        let quote = value.chars().next()?;
        let value = &value[1..];
        Some(value[..value.find(quote)?].to_owned())
    };
    let address = attribute("address")?.parse().ok()?;
    let prefix = match attribute("prefix") {
        Some(prefix) => prefix.parse().ok()?,
        None => u32::from(attribute("netmask")?.parse::<Ipv4Addr>().ok()?).count_ones() as u8,
    };
    Some((address, prefix))
}

/// The length of an owner token in hex digits.
pub const OWNER_DIGITS: usize = 12;

/// The prefix of every filter of the site whose owner token is `owner`; `None` when
/// `owner` is not a token (the lease file was edited).
pub fn filter_prefix(owner: &str) -> Option<String> {
    let token = owner.len() == OWNER_DIGITS && owner.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    token.then(|| format!("sdsec-{owner}-"))
}

/// The most rules libvirt's priorities (-1000..=1000) leave room for in one filter.
const MAX_RULES: i32 = 1990;

/// `lease`'s filter (named `lease.tap`), among `leases` (the site's, `lease` included);
/// `daemon_host` are addresses of the daemon's host, refused whatever egress allows.
pub fn filter_xml(
    config: &BridgeConfig,
    lease: &Lease,
    leases: &[Lease],
    daemon_host: &[Ipv4Addr],
) -> Result<String, NetworkError> {
    let mut rules = Rules::default();
    let (ip, mac, port) = (lease.ip.to_string(), escape(&lease.mac), lease.runtime_port);
    let subnet = (config.subnet.network().to_string(), config.subnet.prefix_len());
    let gateway = config.gateway().to_string();
    let peers_out: Vec<&Lease> = leases.iter().filter(|to| may_connect(lease, to)).collect();
    let peers_in: Vec<&Lease> = leases.iter().filter(|from| may_connect(from, lease)).collect();

    // Layer 2: the lease's addresses only, IPv4 and ARP only.
    rules.add("drop", "out", &format!("<mac match='no' srcmacaddr='{mac}'/>"));
    rules.add("drop", "out", &format!("<ip match='no' srcipaddr='{ip}'/>"));
    rules.add("drop", "out", &format!("<arp match='no' arpsrcipaddr='{ip}'/>"));
    rules.add("drop", "out", &format!("<arp match='no' arpsrcmacaddr='{mac}'/>"));
    rules.add("accept", "inout", "<arp/>");
    rules.add("accept", "out", "<mac protocolid='ipv4'/>");
    rules.add("accept", "in", &format!("<ip protocol='tcp' dstipaddr='{ip}' dstportstart='{port}'/>"));
    // Replies reach only the guest's ephemeral ports (Linux's default range), and a peer's
    // only from the peer's own MAC (a routed packet carries the bridge's).
    let replies = format!("dstipaddr='{ip}' dstportstart='{}' dstportend='{}'", EPHEMERAL.0, EPHEMERAL.1);
    for to in &peers_out {
        let (peer, peer_port, peer_mac) = (to.ip, to.runtime_port, escape(&to.mac));
        rules.add(
            "accept",
            "in",
            &format!(
                "<ip protocol='tcp' srcmacaddr='{peer_mac}' srcipaddr='{peer}' srcportstart='{peer_port}' {replies}/>"
            ),
        );
    }
    for rule in &lease.policy.egress {
        let (net, len) = (rule.to.network(), rule.to.prefix_len());
        for (protocol, ports) in protocol_matches(rule.protocol, &rule.ports) {
            let ports = ports.map_or_else(String::new, |(low, high)| {
                format!(" srcportstart='{}' srcportend='{}'", low.min(high), low.max(high))
            });
            // Any protocol: its TCP and UDP replies, and ICMP (errors, path MTU).
            let protocols: Vec<&str> = protocol.map_or_else(|| vec!["tcp", "udp"], |p| vec![p]);
            for protocol in &protocols {
                let element =
                    format!("<ip srcipaddr='{net}' srcipmask='{len}' protocol='{protocol}'{ports} {replies}/>");
                rules.add("accept", "in", &element);
            }
            if protocol.is_none() {
                rules.add(
                    "accept",
                    "in",
                    &format!("<ip srcipaddr='{net}' srcipmask='{len}' protocol='icmp' dstipaddr='{ip}'/>"),
                );
            }
        }
    }
    rules.add("drop", "inout", "<mac/>");

    // IPv4, stateful. libvirt applies every rule in both directions (a drop as it is, an
    // accept to its replies), so the declared flows both ways and the gateway come before
    // the site's default deny, and clients and egress beyond the site after it.
    for from in &peers_in {
        rules.add("accept", "in", &format!("<tcp srcipaddr='{}' dstportstart='{port}'/>", from.ip));
    }
    for to in &peers_out {
        rules.add("accept", "out", &format!("<tcp dstipaddr='{}' dstportstart='{}'/>", to.ip, to.runtime_port));
    }
    rules.add("accept", "in", &format!("<tcp srcipaddr='{gateway}' dstportstart='{port}'/>"));
    rules.add("drop", "in", &format!("<all srcipaddr='{}' srcipmask='{}'/>", subnet.0, subnet.1));
    rules.add("drop", "out", &format!("<all dstipaddr='{}' dstipmask='{}'/>", subnet.0, subnet.1));
    rules.add("accept", "in", &format!("<tcp dstportstart='{port}'/>"));
    for address in daemon_host {
        rules.add("drop", "out", &format!("<all dstipaddr='{address}'/>"));
    }
    for rule in &lease.policy.egress {
        let (net, len) = (rule.to.network(), rule.to.prefix_len());
        for (protocol, ports) in protocol_matches(rule.protocol, &rule.ports) {
            let ports = ports.map_or_else(String::new, |(low, high)| {
                format!(" dstportstart='{}' dstportend='{}'", low.min(high), low.max(high))
            });
            let element = protocol.unwrap_or("all");
            rules.add("accept", "out", &format!("<{element} dstipaddr='{net}' dstipmask='{len}'{ports}/>"));
        }
    }
    rules.add("drop", "inout", "<all/>");

    if rules.count > MAX_RULES {
        return Err(NetworkError::SiteFilterTooLarge {
            instance: lease.owner.to_string(),
            rules: rules.count as usize,
            max: MAX_RULES as usize,
        });
    }
    Ok(format!(
        "<filter name='{name}' chain='root'>\n  <uuid>{uuid}</uuid>\n{rules}</filter>\n",
        name = escape(&lease.tap),
        uuid = stable_uuid(&lease.tap),
        rules = rules.text
    ))
}

/// A UUID that is the same for every definition of what is named `name`: libvirt
/// redefines a filter only under the UUID it was first defined with.
fn stable_uuid(name: &str) -> String {
    let hash = |salt: u8| {
        name.bytes()
            .chain([salt])
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    };
    let (high, low) = (hash(1), hash(2));
    // Version 4's and RFC 4122's variant bits, so that libvirt takes it as well formed.
    let high = (high & 0xffff_ffff_ffff_0fff) | 0x4000;
    let low = (low & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

/// Whether `from`'s guest may open connections to `to`'s runtime.
fn may_connect(from: &Lease, to: &Lease) -> bool {
    from.tap != to.tap && from.policy.tenant == to.policy.tenant && from.policy.connects_to.contains(&to.policy.node)
}

/// A protocol (`None`: any) and an inclusive port range (`None`: any port).
type Match = (Option<&'static str>, Option<(u16, u16)>);

/// One match per protocol and port range an egress rule stands for.
fn protocol_matches(protocol: EgressProtocol, ports: &[(u16, u16)]) -> Vec<Match> {
    let protocols: &[&'static str] = match protocol {
        EgressProtocol::Tcp => &["tcp"],
        EgressProtocol::Udp => &["udp"],
        EgressProtocol::Any if ports.is_empty() => return vec![(None, None)],
        EgressProtocol::Any => &["tcp", "udp"],
    };
    let ranges: Vec<Option<(u16, u16)>> =
        if ports.is_empty() { vec![None] } else { ports.iter().copied().map(Some).collect() };
    protocols.iter().flat_map(|p| ranges.iter().map(move |r| (Some(*p), *r))).collect()
}

/// Rules numbered in the order they are written: libvirt orders a chain by priority.
#[derive(Default)]
struct Rules {
    text: String,
    count: i32,
}

impl Rules {
    fn add(&mut self, action: &str, direction: &str, element: &str) {
        // -1000..=1000 is libvirt's range: `filter_xml` refuses more than `MAX_RULES`.
        let priority = -990 + self.count;
        self.count += 1;
        let _ = writeln!(
            self.text,
            "  <rule action='{action}' direction='{direction}' priority='{priority}'>{element}</rule>"
        );
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\'', "&apos;").replace('"', "&quot;")
}

fn unescape(text: &str) -> String {
    text.replace("&apos;", "'").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

#[cfg(test)]
mod tests;
