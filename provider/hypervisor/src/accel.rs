//! Which accelerator QEMU uses. KVM only where it is real hardware virtualisation: some
//! hosts offer a `/dev/kvm` backed by PVM (the `kvm_pvm` module), under which stock
//! kernels hang, so `auto` needs `vmx`/`svm` in the CPU flags, a usable /dev/kvm and no
//! `kvm_pvm`; otherwise TCG, whose guests need the TSC frequency on the command line.

use std::fs::OpenOptions;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

impl std::str::FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            other => Err(format!("`{other}` is not an accelerator; use auto, kvm or tcg")),
        }
    }
}

/// The facts of the host the choice rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub hardware_virtualisation: bool,
    pub dev_kvm_usable: bool,
    pub kvm_pvm_loaded: bool,
    /// From /proc/cpuinfo, for `tsc_early_khz`.
    pub cpu_khz: Option<u64>,
}

impl HostFacts {
    pub fn read() -> HostFacts {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let modules = std::fs::read_to_string("/proc/modules").unwrap_or_default();
        HostFacts {
            hardware_virtualisation: cpu_flags_have_virtualisation(&cpuinfo),
            dev_kvm_usable: OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok(),
            kvm_pvm_loaded: Path::new("/sys/module/kvm_pvm").exists()
                || modules.lines().any(|l| l.split_whitespace().next() == Some("kvm_pvm")),
            cpu_khz: cpu_khz(&cpuinfo),
        }
    }

    /// Why KVM cannot be used, or `None` when it can.
    pub fn kvm_refusal(&self) -> Option<&'static str> {
        if !self.hardware_virtualisation {
            Some("the CPU flags have neither vmx nor svm (no hardware virtualisation)")
        } else if self.kvm_pvm_loaded {
            Some("/dev/kvm is provided by kvm_pvm, under which stock kernels hang")
        } else if !self.dev_kvm_usable {
            Some("/dev/kvm cannot be opened for reading and writing")
        } else {
            None
        }
    }

    pub fn choose(&self, choice: AccelChoice) -> Result<Accel, String> {
        match (choice, self.kvm_refusal()) {
            (AccelChoice::Tcg, _) | (AccelChoice::Auto, Some(_)) => Ok(Accel::Tcg),
            (AccelChoice::Kvm | AccelChoice::Auto, None) => Ok(Accel::Kvm),
            (AccelChoice::Kvm, Some(why)) => Err(why.to_owned()),
        }
    }
}

fn cpu_flags_have_virtualisation(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|flag| flag == "vmx" || flag == "svm"))
}

fn cpu_khz(cpuinfo: &str) -> Option<u64> {
    let line = cpuinfo.lines().find(|l| l.starts_with("cpu MHz"))?;
    let mhz: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
    Some((mhz * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(hw: bool, kvm: bool, pvm: bool) -> HostFacts {
        HostFacts { hardware_virtualisation: hw, dev_kvm_usable: kvm, kvm_pvm_loaded: pvm, cpu_khz: Some(2_000_000) }
    }

    #[test]
    fn kvm_only_on_real_hardware_virtualisation() {
        assert_eq!(facts(true, true, false).choose(AccelChoice::Auto), Ok(Accel::Kvm));
        // PVM's /dev/kvm: usable, but no vmx/svm and kvm_pvm loaded.
        assert_eq!(facts(false, true, true).choose(AccelChoice::Auto), Ok(Accel::Tcg));
        assert_eq!(facts(true, true, true).choose(AccelChoice::Auto), Ok(Accel::Tcg));
        assert_eq!(facts(true, false, false).choose(AccelChoice::Auto), Ok(Accel::Tcg));
        assert!(facts(false, true, true).choose(AccelChoice::Kvm).unwrap_err().contains("vmx"));
        assert_eq!(facts(false, false, false).choose(AccelChoice::Tcg), Ok(Accel::Tcg));
    }

    #[test]
    fn cpuinfo_is_read() {
        let info = "processor : 0\ncpu MHz\t\t: 2793.436\nflags\t\t: fpu vme svm sse\n";
        assert!(cpu_flags_have_virtualisation(info));
        assert!(!cpu_flags_have_virtualisation("flags : fpu vmxnet\n"));
        assert_eq!(cpu_khz(info), Some(2_793_436));
        assert_eq!("kvm".parse(), Ok(AccelChoice::Kvm));
        assert!("xen".parse::<AccelChoice>().is_err());
    }
}
