//! [`SiteNetwork`]: bridge networking on a hypervisor host the provider cannot run `ip` or
//! `nft` on (a remote libvirt daemon's), kept through that host's own networks and network
//! filters ([`FilterHost`]).
//!
//! The leases are kept as for the local bridge, in the state directory, one file per site;
//! after every change the site is made to match them: its routed network (named like the
//! `bridge` setting, holding the gateway address, marked as this state directory's) and one
//! filter per lease ([`crate::site_xml`]). Guests are reached at their own addresses, which
//! clients route to the daemon's host: nothing is published on a host port there, and
//! client addresses reach the guests unchanged.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::config::BridgeConfig;
use crate::error::BridgeOwner;
use crate::leases::{self, Document, Locked, Store};
use crate::site_xml::{OWNER_DIGITS, address_of, filter_prefix, filter_xml, network_xml, owner_of};
use crate::{Attachment, FlowPolicy, Lease, LeaseKey, NetworkError, Owner};

/// Networks and filters of the host that runs the guests; errors are the host's words.
pub trait FilterHost {
    /// Where the host is (its daemon's URI), for messages.
    fn location(&self) -> String;
    /// The addresses of the host the provider knows (the one its URI names), which no guest
    /// may open connections to.
    fn addresses(&self) -> Vec<Ipv4Addr>;
    fn network(&self, name: &str) -> Result<Option<HostNetwork>, String>;
    /// Defines the network when absent (a network of that name and another UUID stays,
    /// and is an error), and starts it when stopped.
    fn ensure_network(&self, xml: &str, name: &str) -> Result<(), String>;
    fn remove_network(&self, name: &str) -> Result<(), String>;
    fn filters(&self, prefix: &str) -> Result<Vec<String>, String>;
    fn filter(&self, name: &str) -> Result<Option<String>, String>;
    fn define_filter(&self, xml: &str) -> Result<(), String>;
    fn remove_filter(&self, name: &str) -> Result<(), String>;
}

/// A network as the host describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNetwork {
    pub xml: String,
    pub active: bool,
}

/// Bridge networking of one state directory on one site.
#[derive(Debug, Clone)]
pub struct SiteNetwork {
    store: Store,
    config: BridgeConfig,
}

/// Whether the site's network is there, as far as it is ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Absent,
    Ours { active: bool },
}

impl SiteNetwork {
    /// The site whose daemon is at `location`: its leases are kept apart from the local
    /// bridge's and from other sites'.
    pub fn new(state_dir: &Path, location: &str, config: BridgeConfig) -> SiteNetwork {
        let dir = state_dir.join("network").join("sites").join(format!("{:016x}", fnv1a(location)));
        SiteNetwork { store: Store::for_site(dir), config }
    }

    /// Plan-time checks: the settings are valid and unchanged while leases are held, and the
    /// site's network of that name is absent or this site's own, on this subnet.
    pub fn check(&self, host: &dyn FilterHost) -> Result<(), NetworkError> {
        self.config.validate()?;
        let mut owner = None;
        if self.store.exists() {
            let locked = self.store.lock(false)?;
            let document = self.store.load(&locked, &self.config)?;
            document.refuse_changed(&self.config, false)?;
            owner = document.site_owner;
        }
        self.presence(host, &self.config, owner.as_deref()).map(drop)
    }

    /// Leases an address and a filter for an instance being created by this process, and
    /// makes the site match; on failure nothing of it remains. `tap` of the attachment is
    /// the filter's name.
    pub fn attach(
        &self,
        host: &dyn FilterHost,
        policy: FlowPolicy,
        runtime_port: u16,
    ) -> Result<Attachment, NetworkError> {
        self.config.validate()?;
        let locked = self.store.lock(true)?;
        let mut document = self.store.load(&locked, &self.config)?;
        document.refuse_changed(&self.config, false)?;
        let config = document.effective(&self.config);
        (document.bridge, document.subnet) = (config.bridge.clone(), config.subnet);
        let owner = match &document.site_owner {
            Some(owner) => owner.clone(),
            None => fsutil::random_id("", OWNER_DIGITS / 2)?,
        };
        document.site_owner = Some(owner.clone());
        let prefix = filter_prefix(&owner).ok_or_else(|| self.edited(&owner))?;
        let ip = leases::free_address(config.subnet, &document.leases)
            .ok_or(NetworkError::SubnetFull { subnet: config.subnet, leases: document.leases.len() })?;
        let lease = Lease {
            ip,
            tap: fsutil::random_id(&prefix, 5)?,
            mac: leases::mac_for(ip),
            runtime_port,
            host_port: None,
            owner: leases::creating_owner(),
            policy,
        };
        document.leases.push(lease.clone());
        self.store.save(&locked, &document)?;
        if let Err(err) = self.sync(&locked, host, &config, &document) {
            document.leases.retain(|held| held.tap != lease.tap);
            if self.store.save(&locked, &document).is_ok() {
                let _ = self.sync(&locked, host, &config, &document);
            }
            return Err(err);
        }
        let (prefix, gateway) = (config.subnet.prefix_len(), config.gateway());
        Ok(Attachment { tap: lease.tap, mac: lease.mac, ip, prefix, gateway })
    }

