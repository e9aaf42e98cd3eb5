//! Which kernel images boot, as users name it: `sdsec` (the default), `debian-cloud`, or
//! a path.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KernelChoice {
    /// sdsec's own kernel (`sdsec kernel build`).
    #[default]
    Sdsec,
    /// Debian's cloud kernel (`sdsec kernel fetch`).
    DebianCloud,
    /// A kernel file (a PVH `vmlinux` or a `vmlinuz`), used as it is, with no modules.
    Path(PathBuf),
}

impl KernelChoice {
    /// `sdsec` and `debian-cloud` name the cached kernels; anything else is a path (write
    /// `./sdsec` for a file of that name in the working directory).
    pub fn parse(text: &str) -> KernelChoice {
        match text {
            "sdsec" => KernelChoice::Sdsec,
            "debian-cloud" => KernelChoice::DebianCloud,
            path => KernelChoice::Path(PathBuf::from(path)),
        }
    }

    /// The same choice with a relative path made absolute against `base`.
    pub fn absolute(self, base: &Path) -> KernelChoice {
        match self {
            KernelChoice::Path(path) if path.is_relative() => KernelChoice::Path(base.join(path)),
            other => other,
        }
    }
}

impl fmt::Display for KernelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelChoice::Sdsec => f.write_str("sdsec"),
            KernelChoice::DebianCloud => f.write_str("debian-cloud"),
            KernelChoice::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(KernelChoice::parse("sdsec"), KernelChoice::Sdsec);
        assert_eq!(KernelChoice::parse("debian-cloud"), KernelChoice::DebianCloud);
        assert_eq!(KernelChoice::parse("./sdsec"), KernelChoice::Path("./sdsec".into()));
        assert_eq!(KernelChoice::parse("/boot/vmlinux").to_string(), "/boot/vmlinux");
        assert_eq!(
            KernelChoice::parse("k/vmlinux").absolute(Path::new("/work")),
            KernelChoice::Path("/work/k/vmlinux".into())
        );
        assert_eq!(KernelChoice::Sdsec.absolute(Path::new("/work")), KernelChoice::Sdsec);
    }
}
