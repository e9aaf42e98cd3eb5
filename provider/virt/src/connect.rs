//! A connection to a libvirt daemon (`virConnect*`).

use crate::api::{self, Ptr, RawNodeInfo, c_string, owned_string};
use crate::error::{Error, check};
use crate::{Domain, NWFilter, Network, StoragePool};

handle!(
    /// An open connection; closed when its last handle goes.
    Connect,
    virConnectRef,
    virConnectClose
);

/// What `virNodeGetInfo` says of the daemon's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeInfo {
    /// Memory in KiB.
    pub memory: u64,
    pub cpus: u32,
    pub mhz: u32,
}

impl Connect {
    /// Opens a read-write connection to the daemon at `uri` (loading libvirt first).
    pub fn open(uri: &str) -> Result<Connect, Error> {
        let api = api::api()?;
        let uri = c_string(uri)?;
        // SAFETY: `uri` is a valid C string for the call's duration.
        Connect::own(api, unsafe { (api.virConnectOpen)(uri.as_ptr()) })
    }

    /// The URI the daemon says this connection has.
    pub fn uri(&self) -> Result<String, Error> {
        // SAFETY: a live connection; the string returned is the caller's to free.
        owned_string(unsafe { (self.api.virConnectGetURI)(self.raw()) }).ok_or_else(|| Error::last(self.api))
    }

    /// The daemon's capabilities XML.
    pub fn capabilities(&self) -> Result<String, Error> {
        // SAFETY: as for `uri`.
        owned_string(unsafe { (self.api.virConnectGetCapabilities)(self.raw()) }).ok_or_else(|| Error::last(self.api))
    }

    /// Sends keepalives every `interval` seconds and closes the connection after `count`
    /// of them went unanswered (needs a running event loop).
    pub fn set_keep_alive(&self, interval: i32, count: u32) -> Result<(), Error> {
        // SAFETY: a live connection.
        check(self.api, unsafe { (self.api.virConnectSetKeepAlive)(self.raw(), interval, count) }).map(drop)
    }

    pub fn node_info(&self) -> Result<NodeInfo, Error> {
        let mut raw = RawNodeInfo::default();
        // SAFETY: `raw` is a `virNodeInfo` the call fills.
        check(self.api, unsafe { (self.api.virNodeGetInfo)(self.raw(), &mut raw) })?;
        #[allow(clippy::useless_conversion)] // `unsigned long` is 32 bits wide on some targets.
        Ok(NodeInfo { memory: u64::from(raw.memory), cpus: raw.cpus, mhz: raw.mhz })
    }

    pub fn lookup_domain_by_name(&self, name: &str) -> Result<Domain, Error> {
        let name = c_string(name)?;
        // SAFETY: a live connection and a valid C string; the domain returned is ours.
        Domain::own(self.api, unsafe { (self.api.virDomainLookupByName)(self.raw(), name.as_ptr()) })
    }

    /// Creates and starts a transient domain.
    pub fn create_domain_xml(&self, xml: &str, flags: u32) -> Result<Domain, Error> {
        let xml = c_string(xml)?;
        // SAFETY: as for `lookup_domain_by_name`.
        Domain::own(self.api, unsafe { (self.api.virDomainCreateXML)(self.raw(), xml.as_ptr(), flags) })
    }

    pub fn list_all_domains(&self, flags: u32) -> Result<Vec<Domain>, Error> {
        self.list(self.api.virConnectListAllDomains, flags, Domain::own)
    }

    pub fn lookup_network_by_name(&self, name: &str) -> Result<Network, Error> {
        let name = c_string(name)?;
        // SAFETY: as for `lookup_domain_by_name`.
        Network::own(self.api, unsafe { (self.api.virNetworkLookupByName)(self.raw(), name.as_ptr()) })
    }

    /// Defines a persistent network (not started).
    pub fn define_network_xml(&self, xml: &str) -> Result<Network, Error> {
        let xml = c_string(xml)?;
        // SAFETY: as for `lookup_domain_by_name`.
        Network::own(self.api, unsafe { (self.api.virNetworkDefineXML)(self.raw(), xml.as_ptr()) })
    }

    /// The names of every network filter the daemon has.
    pub fn list_nw_filters(&self) -> Result<Vec<String>, Error> {
        let filters = self.list(self.api.virConnectListAllNWFilters, 0, NWFilter::own)?;
        filters.iter().map(NWFilter::name).collect()
    }

    pub fn lookup_nwfilter_by_name(&self, name: &str) -> Result<NWFilter, Error> {
        let name = c_string(name)?;
        // SAFETY: as for `lookup_domain_by_name`.
        NWFilter::own(self.api, unsafe { (self.api.virNWFilterLookupByName)(self.raw(), name.as_ptr()) })
    }

    pub fn define_nwfilter_xml(&self, xml: &str) -> Result<NWFilter, Error> {
        let xml = c_string(xml)?;
        // SAFETY: as for `lookup_domain_by_name`.
        NWFilter::own(self.api, unsafe { (self.api.virNWFilterDefineXML)(self.raw(), xml.as_ptr()) })
    }

    pub fn lookup_storage_pool_by_name(&self, name: &str) -> Result<StoragePool, Error> {
        let name = c_string(name)?;
        // SAFETY: as for `lookup_domain_by_name`.
        StoragePool::own(self.api, unsafe { (self.api.virStoragePoolLookupByName)(self.raw(), name.as_ptr()) })
    }

    pub fn define_storage_pool_xml(&self, xml: &str, flags: u32) -> Result<StoragePool, Error> {
        let xml = c_string(xml)?;
        // SAFETY: as for `lookup_domain_by_name`.
        StoragePool::own(self.api, unsafe { (self.api.virStoragePoolDefineXML)(self.raw(), xml.as_ptr(), flags) })
    }

    /// Runs one of the `virConnectListAll*` calls and takes ownership of what it returned.
    fn list<T>(
        &self,
        call: unsafe extern "C" fn(Ptr, *mut *mut Ptr, u32) -> i32,
        flags: u32,
        own: fn(&'static api::Api, Ptr) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        list_all(self.api, self.raw(), call, flags, own)
    }
}

/// Runs a `vir*ListAll*(parent, &array, flags)` call: every object of the array becomes a
/// handle (which releases it), then the array is freed.
pub(crate) fn list_all<T>(
    api: &'static api::Api,
    parent: Ptr,
    call: unsafe extern "C" fn(Ptr, *mut *mut Ptr, u32) -> i32,
    flags: u32,
    own: fn(&'static api::Api, Ptr) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let mut array: *mut Ptr = std::ptr::null_mut();
    // SAFETY: `parent` is live; on success libvirt stores a malloc'ed array of `count`
    // referenced objects in `array`.
    let count = check(api, unsafe { call(parent, &mut array, flags) })?;
    let count = usize::try_from(count).unwrap_or(0);
    let items = if array.is_null() {
        Vec::new()
    } else {
        // SAFETY: `array` holds `count` pointers, each now owned by one handle.
        let raw = unsafe { std::slice::from_raw_parts(array, count) };
        raw.iter().filter_map(|&ptr| own(api, ptr).ok()).collect()
    };
    api::free_array(array);
    Ok(items)
}
