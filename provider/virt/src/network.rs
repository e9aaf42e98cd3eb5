//! Virtual networks (`virNetwork*`) and network filters (`virNWFilter*`).

use std::ffi::c_char;

use crate::api::{borrowed_string, owned_string};
use crate::error::{Error, check};

handle!(
    /// A virtual network.
    Network,
    virNetworkRef,
    virNetworkFree
);

handle!(
    /// A network filter.
    NWFilter,
    virNWFilterRef,
    virNWFilterFree
);

/// A UUID's text form and its NUL (`VIR_UUID_STRING_BUFLEN`).
pub(crate) const UUID_STRING_BUFLEN: usize = 37;

/// Reads a UUID string a `vir*GetUUIDString(object, buffer)` call writes.
pub(crate) fn uuid_string(
    api: &'static crate::api::Api,
    call: impl FnOnce(*mut c_char) -> i32,
) -> Result<String, Error> {
    let mut buffer = [0 as c_char; UUID_STRING_BUFLEN];
    check(api, call(buffer.as_mut_ptr()))?;
    borrowed_string(buffer.as_ptr()).ok_or_else(|| Error::last(api))
}

impl Network {
    pub fn xml_desc(&self, flags: u32) -> Result<String, Error> {
        // SAFETY: a live network; the string returned is the caller's to free.
        owned_string(unsafe { (self.api.virNetworkGetXMLDesc)(self.raw(), flags) }).ok_or_else(|| Error::last(self.api))
    }

    pub fn uuid_string(&self) -> Result<String, Error> {
        // SAFETY: a live network and a buffer of VIR_UUID_STRING_BUFLEN bytes.
        uuid_string(self.api, |buffer| unsafe { (self.api.virNetworkGetUUIDString)(self.raw(), buffer) })
    }

    pub fn is_active(&self) -> Result<bool, Error> {
        // SAFETY: a live network.
        check(self.api, unsafe { (self.api.virNetworkIsActive)(self.raw()) }).map(|r| r == 1)
    }

    /// Starts the (defined) network.
    pub fn create(&self) -> Result<(), Error> {
        // SAFETY: a live network.
        check(self.api, unsafe { (self.api.virNetworkCreate)(self.raw()) }).map(drop)
    }

    /// Stops it.
    pub fn destroy(&self) -> Result<(), Error> {
        // SAFETY: a live network.
        check(self.api, unsafe { (self.api.virNetworkDestroy)(self.raw()) }).map(drop)
    }

    pub fn undefine(&self) -> Result<(), Error> {
        // SAFETY: a live network.
        check(self.api, unsafe { (self.api.virNetworkUndefine)(self.raw()) }).map(drop)
    }

    pub fn set_autostart(&self, autostart: bool) -> Result<(), Error> {
        // SAFETY: a live network.
        check(self.api, unsafe { (self.api.virNetworkSetAutostart)(self.raw(), i32::from(autostart)) }).map(drop)
    }
}

impl NWFilter {
    pub fn name(&self) -> Result<String, Error> {
        // SAFETY: a live filter; the name lives as long as it.
        borrowed_string(unsafe { (self.api.virNWFilterGetName)(self.raw()) }).ok_or_else(|| Error::last(self.api))
    }

    pub fn xml_desc(&self, flags: u32) -> Result<String, Error> {
        // SAFETY: a live filter; the string returned is the caller's to free.
        owned_string(unsafe { (self.api.virNWFilterGetXMLDesc)(self.raw(), flags) })
            .ok_or_else(|| Error::last(self.api))
    }

    pub fn undefine(&self) -> Result<(), Error> {
        // SAFETY: a live filter.
        check(self.api, unsafe { (self.api.virNWFilterUndefine)(self.raw()) }).map(drop)
    }
}
