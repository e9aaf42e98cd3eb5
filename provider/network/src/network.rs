//! [`Network`]: the operations the engine calls, each a read-modify-write of the lease file
//! under the lock, followed (still under the lock) by the `ip`/`nft` commands that make the
//! host match the file.

use std::path::{Path, PathBuf};

use crate::config::BridgeConfig;
use crate::error::BridgeOwner;
use crate::leases::{self, Document, Locked, Store};
use crate::{Attachment, FlowPolicy, Lease, LeaseKey, NetworkError, Owner, host, ruleset};

/// Prefix of the name a bridge is created under before it is renamed (see `host::create_bridge`).
const STAGING_PREFIX: &str = "sdb-";

/// Bridge networking of one state directory.
#[derive(Debug, Clone)]
pub struct Network {
    state_dir: PathBuf,
    pub(crate) store: Store,
    pub(crate) config: BridgeConfig,
}

/// Whose the device named like the bridge is.
pub(crate) enum BridgeState {
    Absent,
    Ours,
    Taken(BridgeOwner),
}

impl Network {
    pub fn new(state_dir: &Path, config: BridgeConfig) -> Network {
        Network { state_dir: state_dir.to_owned(), store: Store::new(state_dir.join("network")), config }
    }

    /// The bridge's name as configured.
    pub fn bridge_name(&self) -> &str {
        &self.config.bridge
    }

    /// Plan-time checks against the host: the tools are installed, the subnet overlaps no
    /// route of the host, the bridge name is free or ours, and `publish_address` is 0.0.0.0
    /// or an address of this host.
    pub fn check(&self) -> Result<(), NetworkError> {
        self.config.validate()?;
        if !crate::has_cap_net_admin() {
            return Err(NetworkError::NoCapNetAdmin);
        }
        host::locate(host::IP)?;
        host::locate(host::NFT)?;
        if self.store.exists() {
            let locked = self.store.lock(false)?;
            let document = self.store.load(&locked, &self.config)?;
            document.refuse_changed(&self.config, true)?;
        }
        let config = &self.config;
        let ours = match self.bridge_state(&config.bridge)? {
            BridgeState::Taken(owner) => {
                return Err(NetworkError::BridgeTaken { bridge: config.bridge.clone(), owner });
            }
            BridgeState::Ours => true,
            BridgeState::Absent => false,
        };
        let mut overlapping: Vec<host::Route> = host::routes()?
            .into_iter()
            // Our own bridge's routes (the subnet, the gateway's local and broadcast routes).
            .filter(|route| !(ours && route.dev.as_deref() == Some(config.bridge.as_str())))
            .filter(|route| route.dst.contains(&config.subnet) || config.subnet.contains(&route.dst))
            .collect();
        // Name the route a user set up rather than the kernel's local-table companions.
        overlapping.sort_by_key(|route| route.text.contains(" table local"));
        if let Some(route) = overlapping.into_iter().next() {
            return Err(NetworkError::SubnetOverlapsRoute { subnet: config.subnet, route: route.text });
        }
        let address = config.publish_address;
        if !address.is_unspecified() && !host::local_addresses()?.contains(&address) {
            return Err(NetworkError::PublishAddressNotLocal { address });
        }
        Ok(())
    }

    /// Whether `port` can be published: no other instance's lease holds it and no process
    /// of this host listens on it at `publish_address` (DNAT would hide that process).
    /// `except` is the instance that may already hold it.
    pub fn check_port(&self, port: u16, except: Option<&str>) -> Result<(), NetworkError> {
        let locked = self.store.lock(false)?;
        let document = self.store.load(&locked, &self.config)?;
        self.check_port_locked(&document, port, except)
    }

    fn check_port_locked(&self, document: &Document, port: u16, except: Option<&str>) -> Result<(), NetworkError> {
        if port == 0 {
            return Err(NetworkError::PortZero);
        }
        let holder = document.leases.iter().find(|lease| {
            lease.host_port == Some(port)
                && !matches!((&lease.owner, except), (Owner::Instance(id), Some(except)) if id == except)
        });
        if let Some(lease) = holder {
            return Err(NetworkError::PortLeased { port, holder: lease.owner.to_string() });
        }
        let address = self.config.publish_address;
        crate::check_listener(address, port)
    }

