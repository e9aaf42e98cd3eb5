//! The file systems init mounts, and the console it writes to.

use rustix::mount::{MountFlags, mount, mount_remount};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("cannot mount {fs} on {target}: {source}")]
    Mount { fs: &'static str, target: &'static str, source: std::io::Error },
    #[error("cannot make the root file system read-only: {source}")]
    ReadOnly { source: std::io::Error },
}

struct Mount {
    fs: &'static str,
    target: &'static str,
    flags: MountFlags,
    data: &'static std::ffi::CStr,
}

/// Nothing is executed from these, and the application (an unprivileged user) can write
/// only to /tmp: /run stays root's.
const MOUNTS: &[Mount] = &[
    Mount { fs: "proc", target: "/proc", flags: MountFlags::NOSUID.union(NODEV_NOEXEC), data: c"" },
    Mount { fs: "sysfs", target: "/sys", flags: MountFlags::NOSUID.union(NODEV_NOEXEC), data: c"" },
    Mount { fs: "devtmpfs", target: "/dev", flags: MountFlags::NOSUID.union(MountFlags::NOEXEC), data: c"mode=0755" },
    Mount { fs: "tmpfs", target: "/tmp", flags: MountFlags::NOSUID.union(NODEV_NOEXEC), data: c"mode=1777" },
    Mount { fs: "tmpfs", target: "/run", flags: MountFlags::NOSUID.union(NODEV_NOEXEC), data: c"mode=0755" },
];

const NODEV_NOEXEC: MountFlags = MountFlags::NODEV.union(MountFlags::NOEXEC);

pub fn mount_all() -> Result<(), MountError> {
    for m in MOUNTS {
        match mount(m.fs, m.target, m.fs, m.flags, m.data) {
            // Already there (a kernel that mounts devtmpfs itself): fine.
            Ok(()) | Err(rustix::io::Errno::BUSY) => {}
            Err(e) => return Err(MountError::Mount { fs: m.fs, target: m.target, source: e.into() }),
        }
    }
    Ok(())
}

/// Points stdin, stdout and stderr at /dev/console. The kernel opened them on the
/// initramfs' own /dev/console, which devtmpfs now hides; reopening makes sure output
/// reaches the serial console whatever the kernel managed. Best effort: on failure the
/// descriptors the kernel gave stay.
pub fn reopen_console() {
    let Ok(console) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/console") else { return };
    let _ = rustix::stdio::dup2_stdin(&console);
    let _ = rustix::stdio::dup2_stdout(&console);
    let _ = rustix::stdio::dup2_stderr(&console);
}

/// Makes the root mount read-only. A bind remount changes the mount, not the file system,
/// so it works for the initramfs' rootfs whatever its type; /tmp and friends stay writable.
pub fn read_only_root() -> Result<(), MountError> {
    mount_remount("/", MountFlags::BIND | MountFlags::RDONLY, "").map_err(|e| MountError::ReadOnly { source: e.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mount_point_is_in_every_image() {
        // The kernel mounts nothing on a directory the image lacks.
        for m in MOUNTS {
            assert!(abi::paths::MOUNT_POINTS.contains(&m.target.trim_start_matches('/')), "{}", m.target);
        }
    }
}
