//! The site's bookkeeping against a daemon kept in memory: ownership, drift, leftovers.

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::*;
use crate::Drift;

/// A libvirt daemon's networks and filters, in memory, failing where a test says.
#[derive(Default)]
struct Daemon {
    networks: RefCell<BTreeMap<String, HostNetwork>>,
    filters: RefCell<BTreeMap<String, String>>,
    /// Operations (`remove_network`, `define_filter`) that fail while set.
    failing: RefCell<Vec<&'static str>>,
    /// A filter whose definition fails while set.
    failing_filter: RefCell<Option<String>>,
}

fn tag<'a>(xml: &'a str, name: &str) -> &'a str {
    let start = xml.find(&format!("<{name}>")).map(|i| i + name.len() + 2).unwrap_or(0);
    &xml[start..start + xml[start..].find('<').unwrap_or(0)]
}

fn attribute<'a>(xml: &'a str, name: &str) -> &'a str {
    let value = &xml[xml.find(&format!("{name}='")).unwrap() + name.len() + 2..];
    &value[..value.find('\'').unwrap()]
}

impl Daemon {
    fn fails(&self, operation: &str) -> Result<(), String> {
        match self.failing.borrow().contains(&operation) {
            true => Err(format!("{operation}: the test says no")),
            false => Ok(()),
        }
    }
}

impl FilterHost for Daemon {
    fn location(&self) -> String {
        "qemu+tls://lyon/system".into()
    }
    fn addresses(&self) -> Vec<Ipv4Addr> {
        vec![Ipv4Addr::new(192, 0, 2, 10)]
    }
    fn network(&self, name: &str) -> Result<Option<HostNetwork>, String> {
        Ok(self.networks.borrow().get(name).cloned())
    }
    fn ensure_network(&self, xml: &str, name: &str) -> Result<(), String> {
        let mut networks = self.networks.borrow_mut();
        let network = networks.entry(name.to_owned()).or_insert(HostNetwork { xml: xml.to_owned(), active: false });
        if tag(&network.xml, "uuid") != tag(xml, "uuid") {
            return Err(format!("network '{name}' already exists with another uuid"));
        }
        network.active = true;
        Ok(())
    }
    fn remove_network(&self, name: &str) -> Result<(), String> {
        self.fails("remove_network")?;
        self.networks.borrow_mut().remove(name);
        Ok(())
    }
    fn filters(&self, prefix: &str) -> Result<Vec<String>, String> {
        Ok(self.filters.borrow().keys().filter(|name| name.starts_with(prefix)).cloned().collect())
    }
    fn filter(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self.filters.borrow().get(name).cloned())
    }
    fn define_filter(&self, xml: &str) -> Result<(), String> {
        let name = attribute(xml, "name");
        if self.failing_filter.borrow().as_deref() == Some(name) {
            return Err(format!("define {name}: the test says no"));
        }
        self.filters.borrow_mut().insert(attribute(xml, "name").to_owned(), xml.to_owned());
        Ok(())
    }
    fn remove_filter(&self, name: &str) -> Result<(), String> {
        self.filters.borrow_mut().remove(name);
        Ok(())
    }
}

fn config() -> BridgeConfig {
    BridgeConfig {
        bridge: "sdsec-lyon".into(),
        subnet: "10.216.0.0/24".parse().unwrap(),
        publish_address: Ipv4Addr::UNSPECIFIED,
    }
}

fn policy(node: &str) -> FlowPolicy {
    FlowPolicy { node: node.into(), ..FlowPolicy::default() }
}

fn site(dir: &tempfile::TempDir, location: &str) -> SiteNetwork {
    SiteNetwork::new(dir.path(), location, config())
}

