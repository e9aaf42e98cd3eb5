//! Seeding the guest kernel's random number generator from the host at boot.
//!
//! A microVM has no disk to keep a seed on, QEMU's TCG offers no RDRAND, and the virtio RNG
//! driver may be a module the image does not carry: without a seed, getrandom(2) blocks until
//! the kernel has gathered entropy by itself, which under TCG can take minutes. Anything that
//! asks for randomness early (the runtime's own keys, the application's TLS or session
//! secrets) would hang the boot. The host draws a seed for each instance and hands it over
//! on the control channel with the instance's key ([`super::provision`]); init credits it to
//! the kernel before the application starts.

use std::os::fd::AsRawFd as _;

/// `_IOW('R', 0x03, int[2])`: add entropy, crediting it (needs CAP_SYS_ADMIN).
const RNDADDENTROPY: libc::c_ulong = 0x4008_5203;
/// `_IO('R', 0x07)`: reseed the kernel's generator from its input pool now (needs
/// CAP_SYS_ADMIN).
const RNDRESEEDCRNG: libc::c_ulong = 0x5207;
/// Fewer bytes than this are not credited: the kernel wants 256 bits to initialise.
const MIN_SEED: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum EntropyError {
    #[error("the host's random seed has {0} bytes, too few to credit")]
    Short(usize),
    #[error("cannot credit the random seed to the kernel: {0}")]
    Credit(std::io::Error),
}

/// Credits `seed`, fresh from the host, to the kernel, which initialises its generator
/// with it.
pub fn seed(seed: &[u8]) -> Result<(), EntropyError> {
    if seed.len() < MIN_SEED {
        return Err(EntropyError::Short(seed.len()));
    }
    credit(seed).map_err(EntropyError::Credit)
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
    fn a_short_seed_is_refused_and_a_full_one_credited() {
        assert!(matches!(seed(&[7u8; 8]), Err(EntropyError::Short(8))));
        // Crediting needs CAP_SYS_ADMIN: as root it succeeds, otherwise the kernel says EPERM.
        match seed(&[7u8; 64]) {
            Ok(()) => {}
            Err(EntropyError::Credit(e)) => assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}
