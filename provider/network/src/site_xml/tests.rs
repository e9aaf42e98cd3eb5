use super::*;
use crate::{EgressRule, FlowPolicy, Owner};

fn config() -> BridgeConfig {
    BridgeConfig {
        bridge: "sdsec-lyon".into(),
        subnet: "10.214.0.0/24".parse().unwrap(),
        publish_address: Ipv4Addr::UNSPECIFIED,
    }
}

fn lease(last: u8, node: &str, connects_to: &[&str], egress: Vec<EgressRule>) -> Lease {
    Lease {
        ip: Ipv4Addr::new(10, 214, 0, last),
        tap: format!("sdsec-sdsec-lyon-{node}"),
        mac: format!("52:54:00:0a:d6:{last:02x}"),
        runtime_port: 80,
        host_port: None,
        owner: Owner::Instance(format!("i-{last}")),
        policy: FlowPolicy {
            node: node.into(),
            tenant: None,
            connects_to: connects_to.iter().map(|s| s.to_string()).collect(),
            egress,
        },
    }
}

#[test]
fn the_network_says_whose_it_is_and_where_it_stands() {
    let xml = network_xml(&config(), "host-a:/var/lib/sdsec's");
    assert_eq!(xml.matches("<uuid>").count(), 1, "{xml}");
    let uuid = |xml: &str| xml.split("<uuid>").nth(1).and_then(|u| u.split("</uuid>").next()).map(str::to_owned);
    assert_eq!(uuid(&xml), uuid(&network_xml(&config(), "host-a:/var/lib/sdsec's")), "stable");
    assert_ne!(uuid(&xml), uuid(&network_xml(&config(), "host-b")), "another owner, another UUID");
    assert!(xml.contains("<forward mode='route'/>"), "{xml}");
    assert!(xml.contains("<bridge name='sdsec-lyon' stp='off' delay='0'/>"));
    assert!(xml.contains("<dns enable='no'/>"));
    assert!(!xml.contains("<dhcp"));
    assert_eq!(owner_of(&xml).as_deref(), Some("host-a:/var/lib/sdsec's"));
    assert_eq!(address_of(&xml), Some((Ipv4Addr::new(10, 214, 0, 1), 24)));
    // libvirt writes netmask= when it was defined so.
    assert_eq!(address_of("<ip address='10.1.0.1' netmask='255.255.0.0'/>"), Some((Ipv4Addr::new(10, 1, 0, 1), 16)));
    assert_eq!(owner_of("<network><name>default</name></network>"), None);
}

#[test]
fn a_filter_admits_declared_flows_clients_and_egress_and_nothing_else() {
    let egress =
        EgressRule { to: "198.18.1.0/24".parse().unwrap(), ports: vec![(9090, 9091)], protocol: EgressProtocol::Tcp };
    let front = lease(2, "front", &["back"], vec![egress]);
    let back = lease(3, "back", &[], vec![]);
    let other = lease(4, "other", &["back"], vec![]);
    let mut other_tenant = other.clone();
    other_tenant.policy.tenant = Some("t2".into());
    let leases = [front.clone(), back.clone(), other_tenant];

    let xml = filter_xml(&config(), &front, &leases, &[]).unwrap();
    assert!(xml.starts_with("<filter name='sdsec-sdsec-lyon-front' chain='root'>"), "{xml}");
    // The same UUID at every definition: libvirt redefines a filter only under its own.
    let uuid = |xml: &str| xml.split("<uuid>").nth(1).and_then(|u| u.split("</uuid>").next()).map(str::to_owned);
    assert_eq!(uuid(&xml), uuid(&filter_xml(&config(), &front, std::slice::from_ref(&front), &[]).unwrap()));
    assert_ne!(uuid(&xml), uuid(&filter_xml(&config(), &back, &leases, &[]).unwrap()));
    assert_eq!(uuid(&xml).unwrap().len(), 36);
    assert!(xml.contains("<mac match='no' srcmacaddr='52:54:00:0a:d6:02'/>"));
    assert!(xml.contains("<ip match='no' srcipaddr='10.214.0.2'/>"));
    assert!(xml.contains("direction='out' priority='-980'><tcp dstipaddr='10.214.0.3' dstportstart='80'/>"), "{xml}");
    // A declared flow out comes before the site's default deny, which libvirt applies both ways.
    let position = |needle: &str| xml.find(needle).unwrap_or_else(|| panic!("{needle} in {xml}"));
    assert!(position("<tcp dstipaddr='10.214.0.3'") < position("<all srcipaddr='10.214.0.0' srcipmask='24'/>"));
    assert!(xml.contains("<tcp dstipaddr='198.18.1.0' dstipmask='24' dstportstart='9090' dstportend='9091'/>"));
    // Replies of what it may open, let in at layer 2.
    let replies = "dstipaddr='10.214.0.2' dstportstart='32768' dstportend='60999'";
    let peer = format!(
        "<ip protocol='tcp' srcmacaddr='52:54:00:0a:d6:03' srcipaddr='10.214.0.3' srcportstart='80' {replies}/>"
    );
    assert!(xml.contains(&peer), "{xml}");
    let server = format!(
        "<ip srcipaddr='198.18.1.0' srcipmask='24' protocol='tcp' srcportstart='9090' srcportend='9091' {replies}/>"
    );
    assert!(xml.contains(&server), "{xml}");
    // Nobody names front: no guest may open a connection to it.
    assert!(!xml.contains("<tcp srcipaddr='10.214.0.3'"), "{xml}");

    let xml = filter_xml(&config(), &back, &leases, &[]).unwrap();
    assert!(xml.contains("<tcp srcipaddr='10.214.0.2' dstportstart='80'/>"), "front names back: {xml}");
    assert!(!xml.contains("10.214.0.4"), "another tenant never reaches back: {xml}");
    // Order: declared peers and the gateway before the site's default deny, clients after.
    let position = |needle: &str| xml.find(needle).unwrap_or_else(|| panic!("{needle} in {xml}"));
    assert!(position("<tcp srcipaddr='10.214.0.2'") < position("<all srcipaddr='10.214.0.0' srcipmask='24'/>"));
    assert!(position("<tcp srcipaddr='10.214.0.1'") < position("<all srcipaddr='10.214.0.0' srcipmask='24'/>"));
    assert!(position("<all srcipaddr='10.214.0.0' srcipmask='24'/>") < position("<tcp dstportstart='80'/>"));
    assert!(xml.trim_end().ends_with("<all/></rule>\n</filter>"), "everything else is dropped: {xml}");
    // Priorities rise with each rule, within libvirt's range.
    let priorities: Vec<i32> =
        xml.split("priority='").skip(1).map(|p| p[..p.find('\'').unwrap()].parse().unwrap()).collect();
    assert!(priorities.windows(2).all(|w| w[0] < w[1]) && priorities.iter().all(|p| (-1000..=1000).contains(p)));
}

