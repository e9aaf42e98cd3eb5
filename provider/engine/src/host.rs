//! This host as the engine uses it: the hypervisor that runs instances, and the network
//! they are attached to. Every boot and every stop goes through here, so an instance never
//! runs without its network lease and no lease outlives its instance.
//!
//! Under `network = "bridge"` each instance gets a TAP device on the provider's bridge, an
//! address of its own and host-side rules (publishing, declared flows, egress), all kept by
//! the `network` crate under the state directory. Under `"user"` QEMU's user network
//! forwards one port on 127.0.0.1, as before.

use std::ops::Deref;
use std::path::PathBuf;
use std::time::Duration;

use abi::control::ResumeNetwork;
use abi::net::Network as GuestNetwork;
use hypervisor::registry::Registry;
use hypervisor::{BootSpec, Creation, Hypervisor, HypervisorError, Instance, InstanceId, Nic};
use network::{Drift, FlowPolicy, LeaseKey, Network, NetworkError, NetworkMode, SiteNetwork};
use plan::EnforcementPlan;

use crate::ProviderConfig;
use crate::network::{USER_NETWORK_PROBE_SOURCE, readiness_probe};
use crate::peers::Peer;

/// Failures of the host: its hypervisor or its network.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Hypervisor(#[from] HypervisorError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(
        "host_port {port}: a remote site's guests are reached at their own addresses (the `endpoint`), which clients route to the daemon's host {uri}; nothing is published on a host port there. Leave host_port unset, or use network = \"user\""
    )]
    RemoteHostPort { uri: String, port: u16 },
    #[error("the libvirt daemon at {uri} keeps no networks sdsec can use; use network = \"user\"")]
    NoFabric { uri: String },
}

/// The hypervisor and the network of this state directory. Derefs to the hypervisor for
/// what networking does not concern (state, pause, resume…); [`Host::stop`] shadows the
/// hypervisor's own stop so that leases are released with it.
#[derive(Debug)]
pub struct Host {
    backend: Box<dyn Hypervisor>,
    /// The state directory's leases; released at stop whatever the mode now, as an
    /// instance keeps the network it was booted with.
    network: Network,
    /// New instances go on the bridge (`network = "bridge"`, or `auto` with CAP_NET_ADMIN).
    on_bridge: bool,
    /// Bridge networking on a libvirt daemon's host elsewhere, kept through its own
    /// networks and filters: new instances use it under `network = "bridge"`; its leases
    /// are released and kept whatever the mode now, as for the local bridge.
    site: Option<SiteNetwork>,
    /// The URI of a libvirt daemon on another host.
    remote: Option<String>,
    tenant: Option<String>,
    state_dir: PathBuf,
    /// Where the host's probes come from on the bridge.
    bridge_gateway: std::net::Ipv4Addr,
}

impl Deref for Host {
    type Target = dyn Hypervisor;

    fn deref(&self) -> &Self::Target {
        self.backend.as_ref()
    }
}

impl Host {
    pub fn new(backend: Box<dyn Hypervisor>, config: &ProviderConfig) -> Host {
        Host {
            backend,
            network: Network::new(&config.state_dir, config.network.bridge.clone()),
            on_bridge: config.network_mode().0 == NetworkMode::Bridge,
            site: config.remote_libvirt().then(|| {
                let uri = config.libvirt_uri.clone().unwrap_or_default();
                SiteNetwork::new(&config.state_dir, &uri, config.network.bridge.clone())
            }),
            remote: config.remote_libvirt().then(|| config.libvirt_uri.clone().unwrap_or_default()),
            tenant: config.tenant.clone(),
            state_dir: config.state_dir.clone(),
            bridge_gateway: config.network.bridge.gateway(),
        }
    }

    /// The bridge, under `network = "bridge"` on this host.
    pub fn bridge(&self) -> Option<&Network> {
        (self.on_bridge && self.site.is_none()).then_some(&self.network)
    }

    /// The remote site's network and the daemon that keeps it, for new instances: under
    /// `network = "bridge"` with a libvirt daemon on another host.
    fn site_for_new(&self) -> Result<Option<(&SiteNetwork, FabricHost<'_>)>, HostError> {
        if !self.on_bridge {
            return Ok(None);
        }
        self.site()
    }

    /// The remote site's network and the daemon that keeps it, with a libvirt daemon on
    /// another host, whatever the mode new instances get.
    fn site(&self) -> Result<Option<(&SiteNetwork, FabricHost<'_>)>, HostError> {
        let Some(site) = &self.site else { return Ok(None) };
        let fabric = self
            .backend
            .fabric()
            .ok_or_else(|| HostError::NoFabric { uri: self.remote.clone().unwrap_or_default() })?;
        Ok(Some((site, FabricHost(fabric))))
    }

