//! Where files are inside an image. Paths are relative to the image's root, as cpio stores
//! them; [`in_guest`] makes the absolute path the runtime opens.

use std::path::PathBuf;

/// The enforcement runtime, PID 1 (the kernel's `rdinit=`).
pub const INIT: &str = "init";
/// The node's enforcement plan, canonical JSON.
pub const PLAN: &str = "etc/sdsec/plan.json";
/// Kernel modules, loaded by init before it configures the network.
pub const MODULES: &str = "lib/modules";
/// The directory of the one application.
pub const APP_DIR: &str = "app";
/// Empty directories in every image, which init mounts file systems on.
pub const MOUNT_POINTS: &[&str] = &["dev", "proc", "run", "sys", "tmp"];

/// Whether `name` may name the application: one plain path component, so `app/<name>`
/// stays inside the application's directory.
pub fn is_app_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The application named `name`: `app/<name>`.
pub fn app(name: &str) -> String {
    format!("{APP_DIR}/{name}")
}

/// A module at `rest` under the modules directory: `lib/modules/<rest>`.
pub fn module(rest: &str) -> String {
    format!("{MODULES}/{rest}")
}

/// The absolute path of an image path inside the running guest.
pub fn in_guest(path: &str) -> PathBuf {
    PathBuf::from(format!("/{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_and_absolute_in_the_guest() {
        for path in [INIT, PLAN, MODULES, APP_DIR].into_iter().chain(MOUNT_POINTS.iter().copied()) {
            assert!(!path.starts_with('/') && !path.ends_with('/') && !path.is_empty(), "{path}");
        }
        assert_eq!(app("api"), "app/api");
        assert_eq!(module("6.1/virtio_net.ko"), "lib/modules/6.1/virtio_net.ko");
        assert_eq!(in_guest(PLAN), PathBuf::from("/etc/sdsec/plan.json"));
    }
}