    /// The lease of filter `port` becomes instance `instance`'s (after a successful boot).
    pub fn bind(&self, port: &str, instance: &str) -> Result<(), NetworkError> {
        let locked = self.store.lock(true)?;
        let mut document = self.store.load(&locked, &self.config)?;
        let index =
            document.position(|l| l.tap == port).ok_or_else(|| NetworkError::NotLeased(format!("port {port}")))?;
        document.leases[index].owner = Owner::Instance(instance.to_owned());
        self.store.save(&locked, &document)
    }

    /// Replaces instance `instance`'s flow policy; the site's filters follow in place.
    pub fn set_policy(&self, host: &dyn FilterHost, instance: &str, policy: FlowPolicy) -> Result<(), NetworkError> {
        if !self.store.exists() {
            return Err(NetworkError::NotLeased(format!("instance {instance}")));
        }
        let locked = self.store.lock(true)?;
        let previous = self.store.load(&locked, &self.config)?;
        let mut document = previous.clone();
        let index = document
            .position(|l| l.owner == Owner::Instance(instance.to_owned()))
            .ok_or_else(|| NetworkError::NotLeased(format!("instance {instance}")))?;
        document.leases[index].policy = policy;
        let config = document.effective(&self.config);
        self.store.save(&locked, &document)?;
        if let Err(err) = self.sync(&locked, host, &config, &document) {
            if self.store.save(&locked, &previous).is_ok() {
                let _ = self.sync(&locked, host, &config, &previous);
            }
            return Err(err);
        }
        Ok(())
    }

    /// Drops the lease and its filter (after its instance stopped); the network goes with
    /// the last lease. Releasing what is not leased succeeds.
    pub fn release(&self, host: &dyn FilterHost, key: LeaseKey<'_>) -> Result<(), NetworkError> {
        if !self.store.exists() {
            return Ok(());
        }
        let locked = self.store.lock(true)?;
        let mut document = self.store.load(&locked, &self.config)?;
        let config = document.effective(&self.config);
        let found = document.position(|l| match key {
            LeaseKey::Tap(port) => l.tap == port,
            LeaseKey::Instance(id) => l.owner == Owner::Instance(id.to_owned()),
        });
        if let Some(index) = found {
            let released = document.leases.remove(index);
            document.site_detached.retain(|tap| *tap != released.tap);
            self.store.save(&locked, &document)?;
        } else if !document.leases.is_empty() {
            return Ok(());
        }
        self.sync(&locked, host, &config, &document)
    }

    /// Drops the leases no instance holds (`alive` says which are), and makes the site
    /// match what is left; returns the leases dropped.
    pub fn reclaim(&self, host: &dyn FilterHost, alive: &dyn Fn(&str) -> bool) -> Result<Vec<Lease>, NetworkError> {
        if !self.store.exists() {
            return Ok(Vec::new());
        }
        let locked = self.store.lock(true)?;
        let mut document = self.store.load(&locked, &self.config)?;
        let config = document.effective(&self.config);
        let (kept, dropped): (Vec<Lease>, Vec<Lease>) =
            document.leases.drain(..).partition(|lease| leases::owner_alive(&lease.owner, alive));
        document.leases = kept;
        let held: Vec<String> = document.leases.iter().map(|lease| lease.tap.clone()).collect();
        document.site_detached.retain(|tap| held.contains(tap));
        self.store.save(&locked, &document)?;
        if !dropped.is_empty() {
            self.sync(&locked, host, &config, &document)?;
        }
        Ok(dropped)
    }