    /// What the host enforces for `plan`'s node: its declared flows, egress and `peers`
    /// elsewhere.
    pub fn flow_policy(&self, plan: &EnforcementPlan, peers: &[Peer]) -> FlowPolicy {
        crate::network::flow_policy(plan, self.tenant.as_deref(), peers)
    }

    /// Boots `spec` attached to this host's network (for `plan`'s node, whose application
    /// listens on `app_port`, and its `peers` elsewhere), published on `host_port`; on
    /// failure nothing of it is left, lease and TAP included. Readiness is probed as
    /// [`readiness_probe`] says.
    pub fn boot(
        &self,
        mut spec: BootSpec,
        (plan, peers): (&EnforcementPlan, &[Peer]),
        app_port: u16,
        host_port: Option<u16>,
    ) -> Result<Instance, HostError> {
        if let Some((site, fabric)) = self.site_for_new()? {
            return self.boot_on_site(spec, self.flow_policy(plan, peers), (plan, app_port), site, &fabric);
        }
        let Some(network) = self.bridge() else {
            spec.nic = Nic::User { host_port, restrict_egress: plan.runtime.flows.connects_to.is_empty() };
            spec.probe = readiness_probe(plan, app_port, USER_NETWORK_PROBE_SOURCE);
            return Ok(self.backend.boot(&spec)?);
        };
        let attached = network.attach(self.flow_policy(plan, peers), spec.guest_port, host_port)?;
        spec.probe = readiness_probe(plan, app_port, attached.gateway);
        let guest = GuestNetwork { ip: attached.ip, prefix: attached.prefix, gateway: attached.gateway };
        spec.cmdline = abi::cmdline::with_network(&spec.cmdline, guest);
        if let Some(restore) = &mut spec.restore {
            // A copy of a snapshot takes its address when it is resumed.
            let (ip, prefix, gateway) = (attached.ip, attached.prefix, attached.gateway);
            restore.network = Some(ResumeNetwork { ip, prefix, gateway, mac: network::mac_octets(ip) });
        }
        spec.nic = Nic::Tap { ifname: attached.tap.clone(), mac: attached.mac.clone(), ip: attached.ip };
        let instance = match self.backend.boot(&spec) {
            Ok(instance) => instance,
            Err(e) => {
                let _ = network.release(LeaseKey::Tap(&attached.tap));
                return Err(e.into());
            }
        };
        if let Err(e) = network.bind(&attached.tap, instance.id.as_str()) {
            let _ = self.backend.stop(&instance.id, Duration::from_secs(5));
            let _ = network.release(LeaseKey::Tap(&attached.tap));
            return Err(e.into());
        }
        Ok(instance)
    }

    /// [`Host::boot`] on a remote site's network: the site's own filter for the port, and
    /// the guest reached at its address (nothing published on a host port).
    fn boot_on_site(
        &self,
        mut spec: BootSpec,
        policy: FlowPolicy,
        (plan, app_port): (&EnforcementPlan, u16),
        site: &SiteNetwork,
        fabric: &FabricHost<'_>,
    ) -> Result<Instance, HostError> {
        let attached = site.attach(fabric, policy, spec.guest_port)?;
        spec.probe = readiness_probe(plan, app_port, local_address_towards(attached.ip));
        let guest = GuestNetwork { ip: attached.ip, prefix: attached.prefix, gateway: attached.gateway };
        spec.cmdline = abi::cmdline::with_network(&spec.cmdline, guest);
        let network = site_network_name(&self.network);
        spec.nic = Nic::Site { network, filter: attached.tap.clone(), mac: attached.mac.clone(), ip: attached.ip };
        let instance = match self.backend.boot(&spec) {
            Ok(instance) => instance,
            Err(e) => {
                let _ = site.release(fabric, LeaseKey::Tap(&attached.tap));
                return Err(e.into());
            }
        };
        if let Err(e) = site.bind(&attached.tap, instance.id.as_str()) {
            let _ = self.backend.stop(&instance.id, Duration::from_secs(5));
            let _ = site.release(fabric, LeaseKey::Tap(&attached.tap));
            return Err(e.into());
        }
        Ok(instance)
    }

