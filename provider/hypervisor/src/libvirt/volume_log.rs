//! An instance's log kept as a volume of sdsec's pool on the daemon's host: libvirt opens
//! the file for QEMU (through virtlogd where the daemon's `stdio_handler` is `logd`, its
//! default, which caps the file and keeps `<name>.0`, `.1`, ... before it), and the provider
//! reads it back over the connection (`virStorageVolDownload`), wherever the daemon runs.
//! sdsec does not rotate these logs itself: virtlogd owns the file while QEMU runs.

use std::io;
use std::sync::{Mutex, PoisonError};

use virt::{ErrorNumber, StorageVol, Stream};

use super::is;
use super::pool::{ImagePool, PoolError};
use crate::InstanceId;
use crate::logs::{LogFile, LogKind};

use super::xml;

/// Bytes read from the stream at a time.
const CHUNK: usize = 256 << 10;

#[derive(Debug)]
pub struct VolumeLog {
    pool: ImagePool,
    name: String,
    /// Looked up once it is there: each look at a remote daemon is a round trip.
    volume: Mutex<Option<StorageVol>>,
}

impl VolumeLog {
    pub fn new(pool: ImagePool, name: String) -> VolumeLog {
        VolumeLog { pool, name, volume: Mutex::new(None) }
    }

    fn volume(&self) -> io::Result<Option<StorageVol>> {
        let mut volume = self.volume.lock().unwrap_or_else(PoisonError::into_inner);
        if volume.is_none() {
            *volume = self.pool.lookup(&self.name).map_err(pool_io)?;
        }
        Ok(volume.clone())
    }
}

fn pool_io(e: PoolError) -> io::Error {
    io::Error::other(e.to_string())
}

fn virt_io(e: &virt::Error) -> io::Error {
    io::Error::other(e.message().to_owned())
}

impl LogFile for VolumeLog {
    fn size(&self) -> io::Result<u64> {
        match self.volume()? {
            // A directory pool's file volume: its capacity is the file's size, read anew.
            Some(volume) => volume.info().map(|info| info.capacity).map_err(|e| virt_io(&e)),
            None => Ok(0),
        }
    }

    fn read_at(&self, offset: u64, max: u64) -> io::Result<Vec<u8>> {
        let Some(volume) = self.volume()? else { return Ok(Vec::new()) };
        if max == 0 {
            return Ok(Vec::new());
        }
        let stream = Stream::new(self.pool.conn(), 0).map_err(|e| virt_io(&e))?;
        volume.download(&stream, offset, max, 0).map_err(|e| virt_io(&e))?;
        let mut bytes = Vec::new();
        let mut chunk = vec![0u8; CHUNK];
        loop {
            match stream.recv(&mut chunk) {
                Ok(0) => break,
                Ok(n) if n > 0 => bytes.extend_from_slice(&chunk[..n.unsigned_abs()]),
                outcome => {
                    let _ = stream.abort();
                    return Err(match outcome {
                        Err(e) => virt_io(&e),
                        Ok(_) => io::Error::other("the download stream failed"),
                    });
                }
            }
        }
        stream.finish().map_err(|e| virt_io(&e))?;
        Ok(bytes)
    }

    /// virtlogd rotates the file (or, with `stdio_handler = "file"`, nothing does).
    fn rotate(&self, _cap: u64) -> io::Result<bool> {
        Ok(false)
    }

    fn previous(&self) -> Box<dyn LogFile> {
        Box::new(VolumeLog::new(self.pool.clone(), format!("{}.0", self.name)))
    }

    fn describe(&self) -> String {
        format!("volume {} of {}", self.name, self.pool.describe())
    }
}

/// Makes the empty volume `name` for a log only the daemon writes (mode 0600, its owner),
/// replacing one left there; returns its path on the daemon's host.
pub fn create(pool: &ImagePool, name: &str) -> Result<String, PoolError> {
    let xml = format!(
        "<volume><name>{name}</name><capacity unit='bytes'>0</capacity>\
         <target><format type='raw'/><permissions><mode>0600</mode></permissions></target></volume>"
    );
    let volume = match StorageVol::create_xml(pool.storage_pool(), &xml, 0) {
        Ok(volume) => volume,
        Err(e) if is(&e, ErrorNumber::STORAGE_VOL_EXIST) => {
            if let Some(old) = pool.lookup(name)? {
                old.delete(0).map_err(|e| pool.fail(format!("replace volume {name}"), &e))?;
            }
            StorageVol::create_xml(pool.storage_pool(), &xml, 0)
                .map_err(|e| pool.fail(format!("create volume {name}"), &e))?
        }
        Err(e) => return Err(pool.fail(format!("create volume {name}"), &e)),
    };
    volume.path().map_err(|e| pool.fail("find a volume's path", &e))
}

/// Deletes every volume whose name starts with `prefix` (a log and what virtlogd kept of
/// it), all it can; the first failure, if any.
pub fn delete_all(pool: &ImagePool, prefix: &str) -> Result<(), PoolError> {
    let _ = pool.storage_pool().refresh(0);
    let names = pool.storage_pool().list_volumes().map_err(|e| pool.fail("list its volumes", &e))?;
    let mut first = None;
    for name in names.iter().filter(|n| n.starts_with(prefix)) {
        let deleted = match pool.lookup(name) {
            Ok(Some(volume)) => match volume.delete(0) {
                Err(e) if !is(&e, ErrorNumber::NO_STORAGE_VOL) => Err(pool.fail(format!("delete volume {name}"), &e)),
                _ => Ok(()),
            },
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = deleted {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// The volume of sdsec's pool holding one of instance `id`'s logs.
pub fn name(id: &InstanceId, kind: LogKind) -> String {
    let log = match kind {
        LogKind::Console => "console",
        LogKind::Audit => "audit",
    };
    format!("{}{log}.log", prefix(id))
}

/// What the names of instance `id`'s log volumes (and of virtlogd's older files of them)
/// start with.
pub fn prefix(id: &InstanceId) -> String {
    format!("{}.", xml::domain_name(id.as_str()))
}
