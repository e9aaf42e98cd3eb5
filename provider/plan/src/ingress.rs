//! Judging a connection against a plan's ingress rule sets. Pure: the runtime in the guest
//! judges every accepted connection with it, and the host asks it whether its readiness
//! probe's source address is admitted before it probes.

use std::net::IpAddr;

use crate::{Effect, IngressRuleSet, Protocol};

/// The address rules see: an IPv4 client reaching an IPv6 socket is matched as IPv4,
/// so `10.0.0.0/8` cannot be sidestepped by writing it `::ffff:10.0.0.1`.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether every rule set accepts a TCP connection from `source` to the application's
/// service `port` (the Unikernel's `port`, as users write it in `ports`; never the port the
/// runtime itself listens on).
///
/// Within a set the first matching rule decides, otherwise the set's default. UDP rules never
/// match: the runtime only accepts TCP. No sets: everything is accepted.
pub fn allows(sets: &[IngressRuleSet], source: IpAddr, port: u16) -> bool {
    let source = canonical_ip(source);
    sets.iter().all(|set| {
        let decision = set
            .rules
            .iter()
            .find(|r| {
                r.protocol == Protocol::Tcp
                    && (r.from.is_empty() || r.from.iter().any(|c| c.0.contains(&source)))
                    && (r.ports.is_empty() || r.ports.iter().any(|p| p.contains(port)))
            })
            .map_or(set.default, |r| r.action);
        decision == Effect::Allow
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cidr, IngressRulePlan, PortRange};

    fn set(default: Effect, rules: Vec<IngressRulePlan>) -> IngressRuleSet {
        IngressRuleSet { policy: "fw".into(), default, rules }
    }

    fn rule(from: &str, port: Option<u16>, protocol: Protocol, action: Effect) -> IngressRulePlan {
        IngressRulePlan {
            from: from.parse().map(|n| vec![Cidr(n)]).unwrap_or_default(),
            ports: port.map(|p| vec![PortRange { first: p, last: p }]).unwrap_or_default(),
            protocol,
            action,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn first_match_wins_and_every_set_must_allow() {
        let a = set(
            Effect::Deny,
            vec![
                rule("10.1.0.0/16", None, Protocol::Tcp, Effect::Deny),
                rule("10.0.0.0/8", Some(80), Protocol::Tcp, Effect::Allow),
            ],
        );
        assert!(allows(std::slice::from_ref(&a), ip("10.2.3.4"), 80));
        assert!(!allows(std::slice::from_ref(&a), ip("10.1.3.4"), 80), "earlier deny wins");
        assert!(!allows(std::slice::from_ref(&a), ip("10.2.3.4"), 81), "port must match");
        assert!(!allows(std::slice::from_ref(&a), ip("127.0.0.1"), 80), "default deny");
        assert!(allows(std::slice::from_ref(&a), ip("::ffff:10.2.3.4"), 80), "v4-mapped is v4");
        let b = set(Effect::Allow, vec![rule("10.2.0.0/16", None, Protocol::Tcp, Effect::Deny)]);
        assert!(!allows(&[a.clone(), b.clone()], ip("10.2.3.4"), 80), "the second set refuses");
        let udp = set(Effect::Deny, vec![rule("0.0.0.0/0", None, Protocol::Udp, Effect::Allow)]);
        assert!(!allows(&[udp], ip("10.2.3.4"), 80), "udp rules do not admit tcp");
        assert!(allows(&[], ip("192.0.2.1"), 80), "no sets, no restriction");
    }
}