    /// Boots `spec` with a NIC that leads nowhere, whatever the host's network: an instance
    /// booted to be saved as a snapshot, which never serves (its copies get their own
    /// network when they start, and their address when they are resumed). Its readiness is
    /// the runtime's `ready`: the application answered a request through the runtime.
    pub fn boot_detached(&self, mut spec: BootSpec) -> Result<Instance, HostError> {
        spec.nic = Nic::Detached;
        spec.probe = hypervisor::Probe { source: USER_NETWORK_PROBE_SOURCE.into(), http: false };
        Ok(self.backend.boot(&spec)?)
    }

    /// Where this host's probes of `instance` come from, as its guest sees them: the
    /// bridge's gateway for an instance on the bridge, else QEMU's user network's host.
    pub fn probe_source(&self, instance: &Instance) -> std::net::Ipv4Addr {
        match instance.guest_ip() {
            Some(ip) if self.remote.is_some() => local_address_towards(ip),
            Some(_) => self.bridge_gateway,
            None => USER_NETWORK_PROBE_SOURCE,
        }
    }

    /// Stops instance `id` (killed after `grace`) and releases its network lease.
    pub fn stop(&self, id: &InstanceId, grace: Duration) -> Result<(), HostError> {
        self.backend.stop(id, grace)?;
        // Without the daemon's fabric (another backend stopping it) the lease is left for
        // the next reclaim.
        if let Ok(Some((site, fabric))) = self.site() {
            site.release(&fabric, LeaseKey::Instance(id.as_str()))?;
        }
        // A no-op for an instance without a lease (booted on the user network).
        self.network.release(LeaseKey::Instance(id.as_str()))?;
        Ok(())
    }

    /// Publishes instance `id` on `host_port` (a pool member handed over), or withdraws it.
    pub fn publish(&self, id: &InstanceId, host_port: Option<u16>) -> Result<(), HostError> {
        if let (Some(port), Some(uri), true) = (host_port, &self.remote, self.on_bridge) {
            return Err(HostError::RemoteHostPort { uri: uri.clone(), port });
        }
        Ok(leased_only(self.network.publish(id.as_str(), host_port))?)
    }

    /// Applies `plan`'s flows and egress, and `peers`, to instance `id`'s host-side rules,
    /// in place.
    pub fn set_flows(&self, id: &InstanceId, plan: &EnforcementPlan, peers: &[Peer]) -> Result<(), HostError> {
        if let Some((site, fabric)) = self.site()? {
            return Ok(leased_only(site.set_policy(&fabric, id.as_str(), self.flow_policy(plan, peers)))?);
        }
        Ok(leased_only(self.network.set_policy(id.as_str(), self.flow_policy(plan, peers)))?)
    }

    /// Stops every orphan (an instance whose creator died before completing it, see
    /// [`hypervisor::creator`]) and releases its lease and TAP; returns their ids. An
    /// instance whose creator still runs is never touched.
    pub fn sweep_orphans(&self) -> Result<Vec<InstanceId>, HostError> {
        let orphans: Vec<InstanceId> = self
            .backend
            .list()?
            .into_iter()
            .filter(|(instance, _)| instance.creation() == Creation::Orphaned)
            .map(|(instance, _)| instance.id)
            .collect();
        for id in &orphans {
            self.stop(id, ORPHAN_GRACE)?;
        }
        Ok(orphans)
    }

    /// What plan checks of the host before an instance is created: orphans left by a killed
    /// creator are stopped, the bridge settings suit this host, leases left by a crash are
    /// reclaimed, and `host_port` is not held by anything but this state directory's own
    /// instances (a replacement plans while the instance it replaces still holds the port;
    /// apply finds out if it still does).
    pub fn check(&self, host_port: Option<u16>) -> Result<(), HostError> {
        // An orphan that cannot be stopped must not stop a plan: the provider's configure
        // reports it, and `sdsec stop --orphans` retries.
        let _ = self.sweep_orphans();
        if let Some((site, fabric)) = self.site_for_new()? {
            if let (Some(port), Some(uri)) = (host_port, &self.remote) {
                return Err(HostError::RemoteHostPort { uri: uri.clone(), port });
            }
            site.check(&fabric)?;
            self.reclaim()?;
            return Ok(());
        }
        let Some(network) = self.bridge() else {
            let ours = |port| self.backend.list().is_ok_and(|l| l.iter().any(|(i, _)| i.endpoint.port() == port));
            // QEMU's user network binds the port on 127.0.0.1 itself.
            if let Some(port) = host_port.filter(|port| !ours(*port)) {
                network::check_listener(std::net::Ipv4Addr::LOCALHOST, port)?;
            }
            return Ok(());
        };
        network.check()?;
        self.reclaim()?;
        match host_port.map(|port| network.check_port(port, None)) {
            Some(Err(NetworkError::PortLeased { .. })) | Some(Ok(())) | None => Ok(()),
            Some(Err(e)) => Err(e.into()),
        }
    }

