//! The provider's network settings, and what the host enforces of a node's plan: the
//! mechanics (bridge, TAP devices, addresses, nftables) are the `network` crate's.

use std::net::{IpAddr, Ipv4Addr};

use hypervisor::{Instance, Probe};
use network::{BridgeConfig, EgressProtocol, EgressRule, FlowPolicy, ModeChoice, NetworkMode};
use plan::EnforcementPlan;

use crate::peers::Peer;

pub use network::{DEFAULT_BRIDGE, DEFAULT_PUBLISH_ADDRESS, DEFAULT_SUBNET};

/// `network`, `bridge`, `subnet` and `publish_address` of the provider block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSettings {
    pub choice: ModeChoice,
    pub bridge: BridgeConfig,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings {
            choice: ModeChoice::Auto,
            bridge: BridgeConfig {
                bridge: DEFAULT_BRIDGE.to_owned(),
                subnet: DEFAULT_SUBNET.parse().unwrap_or_else(|_| unreachable!("the default subnet parses")),
                publish_address: DEFAULT_PUBLISH_ADDRESS,
            },
        }
    }
}

impl NetworkSettings {
    /// The mode in effect, and why (`auto` decides by the provider's privileges).
    pub fn mode(&self) -> (NetworkMode, &'static str) {
        self.choice.resolve()
    }
}

/// The host's share of `plan`: who the node is, whom it may connect to, and where beyond
/// the bridge it may go: its egress, and its `peers` elsewhere (TCP to each one's address
/// and port). Instances of different tenants never reach each other.
pub fn flow_policy(plan: &EnforcementPlan, tenant: Option<&str>, peers: &[Peer]) -> FlowPolicy {
    let mut egress: Vec<EgressRule> = plan
        .runtime
        .firewall
        .egress
        .iter()
        .filter_map(|rule| {
            // The host enforces IPv4; the compiler refuses IPv6 destinations.
            let ipnet::IpNet::V4(to) = rule.to.0 else { return None };
            let ports = rule.ports.iter().map(|r| (r.first, r.last)).collect();
            let protocol = match rule.protocol {
                plan::Protocol::Tcp => EgressProtocol::Tcp,
                plan::Protocol::Udp => EgressProtocol::Udp,
            };
            Some(EgressRule { to, ports, protocol })
        })
        .collect();
    egress.extend(peers.iter().map(|peer| EgressRule {
        to: ipnet::Ipv4Net::from(peer.address),
        ports: vec![(peer.port, peer.port)],
        protocol: EgressProtocol::Tcp,
    }));
    FlowPolicy {
        node: plan.node.clone(),
        tenant: tenant.map(str::to_owned),
        connects_to: plan.runtime.flows.connects_to.clone(),
        egress,
    }
}

/// Where the host's readiness probe comes from on QEMU's user network, as the guest sees it.
pub const USER_NETWORK_PROBE_SOURCE: Ipv4Addr = abi::net::GUEST.gateway;

/// How the host tells that an instance of `plan`, whose application listens on `app_port`,
/// is ready when its probes come from `source`: over HTTP, unless the node's ingress rules
/// refuse `source` at that port. The runtime would drop that probe, and user rules must
/// never make the host wait on its own probe: the runtime's `ready` event (it has passed a
/// request to the application and got an answer) is then the readiness.
pub fn readiness_probe(plan: &EnforcementPlan, app_port: u16, source: Ipv4Addr) -> Probe {
    let http = plan::ingress::allows(&plan.runtime.firewall.ingress, IpAddr::V4(source), app_port);
    Probe { source: IpAddr::V4(source), http }
}

/// How clients and the host reach an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// `http://<publish address>:<host_port>` when published on a bridge, otherwise where
    /// the hypervisor host reaches the runtime (`http://<guest address>:<runtime port>`,
    /// or on QEMU's user network `http://127.0.0.1:<forwarded port>`).
    pub endpoint: String,
    /// The guest's own address; `None` on QEMU's user network, where every guest is
    /// 10.0.2.15 behind its own NAT.
    pub ip: Option<Ipv4Addr>,
}

impl Reach {
    /// The network mode the instance was booted with.
    pub fn mode(&self) -> NetworkMode {
        if self.ip.is_some() { NetworkMode::Bridge } else { NetworkMode::User }
    }
}