    /// What on the site no longer matches the leases (a filter removed or changed, the
    /// network stopped or gone), in sentences, after restoring it from them. With no lease
    /// left, what a failed removal left behind is removed.
    pub fn repair(&self, host: &dyn FilterHost) -> Result<Vec<crate::Drift>, NetworkError> {
        if !self.store.exists() {
            return Ok(Vec::new());
        }
        let locked = self.store.lock(true)?;
        let mut document = self.store.load(&locked, &self.config)?;
        let config = document.effective(&self.config);
        let Some(owner) = document.site_owner.clone() else { return Ok(Vec::new()) };
        if document.leases.is_empty() {
            self.sync(&locked, host, &config, &document)?;
            return Ok(Vec::new());
        }
        let fail = |reason| self.host_error(host, reason);
        let mut found = Vec::new();
        let cut = match self.presence(host, &config, Some(&owner))? {
            Presence::Absent => Some("gone from"),
            Presence::Ours { active: false } => Some("stopped on"),
            Presence::Ours { active: true } => None,
        };
        if let Some(how) = cut {
            found.push(format!("network {} is {how} {}", config.bridge, host.location()));
            // Its running guests' interfaces went with it, for good.
            for lease in document.leases.iter().filter(|lease| matches!(lease.owner, Owner::Instance(_))) {
                if !document.site_detached.contains(&lease.tap) {
                    document.site_detached.push(lease.tap.clone());
                }
            }
            self.store.save(&locked, &document)?;
        }
        for lease in &document.leases {
            let wanted = filter_xml(&config, lease, &document.leases, &host.addresses())?;
            match host.filter(&lease.tap).map_err(fail)? {
                None => found.push(format!("network filter {} of {} is gone", lease.tap, lease.owner)),
                Some(defined) if !same_rules(&defined, &wanted) => {
                    found.push(format!("network filter {} of {} was changed", lease.tap, lease.owner));
                }
                Some(_) => {}
            }
        }
        if !found.is_empty() {
            self.sync(&locked, host, &config, &document)?;
        }
        let mut drift: Vec<crate::Drift> = found.into_iter().map(|what| crate::Drift::Site { what }).collect();
        for lease in document.leases.iter().filter(|lease| document.site_detached.contains(&lease.tap)) {
            if let Owner::Instance(instance) = &lease.owner {
                let (network, site) = (config.bridge.clone(), host.location());
                drift.push(crate::Drift::SiteDetached { instance: instance.clone(), network, site });
            }
        }
        Ok(drift)
    }

    /// Instance `instance`'s lease, if it has one.
    pub fn lease(&self, instance: &str) -> Result<Option<Lease>, NetworkError> {
        if !self.store.exists() {
            return Ok(None);
        }
        let locked = self.store.lock(false)?;
        let owner = Owner::Instance(instance.to_owned());
        Ok(self.store.load(&locked, &self.config)?.leases.into_iter().find(|lease| lease.owner == owner))
    }

