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

use std::path::{Path, PathBuf};

use crate::config::BridgeConfig;
use crate::error::BridgeOwner;
use crate::leases::{self, Document, Locked, Store};
use crate::site_xml::{address_of, filter_prefix, filter_xml, network_xml, owner_of};
use crate::{Attachment, FlowPolicy, Lease, LeaseKey, NetworkError, Owner};

/// Networks and filters of the host that runs the guests; errors are the host's words.
pub trait FilterHost {
    /// Where the host is (its daemon's URI), for messages.
    fn location(&self) -> String;
    fn network(&self, name: &str) -> Result<Option<String>, String>;
    fn ensure_network(&self, xml: &str, name: &str) -> Result<(), String>;
    fn remove_network(&self, name: &str) -> Result<(), String>;
    fn filters(&self, prefix: &str) -> Result<Vec<String>, String>;
    fn filter(&self, name: &str) -> Result<Option<String>, String>;
    fn define_filter(&self, xml: &str) -> Result<(), String>;
    fn remove_filter(&self, name: &str) -> Result<(), String>;
}

/// Bridge networking of one state directory on one site.
#[derive(Debug, Clone)]
pub struct SiteNetwork {
    state_dir: PathBuf,
    store: Store,
    config: BridgeConfig,
}

impl SiteNetwork {
    /// The site whose daemon is at `location`: its leases are kept apart from the local
    /// bridge's and from other sites'.
    pub fn new(state_dir: &Path, location: &str, config: BridgeConfig) -> SiteNetwork {
        let dir = state_dir.join("network").join("sites").join(format!("{:016x}", fnv1a(location)));
        let store = Store::for_site(dir, filter_prefix(&config.bridge));
        SiteNetwork { state_dir: state_dir.to_owned(), store, config }
    }

    /// Plan-time checks: the settings are valid and unchanged while leases are held, and the
    /// site's network of that name is absent or this state directory's, on this subnet.
    pub fn check(&self, host: &dyn FilterHost) -> Result<(), NetworkError> {
        self.config.validate()?;
        if self.store.exists() {
            let locked = self.store.lock(false)?;
            let document = self.store.load(&locked, &self.config)?;
            document.refuse_changed(&self.config, false)?;
        }
        self.network_state(host, &self.config).map(drop)
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
        let ip = leases::free_address(config.subnet, &document.leases)
            .ok_or(NetworkError::SubnetFull { subnet: config.subnet, leases: document.leases.len() })?;
        let lease = Lease {
            ip,
            tap: fsutil::random_id(&filter_prefix(&config.bridge), 5)?,
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
            document.leases.remove(index);
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
        self.store.save(&locked, &document)?;
        if !dropped.is_empty() {
            self.sync(&locked, host, &config, &document)?;
        }
        Ok(dropped)
    }

    /// What on the site no longer matches the leases (a filter removed or changed, the
    /// network stopped or gone), in sentences, after restoring it from them.
    pub fn repair(&self, host: &dyn FilterHost) -> Result<Vec<crate::Drift>, NetworkError> {
        if !self.store.exists() {
            return Ok(Vec::new());
        }
        let locked = self.store.lock(true)?;
        let document = self.store.load(&locked, &self.config)?;
        if document.leases.is_empty() {
            return Ok(Vec::new());
        }
        let config = document.effective(&self.config);
        let fail = |reason| self.host_error(host, reason);
        let mut found = Vec::new();
        if host.network(&config.bridge).map_err(fail)?.is_none() {
            found.push(format!("network {} is gone from {}", config.bridge, host.location()));
        }
        for lease in &document.leases {
            let wanted = filter_xml(&config, lease, &document.leases);
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
        Ok(found.into_iter().map(|what| crate::Drift::Site { what }).collect())
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
    /// ours without a lease; with no lease left, no filter and no network.
    fn sync(
        &self,
        _locked: &Locked,
        host: &dyn FilterHost,
        config: &BridgeConfig,
        document: &Document,
    ) -> Result<(), NetworkError> {
        let fail = |reason| self.host_error(host, reason);
        let prefix = filter_prefix(&config.bridge);
        if !document.leases.is_empty() {
            let exists = self.network_state(host, config)?;
            for lease in &document.leases {
                host.define_filter(&filter_xml(config, lease, &document.leases)).map_err(fail)?;
            }
            host.ensure_network(&network_xml(config, &self.owner()?), &config.bridge).map_err(fail)?;
            if !exists {
                // Defined meanwhile by another state directory: never use theirs.
                self.network_state(host, config)?;
            }
        }
        // A filter still used by a port that is stopping cannot go yet; the next change
        // removes it.
        for name in host.filters(&prefix).map_err(fail)? {
            if !document.leases.iter().any(|lease| lease.tap == name) {
                let _ = host.remove_filter(&name);
            }
        }
        if document.leases.is_empty() && self.network_state(host, config)? {
            host.remove_network(&config.bridge).map_err(fail)?;
        }
        Ok(())
    }

    /// Whether the site's network is there (and ours); an error when it is another's or on
    /// another subnet.
    fn network_state(&self, host: &dyn FilterHost, config: &BridgeConfig) -> Result<bool, NetworkError> {
        let Some(xml) = host.network(&config.bridge).map_err(|reason| self.host_error(host, reason))? else {
            return Ok(false);
        };
        let taken =
            |owner| NetworkError::BridgeTaken { bridge: format!("{} on {}", config.bridge, host.location()), owner };
        match owner_of(&xml) {
            Some(owner) if owner == self.owner()? => {}
            Some(owner) => return Err(taken(BridgeOwner::StateDir(owner))),
            None => return Err(taken(BridgeOwner::Foreign { kind: Some("libvirt network".into()) })),
        }
        let address = address_of(&xml);
        if address != Some((config.gateway(), config.subnet.prefix_len())) {
            let found = address.map_or_else(|| "no address".to_owned(), |(ip, len)| format!("{ip}/{len}"));
            return Err(NetworkError::SiteNetworkMoved {
                network: config.bridge.clone(),
                site: host.location(),
                found,
                subnet: config.subnet,
            });
        }
        Ok(true)
    }

    /// Who the site's network is marked as: this machine and state directory.
    fn owner(&self) -> Result<String, NetworkError> {
        fsutil::create_private_dir(self.store.dir())?;
        let canonical = std::fs::canonicalize(&self.state_dir).map_err(fsutil::io("resolve", &self.state_dir))?;
        let machine = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
        Ok(format!("{}:{}", machine.trim(), canonical.display()))
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
mod tests {
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