    /// Finds where the host's network no longer matches the state directory's leases
    /// (tables flushed, rules deleted, TAPs detached or no longer isolated, the bridge or
    /// its address gone) and restores it from them; returns what was found, including what
    /// cannot be restored (a TAP that is gone took its VM's network interface with it).
    /// Leases no instance record holds (a crash's) are reclaimed after, so that what they
    /// left does not hide drift. Empty under `network = "user"`.
    pub fn repair_network(&self) -> Result<Vec<Drift>, HostError> {
        if let Some((site, fabric)) = self.site()? {
            let found = site.repair(&fabric)?;
            self.reclaim()?;
            return Ok(found);
        }
        let Some(network) = self.bridge() else { return Ok(Vec::new()) };
        let found = network.repair()?;
        self.reclaim()?;
        Ok(found)
    }

    /// Drops leases and rules that no instance record holds (left by a crash): how many.
    /// Records of both backends count, as they may share the state directory; an instance
    /// whose process died keeps its lease until it is stopped, as its record stays until
    /// then.
    pub fn reclaim(&self) -> Result<usize, HostError> {
        if let Some((site, fabric)) = self.site()? {
            // The daemon keeps the records of its instances; only its word that one is gone
            // counts (a connection that fails must not take the leases of running guests).
            let alive = |id: &str| {
                id.parse::<InstanceId>()
                    .is_ok_and(|id| !matches!(self.backend.instance(&id), Err(HypervisorError::NoSuchInstance(_))))
            };
            return Ok(site.reclaim(&fabric, &alive)?.len());
        }
        let Some(network) = self.bridge() else { return Ok(0) };
        let recorded =
            |id: &str| id.parse::<InstanceId>().is_ok_and(|id| Registry::recorded_by_any(&self.state_dir, &id));
        Ok(network.reclaim(&recorded)?.len())
    }
}

/// Nobody waits on an orphan: it is stopped with a short grace.
const ORPHAN_GRACE: Duration = Duration::from_secs(2);

/// Publishing and flows concern instances on the bridge: one without a lease was booted on
/// the user network, where there is nothing to change.
fn leased_only(result: Result<(), NetworkError>) -> Result<(), NetworkError> {
    match result {
        Err(NetworkError::NotLeased(_)) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests;

/// The site's network is named like the `bridge` setting.
fn site_network_name(network: &Network) -> String {
    network.bridge_name().to_owned()
}

/// The address of this host that packets to `ip` leave from (a routing lookup: nothing is
/// sent), which is where the guest sees this host's probes come from; unspecified when no
/// route leads there.
fn local_address_towards(ip: std::net::Ipv4Addr) -> std::net::Ipv4Addr {
    let socket = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0));
    let local = socket.and_then(|s| s.connect((ip, 9)).and_then(|()| s.local_addr()));
    match local {
        Ok(std::net::SocketAddr::V4(addr)) => *addr.ip(),
        _ => std::net::Ipv4Addr::UNSPECIFIED,
    }
}

/// The networks and filters of a libvirt daemon, as the network crate asks for them.
struct FabricHost<'a>(&'a dyn hypervisor::Fabric);

impl network::FilterHost for FabricHost<'_> {
    fn location(&self) -> String {
        self.0.location()
    }
    fn addresses(&self) -> Vec<std::net::Ipv4Addr> {
        self.0.addresses()
    }
    fn network(&self, name: &str) -> Result<Option<network::HostNetwork>, String> {
        let found = self.0.network(name).map_err(|e| e.to_string())?;
        Ok(found.map(|n| network::HostNetwork { xml: n.xml, active: n.active }))
    }
    fn ensure_network(&self, xml: &str, name: &str) -> Result<(), String> {
        self.0.ensure_network(xml, name).map_err(|e| e.to_string())
    }
    fn remove_network(&self, name: &str) -> Result<(), String> {
        self.0.remove_network(name).map_err(|e| e.to_string())
    }
    fn filters(&self, prefix: &str) -> Result<Vec<String>, String> {
        self.0.filters(prefix).map_err(|e| e.to_string())
    }
    fn filter(&self, name: &str) -> Result<Option<String>, String> {
        self.0.filter(name).map_err(|e| e.to_string())
    }
    fn define_filter(&self, xml: &str) -> Result<(), String> {
        self.0.define_filter(xml).map_err(|e| e.to_string())
    }
    fn remove_filter(&self, name: &str) -> Result<(), String> {
        self.0.remove_filter(name).map_err(|e| e.to_string())
    }
}
