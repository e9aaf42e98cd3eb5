//! sdsec's storage pool on a libvirt daemon: the kernels and initramfs its domains boot,
//! uploaded over the connection with libvirt's stream API, so that the daemon's host needs
//! nothing of the provider's filesystem.
//!
//! A volume is named by its content's digest (`sha256-<hex>`): a kernel is uploaded once for
//! every image that boots it. An upload goes to a volume of its own name first, is checked,
//! and only then copied to the digest's name on the daemon, so a cut connection or a
//! concurrent upload never leaves a wrong volume under that name. Before a boot each volume
//! is checked against its digest (downloaded and hashed); within a process the check is not
//! repeated while the volume's key, size and modification and change times are unchanged. A
//! volume that does not match (tampered with) is replaced ([`Placed::replaced`]). What
//! happens on the daemon's host between the check and QEMU opening the file is beyond what
//! libvirt's API can see.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use sha2::{Digest, Sha256};
use virt::{Connect, ErrorNumber, StoragePool, StorageVol, Stream, sys};

use super::is;
use super::volume_name::{DATED_SINCE, STAGING_MARK, digest_hex, staging_since, unix_secs};
pub use super::volume_name::{digest_of_volume_path, volume_name};

/// Where a pool sdsec defines keeps its volumes on the daemon's host: apart from libvirt's
/// own directories under /var/lib/libvirt.
const POOLS_DIR: &str = "/var/lib/libvirt/sdsec-pools";
const TRANSFER_CHUNK_BYTES: usize = 1 << 20;
/// Attempts at placing a volume when another process changes the pool meanwhile.
const PLACE_TRIES: usize = 3;
/// A staging volume older than this was left by an upload that was cut (the connection
/// lost, the process killed): no upload of an image takes this long.
const STALE_STAGING_SECS: u64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("libvirt at {uri}, storage pool `{pool}`: cannot {action}: {reason}{hint}")]
    Libvirt { uri: String, pool: String, action: String, reason: String, hint: &'static str },
    #[error("cannot read {path}: {source}")]
    Local { path: String, source: std::io::Error },
    #[error(
        "libvirt at {uri}, storage pool `{pool}`: {path} does not match its digest {digest} (the image changed \
         since it was built: rebuild it)"
    )]
    LocalMismatch { uri: String, pool: String, path: String, digest: String },
    #[error(
        "libvirt at {uri}, storage pool `{pool}`: volume {volume} does not match what was uploaded; check free space \
         and the disk under the pool's directory on the daemon's host, then retry"
    )]
    Corrupt { uri: String, pool: String, volume: String },
    #[error("storage pool name `{0}`: use letters, digits, `-` and `_`")]
    BadName(String),
    #[error("`{0}` is not a sha256 digest (`sha256:` and 64 lowercase hex digits)")]
    BadDigest(String),
}

impl From<PoolError> for crate::HypervisorError {
    fn from(e: PoolError) -> Self {
        crate::HypervisorError::Pool(Box::new(e))
    }
}

/// A volume ready to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The volume's path on the daemon's host.
    pub path: String,
    /// Whether a volume of the digest's name was there but did not match it, and was replaced.
    pub replaced: bool,
}

/// sdsec's pool on one daemon.
#[derive(Clone)]
pub struct ImagePool {
    conn: Connect,
    pool: StoragePool,
    name: String,
    uri: String,
    /// Tells this daemon's volumes apart from another's at the same path in the memo.
    uuid: String,
}

impl std::fmt::Debug for ImagePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImagePool").field("name", &self.name).field("uri", &self.uri).finish_non_exhaustive()
    }
}

