//! Peers elsewhere: nodes an instance's node `connects_to` that run on another site or
//! under another state directory, which this provider cannot look up. The configuration
//! gives where each is reached (normally the other site's `endpoint` output), and the host
//! lets the instance open TCP connections to exactly that address and port.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use plan::EnforcementPlan;
use serde::{Deserialize, Serialize};

/// A declared flow's destination elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Peer {
    /// The destination's node, as the source's `connects_to` names it.
    pub node: String,
    pub address: Ipv4Addr,
    pub port: u16,
    /// As the configuration wrote it (import restores it so).
    pub endpoint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error(
        "node `{source_node}` does not `connects_to` `{node}` (it connects to: {declared}); declare the flow in the policy, or remove this peer"
    )]
    NotDeclared { source_node: String, node: String, declared: String },
    #[error(
        "`{endpoint}` is not where a peer is reached: give `http://ADDRESS:PORT` or `ADDRESS:PORT` with an IPv4 address (the host's rules match addresses, not names), e.g. the other site's `endpoint` output"
    )]
    NotAnEndpoint { node: String, endpoint: String },
    #[error(
        "`{endpoint}` names {address}, which is no peer's address elsewhere (unspecified, broadcast, multicast or link-local); give an address the peer is reached at from this host, e.g. its host's `publish_address` (not 0.0.0.0) or its `ip`"
    )]
    Unroutable { node: String, endpoint: String, address: Ipv4Addr },
}

impl PeerError {
    /// The peer (the key of `peers`) the error is about.
    pub fn node(&self) -> &str {
        match self {
            PeerError::NotDeclared { node, .. }
            | PeerError::NotAnEndpoint { node, .. }
            | PeerError::Unroutable { node, .. } => node,
        }
    }
}

/// `given` (node → endpoint) for an instance of `plan`'s node: each node must be one its
/// `connects_to` names, each endpoint an IPv4 address and port.
pub fn peers(plan: &EnforcementPlan, given: &BTreeMap<String, String>) -> Result<Vec<Peer>, PeerError> {
    let declared = &plan.runtime.flows.connects_to;
    given
        .iter()
        .map(|(node, endpoint)| {
            if !declared.contains(node) {
                let declared = if declared.is_empty() { "nothing".to_owned() } else { declared.join(", ") };
                return Err(PeerError::NotDeclared { source_node: plan.node.clone(), node: node.clone(), declared });
            }
            let (address, port) = endpoint_address(endpoint)
                .ok_or_else(|| PeerError::NotAnEndpoint { node: node.clone(), endpoint: endpoint.clone() })?;
            let unroutable =
                address.is_unspecified() || address.is_broadcast() || address.is_multicast() || address.is_link_local();
            if unroutable {
                return Err(PeerError::Unroutable { node: node.clone(), endpoint: endpoint.clone(), address });
            }
            Ok(Peer { node: node.clone(), address, port, endpoint: endpoint.clone() })
        })
        .collect()
}

/// The address and port of `http://A.B.C.D[:PORT][/...]` (port 80 by default),
/// `https://…` (443) or `A.B.C.D:PORT`.
fn endpoint_address(endpoint: &str) -> Option<(Ipv4Addr, u16)> {
    let (rest, default_port) = match endpoint.split_once("://") {
        Some(("http", rest)) => (rest, Some(80)),
        Some(("https", rest)) => (rest, Some(443)),
        Some(_) => return None,
        None => (endpoint, None),
    };
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok().filter(|p| *p != 0)?),
        None => (authority, default_port?),
    };
    Some((host.parse().ok()?, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> EnforcementPlan {
        let doc = "tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    front:
      type: sdsec.nodes.Unikernel
      requirements: [ { connects_to: back } ]
    back: { type: sdsec.nodes.Unikernel }
";
        sectosca::compile_str("t", doc).plans["front"].clone()
    }

    fn given(node: &str, endpoint: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(node.to_owned(), endpoint.to_owned())])
    }

    #[test]
    fn endpoints_give_the_address_and_port_to_allow() {
        for (endpoint, port) in [("http://10.1.2.3:8080", 8080), ("http://10.1.2.3", 80), ("https://10.1.2.3/x", 443)] {
            let found = peers(&plan(), &given("back", endpoint)).unwrap();
            let address = Ipv4Addr::new(10, 1, 2, 3);
            let expected = Peer { node: "back".into(), address, port, endpoint: endpoint.into() };
            assert_eq!(found, [expected], "{endpoint}");
        }
        assert_eq!(peers(&plan(), &given("back", "10.1.2.3:9")).unwrap()[0].port, 9);
        assert!(peers(&plan(), &BTreeMap::new()).unwrap().is_empty());
    }

    #[test]
    fn undeclared_nodes_names_and_unroutable_addresses_are_refused() {
        let err = peers(&plan(), &given("db", "10.1.2.3:5432")).unwrap_err();
        assert!(matches!(&err, PeerError::NotDeclared { declared, .. } if declared == "back"), "{err}");
        assert_eq!(err.node(), "db");
        for bad in ["api.example:80", "10.1.2.3", "ftp://10.1.2.3:21", "http://10.1.2.3:0", "http://[::1]:80", ""] {
            let err = peers(&plan(), &given("back", bad)).unwrap_err();
            assert!(matches!(err, PeerError::NotAnEndpoint { .. }), "{bad}: {err}");
        }
        for unroutable in ["http://0.0.0.0:18080", "http://169.254.169.254/", "224.0.0.1:5"] {
            let err = peers(&plan(), &given("back", unroutable)).unwrap_err();
            assert!(matches!(err, PeerError::Unroutable { .. }), "{unroutable}: {err}");
        }
    }
}
