//! An instance's log kept as a volume of sdsec's pool on the daemon's host: libvirt opens
//! the file for QEMU, and the provider reads it back over the connection
//! (`virStorageVolDownload`), wherever the daemon runs.

use std::io;

use virt::storage_vol::StorageVol;
use virt::stream::Stream;
use virt::sys;

use super::pool::{ImagePool, PoolError};
use crate::logs::LogFile;

/// Bytes read from the stream at a time.
const CHUNK: usize = 256 << 10;

#[derive(Debug, Clone)]
pub struct VolumeLog {
    pool: ImagePool,
    name: String,
}

impl VolumeLog {
    pub fn new(pool: ImagePool, name: String) -> VolumeLog {
        VolumeLog { pool, name }
    }

    fn volume(&self) -> io::Result<Option<StorageVol>> {
        self.pool.lookup(&self.name).map_err(pool_io)
    }
}

fn pool_io(e: PoolError) -> io::Error {
    io::Error::other(e.to_string())
}

fn virt_io(e: &virt::error::Error) -> io::Error {
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
                Ok(_) => return Err(io::Error::other("the download stream failed")),
                Err(e) => {
                    let _ = stream.abort();
                    return Err(virt_io(&e));
                }
            }
        }
        stream.finish().map_err(|e| virt_io(&e))?;
        Ok(bytes)
    }

    fn rotate(&self, cap: u64) -> io::Result<bool> {
        let Some(volume) = self.volume()? else { return Ok(false) };
        let len = volume.info().map_err(|e| virt_io(&e))?.capacity;
        if len <= cap {
            return Ok(false);
        }
        let previous = previous_name(&self.name);
        self.pool.delete(&previous).map_err(pool_io)?;
        let xml = format!(
            "<volume><name>{previous}</name><capacity unit='bytes'>{len}</capacity>\
             <target><format type='raw'/><permissions><mode>0600</mode></permissions></target></volume>"
        );
        StorageVol::create_xml_from(self.pool.storage_pool(), &xml, &volume, 0).map_err(|e| virt_io(&e))?;
        // Whatever the guest writes meanwhile lands past the new end (QEMU appends).
        volume.resize(0, sys::VIR_STORAGE_VOL_RESIZE_SHRINK).map_err(|e| virt_io(&e))?;
        Ok(true)
    }

    fn previous(&self) -> Box<dyn LogFile> {
        Box::new(VolumeLog { pool: self.pool.clone(), name: previous_name(&self.name) })
    }

    fn describe(&self) -> String {
        format!("volume {} of {}", self.name, self.pool.describe())
    }
}

/// The volume a rotation keeps the log's previous content in.
pub fn previous_name(name: &str) -> String {
    format!("{name}.1")
}
