//! Storage pools (`virStoragePool*`) and their volumes (`virStorageVol*`).

use crate::api::{RawVolInfo, borrowed_string, c_string, owned_string};
use crate::connect::list_all;
use crate::error::{Error, check};
use crate::network::uuid_string;
use crate::stream::Stream;

handle!(
    /// A storage pool.
    StoragePool,
    virStoragePoolRef,
    virStoragePoolFree
);

handle!(
    /// A volume of a storage pool.
    StorageVol,
    virStorageVolRef,
    virStorageVolFree
);

/// What `virStorageVolGetInfo` says of a volume, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolInfo {
    pub capacity: u64,
    pub allocation: u64,
}

impl StoragePool {
    pub fn is_active(&self) -> Result<bool, Error> {
        // SAFETY: a live pool.
        check(self.api, unsafe { (self.api.virStoragePoolIsActive)(self.raw()) }).map(|r| r == 1)
    }

    /// Starts the (defined) pool.
    pub fn create(&self, flags: u32) -> Result<(), Error> {
        // SAFETY: a live pool.
        check(self.api, unsafe { (self.api.virStoragePoolCreate)(self.raw(), flags) }).map(drop)
    }

    pub fn set_autostart(&self, autostart: bool) -> Result<(), Error> {
        // SAFETY: a live pool.
        check(self.api, unsafe { (self.api.virStoragePoolSetAutostart)(self.raw(), i32::from(autostart)) }).map(drop)
    }

    pub fn uuid_string(&self) -> Result<String, Error> {
        // SAFETY: a live pool and a buffer of VIR_UUID_STRING_BUFLEN bytes.
        uuid_string(self.api, |buffer| unsafe { (self.api.virStoragePoolGetUUIDString)(self.raw(), buffer) })
    }

    /// Makes the daemon look at the pool's directory again (volumes other connections wrote).
    pub fn refresh(&self, flags: u32) -> Result<(), Error> {
        // SAFETY: a live pool.
        check(self.api, unsafe { (self.api.virStoragePoolRefresh)(self.raw(), flags) }).map(drop)
    }

    /// The names of the pool's volumes.
    pub fn list_volumes(&self) -> Result<Vec<String>, Error> {
        let volumes = list_all(self.api, self.raw(), self.api.virStoragePoolListAllVolumes, 0, StorageVol::own)?;
        volumes.iter().map(StorageVol::name).collect()
    }

    pub fn lookup_storage_vol_by_name(&self, name: &str) -> Result<StorageVol, Error> {
        let name = c_string(name)?;
        // SAFETY: a live pool and a valid C string; the volume returned is ours.
        StorageVol::own(self.api, unsafe { (self.api.virStorageVolLookupByName)(self.raw(), name.as_ptr()) })
    }
}

impl StorageVol {
    /// Creates a volume in `pool`.
    pub fn create_xml(pool: &StoragePool, xml: &str, flags: u32) -> Result<StorageVol, Error> {
        let xml = c_string(xml)?;
        // SAFETY: a live pool and a valid C string; the volume returned is ours.
        StorageVol::own(pool.api, unsafe { (pool.api.virStorageVolCreateXML)(pool.raw(), xml.as_ptr(), flags) })
    }

    /// Creates a volume in `pool` holding a copy of `from`, made on the daemon.
    pub fn create_xml_from(pool: &StoragePool, xml: &str, from: &StorageVol, flags: u32) -> Result<StorageVol, Error> {
        let xml = c_string(xml)?;
        // SAFETY: a live pool and volume and a valid C string; the volume returned is ours.
        let volume = unsafe { (pool.api.virStorageVolCreateXMLFrom)(pool.raw(), xml.as_ptr(), from.raw(), flags) };
        StorageVol::own(pool.api, volume)
    }

    pub fn name(&self) -> Result<String, Error> {
        // SAFETY: a live volume; the name lives as long as it.
        borrowed_string(unsafe { (self.api.virStorageVolGetName)(self.raw()) }).ok_or_else(|| Error::last(self.api))
    }

    pub fn key(&self) -> Result<String, Error> {
        // SAFETY: a live volume; the key lives as long as it.
        borrowed_string(unsafe { (self.api.virStorageVolGetKey)(self.raw()) }).ok_or_else(|| Error::last(self.api))
    }

    /// The volume's path on the daemon's host.
    pub fn path(&self) -> Result<String, Error> {
        // SAFETY: a live volume; the string returned is the caller's to free.
        owned_string(unsafe { (self.api.virStorageVolGetPath)(self.raw()) }).ok_or_else(|| Error::last(self.api))
    }

    pub fn info(&self) -> Result<VolInfo, Error> {
        let mut raw = RawVolInfo::default();
        // SAFETY: `raw` is a `virStorageVolInfo` the call fills.
        check(self.api, unsafe { (self.api.virStorageVolGetInfo)(self.raw(), &mut raw) })?;
        Ok(VolInfo { capacity: raw.capacity, allocation: raw.allocation })
    }

    pub fn xml_desc(&self, flags: u32) -> Result<String, Error> {
        // SAFETY: a live volume; the string returned is the caller's to free.
        owned_string(unsafe { (self.api.virStorageVolGetXMLDesc)(self.raw(), flags) })
            .ok_or_else(|| Error::last(self.api))
    }

    pub fn delete(&self, flags: u32) -> Result<(), Error> {
        // SAFETY: a live volume.
        check(self.api, unsafe { (self.api.virStorageVolDelete)(self.raw(), flags) }).map(drop)
    }

    /// Makes `stream` write `length` bytes into the volume from `offset`.
    pub fn upload(&self, stream: &Stream, offset: u64, length: u64, flags: u32) -> Result<(), Error> {
        // SAFETY: a live volume and stream.
        check(self.api, unsafe { (self.api.virStorageVolUpload)(self.raw(), stream.raw(), offset, length, flags) })
            .map(drop)
    }

    /// Makes `stream` read `length` bytes (0: to the end) of the volume from `offset`.
    pub fn download(&self, stream: &Stream, offset: u64, length: u64, flags: u32) -> Result<(), Error> {
        // SAFETY: a live volume and stream.
        check(self.api, unsafe { (self.api.virStorageVolDownload)(self.raw(), stream.raw(), offset, length, flags) })
            .map(drop)
    }
}