impl ImagePool {
    /// The pool `name` on the daemon behind `conn`, defined (a directory under the daemon's
    /// /var/lib/libvirt/sdsec-pools), built and started when missing or stopped.
    pub fn open(conn: &Connect, name: &str) -> Result<ImagePool, PoolError> {
        if !crate::libvirt_pool_name_ok(name) {
            return Err(PoolError::BadName(name.to_owned()));
        }
        // libvirt prints every error on stderr by default, also those handled here (a
        // volume not there yet); they reach the caller as values instead.
        virt::error::silence_default_handler();
        let uri = conn.uri().unwrap_or_default();
        let fail = |action: &str, e: &virt::Error, hint: &'static str| PoolError::Libvirt {
            uri: uri.clone(),
            pool: name.to_owned(),
            action: action.to_owned(),
            reason: e.message().to_owned(),
            hint,
        };
        let pool = match conn.lookup_storage_pool_by_name(name) {
            Ok(pool) => pool,
            Err(e) if is(&e, ErrorNumber::NO_STORAGE_POOL) => {
                let xml = format!(
                    "<pool type='dir'><name>{name}</name><target><path>{POOLS_DIR}/{name}</path>\
                     <permissions><mode>0755</mode></permissions></target></pool>"
                );
                match conn.define_storage_pool_xml(&xml, 0) {
                    Ok(pool) => {
                        // A daemon restarted starts it again.
                        let _ = pool.set_autostart(true);
                        pool
                    }
                    // Another process defined it meanwhile.
                    Err(e) => conn.lookup_storage_pool_by_name(name).map_err(|_| fail("define it", &e, RW_HINT))?,
                }
            }
            Err(e) => return Err(fail("look it up", &e, "")),
        };
        if !pool.is_active().map_err(|e| fail("ask whether it runs", &e, ""))? {
            // Builds the directory when missing (a definition interrupted before does not
            // stay broken); another process may have started it meanwhile.
            if let Err(e) = pool.create(sys::VIR_STORAGE_POOL_CREATE_WITH_BUILD)
                && !pool.is_active().unwrap_or(false)
            {
                return Err(fail("start it", &e, START_HINT));
            }
        }
        let uuid = pool.uuid_string().map_err(|e| fail("read its uuid", &e, ""))?;
        Ok(ImagePool { conn: conn.clone(), pool, name: name.to_owned(), uri, uuid })
    }

    pub(super) fn fail(&self, action: impl Into<String>, e: &virt::Error) -> PoolError {
        let reason = e.message().to_owned();
        let hint = if reason.contains("No space left on device") { FULL_HINT } else { "" };
        PoolError::Libvirt { uri: self.uri.clone(), pool: self.name.clone(), action: action.into(), reason, hint }
    }

    /// The volume holding `local`'s bytes, whose digest is `digest` (`sha256:<hex>`, or
    /// `None` to compute it here): checked when it is there, uploaded when it is not or does
    /// not match.
    pub fn place(&self, local: &Path, digest: Option<&str>) -> Result<Placed, PoolError> {
        let hex = match digest {
            Some(digest) => digest_hex(digest)?,
            None => hash_file(local)?,
        };
        // One placement of a digest at a time in this process; other processes are met by
        // uploading under a name of one's own.
        let lock = placing(&self.uuid, &hex);
        let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let name = volume_name(&hex);
        let mut replaced = false;
        let mut last = None;
        for _ in 0..PLACE_TRIES {
            if let Some(volume) = self.lookup(&name)? {
                match self.matches(&volume, &hex) {
                    Ok(true) => return Ok(Placed { path: self.path(&volume)?, replaced }),
                    Ok(false) => match volume.delete(0) {
                        Ok(()) => replaced = true,
                        Err(e) if gone(&e) => {}
                        Err(e) => return Err(self.fail(format!("delete volume {name}, which does not match"), &e)),
                    },
                    // Deleted by another process while being read: look again.
                    Err(e) => last = Some(e),
                }
                continue;
            }
            self.sweep_stale_staging();
            match self.upload_as(local, &hex, &name) {
                Ok(volume) => return Ok(Placed { path: self.path(&volume)?, replaced }),
                // Another process put it there first: check theirs.
                Err(Placing::Raced(e)) => last = Some(e),
                Err(Placing::Failed(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or(PoolError::Corrupt { uri: self.uri.clone(), pool: self.name.clone(), volume: name }))
    }

    /// Whether the volume named for `hex` is there and matches it (no upload).
    pub fn holds(&self, hex: &str) -> Result<bool, PoolError> {
        match self.lookup(&volume_name(hex))? {
            Some(volume) => self.matches(&volume, hex),
            None => Ok(false),
        }
    }

    /// Deletes the staging volumes that uploads cut long ago left. Best effort: the next
    /// upload sweeps again.
    fn sweep_stale_staging(&self) {
        let Ok(names) = self.pool.list_volumes() else { return };
        let now = unix_secs();
        for name in names {
            // Names of earlier releases carry no time: left alone (they may be uploading).
            let dated = staging_since(&name).filter(|&since| since > DATED_SINCE);
            let stale = dated.is_some_and(|since| now.saturating_sub(since) > STALE_STAGING_SECS);
            if stale && let Ok(Some(volume)) = self.lookup(&name) {
                let _ = volume.delete(0);
            }
        }
    }

    pub(super) fn conn(&self) -> &Connect {
        &self.conn
    }

    pub(super) fn storage_pool(&self) -> &StoragePool {
        &self.pool
    }

    pub(super) fn describe(&self) -> String {
        format!("storage pool `{}` at {}", self.name, self.uri)
    }

    pub(super) fn lookup(&self, name: &str) -> Result<Option<StorageVol>, PoolError> {
        match self.pool.lookup_storage_vol_by_name(name) {
            Ok(volume) => Ok(Some(volume)),
            Err(e) if gone(&e) => {
                // Written by another connection since this one last looked: a refresh shows it.
                let _ = self.pool.refresh(0);
                match self.pool.lookup_storage_vol_by_name(name) {
                    Ok(volume) => Ok(Some(volume)),
                    Err(e) if gone(&e) => Ok(None),
                    Err(e) => Err(self.fail(format!("look up volume {name}"), &e)),
                }
            }
            Err(e) => Err(self.fail(format!("look up volume {name}"), &e)),
        }
    }

    fn path(&self, volume: &StorageVol) -> Result<String, PoolError> {
        volume.path().map_err(|e| self.fail("find a volume's path", &e))
    }

    /// Uploads `local` under a name of this process's own, checks it, and copies it to `name`
    /// on the daemon. The staging volume goes in any case.
    fn upload_as(&self, local: &Path, hex: &str, name: &str) -> Result<StorageVol, Placing> {
        let staging = format!(
            "{name}{STAGING_MARK}{}-{}-{}",
            unix_secs(),
            std::process::id(),
            fsutil::random_id("", 4).unwrap_or_default()
        );
        let outcome = self.upload(local, hex, &staging).and_then(|volume| {
            if !self.matches(&volume, hex).map_err(Placing::Failed)? {
                let volume = staging.clone();
                return Err(Placing::Failed(PoolError::Corrupt {
                    uri: self.uri.clone(),
                    pool: self.name.clone(),
                    volume,
                }));
            }
            let xml = volume_xml(name, volume.info().map(|i| i.capacity).unwrap_or_default());
            StorageVol::create_xml_from(&self.pool, &xml, &volume, 0).map_err(|e| {
                if is(&e, ErrorNumber::STORAGE_VOL_EXIST) {
                    Placing::Raced(self.fail(format!("create volume {name}"), &e))
                } else {
                    Placing::Failed(self.fail(format!("copy volume {staging} to {name}"), &e))
                }
            })
        });
        if let Ok(Some(volume)) = self.lookup(&staging) {
            let _ = volume.delete(0);
        }
        outcome
    }

    /// Creates volume `name` and streams `local` into it, hashing what it sends.
    fn upload(&self, local: &Path, hex: &str, name: &str) -> Result<StorageVol, Placing> {
        let read_err = |source| Placing::Failed(PoolError::Local { path: local.display().to_string(), source });
        let mut file = std::fs::File::open(local).map_err(read_err)?;
        let size = file.metadata().map_err(read_err)?.len();
        let volume = StorageVol::create_xml(&self.pool, &volume_xml(name, size), 0)
            .map_err(|e| Placing::Failed(self.fail(format!("create volume {name}"), &e)))?;
        let failed = |e: &virt::Error| Placing::Failed(self.fail(format!("upload volume {name}"), e));
        let stream = Stream::new(&self.conn, 0).map_err(|e| failed(&e))?;
        volume.upload(&stream, 0, size, 0).map_err(|e| failed(&e))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; TRANSFER_CHUNK_BYTES];
        let mut left = size;
        while left > 0 {
            let want = buffer.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match file.read(&mut buffer[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = stream.abort();
                    return Err(read_err(e));
                }
            };
            hasher.update(&buffer[..n]);
            let mut sent = 0;
            while sent < n {
                match stream.send(&buffer[sent..n]) {
                    Ok(k) if k > 0 => sent += k as usize,
                    // A blocking stream sends something or fails.
                    Ok(_) => return Err(Placing::Failed(self.stalled(stream, name))),
                    Err(e) => {
                        let error = failed(&e);
                        let _ = stream.abort();
                        return Err(error);
                    }
                }
            }
            left -= n as u64;
        }
        if left > 0 || hex_of(&hasher.finalize()) != hex {
            let _ = stream.abort();
            return Err(Placing::Failed(PoolError::LocalMismatch {
                uri: self.uri.clone(),
                pool: self.name.clone(),
                path: local.display().to_string(),
                digest: format!("sha256:{hex}"),
            }));
        }
        stream.finish().map_err(|e| failed(&e))?;
        Ok(volume)
    }

    fn stalled(&self, stream: Stream, name: &str) -> PoolError {
        let _ = stream.abort();
        PoolError::Libvirt {
            uri: self.uri.clone(),
            pool: self.name.clone(),
            action: format!("transfer volume {name}"),
            reason: "the stream moved no data".into(),
            hint: "",
        }
    }

    /// Downloads and hashes the volume, unless this process did so already and the volume's
    /// identity has not changed since (read before the download, so a write during it shows).
    fn matches(&self, volume: &StorageVol, hex: &str) -> Result<bool, PoolError> {
        let name = volume.name().unwrap_or_default();
        let identity = self.identity(volume).map_err(|e| self.fail(format!("describe volume {name}"), &e))?;
        let memo = verified();
        if let Some(identity) = &identity
            && memo.lock().unwrap_or_else(PoisonError::into_inner).get(identity).is_some_and(|h| h == hex)
        {
            return Ok(true);
        }
        let failed = |e: &virt::Error| self.fail(format!("download volume {name}"), e);
        let stream = Stream::new(&self.conn, 0).map_err(|e| failed(&e))?;
        volume.download(&stream, 0, 0, 0).map_err(|e| failed(&e))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; TRANSFER_CHUNK_BYTES];
        loop {
            match stream.recv(&mut buffer) {
                Ok(0) => break,
                Ok(n) if n > 0 => hasher.update(&buffer[..n as usize]),
                // A blocking stream receives something, ends or fails.
                Ok(_) => return Err(self.stalled(stream, &name)),
                Err(e) => {
                    let error = failed(&e);
                    let _ = stream.abort();
                    return Err(error);
                }
            }
        }
        stream.finish().map_err(|e| failed(&e))?;
        let found = hex_of(&hasher.finalize());
        let matches = found == hex;
        if matches && let Some(identity) = identity {
            memo.lock().unwrap_or_else(PoisonError::into_inner).insert(identity, found);
        }
        Ok(matches)
    }

    /// What changes when a volume's content may have: the daemon's pool, the volume's key,
    /// size and allocation, and its modification and change times (not the access time,
    /// which every download moves). `None` when the daemon reports no times (pools on block
    /// devices or network storage): such a volume is checked in full every time.
    fn identity(&self, volume: &StorageVol) -> Result<Option<String>, virt::Error> {
        let key = volume.key()?;
        let info = volume.info()?;
        let xml = volume.xml_desc(0)?;
        let element = |tag: &str| {
            let open = format!("<{tag}>");
            let at = xml.find(&open)? + open.len();
            xml[at..].find('<').map(|end| xml[at..at + end].trim().to_owned())
        };
        Ok(match (element("mtime"), element("ctime")) {
            (Some(mtime), Some(ctime)) if !mtime.is_empty() && !ctime.is_empty() => {
                Some(format!("{}|{key}|{}|{}|{mtime}|{ctime}", self.uuid, info.capacity, info.allocation))
            }
            _ => None,
        })
    }
}