    /// Leases an address and a TAP for an instance being created by this process: the
    /// bridge is made if need be, the TAP added as an isolated port, the rules applied. On
    /// failure nothing of it remains.
    pub fn attach(
        &self,
        policy: FlowPolicy,
        runtime_port: u16,
        host_port: Option<u16>,
    ) -> Result<Attachment, NetworkError> {
        self.config.validate()?;
        let locked = self.store.lock(true)?;
        let mut document = self.store.load(&locked, &self.config)?;
        document.refuse_changed(&self.config, true)?;
        let config = document.effective(&self.config);
        document.bridge = config.bridge.clone();
        document.subnet = config.subnet;
        document.publish_address = config.publish_address;
        if let BridgeState::Taken(owner) = self.bridge_state(&config.bridge)? {
            return Err(NetworkError::BridgeTaken { bridge: config.bridge, owner });
        }
        if let Some(port) = host_port {
            self.check_port_locked(&document, port, None)?;
        }
        let ip = leases::free_address(config.subnet, &document.leases)
            .ok_or(NetworkError::SubnetFull { subnet: config.subnet, leases: document.leases.len() })?;
        let lease = Lease {
            ip,
            tap: fsutil::random_id(crate::config::TAP_PREFIX, 5)?,
            mac: leases::mac_for(ip),
            runtime_port,
            host_port,
            owner: leases::creating_owner(),
            policy,
        };
        // Recorded before the TAP exists, so a crash leaves a lease reclaim cleans up.
        document.leases.push(lease.clone());
        self.store.save(&locked, &document)?;
        let made = self
            .ensure_bridge(&config)
            .and_then(|()| host::create_tap(&lease.tap, &config.bridge))
            .and_then(|()| host::apply_rules(&ruleset(&config, &document.leases)));
        if let Err(err) = made {
            // Best effort: the first error is the one to report.
            let _ = host::delete_link(&lease.tap);
            document.leases.retain(|held| held.tap != lease.tap);
            if self.store.save(&locked, &document).is_ok() {
                let _ = self.sync(&locked, &config, &document);
            }
            return Err(err);
        }
        Ok(Attachment {
            tap: lease.tap,
            mac: lease.mac,
            ip,
            prefix: config.subnet.prefix_len(),
            gateway: config.gateway(),
        })
    }

    /// The lease of `tap` becomes instance `instance`'s (after a successful boot).
    pub fn bind(&self, tap: &str, instance: &str) -> Result<(), NetworkError> {
        let locked = self.store.lock(true)?;
        let mut document = self.store.load(&locked, &self.config)?;
        let other = document.leases.iter().find(|l| l.tap != tap && l.owner == Owner::Instance(instance.to_owned()));
        if let Some(other) = other {
            return Err(NetworkError::InstanceHasLease { instance: instance.to_owned(), tap: other.tap.clone() });
        }
        let index = document.position(|l| l.tap == tap).ok_or_else(|| NetworkError::NotLeased(format!("TAP {tap}")))?;
        document.leases[index].owner = Owner::Instance(instance.to_owned());
        self.store.save(&locked, &document)
    }

    /// Publishes instance `instance`'s runtime port on `host_port` (or stops publishing it).
    pub fn publish(&self, instance: &str, host_port: Option<u16>) -> Result<(), NetworkError> {
        self.change(instance, |network, document, index| {
            if let Some(port) = host_port {
                network.check_port_locked(document, port, Some(instance))?;
            }
            document.leases[index].host_port = host_port;
            Ok(())
        })
    }

    /// Replaces instance `instance`'s flow policy; its rules are rewritten in place.
    pub fn set_policy(&self, instance: &str, policy: FlowPolicy) -> Result<(), NetworkError> {
        self.change(instance, move |_, document, index| {
            document.leases[index].policy = policy;
            Ok(())
        })
    }

    /// Changes instance `instance`'s lease with `edit` and re-applies the rules; when they
    /// cannot be applied, the previous lease file and rules are restored.
    fn change(
        &self,
        instance: &str,
        edit: impl FnOnce(&Network, &mut Document, usize) -> Result<(), NetworkError>,
    ) -> Result<(), NetworkError> {
        let locked = self.store.lock(true)?;
        let previous = self.store.load(&locked, &self.config)?;
        let mut document = previous.clone();
        let index = document
            .position(|l| l.owner == Owner::Instance(instance.to_owned()))
            .ok_or_else(|| NetworkError::NotLeased(format!("instance {instance}")))?;
        edit(self, &mut document, index)?;
        let config = document.effective(&self.config);
        self.store.save(&locked, &document)?;
        if let Err(err) = self.sync(&locked, &config, &document) {
            if self.store.save(&locked, &previous).is_ok() {
                let _ = self.sync(&locked, &config, &previous);
            }
            return Err(err);
        }
        Ok(())
    }

    /// Removes the TAP, the lease and its rules; the bridge and both tables go with the last
    /// lease. Releasing what is not leased succeeds.
    pub fn release(&self, key: LeaseKey<'_>) -> Result<(), NetworkError> {
        if !self.store.exists() {
            return Ok(());
        }
        let locked = self.store.lock(true)?;
        let mut document = self.store.load(&locked, &self.config)?;
        let found = document.position(|l| match key {
            LeaseKey::Tap(tap) => l.tap == tap,
            LeaseKey::Instance(id) => l.owner == Owner::Instance(id.to_owned()),
        });
        let config = document.effective(&self.config);
        let Some(index) = found else {
            // A release that failed half-way (lease dropped, bridge and rules not) is
            // finished here.
            if document.leases.is_empty() && matches!(self.bridge_state(&config.bridge)?, BridgeState::Ours) {
                self.sync(&locked, &config, &document)?;
            }
            return Ok(());
        };
        host::delete_link(&document.leases[index].tap)?;
        document.leases.remove(index);
        self.store.save(&locked, &document)?;
        self.sync(&locked, &config, &document)
    }

