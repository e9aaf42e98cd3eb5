//! The file tree of an image, derived from its manifest alone: the builder fills it with
//! bytes, the store checks a stored initramfs against it.

use std::collections::BTreeMap;

use abi::paths;

use crate::input::FileRef;
use crate::manifest::Manifest;

/// Base names that never go into an image: shells and package managers would hand an
/// attacker who gets code execution a way to do more.
pub const FORBIDDEN_NAMES: &[&str] = &[
    "sh", "bash", "dash", "ash", "zsh", "busybox", "apt", "apt-get", "dpkg", "rpm", "yum", "dnf", "apk", "pip", "pip3",
];

pub const DIR_MODE: u32 = 0o755;
pub const EXEC_MODE: u32 = 0o555;
pub const DATA_MODE: u32 = 0o444;
/// The plan holds every principal's credential hash: root's alone (init reads it before
/// anything drops privileges; the application runs as another user).
pub const PLAN_MODE: u32 = 0o400;

/// Bumped whenever the tree or its modes change, or how an image is stored (2: the plan
/// became 0400; 3: the kernel is stored once per digest, outside the image).
pub const LAYOUT_REVISION: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "`{path}` would put a file named {name:?} into the image, which must hold no shell or package manager: leave it out (a file that is not one may take another name; content is checked too)"
    )]
    Forbidden { path: String, name: String },
    #[error(
        "{path} is a shell ({shell}) by its content, whatever its name: images hold no shell; use a server built without one (for BusyBox, a build without the sh/ash/hush applets)"
    )]
    Shell { path: std::path::PathBuf, shell: &'static str },
    #[error("the application name `{0}` must be a plain file name (letters, digits, `.`, `_`, `-`; not `.` or `..`)")]
    BadAppName(String),
    #[error("the module path `{0}` must be absolute, under /lib/modules/, without `.`, `..` or empty parts")]
    BadModulePath(String),
    #[error("the module path `{0}` is given twice")]
    DuplicateModule(String),
}

/// One entry of the tree: a directory when `file` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Relative to the root, as cpio stores it: `app/api`.
    pub path: String,
    pub mode: u32,
    pub file: Option<FileRef>,
}

pub fn check_app_name(name: &str) -> Result<(), LayoutError> {
    if paths::is_app_name(name) { Ok(()) } else { Err(LayoutError::BadAppName(name.to_owned())) }
}

/// The module's path relative to the root (`lib/modules/...`).
pub fn module_path(image_path: &str) -> Result<String, LayoutError> {
    let bad = || LayoutError::BadModulePath(image_path.to_owned());
    let rest = image_path.strip_prefix(&format!("/{}/", paths::MODULES)).ok_or_else(bad)?;
    if rest.split('/').any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\0')) {
        return Err(bad());
    }
    Ok(paths::module(rest))
}

/// Refuses any path with a forbidden base name.
pub fn refuse_forbidden(path: &str) -> Result<(), LayoutError> {
    let name = path.rsplit('/').next().unwrap_or(path);
    match FORBIDDEN_NAMES.iter().find(|f| **f == name) {
        Some(f) => Err(LayoutError::Forbidden { path: format!("/{path}"), name: (*f).to_owned() }),
        None => Ok(()),
    }
}

/// Refuses an executable that is a shell by its content ([`crate::shell`]).
pub fn refuse_shell(path: &std::path::Path, bytes: &[u8]) -> Result<(), LayoutError> {
    match crate::shell::recognise(bytes) {
        Some(shell) => Err(LayoutError::Shell { path: path.to_owned(), shell: shell.0 }),
        None => Ok(()),
    }
}

/// The complete tree, parents included, sorted by path components (the cpio order).
pub fn tree(manifest: &Manifest) -> Result<Vec<Slot>, LayoutError> {
    let app = &manifest.application;
    check_app_name(&app.name)?;
    let mut leaves = vec![
        Slot { path: paths::INIT.to_owned(), mode: EXEC_MODE, file: Some(manifest.init.clone()) },
        Slot { path: paths::app(&app.name), mode: EXEC_MODE, file: Some(app.file()) },
        Slot { path: paths::PLAN.to_owned(), mode: PLAN_MODE, file: Some(manifest.plan.clone()) },
        Slot { path: paths::MODULES.to_owned(), mode: DIR_MODE, file: None },
    ];
    leaves.extend(paths::MOUNT_POINTS.iter().map(|m| Slot { path: (*m).to_owned(), mode: DIR_MODE, file: None }));
    for module in &manifest.modules {
        let file = FileRef { sha256: module.sha256.clone(), size: module.size };
        leaves.push(Slot { path: module_path(&module.path)?, mode: DATA_MODE, file: Some(file) });
    }
    let mut by_path: BTreeMap<Vec<String>, Slot> = BTreeMap::new();
    for slot in leaves {
        let key: Vec<String> = slot.path.split('/').map(str::to_owned).collect();
        for n in 1..key.len() {
            let parent = key[..n].to_vec();
            let path = parent.join("/");
            by_path.entry(parent).or_insert(Slot { path, mode: DIR_MODE, file: None });
        }
        let path = slot.path.clone();
        if by_path.insert(key, slot).is_some() {
            return Err(LayoutError::DuplicateModule(format!("/{path}")));
        }
    }
    let slots: Vec<Slot> = by_path.into_values().collect();
    for slot in &slots {
        refuse_forbidden(&slot.path)?;
    }
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_are_checked() {
        for ok in ["api", "my-app_2.bin"] {
            check_app_name(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b"] {
            assert!(check_app_name(bad).is_err(), "{bad}");
        }
        assert_eq!(module_path("/lib/modules/6.1/virtio_net.ko").unwrap(), "lib/modules/6.1/virtio_net.ko");
        for bad in ["lib/modules/x.ko", "/lib/modules/../x", "/lib/modules//x", "/etc/x.ko", "/lib/modules/"] {
            assert!(module_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_plan_is_root_s_alone() {
        let file = FileRef { sha256: "00".repeat(32), size: 1 };
        let manifest = Manifest {
            format: crate::manifest::MANIFEST_FORMAT,
            builder: crate::manifest::builder_id(),
            node: "api".into(),
            plan: file.clone(),
            kernel: file.clone(),
            cmdline: String::new(),
            init: file.clone(),
            application: crate::manifest::AppRef {
                name: "api".into(),
                sha256: file.sha256.clone(),
                size: 1,
                args: Vec::new(),
                port: 8080,
            },
            modules: Vec::new(),
            memory_mb: 128,
            vcpus: 1,
        };
        let slots = tree(&manifest).unwrap();
        let plan = slots.iter().find(|s| s.path == paths::PLAN).unwrap();
        assert_eq!(plan.mode, 0o400, "the application must not read credential hashes");
        assert!(slots.iter().filter(|s| s.file.is_some()).all(|s| s.mode & 0o002 == 0), "nothing world-writable");
    }

    #[test]
    fn every_shell_and_package_manager_is_refused() {
        for name in FORBIDDEN_NAMES {
            let err = refuse_forbidden(&format!("lib/modules/{name}")).unwrap_err().to_string();
            assert!(err.contains("no shell or package manager"), "{err}");
        }
        refuse_forbidden("app/shell-free").unwrap();
    }
}
