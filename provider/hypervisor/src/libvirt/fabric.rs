//! [`Fabric`] on a libvirt daemon: its networks (`virNetwork*`) and network filters
//! (`virNWFilter*`).

use virt::{ErrorNumber, Network};

use super::{Libvirt, is};
use crate::Result;
use crate::fabric::{Fabric, NetworkDefinition};

impl Libvirt {
    fn lookup_network(&self, name: &str) -> Result<Option<Network>> {
        match self.conn.lookup_network_by_name(name) {
            Ok(network) => Ok(Some(network)),
            Err(e) if is(&e, ErrorNumber::NO_NETWORK) => Ok(None),
            Err(e) => Err(self.fail(format!("look up network {name}"), &e)),
        }
    }
}

impl Fabric for Libvirt {
    fn location(&self) -> String {
        self.uri.clone()
    }

    fn addresses(&self) -> Vec<std::net::Ipv4Addr> {
        self.remote.iter().copied().collect()
    }

    fn network(&self, name: &str) -> Result<Option<NetworkDefinition>> {
        let Some(network) = self.lookup_network(name)? else { return Ok(None) };
        let xml = network.xml_desc(0).map_err(|e| self.fail(format!("read network {name}"), &e))?;
        let active = network.is_active().map_err(|e| self.fail(format!("look at network {name}"), &e))?;
        Ok(Some(NetworkDefinition { xml, active }))
    }

    fn ensure_network(&self, xml: &str, name: &str) -> Result<()> {
        let network = match self.lookup_network(name)? {
            Some(network) => network,
            // Under the XML's own UUID: libvirt refuses it when another defined one of this
            // name meanwhile, which is never started here.
            None => self.conn.define_network_xml(xml).map_err(|e| self.fail(format!("define network {name}"), &e))?,
        };
        let uuid = network.uuid_string().map_err(|e| self.fail(format!("look at network {name}"), &e))?;
        let wanted = xml.split("<uuid>").nth(1).and_then(|rest| rest.split("</uuid>").next());
        if wanted.is_some_and(|wanted| !wanted.trim().eq_ignore_ascii_case(&uuid)) {
            return Err(crate::HypervisorError::Libvirt {
                uri: self.uri.clone(),
                action: format!("start network {name}"),
                reason: format!(
                    "a network of that name with another UUID ({uuid}) was defined meanwhile; it is left alone"
                ),
            });
        }
        let active = network.is_active().map_err(|e| self.fail(format!("look at network {name}"), &e))?;
        // Started meanwhile by another process of this state directory: as good.
        if !active
            && let Err(e) = network.create()
            && !network.is_active().unwrap_or(false)
        {
            return Err(self.fail(format!("start network {name}"), &e));
        }
        // Best effort: without it the network waits for the next boot to start it again.
        let _ = network.set_autostart(true);
        Ok(())
    }

    fn remove_network(&self, name: &str) -> Result<()> {
        let Some(network) = self.lookup_network(name)? else { return Ok(()) };
        if network.is_active().unwrap_or(false)
            && let Err(e) = network.destroy()
            && network.is_active().unwrap_or(true)
        {
            return Err(self.fail(format!("stop network {name}"), &e));
        }
        match network.undefine() {
            Ok(()) => Ok(()),
            Err(e) if is(&e, ErrorNumber::NO_NETWORK) => Ok(()),
            Err(e) => Err(self.fail(format!("remove network {name}"), &e)),
        }
    }

    fn filters(&self, prefix: &str) -> Result<Vec<String>> {
        let names = self.conn.list_nw_filters().map_err(|e| self.fail("list network filters", &e))?;
        Ok(names.into_iter().filter(|name| name.starts_with(prefix)).collect())
    }

    fn filter(&self, name: &str) -> Result<Option<String>> {
        match self.conn.lookup_nwfilter_by_name(name) {
            Ok(filter) => {
                filter.xml_desc(0).map(Some).map_err(|e| self.fail(format!("read network filter {name}"), &e))
            }
            Err(e) if is(&e, ErrorNumber::NO_NWFILTER) => Ok(None),
            Err(e) => Err(self.fail(format!("look up network filter {name}"), &e)),
        }
    }

    fn define_filter(&self, xml: &str) -> Result<()> {
        self.conn.define_nwfilter_xml(xml).map(drop).map_err(|e| self.fail("define a network filter", &e))
    }

    fn remove_filter(&self, name: &str) -> Result<()> {
        let filter = match self.conn.lookup_nwfilter_by_name(name) {
            Ok(filter) => filter,
            Err(e) if is(&e, ErrorNumber::NO_NWFILTER) => return Ok(()),
            Err(e) => return Err(self.fail(format!("look up network filter {name}"), &e)),
        };
        filter.undefine().map_err(|e| self.fail(format!("remove network filter {name}"), &e))
    }
}
