//! The egress of a node: a policy's rules as the plan writes them, and the intersection
//! of several policies' rules (another policy only ever narrows a node's egress).

use super::sorted;
use crate::lower::plan::EgressRulePlan;
use crate::model::policies::{EgressRule, Protocol};
use crate::values::PortRange;

/// One policy's egress rules as the plan writes them: sorted, without duplicates.
pub(super) fn egress_rules(rules: &[EgressRule]) -> Vec<EgressRulePlan> {
    sorted(rules.iter().map(|r| EgressRulePlan {
        to: r.to.0,
        ports: sorted(r.ports.iter().flat_map(|p| p.0.iter().copied())),
        protocol: r.protocol.unwrap_or(Protocol::Tcp),
    }))
}

/// What two egress rule lists both allow: the pairwise intersections of their rules, sorted
/// and without duplicates. A connection matches the result exactly when a rule of each list
/// matches it, so another policy can only narrow a node's egress, never widen it.
pub(super) fn intersect_egress(a: &[EgressRulePlan], b: &[EgressRulePlan]) -> Vec<EgressRulePlan> {
    sorted(a.iter().flat_map(|x| b.iter().filter_map(move |y| intersect_egress_rule(x, y))))
}

/// What two egress rules both allow, if anything: the more specific network when one holds
/// the other, the ports both name (empty is any port), the same protocol.
fn intersect_egress_rule(a: &EgressRulePlan, b: &EgressRulePlan) -> Option<EgressRulePlan> {
    if a.protocol != b.protocol {
        return None;
    }
    let to = if a.to.0.contains(&b.to.0) {
        b.to
    } else if b.to.0.contains(&a.to.0) {
        a.to
    } else {
        return None;
    };
    let ports = match (a.ports.is_empty(), b.ports.is_empty()) {
        (true, _) => b.ports.clone(),
        (_, true) => a.ports.clone(),
        _ => {
            let both = sorted(a.ports.iter().flat_map(|p| b.ports.iter().filter_map(move |q| intersect_ports(p, q))));
            // No port in common: nothing, not an empty list, which would mean any port.
            if both.is_empty() {
                return None;
            }
            both
        }
    };
    Some(EgressRulePlan { to, ports, protocol: a.protocol })
}