#[test]
fn egress_without_ports_or_protocol_is_every_protocol() {
    let any = EgressRule { to: "192.0.2.7/32".parse().unwrap(), ports: vec![], protocol: EgressProtocol::Any };
    let front = lease(2, "front", &[], vec![any]);
    let xml = filter_xml(&config(), &front, std::slice::from_ref(&front), &[]).unwrap();
    assert!(xml.contains("<all dstipaddr='192.0.2.7' dstipmask='32'/>"), "{xml}");
    // Replies only: TCP and UDP to ephemeral ports, and ICMP; never a bare address match.
    assert!(xml.contains("<ip srcipaddr='192.0.2.7' srcipmask='32' protocol='udp' dstipaddr='10.214.0.2' dstportstart='32768' dstportend='60999'/>"), "{xml}");
    assert!(xml.contains("<ip srcipaddr='192.0.2.7' srcipmask='32' protocol='icmp' dstipaddr='10.214.0.2'/>"), "{xml}");
    assert!(!xml.contains("<ip srcipaddr='192.0.2.7' srcipmask='32'/>"), "{xml}");
}

#[test]
fn the_daemons_host_is_refused_before_any_egress() {
    let all = EgressRule { to: "0.0.0.0/0".parse().unwrap(), ports: vec![], protocol: EgressProtocol::Any };
    let front = lease(2, "front", &[], vec![all]);
    let daemon = Ipv4Addr::new(192, 0, 2, 10);
    let xml = filter_xml(&config(), &front, std::slice::from_ref(&front), &[daemon]).unwrap();
    let position = |needle: &str| xml.find(needle).unwrap_or_else(|| panic!("{needle} in {xml}"));
    assert!(xml.contains("action='drop' direction='out'"), "{xml}");
    assert!(position("<all dstipaddr='192.0.2.10'/>") < position("<all dstipaddr='0.0.0.0' dstipmask='0'/>"));
}

#[test]
fn a_filter_beyond_libvirts_priorities_is_refused_naming_the_instance() {
    let ports: Vec<(u16, u16)> = (0..1000).map(|p| (1000 + 2 * p, 1000 + 2 * p)).collect();
    let many = EgressRule { to: "192.0.2.0/24".parse().unwrap(), ports, protocol: EgressProtocol::Any };
    let front = lease(2, "front", &[], vec![many]);
    let err = filter_xml(&config(), &front, std::slice::from_ref(&front), &[]).unwrap_err();
    assert!(matches!(&err, NetworkError::SiteFilterTooLarge { instance, .. } if instance.contains("i-2")), "{err}");
}

#[test]
fn filter_names_are_the_owner_tokens_and_nothing_else() {
    assert_eq!(filter_prefix("0123456789ab").as_deref(), Some("sdsec-0123456789ab-"));
    for bad in ["", "0123456789a", "0123456789AB", "0123456789abc", "../../etc/x1"] {
        assert_eq!(filter_prefix(bad), None, "{bad}");
    }
}