    /// Makes the site match `document`: its network and one filter per lease, no filter of
    /// ours without a lease; with no lease left, no filter and no network. Every filter is
    /// tried; the first failure is returned.
    fn sync(
        &self,
        _locked: &Locked,
        host: &dyn FilterHost,
        config: &BridgeConfig,
        document: &Document,
    ) -> Result<(), NetworkError> {
        let fail = |reason| self.host_error(host, reason);
        let Some(owner) = document.site_owner.as_deref() else { return Ok(()) };
        let prefix = filter_prefix(owner).ok_or_else(|| self.edited(owner))?;
        let mut first_error = None;
        if !document.leases.is_empty() {
            self.presence(host, config, Some(owner))?;
            for lease in &document.leases {
                let defined = filter_xml(config, lease, &document.leases, &host.addresses())
                    .and_then(|xml| host.define_filter(&xml).map_err(fail));
                if let Err(e) = defined {
                    first_error.get_or_insert(e);
                }
            }
            host.ensure_network(&network_xml(config, owner), &config.bridge).map_err(fail)?;
            // Whose it is now, had it been defined meanwhile by another.
            self.presence(host, config, Some(owner))?;
        }
        // A filter still used by a port that is stopping cannot go yet; the next change
        // (or refresh) removes it.
        for name in host.filters(&prefix).map_err(fail)? {
            if !document.leases.iter().any(|lease| lease.tap == name) {
                let _ = host.remove_filter(&name);
            }
        }
        if document.leases.is_empty() {
            // The network the leases were last on, whatever the settings say now; one that is
            // not ours is left alone: nothing of ours to remove.
            let recorded = BridgeConfig { bridge: document.bridge.clone(), subnet: document.subnet, ..config.clone() };
            match self.presence(host, &recorded, Some(owner)) {
                Ok(Presence::Ours { .. }) | Err(NetworkError::SiteNetworkMoved { .. }) => {
                    host.remove_network(&recorded.bridge).map_err(fail)?;
                }
                Ok(Presence::Absent) | Err(NetworkError::BridgeTaken { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Whether the site's network is there, and started; an error when it is another's (or
    /// `owner` is `None`: nothing of this site's was ever made) or on another subnet.
    fn presence(
        &self,
        host: &dyn FilterHost,
        config: &BridgeConfig,
        owner: Option<&str>,
    ) -> Result<Presence, NetworkError> {
        let Some(network) = host.network(&config.bridge).map_err(|reason| self.host_error(host, reason))? else {
            return Ok(Presence::Absent);
        };
        let taken =
            |owner| NetworkError::BridgeTaken { bridge: format!("{} on {}", config.bridge, host.location()), owner };
        match owner_of(&network.xml) {
            Some(found) if Some(found.as_str()) == owner => {}
            Some(found) => return Err(taken(BridgeOwner::Site { token: found })),
            None => return Err(taken(BridgeOwner::Foreign { kind: Some("libvirt network".into()) })),
        }
        let address = address_of(&network.xml);
        if address != Some((config.gateway(), config.subnet.prefix_len())) {
            let found = address.map_or_else(|| "no address".to_owned(), |(ip, len)| format!("{ip}/{len}"));
            return Err(NetworkError::SiteNetworkMoved {
                network: config.bridge.clone(),
                site: host.location(),
                found,
                subnet: config.subnet,
            });
        }
        Ok(Presence::Ours { active: network.active })
    }

    fn edited(&self, owner: &str) -> NetworkError {
        NetworkError::State {
            path: self.store.dir().join("leases.json"),
            reason: format!("site owner `{owner}` is not an owner token; the file was edited or corrupted"),
        }
    }

    fn host_error(&self, host: &dyn FilterHost, reason: String) -> NetworkError {
        NetworkError::Site { site: host.location(), reason }
    }
}

/// Whether a filter as the daemon gives it back holds `wanted`'s rules: each rule and its
/// match compared as element names with their attributes, whatever the layout, the quotes
/// and the attributes' order (the daemon adds a uuid and writes its own layout).
fn same_rules(defined: &str, wanted: &str) -> bool {
    rule_elements(defined) == rule_elements(wanted)
}

/// The elements from the first `<rule` on, each as its name and sorted attributes.
fn rule_elements(xml: &str) -> Vec<(String, Vec<(String, String)>)> {
    let Some(start) = xml.find("<rule") else { return Vec::new() };
    xml[start..]
        .split('<')
        .filter(|tag| !tag.is_empty() && !tag.starts_with('/'))
        .filter_map(|tag| {
            let tag = tag.split('>').next()?.trim_end_matches('/').trim();
            let (name, mut rest) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
            let mut attributes = Vec::new();
            while let Some((key, value)) = rest.split_once('=') {
                let value = value.trim_start();
                let quote = value.chars().next()?;
                let body = &value[1..];
                let end = body.find(quote)?;
                attributes.push((key.trim().to_owned(), body[..end].to_ascii_lowercase()));
                rest = &body[end + 1..];
            }
            attributes.sort();
            Some((name.to_owned(), attributes))
        })
        .collect()
}

/// FNV-1a: a stable short name for a site's lease directory.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod rule_tests {
    use super::same_rules;

    #[test]
    fn a_filter_read_back_in_the_daemons_layout_is_the_same() {
        let wanted = "<filter name='f' chain='root'>\n  <uuid>u</uuid>\n  <rule action='drop' direction='out' priority='-990'><mac match='no' srcmacaddr='52:54:00:AA:00:01'/></rule>\n</filter>\n";
        let defined = "<filter name=\"f\" chain=\"root\">\n  <uuid>u</uuid>\n  <rule action=\"drop\" direction=\"out\" priority=\"-990\">\n    <mac srcmacaddr=\"52:54:00:aa:00:01\" match=\"no\"/>\n  </rule>\n</filter>\n";
        assert!(same_rules(defined, wanted));
        assert!(!same_rules(&defined.replace("drop", "accept"), wanted));
        assert!(!same_rules(&defined.replace("00:01", "00:02"), wanted));
        assert!(!same_rules(
            &defined.replace(
                "  </rule>\n",
                "  </rule>\n  <rule action='accept' direction='in' priority='1'><all/></rule>\n"
            ),
            wanted
        ));
    }
}
