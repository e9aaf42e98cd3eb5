//! sdsec's storage pool on a libvirt daemon: the kernels and initramfs its domains boot,
//! uploaded over the connection with libvirt's stream API, so that the daemon's host needs
//! nothing of the provider's filesystem.
//!
//! A volume is named by its content's digest (`sha256-<hex>`): a kernel is uploaded once for
//! every image that boots it. Before a boot each volume is checked against its digest
//! (downloaded and hashed); within a process the check is not repeated while the volume's
//! key, size and times are unchanged. A volume that does not match (tampered with, or an
//! upload cut short) is replaced, and reported as such; it is never booted.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};

use sha2::{Digest, Sha256};
use virt::connect::Connect;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;

use crate::HypervisorError;

/// The pool sdsec uses when the configuration names none.
pub const DEFAULT_POOL: &str = "sdsec";
/// Where a pool sdsec defines keeps its volumes on the daemon's host.
const POOL_ROOT: &str = "/var/lib/libvirt";
const CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("storage pool `{pool}`: cannot {action}: {reason}")]
    Libvirt { pool: String, action: String, reason: String },
    #[error("cannot read {path}: {source}")]
    Local { path: String, source: std::io::Error },
    #[error(
        "storage pool `{pool}`: volume {volume} does not match its digest after upload (the daemon's disk is full or failing?)"
    )]
    Corrupt { pool: String, volume: String },
    #[error("storage pool name `{0}`: use letters, digits, `-` and `_`")]
    BadName(String),
}

impl From<PoolError> for HypervisorError {
    fn from(e: PoolError) -> Self {
        HypervisorError::Pool(e.to_string())
    }
}

/// A volume ready to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The volume's path on the daemon's host.
    pub path: String,
    /// Whether a volume of that name was there but did not match its digest, and was replaced.
    pub replaced: bool,
}

/// sdsec's pool on one daemon.
pub struct ImagePool {
    pool: StoragePool,
    name: String,
}