/// How `instance`, published on `host_port`, is reached under `settings`.
pub fn reach(settings: &NetworkSettings, instance: &Instance, host_port: Option<u16>) -> Reach {
    let ip = instance.guest_ip();
    let endpoint = match (ip, host_port) {
        (Some(_), Some(port)) => format!("http://{}:{port}", settings.bridge.publish_address),
        _ => format!("http://{}", instance.endpoint),
    };
    Reach { endpoint, ip }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use hypervisor::{Accel, InstanceId};

    use super::*;

    fn plan(firewall: &str) -> EnforcementPlan {
        let doc = format!(
            "tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    api:
      type: sdsec.nodes.Unikernel
      requirements:
        - connects_to: db
    db: {{ type: sdsec.nodes.Unikernel }}
  policies:
    - fw:
        type: sdsec.policies.Firewall
        targets: [api]
        properties: {firewall}
"
        );
        let compiled = sectosca::compile_str("t", &doc);
        compiled.plans.get("api").cloned().unwrap_or_else(|| panic!("{:?}", compiled.diagnostics))
    }

    #[test]
    fn the_host_enforces_the_nodes_flows_and_ipv4_egress() {
        let plan = plan("{ egress: [{ to: 198.18.0.0/15, ports: [443, 8000-8080], protocol: tcp }] }");
        let policy = flow_policy(&plan, Some("shop"), &[]);
        assert_eq!((policy.node.as_str(), policy.tenant.as_deref()), ("api", Some("shop")));
        assert_eq!(policy.connects_to, ["db"]);
        let rule = &policy.egress[..];
        assert_eq!(rule.len(), 1, "{rule:?}");
        assert_eq!(rule[0].to.to_string(), "198.18.0.0/15");
        assert_eq!(rule[0].ports, [(443, 443), (8000, 8080)]);
        assert_eq!(rule[0].protocol, EgressProtocol::Tcp);
        assert!(flow_policy(&self::plan("{}"), None, &[]).egress.is_empty(), "no egress unless declared");
    }

    fn instance(endpoint: &str) -> Instance {
        Instance {
            id: "i-0123456789abcdef".parse::<InstanceId>().unwrap(),
            name: "api".into(),
            image_digest: "sha256:00".into(),
            endpoint: endpoint.parse().unwrap(),
            accel: Accel::Tcg,
            boot_ms: 1,
            console_log: PathBuf::new(),
            audit_log: None,
            bridged: None,
            creator: None,
            memory_mb: 128,
            vcpus: 1,
            started_at_ms: 0,
            metadata: serde_json::Value::Null,
        }
    }

    #[test]
    fn the_host_probes_over_http_only_where_the_ingress_admits_its_probe() {
        let bridge_gateway = Ipv4Addr::new(10, 213, 0, 1);
        let open = plan("{}");
        let probe = readiness_probe(&open, 8000, USER_NETWORK_PROBE_SOURCE);
        assert_eq!((probe.http, probe.source.to_string().as_str()), (true, "10.0.2.2"));
        // An office network only (examples/policies/basic-auth.yaml): neither the user
        // network's host address nor the bridge's gateway is admitted.
        let office = plan("{ ingress: [{ from: [172.16.8.0/22], ports: 8000, action: allow }] }");
        assert!(!readiness_probe(&office, 8000, USER_NETWORK_PROBE_SOURCE).http);
        assert!(!readiness_probe(&office, 8000, bridge_gateway).http);
        // Everyone at the application's port, as the policy says: probed.
        let public = plan("{ ingress: [{ from: [0.0.0.0/0], ports: 9000, action: allow }] }");
        assert!(readiness_probe(&public, 9000, bridge_gateway).http);
        assert!(!readiness_probe(&public, 8080, bridge_gateway).http, "another application port is refused");
        let internal = plan("{ ingress: [{ from: [10.0.0.0/8], ports: 9000, action: allow }] }");
        assert!(readiness_probe(&internal, 9000, USER_NETWORK_PROBE_SOURCE).http);
    }

    #[test]
    fn published_instances_are_reached_on_the_publish_address() {
        let mut settings = NetworkSettings::default();
        let on_bridge = instance("10.213.0.7:80");
        let reach = reach(&settings, &on_bridge, Some(18080));
        assert_eq!((reach.endpoint.as_str(), reach.ip), ("http://0.0.0.0:18080", Some(Ipv4Addr::new(10, 213, 0, 7))));
        assert_eq!(reach.mode(), NetworkMode::Bridge);
        settings.bridge.publish_address = Ipv4Addr::new(198, 18, 1, 1);
        assert_eq!(super::reach(&settings, &on_bridge, Some(18080)).endpoint, "http://198.18.1.1:18080");
        assert_eq!(super::reach(&settings, &on_bridge, None).endpoint, "http://10.213.0.7:80", "unpublished");
        let user = super::reach(&settings, &instance("127.0.0.1:18080"), Some(18080));
        assert_eq!((user.endpoint.as_str(), user.ip, user.mode()), ("http://127.0.0.1:18080", None, NetworkMode::User));
    }
}
