//! What a saved snapshot is bound to beyond its image, as [`crate::Hypervisor::snapshot_compat`]
//! says it: what decides whether a stream loads, among what is cheap to read at every start.
//!
//! - the accelerator and the QEMU build (its path as found, size and change time: a package
//!   update replaces the file), whose device states the stream holds;
//! - under KVM, the host's CPU (model name and a fingerprint of its flags: the guest runs
//!   with `-cpu host`, whose features the stream's CPU state assumes) and the kernel's
//!   release (KVM's own state formats). Under TCG the CPU is emulated: neither matters.
//!
//! A change of any of these names another snapshot, made at the next start; the old one is
//! left to garbage collection.

use std::path::{Path, PathBuf};

use crate::accel::Accel;

/// The compat string of `binary` under `accel` on this host.
pub(super) fn compat(binary: &Path, accel: Accel) -> String {
    let qemu = format!("qemu {accel} {}", binary_identity(binary));
    match accel {
        Accel::Tcg => qemu,
        Accel::Kvm => {
            let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            format!("{qemu} {}", kvm_host(&cpuinfo, &release))
        }
    }
}

/// Which QEMU build runs: the binary's path (as found on PATH), size and change time.
fn binary_identity(binary: &Path) -> String {
    use std::os::unix::fs::MetadataExt as _;
    let found: Option<PathBuf> = if binary.components().count() > 1 {
        Some(binary.to_owned())
    } else {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(binary)).find(|p| p.is_file()))
    };
    let path = found.unwrap_or_else(|| binary.to_owned());
    match std::fs::metadata(&path) {
        Ok(m) => format!("{} {} {}.{}", path.display(), m.size(), m.ctime(), m.ctime_nsec()),
        Err(_) => path.display().to_string(),
    }
}

/// The host as KVM guests see it, from `/proc/cpuinfo` (its first processor) and the
/// kernel's release.
fn kvm_host(cpuinfo: &str, release: &str) -> String {
    let field = |name: &str| {
        cpuinfo
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(key, _)| key.trim() == name)
            .map_or("", |(_, value)| value.trim())
    };
    // The flags are long; a fingerprint keeps the string readable. FNV-1a: stable across
    // builds (the standard hasher is not), and no adversary chooses a CPU's flags.
    let flags =
        field("flags").bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("cpu={:?} flags={flags:016x} kernel={}", field("model name"), release.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\nflags\t\t: fpu vme vmx avx512f\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\nflags\t\t: fpu vme vmx avx512f\n";

    #[test]
    fn kvm_binds_to_the_cpu_model_its_flags_and_the_kernel_release() {
        let here = kvm_host(CPUINFO, "6.1.0-18-amd64\n");
        assert!(here.starts_with("cpu=\"Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\" flags="), "{here}");
        assert!(here.ends_with(" kernel=6.1.0-18-amd64"), "{here}");
        assert_eq!(here, kvm_host(CPUINFO, "6.1.0-18-amd64"), "the same host gives the same string");
        assert_ne!(here, kvm_host(CPUINFO, "6.1.0-21-amd64"), "another kernel");
        assert_ne!(here, kvm_host(&CPUINFO.replace("Gold 6248", "Gold 6348"), "6.1.0-18-amd64"), "another CPU");
        assert_ne!(here, kvm_host(&CPUINFO.replace(" avx512f", ""), "6.1.0-18-amd64"), "a CPU feature less");
    }

    #[test]
    fn tcg_binds_to_the_build_only_and_kvm_adds_the_host() {
        let tcg = compat(Path::new("/bin/sh"), Accel::Tcg);
        assert!(tcg.starts_with("qemu tcg /bin/sh "), "{tcg}");
        assert!(!tcg.contains("cpu="), "{tcg}");
        let kvm = compat(Path::new("/bin/sh"), Accel::Kvm);
        assert!(kvm.starts_with("qemu kvm /bin/sh ") && kvm.contains(" cpu=") && kvm.contains(" kernel="), "{kvm}");
    }
}