#[test]
fn a_site_keeps_one_filter_per_lease_under_its_owner_token_and_removes_all_with_the_last() {
    let (dir, daemon) = (tempfile::tempdir().unwrap(), Daemon::default());
    // Another owner's filter and a filter of a bridge named like ours' prefix stay untouched.
    daemon.filters.borrow_mut().insert("sdsec-0123456789ab-aa".into(), "<filter/>".into());
    daemon.filters.borrow_mut().insert("sdsec-sdsec-lyon-b-aa".into(), "<filter/>".into());
    let site = site(&dir, "qemu+tls://lyon/system");
    let front = site.attach(&daemon, policy("front"), 80).unwrap();
    site.bind(&front.tap, "i-front").unwrap();
    let back = site.attach(&daemon, policy("back"), 80).unwrap();
    assert_ne!(front.ip, back.ip);
    let network = daemon.network("sdsec-lyon").unwrap().expect("the site's network");
    assert!(network.active);
    let token = owner_of(&network.xml).unwrap();
    assert!(front.tap.starts_with(&format!("sdsec-{token}-")) && back.tap.starts_with(&format!("sdsec-{token}-")));
    assert_eq!(daemon.filters.borrow().len(), 4);
    assert!(daemon.filter(&front.tap).unwrap().unwrap().contains("<all dstipaddr='192.0.2.10'/>"));

    site.release(&daemon, LeaseKey::Instance("i-front")).unwrap();
    site.release(&daemon, LeaseKey::Tap(&back.tap)).unwrap();
    assert!(daemon.network("sdsec-lyon").unwrap().is_none(), "the network goes with the last lease");
    let left: Vec<String> = daemon.filters.borrow().keys().cloned().collect();
    assert_eq!(left, ["sdsec-0123456789ab-aa", "sdsec-sdsec-lyon-b-aa"], "only others' filters are left");
}

#[test]
fn a_network_of_that_name_with_another_owner_is_refused_and_nothing_is_kept() {
    let (dir, daemon) = (tempfile::tempdir().unwrap(), Daemon::default());
    let theirs = crate::site_xml::network_xml(&config(), "0123456789ab");
    daemon.networks.borrow_mut().insert("sdsec-lyon".into(), HostNetwork { xml: theirs.clone(), active: true });
    let site = site(&dir, "qemu+tls://lyon/system");
    let err = site.check(&daemon).unwrap_err();
    assert!(
        matches!(&err, NetworkError::BridgeTaken { owner: BridgeOwner::Site { token }, .. } if token == "0123456789ab")
    );
    let err = site.attach(&daemon, policy("front"), 80).unwrap_err();
    assert!(matches!(err, NetworkError::BridgeTaken { .. }), "{err}");
    assert!(daemon.filters.borrow().is_empty(), "no filter is left: {:?}", daemon.filters.borrow());
    assert_eq!(daemon.network("sdsec-lyon").unwrap().unwrap().xml, theirs, "theirs is untouched");
    assert!(site.lease("i-front").unwrap().is_none());

    // The same daemon through another spelling of its URI is another site: refused too,
    // never two lease files handing out one subnet.
    daemon.networks.borrow_mut().clear();
    let site = site_with_lease(&dir, &daemon, "qemu+tls://lyon/system");
    let respelled = self::site(&dir, "qemu+tls://lyon:16514/system");
    assert!(matches!(respelled.attach(&daemon, policy("other"), 80), Err(NetworkError::BridgeTaken { .. })));
    assert_eq!(daemon.filters.borrow().len(), 1);
    site.release(&daemon, LeaseKey::Instance("i-front")).unwrap();
}

fn site_with_lease(dir: &tempfile::TempDir, daemon: &Daemon, location: &str) -> SiteNetwork {
    let site = site(dir, location);
    let front = site.attach(daemon, policy("front"), 80).unwrap();
    site.bind(&front.tap, "i-front").unwrap();
    site
}