/// Why an upload did not place the volume.
enum Placing {
    /// Another process placed or removed it meanwhile: look again.
    Raced(PoolError),
    Failed(PoolError),
}

const RW_HINT: &str = " (sdsec needs a read-write connection that may define storage pools; or name an existing \
                       directory pool with libvirt_pool)";
const FULL_HINT: &str = " (the disk under the pool's directory on the daemon's host is full: free space there, \
                         or name a pool on another disk with libvirt_pool)";
const START_HINT: &str = " (if its directory cannot be made, fix the pool's target path on the daemon's host or \
                          remove the definition with `virsh pool-undefine`)";

fn volume_xml(name: &str, size: u64) -> String {
    // No allocation: the daemon would otherwise fill the whole file with zeroes first.
    format!(
        "<volume><name>{name}</name><capacity unit='bytes'>{size}</capacity><allocation>0</allocation>\
         <target><format type='raw'/><permissions><mode>0644</mode></permissions></target></volume>"
    )
}

/// The volume is not there (any more).
fn gone(e: &virt::Error) -> bool {
    is(e, ErrorNumber::NO_STORAGE_VOL)
}

/// Volumes this process has hashed, by identity: their digest.
fn verified() -> &'static Mutex<HashMap<String, String>> {
    static VERIFIED: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    VERIFIED.get_or_init(Default::default)
}

/// The lock of placing `hex` in the pool `uuid`, in this process.
fn placing(uuid: &str, hex: &str) -> Arc<Mutex<()>> {
    static PLACING: OnceLock<Mutex<HashMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let locks = PLACING.get_or_init(Default::default);
    let mut locks = locks.lock().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(locks.entry(format!("{uuid}|{hex}")).or_default())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked_before_they_reach_a_volume_name() {
        let hex = "ab".repeat(32);
        assert_eq!(digest_hex(&format!("sha256:{hex}")).unwrap(), hex);
        for bad in ["ab", "sha256:AB", "sha256:'/><x", &format!("md5:{hex}"), &format!("sha256:{hex}0")] {
            assert!(matches!(digest_hex(bad), Err(PoolError::BadDigest(_))), "{bad}");
        }
        assert!(volume_xml(&volume_name(&hex), 7).contains("<allocation>0</allocation>"));
    }
}