    /// Drops the leases no instance holds: instances `alive` says are gone, and leases taken
    /// by a process that no longer runs. Also deletes `sdt-*` ports of our bridge that have
    /// no lease and bridges left half-created. Returns the leases dropped.
    pub fn reclaim(&self, alive: &dyn Fn(&str) -> bool) -> Result<Vec<Lease>, NetworkError> {
        if !self.store.exists() {
            return Ok(Vec::new());
        }
        let locked = self.store.lock(true)?;
        let mut document = self.store.load(&locked, &self.config)?;
        let config = document.effective(&self.config);
        let (kept, dropped): (Vec<Lease>, Vec<Lease>) =
            document.leases.drain(..).partition(|lease| leases::owner_alive(&lease.owner, alive));
        document.leases = kept;
        for lease in &dropped {
            host::delete_link(&lease.tap)?;
        }
        self.store.save(&locked, &document)?;
        let mut changed = !dropped.is_empty();
        let ours = matches!(self.bridge_state(&config.bridge)?, BridgeState::Ours);
        if ours {
            for port in host::ports_of(&config.bridge)? {
                let leased = document.leases.iter().any(|lease| lease.tap == port);
                if port.starts_with(crate::config::TAP_PREFIX) && !leased {
                    host::delete_link(&port)?;
                    changed = true;
                }
            }
        }
        let alias = self.alias()?;
        for bridge in host::bridges()? {
            if bridge.name.starts_with(STAGING_PREFIX) && bridge.alias.as_deref() == Some(alias.as_str()) {
                host::delete_link(&bridge.name)?;
            }
        }
        // With nothing dropped the rules already match the leases (drift is `repair`'s);
        // rewriting them would cost each plan as much as an attach.
        if changed {
            self.sync(&locked, &config, &document)?;
        }
        Ok(dropped)
    }

    /// Instance `instance`'s lease, if it has one.
    pub fn lease(&self, instance: &str) -> Result<Option<Lease>, NetworkError> {
        let owner = Owner::Instance(instance.to_owned());
        Ok(self.leases()?.into_iter().find(|lease| lease.owner == owner))
    }

    /// Every lease of the state directory.
    pub fn leases(&self) -> Result<Vec<Lease>, NetworkError> {
        if !self.store.exists() {
            return Ok(Vec::new());
        }
        let locked = self.store.lock(false)?;
        Ok(self.store.load(&locked, &self.config)?.leases)
    }

    /// The alias that marks a bridge as this state directory's.
    pub(crate) fn alias(&self) -> Result<String, NetworkError> {
        fsutil::create_private_dir(self.store.dir())?;
        let canonical = std::fs::canonicalize(&self.state_dir).map_err(fsutil::io("resolve", &self.state_dir))?;
        Ok(format!("sdsec:{}", canonical.display()))
    }

    fn bridge_state(&self, bridge: &str) -> Result<BridgeState, NetworkError> {
        let Some(link) = host::link(bridge)? else { return Ok(BridgeState::Absent) };
        self.whose(link.alias, link.kind)
    }

    /// Whose a device with `alias` and `kind` is.
    pub(crate) fn whose(&self, alias: Option<String>, kind: Option<String>) -> Result<BridgeState, NetworkError> {
        let ours = self.alias()?;
        Ok(match alias {
            Some(found) if found == ours => BridgeState::Ours,
            Some(found) if found.starts_with("sdsec:") => {
                BridgeState::Taken(BridgeOwner::StateDir(found.trim_start_matches("sdsec:").to_owned()))
            }
            _ => BridgeState::Taken(BridgeOwner::Foreign { kind }),
        })
    }

    /// Creates the bridge unless it is there, and (re)configures it.
    fn ensure_bridge(&self, config: &BridgeConfig) -> Result<(), NetworkError> {
        match self.bridge_state(&config.bridge)? {
            BridgeState::Taken(owner) => {
                return Err(NetworkError::BridgeTaken { bridge: config.bridge.clone(), owner });
            }
            BridgeState::Absent => {
                let staging = fsutil::random_id(STAGING_PREFIX, 5)?;
                host::create_bridge(&config.bridge, &staging, &self.alias()?)?;
            }
            BridgeState::Ours => {}
        }
        host::configure_bridge(&config.bridge, config.gateway(), config.subnet.prefix_len())
    }

    /// Makes the host match `document`: the rules of its leases, or with none left, no
    /// tables and no bridge. A bridge name taken by someone else is never touched (nor the
    /// tables of that name, which would be theirs).
    pub(crate) fn sync(
        &self,
        _locked: &Locked,
        config: &BridgeConfig,
        document: &Document,
    ) -> Result<(), NetworkError> {
        if !document.leases.is_empty() {
            self.ensure_bridge(config)?;
            return host::apply_rules(&ruleset(config, &document.leases));
        }
        match self.bridge_state(&config.bridge)? {
            BridgeState::Taken(_) => Ok(()),
            BridgeState::Absent => host::apply_rules(&ruleset::teardown(config)),
            BridgeState::Ours => {
                host::apply_rules(&ruleset::teardown(config))?;
                host::delete_link(&config.bridge)
            }
        }
    }
}
