//! The networks and per-port network filters a hypervisor's own host keeps: libvirt's
//! networks and nwfilters on a daemon that may stand on another host, where the provider
//! cannot run `ip` or `nft` itself.
//!
//! The interface is the daemon's own XML, passed through: what the networks and filters say
//! (addresses, who may reach whom) is the engine's networking's business, and this crate
//! only carries it to the daemon and back.

use crate::Result;

pub trait Fabric: Send + Sync {
    /// Where the fabric is, for messages (the daemon's URI).
    fn location(&self) -> String;
    /// The addresses of the fabric's host the provider knows of (the one its URI names).
    fn addresses(&self) -> Vec<std::net::Ipv4Addr>;
    /// The definition of network `name`, and whether it runs, if there is one.
    fn network(&self, name: &str) -> Result<Option<NetworkDefinition>>;
    /// Defines the network `xml` describes when none of its name is, and starts it (set to
    /// start with the daemon) when it does not run. A network of that name defined meanwhile
    /// under another UUID is left alone: an error.
    fn ensure_network(&self, xml: &str, name: &str) -> Result<()>;
    /// Stops and removes network `name`; one that is not there is fine.
    fn remove_network(&self, name: &str) -> Result<()>;
    /// The names of the filters that start with `prefix`.
    fn filters(&self, prefix: &str) -> Result<Vec<String>>;
    /// The definition of filter `name`, if there is one.
    fn filter(&self, name: &str) -> Result<Option<String>>;
    /// Defines the filter `xml` describes, or redefines it: the daemon applies a new
    /// definition at once to every port that uses it.
    fn define_filter(&self, xml: &str) -> Result<()>;
    /// Removes filter `name`; one that is not there is fine.
    fn remove_filter(&self, name: &str) -> Result<()>;
}

/// A network as the daemon describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDefinition {
    pub xml: String,
    pub active: bool,
}
