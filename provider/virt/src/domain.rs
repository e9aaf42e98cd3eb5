//! Domains (`virDomain*`).

use crate::api::{RawDomainInfo, borrowed_string, c_string, c_string_opt, owned_string, ptr_of};
use crate::error::{Error, check};
use crate::stream::Stream;

handle!(
    /// A domain, running or defined.
    Domain,
    virDomainRef,
    virDomainFree
);

/// A `virDomainState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainState {
    NoState,
    Running,
    Blocked,
    Paused,
    Shutdown,
    Shutoff,
    Crashed,
    PmSuspended,
    /// A state newer than this crate.
    Other(u8),
}

impl DomainState {
    fn from_raw(state: u8) -> DomainState {
        match state {
            0 => DomainState::NoState,
            1 => DomainState::Running,
            2 => DomainState::Blocked,
            3 => DomainState::Paused,
            4 => DomainState::Shutdown,
            5 => DomainState::Shutoff,
            6 => DomainState::Crashed,
            7 => DomainState::PmSuspended,
            other => DomainState::Other(other),
        }
    }
}

impl Domain {
    pub fn name(&self) -> Result<String, Error> {
        // SAFETY: a live domain; the name lives as long as it.
        borrowed_string(unsafe { (self.api.virDomainGetName)(self.raw()) }).ok_or_else(|| Error::last(self.api))
    }

    pub fn xml_desc(&self, flags: u32) -> Result<String, Error> {
        // SAFETY: a live domain; the string returned is the caller's to free.
        owned_string(unsafe { (self.api.virDomainGetXMLDesc)(self.raw(), flags) }).ok_or_else(|| Error::last(self.api))
    }

    /// The domain's state.
    pub fn state(&self) -> Result<DomainState, Error> {
        let mut raw = RawDomainInfo::default();
        // SAFETY: `raw` is a `virDomainInfo` the call fills.
        check(self.api, unsafe { (self.api.virDomainGetInfo)(self.raw(), &mut raw) })?;
        Ok(DomainState::from_raw(raw.state))
    }

    /// The metadata of `kind` (an element: under namespace `uri`).
    pub fn metadata(&self, kind: i32, uri: Option<&str>, flags: u32) -> Result<String, Error> {
        let uri = c_string_opt(uri)?;
        // SAFETY: a live domain, a valid or NULL C string; the result is the caller's to free.
        let xml = unsafe { (self.api.virDomainGetMetadata)(self.raw(), kind, ptr_of(&uri), flags) };
        owned_string(xml).ok_or_else(|| Error::last(self.api))
    }

    pub fn set_metadata(
        &self,
        kind: i32,
        metadata: Option<&str>,
        key: Option<&str>,
        uri: Option<&str>,
        flags: u32,
    ) -> Result<(), Error> {
        let (metadata, key, uri) = (c_string_opt(metadata)?, c_string_opt(key)?, c_string_opt(uri)?);
        // SAFETY: a live domain and valid or NULL C strings.
        let result = unsafe {
            (self.api.virDomainSetMetadata)(self.raw(), kind, ptr_of(&metadata), ptr_of(&key), ptr_of(&uri), flags)
        };
        check(self.api, result).map(drop)
    }

    pub fn is_persistent(&self) -> Result<bool, Error> {
        // SAFETY: a live domain.
        check(self.api, unsafe { (self.api.virDomainIsPersistent)(self.raw()) }).map(|r| r == 1)
    }

    pub fn suspend(&self) -> Result<(), Error> {
        // SAFETY: a live domain.
        check(self.api, unsafe { (self.api.virDomainSuspend)(self.raw()) }).map(drop)
    }

    pub fn resume(&self) -> Result<(), Error> {
        // SAFETY: a live domain.
        check(self.api, unsafe { (self.api.virDomainResume)(self.raw()) }).map(drop)
    }

    pub fn destroy(&self) -> Result<(), Error> {
        // SAFETY: a live domain.
        check(self.api, unsafe { (self.api.virDomainDestroy)(self.raw()) }).map(drop)
    }

    pub fn destroy_flags(&self, flags: u32) -> Result<(), Error> {
        // SAFETY: a live domain.
        check(self.api, unsafe { (self.api.virDomainDestroyFlags)(self.raw(), flags) }).map(drop)
    }

    pub fn undefine(&self) -> Result<(), Error> {
        // SAFETY: a live domain.
        check(self.api, unsafe { (self.api.virDomainUndefine)(self.raw()) }).map(drop)
    }

    /// Connects `stream` to the domain's channel named `name`.
    pub fn open_channel(&self, name: Option<&str>, stream: &Stream, flags: u32) -> Result<(), Error> {
        let name = name.map(c_string).transpose()?;
        // SAFETY: a live domain and stream, a valid or NULL C string.
        check(self.api, unsafe { (self.api.virDomainOpenChannel)(self.raw(), ptr_of(&name), stream.raw(), flags) })
            .map(drop)
    }
}
