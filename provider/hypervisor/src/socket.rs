//! Where an instance's unix sockets (QMP, control channel) live. Socket paths are limited to
//! 107 bytes, and a state directory deep in a workspace easily exceeds that; such instances
//! get their sockets in a short private directory instead (`$XDG_RUNTIME_DIR/sdsec`, else `/tmp/sdsec-<uid>`,
//! created 0700 and refused unless it is a real directory owned by this user).

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{HypervisorError, Result};

/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

fn short_dir() -> PathBuf {
    let uid = rustix::process::getuid().as_raw();
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("sdsec"),
        None => PathBuf::from(format!("/tmp/sdsec-{uid}")),
    }
}

/// The socket `name` (e.g. `qmp.sock`) of instance `id` whose directory is `dir`, creating
/// the short directory when it is needed.
pub fn path(dir: &Path, id: &str, name: &str) -> Result<PathBuf> {
    let natural = dir.join(name);
    if natural.as_os_str().len() <= MAX_SOCKET_PATH {
        return Ok(natural);
    }
    let short = short_dir();
    let fail = |e| HypervisorError::from(fsutil::io("prepare the control socket directory", &short)(e));
    match std::fs::DirBuilder::new().mode(0o700).create(&short) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail(e)),
    }
    let meta = std::fs::symlink_metadata(&short).map_err(fail)?;
    let ours =
        meta.is_dir() && meta.uid() == rustix::process::getuid().as_raw() && meta.permissions().mode() & 0o077 == 0;
    if !ours {
        return Err(fail(std::io::Error::other("not a private directory of this user; remove it")));
    }
    Ok(short.join(format!("{id}.{name}")))
}

/// Removes the sockets kept outside the instance directory (its own go with it).
pub fn remove(dir: &Path, id: &str) {
    for name in [crate::registry::QMP_SOCKET, crate::registry::CONTROL_SOCKET] {
        if let Ok(path) = path(dir, id, name)
            && !path.starts_with(dir)
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_directories_get_a_short_socket() {
        let short = Path::new("/s/instances/i-0123456789abcdef");
        assert_eq!(path(short, "i-0123456789abcdef", "qmp.sock").unwrap(), short.join("qmp.sock"));
        let long = PathBuf::from(format!("/{}/instances/i-0123456789abcdef", "d".repeat(100)));
        let socket = path(&long, "i-0123456789abcdef", "control.sock").unwrap();
        assert!(socket.as_os_str().len() <= MAX_SOCKET_PATH, "{}", socket.display());
        assert!(socket.ends_with("i-0123456789abcdef.control.sock"));
    }
}