fn intersect_ports(a: &PortRange, b: &PortRange) -> Option<PortRange> {
    let (first, last) = (a.first.max(b.first), a.last.min(b.last));
    (first <= last).then_some(PortRange { first, last })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::values::Cidr;
    use Protocol::{Tcp, Udp};

    fn rule(to: &str, ports: &[(u16, u16)], protocol: Protocol) -> EgressRulePlan {
        EgressRulePlan {
            to: Cidr(to.parse().unwrap()),
            ports: ports.iter().map(|&(first, last)| PortRange { first, last }).collect(),
            protocol,
        }
    }

    #[test]
    fn egress_rules_intersect_by_network_ports_and_protocol() {
        // The more specific network, whichever side it is on.
        assert_eq!(
            intersect_egress(&[rule("10.0.0.0/8", &[], Tcp)], &[rule("10.1.0.0/16", &[], Tcp)]),
            [rule("10.1.0.0/16", &[], Tcp)]
        );
        assert_eq!(
            intersect_egress(&[rule("10.1.2.3/32", &[(443, 443)], Tcp)], &[rule("0.0.0.0/0", &[], Tcp)]),
            [rule("10.1.2.3/32", &[(443, 443)], Tcp)]
        );
        // Disjoint networks, different protocols: nothing.
        assert_eq!(intersect_egress(&[rule("10.0.0.0/8", &[], Tcp)], &[rule("192.168.0.0/16", &[], Tcp)]), []);
        assert_eq!(intersect_egress(&[rule("10.0.0.0/8", &[], Tcp)], &[rule("10.0.0.0/8", &[], Udp)]), []);
        // Ports: range intersections; any port (empty) gives the other side's ports.
        assert_eq!(
            intersect_egress(
                &[rule("10.0.0.0/8", &[(443, 443), (8000, 8099)], Tcp)],
                &[rule("10.0.0.0/8", &[(8080, 9000)], Tcp)]
            ),
            [rule("10.0.0.0/8", &[(8080, 8099)], Tcp)]
        );
        assert_eq!(
            intersect_egress(&[rule("10.0.0.0/8", &[], Udp)], &[rule("10.0.0.0/8", &[(53, 53)], Udp)]),
            [rule("10.0.0.0/8", &[(53, 53)], Udp)]
        );
        // No port in common is no rule at all, never an empty list (which means any port).
        assert_eq!(
            intersect_egress(&[rule("10.0.0.0/8", &[(80, 80)], Tcp)], &[rule("10.0.0.0/8", &[(443, 443)], Tcp)]),
            []
        );
        // Nothing declared on one side: nothing allowed.
        assert_eq!(intersect_egress(&[rule("10.0.0.0/8", &[], Tcp)], &[]), []);
        // Pairwise results that coincide are kept once, and the list is sorted.
        assert_eq!(
            intersect_egress(
                &[rule("0.0.0.0/0", &[], Tcp), rule("10.0.0.0/8", &[], Tcp), rule("192.168.0.0/16", &[], Udp)],
                &[rule("192.168.1.0/24", &[(53, 53)], Udp), rule("10.1.0.0/16", &[(443, 443)], Tcp)]
            ),
            [rule("10.1.0.0/16", &[(443, 443)], Tcp), rule("192.168.1.0/24", &[(53, 53)], Udp)]
        );
    }

    fn allows(rules: &[EgressRulePlan], ip: IpAddr, port: u16, protocol: Protocol) -> bool {
        rules.iter().any(|r| {
            r.to.0.contains(&ip)
                && (r.ports.is_empty() || r.ports.iter().any(|p| p.contains(port)))
                && r.protocol == protocol
        })
    }

    /// Over many lists and a grid of connections at the edges of every network and range:
    /// the intersection allows exactly what both lists allow, whatever the order, and is
    /// sorted without duplicates.
    #[test]
    fn egress_intersection_allows_exactly_what_both_allow() {
        let nets = ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32", "192.168.0.0/16"];
        let ports: [&[(u16, u16)]; 5] = [&[], &[(443, 443)], &[(1, 1024)], &[(80, 80), (8000, 8099)], &[(8080, 9000)]];
        let mut pool = Vec::new();
        for net in nets {
            for p in ports {
                for protocol in [Tcp, Udp] {
                    pool.push(rule(net, p, protocol));
                }
            }
        }
        let ips: Vec<IpAddr> =
            ["10.1.2.3", "10.1.9.9", "10.9.9.9", "192.168.1.1", "8.8.8.8"].iter().map(|a| a.parse().unwrap()).collect();
        let grid_ports = [1, 79, 80, 81, 443, 1024, 1025, 7999, 8000, 8079, 8080, 8099, 8100, 9000, 9001, 65535];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let list = |next: &mut dyn FnMut(usize) -> usize| -> Vec<EgressRulePlan> {
            let len = next(4);
            sorted((0..len).map(|_| pool[next(pool.len())].clone()))
        };
        let mut nonempty = 0;
        for _ in 0..400 {
            let (a, b, c) = (list(&mut next), list(&mut next), list(&mut next));
            let ab = intersect_egress(&a, &b);
            assert_eq!(ab, intersect_egress(&b, &a), "not commutative: {a:?} {b:?}");
            assert_eq!(
                intersect_egress(&ab, &c),
                intersect_egress(&a, &intersect_egress(&b, &c)),
                "not associative: {a:?} {b:?} {c:?}"
            );
            assert!(ab.windows(2).all(|w| w[0] < w[1]), "not sorted without duplicates: {ab:?}");
            nonempty += usize::from(!ab.is_empty());
            for &ip in &ips {
                for port in grid_ports {
                    for protocol in [Tcp, Udp] {
                        assert_eq!(
                            allows(&ab, ip, port, protocol),
                            allows(&a, ip, port, protocol) && allows(&b, ip, port, protocol),
                            "{ip} port {port} {protocol}: {a:?} and {b:?} gave {ab:?}"
                        );
                    }
                }
            }
        }
        // The lists are not so sparse that every intersection is empty.
        assert!(nonempty > 50, "only {nonempty} non-empty intersections");
    }
}