impl std::fmt::Debug for ImagePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImagePool").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ImagePool {
    /// The pool `name` on the daemon, defined (a directory under the daemon's
    /// /var/lib/libvirt), built and started when missing or stopped.
    pub fn open(conn: &Connect, name: &str) -> Result<ImagePool, PoolError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(PoolError::BadName(name.to_owned()));
        }
        let fail = |action: &str, e: virt::error::Error| PoolError::Libvirt {
            pool: name.to_owned(),
            action: action.to_owned(),
            reason: e.message().to_owned(),
        };
        let pool = match conn.lookup_storage_pool_by_name(name) {
            Ok(pool) => pool,
            Err(_) => {
                let xml = format!(
                    "<pool type='dir'><name>{name}</name><target><path>{POOL_ROOT}/{name}</path>\
                     <permissions><mode>0755</mode></permissions></target></pool>"
                );
                let pool = conn.define_storage_pool_xml(&xml, 0).map_err(|e| fail("define it", e))?;
                pool.build(0).map_err(|e| fail("build it", e))?;
                // A daemon restarted starts it again.
                pool.set_autostart(true).map_err(|e| fail("mark it to start with the daemon", e))?;
                pool
            }
        };
        if !pool.is_active().map_err(|e| fail("ask whether it runs", e))? {
            pool.create(0).map_err(|e| fail("start it", e))?;
        }
        // Volumes written behind the daemon's back (or by another connection) show after a refresh.
        pool.refresh(0).map_err(|e| fail("refresh it", e))?;
        Ok(ImagePool { pool, name: name.to_owned() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn fail(&self, action: impl Into<String>, e: &virt::error::Error) -> PoolError {
        PoolError::Libvirt { pool: self.name.clone(), action: action.into(), reason: e.message().to_owned() }
    }

    /// The volume holding `local`'s bytes, whose digest is `digest` (`sha256:<hex>`, or
    /// `None` to compute it here): checked when it is there, uploaded when it is not or does
    /// not match.
    pub fn place(&self, conn: &Connect, local: &Path, digest: Option<&str>) -> Result<Placed, PoolError> {
        let hex = match digest.and_then(|d| d.strip_prefix("sha256:")) {
            Some(hex) => hex.to_owned(),
            None => hash_file(local)?,
        };
        let name = volume_name(&hex);
        let mut replaced = false;
        if let Ok(volume) = self.pool.lookup_storage_vol_by_name(&name) {
            if self.matches(conn, &volume, &hex)? {
                let path = volume.path().map_err(|e| self.fail(format!("find volume {name}"), &e))?;
                return Ok(Placed { path, replaced });
            }
            volume.delete(0).map_err(|e| self.fail(format!("delete volume {name}, which does not match"), &e))?;
            replaced = true;
        }
        let volume = self.upload(conn, local, &name)?;
        if !self.matches(conn, &volume, &hex)? {
            let _ = volume.delete(0);
            return Err(PoolError::Corrupt { pool: self.name.clone(), volume: name });
        }
        let path = volume.path().map_err(|e| self.fail(format!("find volume {name}"), &e))?;
        Ok(Placed { path, replaced })
    }

    /// Whether the volume named for `hex` is there and matches it (no upload).
    pub fn holds(&self, conn: &Connect, hex: &str) -> Result<bool, PoolError> {
        match self.pool.lookup_storage_vol_by_name(&volume_name(hex)) {
            Ok(volume) => self.matches(conn, &volume, hex),
            Err(_) => Ok(false),
        }
    }

    /// Creates the volume and streams `local` into it. A cut connection leaves a volume
    /// that does not match its digest: the next [`ImagePool::place`] replaces it.
    fn upload(&self, conn: &Connect, local: &Path, name: &str) -> Result<StorageVol, PoolError> {
        let read_err = |source| PoolError::Local { path: local.display().to_string(), source };
        let mut file = std::fs::File::open(local).map_err(read_err)?;
        let size = file.metadata().map_err(read_err)?.len();
        let xml = format!(
            "<volume><name>{name}</name><capacity unit='bytes'>{size}</capacity>\
             <target><format type='raw'/><permissions><mode>0644</mode></permissions></target></volume>"
        );
        let volume =
            StorageVol::create_xml(&self.pool, &xml, 0).map_err(|e| self.fail(format!("create volume {name}"), &e))?;
        let stream = Stream::new(conn, 0).map_err(|e| self.fail("open a stream", &e))?;
        volume.upload(&stream, 0, size, 0).map_err(|e| self.fail(format!("upload volume {name}"), &e))?;
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let n = match file.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = stream.abort();
                    return Err(read_err(e));
                }
            };
            let mut sent = 0;
            while sent < n {
                match stream.send(&buffer[sent..n]) {
                    Ok(k) if k > 0 => sent += k as usize,
                    Ok(_) => continue,
                    Err(e) => {
                        let error = self.fail(format!("upload volume {name}"), &e);
                        let _ = stream.abort();
                        return Err(error);
                    }
                }
            }
        }
        stream.finish().map_err(|e| self.fail(format!("finish the upload of volume {name}"), &e))?;
        Ok(volume)
    }

    /// Downloads and hashes the volume, unless this process did so already and the volume's
    /// identity has not changed since.
    fn matches(&self, conn: &Connect, volume: &StorageVol, hex: &str) -> Result<bool, PoolError> {
        let name = volume.name().unwrap_or_default();
        let identity = identity(volume).map_err(|e| self.fail(format!("describe volume {name}"), &e))?;
        let memo = verified();
        if memo.lock().unwrap_or_else(PoisonError::into_inner).get(&identity).is_some_and(|h| h == hex) {
            return Ok(true);
        }
        let stream = Stream::new(conn, 0).map_err(|e| self.fail("open a stream", &e))?;
        volume.download(&stream, 0, 0, 0).map_err(|e| self.fail(format!("download volume {name}"), &e))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; CHUNK];
        loop {
            match stream.recv(&mut buffer) {
                Ok(0) => break,
                Ok(n) if n > 0 => hasher.update(&buffer[..n as usize]),
                Ok(_) => continue,
                Err(e) => {
                    let error = self.fail(format!("download volume {name}"), &e);
                    let _ = stream.abort();
                    return Err(error);
                }
            }
        }
        stream.finish().map_err(|e| self.fail(format!("finish the download of volume {name}"), &e))?;
        let found = hex_of(&hasher.finalize());
        let matches = found == hex;
        if matches {
            memo.lock().unwrap_or_else(PoisonError::into_inner).insert(identity, found);
        }
        Ok(matches)
    }
}

/// A volume's name for the digest of its content.
pub fn volume_name(hex: &str) -> String {
    format!("sha256-{hex}")
}

/// What changes when a volume's content may have: its key (pool and path), its size and
/// allocation, and its times as the daemon reports them (a write moves the change time).
fn identity(volume: &StorageVol) -> Result<String, virt::error::Error> {
    let key = volume.key()?;
    let info = volume.info()?;
    let xml = volume.xml_desc(0)?;
    // Not the access time, which every download moves.
    let element = |tag: &str| {
        let open = format!("<{tag}>");
        let at = xml.find(&open)? + open.len();
        xml[at..].find('<').map(|end| xml[at..at + end].to_owned())
    };
    let (mtime, ctime) = (element("mtime").unwrap_or_default(), element("ctime").unwrap_or_default());
    Ok(format!("{key}|{}|{}|{mtime}|{ctime}", info.capacity, info.allocation))
}

/// Volumes this process has hashed, by identity: their digest.
fn verified() -> &'static Mutex<HashMap<String, String>> {
    static VERIFIED: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    VERIFIED.get_or_init(Default::default)
}

fn hash_file(path: &Path) -> Result<String, PoolError> {
    let read_err = |source| PoolError::Local { path: path.display().to_string(), source };
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(read_err)?;
    Ok(hex_of(&hasher.finalize()))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