#[test]
fn refresh_reports_a_stopped_network_and_a_changed_filter_and_restores_both() {
    let (dir, daemon) = (tempfile::tempdir().unwrap(), Daemon::default());
    let site = site_with_lease(&dir, &daemon, "qemu+tls://lyon/system");
    assert!(site.repair(&daemon).unwrap().is_empty(), "nothing changed, nothing reported");

    let tap = site.lease("i-front").unwrap().unwrap().tap;
    let wanted = daemon.filter(&tap).unwrap().unwrap();
    daemon.filters.borrow_mut().insert(tap.clone(), wanted.replacen("action='drop'", "action='accept'", 1));
    assert_eq!(site.repair(&daemon).unwrap().iter().map(Drift::to_string).collect::<Vec<_>>().len(), 1);
    assert_eq!(daemon.filter(&tap).unwrap().unwrap(), wanted, "restored");

    // A stopped network is started again, but the guest's interface was cut for good: that
    // instance is reported (not repairable) until it is released.
    daemon.networks.borrow_mut().get_mut("sdsec-lyon").unwrap().active = false;
    let found = site.repair(&daemon).unwrap();
    assert!(found[0].to_string().contains("stopped") && found[0].repairable(), "{found:?}");
    assert!(daemon.network("sdsec-lyon").unwrap().unwrap().active);
    let detached = |found: &[Drift]| found.iter().any(|d| !d.repairable() && d.instance() == Some("i-front"));
    assert!(detached(&found), "{found:?}");
    let again = site.repair(&daemon).unwrap();
    assert!(again.len() == 1 && detached(&again), "still reported: {again:?}");
    site.release(&daemon, LeaseKey::Instance("i-front")).unwrap();
    let replacement = site_with_lease(&dir, &daemon, "qemu+tls://lyon/system");
    assert!(replacement.repair(&daemon).unwrap().is_empty(), "the replacement is attached");
}

#[test]
fn with_no_lease_left_another_owners_network_of_that_name_is_left_alone() {
    let (dir, daemon) = (tempfile::tempdir().unwrap(), Daemon::default());
    let site = site_with_lease(&dir, &daemon, "qemu+tls://lyon/system");
    site.release(&daemon, LeaseKey::Instance("i-front")).unwrap();
    let theirs = crate::site_xml::network_xml(&config(), "0123456789ab");
    daemon.networks.borrow_mut().insert("sdsec-lyon".into(), HostNetwork { xml: theirs.clone(), active: true });
    assert!(site.repair(&daemon).unwrap().is_empty());
    site.release(&daemon, LeaseKey::Instance("i-gone")).unwrap();
    assert_eq!(daemon.network("sdsec-lyon").unwrap().unwrap().xml, theirs);
}

#[test]
fn what_a_failed_last_release_left_is_removed_by_the_next_refresh() {
    let (dir, daemon) = (tempfile::tempdir().unwrap(), Daemon::default());
    let site = site_with_lease(&dir, &daemon, "qemu+tls://lyon/system");
    daemon.failing.borrow_mut().push("remove_network");
    assert!(matches!(site.release(&daemon, LeaseKey::Instance("i-front")), Err(NetworkError::Site { .. })));
    assert!(daemon.network("sdsec-lyon").unwrap().is_some());
    daemon.failing.borrow_mut().clear();
    assert!(site.repair(&daemon).unwrap().is_empty());
    assert!(daemon.network("sdsec-lyon").unwrap().is_none(), "removed by the refresh");
}

#[test]
fn a_failing_filter_does_not_keep_the_others_from_being_written() {
    let (dir, daemon) = (tempfile::tempdir().unwrap(), Daemon::default());
    let site = site_with_lease(&dir, &daemon, "qemu+tls://lyon/system");
    let back = site.attach(&daemon, policy("back"), 80).unwrap();
    let front = site.lease("i-front").unwrap().unwrap().tap;
    daemon.filters.borrow_mut().clear();
    *daemon.failing_filter.borrow_mut() = Some(front.clone());
    assert!(matches!(site.repair(&daemon), Err(NetworkError::Site { .. })));
    assert!(daemon.filter(&back.tap).unwrap().is_some(), "the other filter is written");
    daemon.failing_filter.borrow_mut().take();
    assert_eq!(site.repair(&daemon).unwrap().len(), 1, "the failed one is still missing, and restored");
    assert!(daemon.filter(&front).unwrap().is_some());
    // Nothing leased here: an update of an instance on another network changes nothing.
    let elsewhere = self::site(&tempfile::tempdir().unwrap(), "qemu+tls://paris/system");
    assert!(matches!(elsewhere.set_policy(&daemon, "i-x", policy("x")), Err(NetworkError::NotLeased(_))));
}
