//! Seeding the guest kernel's random number generator from the host at boot.
//!
//! A microVM has no disk to keep a seed on, QEMU's TCG offers no RDRAND, and the virtio RNG
//! driver may be a module the image does not carry: without a seed, getrandom(2) blocks until
//! the kernel has gathered entropy by itself, which under TCG can take minutes. Anything that
//! asks for randomness early (the runtime's own keys, the application's TLS or session
//! secrets) would hang the boot. The host draws a seed for each instance and puts it in the
//! instance's overlay ([`abi::paths::RANDOM_SEED`], root's only); init credits it to the
//! kernel and deletes it before the application starts.

use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::path::Path;

/// `_IOW('R', 0x03, int[2])`: add entropy, crediting it (needs CAP_SYS_ADMIN).
const RNDADDENTROPY: libc::c_ulong = 0x4008_5203;
/// `_IO('R', 0x07)`: reseed the kernel's generator from its input pool now (needs
/// CAP_SYS_ADMIN).
const RNDRESEEDCRNG: libc::c_ulong = 0x5207;
/// Read at most this much: the host writes 64 bytes.
const MAX_SEED: u64 = 512;

#[derive(Debug, thiserror::Error)]
pub enum EntropyError {
    #[error("cannot read the random seed {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot remove the random seed {path}: {source}")]
    Remove { path: String, source: std::io::Error },
    #[error("the random seed {0} is too short to credit")]
    Short(String),
    #[error("cannot credit the random seed to the kernel: {0}")]
    Credit(std::io::Error),
}

/// Credits the seed at `path` to the kernel and removes the file. `Ok(false)` when there is
/// none (a host from before seeds): the kernel then gathers entropy by itself.
pub fn seed_from(path: &Path) -> Result<bool, EntropyError> {
    let shown = || path.display().to_string();
    let mut seed = Vec::new();
    match std::fs::File::open(path) {
        Ok(file) => {
            file.take(MAX_SEED).read_to_end(&mut seed).map_err(|source| EntropyError::Read { path: shown(), source })?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(EntropyError::Read { path: shown(), source }),
    };
    // Removed first: a seed must never be used twice, nor be readable later.
    std::fs::remove_file(path).map_err(|source| EntropyError::Remove { path: shown(), source })?;
    if seed.len() < 32 {
        return Err(EntropyError::Short(shown()));
    }
    credit(&seed).map_err(EntropyError::Credit)?;
    Ok(true)
}

/// Credits `seed` (fresh from the host) and has the kernel reseed its generator at once: a
/// copy restored from a snapshot starts with the generator state every copy of that
/// snapshot has, and an initialised generator reseeds only once a minute by itself.
pub fn reseed(seed: &[u8]) -> Result<(), EntropyError> {
    credit(seed).map_err(EntropyError::Credit)?;
    let urandom = std::fs::OpenOptions::new().write(true).open("/dev/urandom").map_err(EntropyError::Credit)?;
    ioctl_reseed(urandom.as_raw_fd()).map_err(EntropyError::Credit)
}

/// `struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }`, credited at
/// its full size: the seed comes from the host's getrandom(2).
fn credit(seed: &[u8]) -> std::io::Result<()> {
    let bits = i32::try_from(seed.len() * 8).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let len = i32::try_from(seed.len()).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // As u32 words, so the buffer is aligned as the kernel's struct is.
    let mut words = vec![0u32; 2 + seed.len().div_ceil(4)];
    words[0] = bits as u32;
    words[1] = len as u32;
    for (i, chunk) in seed.chunks(4).enumerate() {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        words[2 + i] = u32::from_ne_bytes(word);
    }
    let urandom = std::fs::OpenOptions::new().write(true).open("/dev/urandom")?;
    ioctl_add_entropy(urandom.as_raw_fd(), &words)
}

#[allow(unsafe_code)]
fn ioctl_add_entropy(fd: std::os::fd::RawFd, info: &[u32]) -> std::io::Result<()> {
    // SAFETY: `info` is a rand_pool_info laid out as the kernel expects (two ints, then
    // buf_size bytes of buffer, which `info` holds), alive for the call; the kernel only
    // reads it.
    let result = unsafe { libc::ioctl(fd, RNDADDENTROPY as _, info.as_ptr()) };
    if result < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

#[allow(unsafe_code)]
fn ioctl_reseed(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    // SAFETY: RNDRESEEDCRNG takes no argument; the descriptor is open for the call.
    let result = unsafe { libc::ioctl(fd, RNDRESEEDCRNG as _) };
    if result < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_seed_is_no_error_and_a_present_one_is_removed_after_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("random.seed");
        assert!(!seed_from(&path).unwrap());
        std::fs::write(&path, [7u8; 8]).unwrap();
        assert!(matches!(seed_from(&path), Err(EntropyError::Short(_))));
        assert!(!path.exists(), "removed even when refused: never used twice");
        std::fs::write(&path, [7u8; 64]).unwrap();
        // Crediting needs CAP_SYS_ADMIN: as root it succeeds, otherwise the kernel says EPERM.
        match seed_from(&path) {
            Ok(true) => {}
            Err(EntropyError::Credit(e)) => assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(!path.exists());
    }
}
