//! The QEMU command line of an instance.
//!
//! `microvm` has no PCI, no firmware tables beyond ACPI and no legacy devices but the
//! serial port, which makes it the fastest x86 machine to boot a direct kernel. Devices
//! are virtio over MMIO, discovered through ACPI (the Debian cloud kernel does not take
//! them from the command line), so ACPI stays on.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::BootSpec;
use crate::accel::Accel;
use crate::registry::{CONSOLE, PIDFILE};

/// The process name QEMU shows, which also lets a pid be checked to be ours.
pub fn process_name(id: &str) -> String {
    format!("sdsec-{id}")
}

/// `microvm` has no PCI bus: without this the kernel probes for one and logs a failure.
const MACHINE_CMDLINE: &str = "pci=off";

/// The kernel command line with what depends on this host rather than the image.
pub fn cmdline(spec: &BootSpec, accel: Accel, cpu_khz: Option<u64>) -> String {
    match (accel, cpu_khz) {
        // Without it the guest calibrates the TSC against an emulated timer, which takes
        // long and gives a wrong clock under TCG.
        (Accel::Tcg, Some(khz)) => format!("{} {MACHINE_CMDLINE} tsc_early_khz={khz}", spec.cmdline),
        _ => format!("{} {MACHINE_CMDLINE}", spec.cmdline),
    }
}

/// The instance's unix sockets.
#[derive(Debug)]
pub struct Sockets {
    pub qmp: PathBuf,
    /// With a control channel only.
    pub control: Option<PathBuf>,
}

pub fn args(
    spec: &BootSpec,
    id: &str,
    dir: &Path,
    sockets: &Sockets,
    accel: Accel,
    cpu_khz: Option<u64>,
    host_port: u16,
) -> Vec<OsString> {
    let (netdev, nic) = spec.nic.qemu_args("net0", spec.guest_port, host_port);
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |parts: &[&str]| args.extend(parts.iter().map(OsString::from));
    push(&["-name", &format!("{},process={}", spec.name, process_name(id))]);
    push(&["-machine", "microvm,acpi=on"]);
    match accel {
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => push(&["-accel", "tcg,thread=multi"]),
    }
    push(&["-m", &spec.memory_mb.to_string(), "-smp", &spec.vcpus.to_string()]);
    push(&["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-daemonize"]);
    // QEMU confines itself with seccomp (no obsolete or scheduling calls). Spawning and
    // privilege changes stay allowed: `-daemonize` forks and calls setsid after the filter
    // is in place, and QEMU dies of SIGSYS without them.
    push(&["-sandbox", "on,obsolete=deny,resourcecontrol=deny"]);
    push(&["-netdev", &netdev, "-device", &nic]);
    push(&["-device", "virtio-rng-device"]);
    if let Some(socket) = &sockets.control {
        args.extend(crate::control::qemu_args(socket).into_iter().map(OsString::from));
    }
    let mut path_arg = |flag: &str, prefix: &str, path: &Path, suffix: &str| {
        let mut value = OsString::from(prefix);
        value.push(path.as_os_str());
        value.push(suffix);
        args.push(flag.into());
        args.push(value);
    };
    path_arg("-serial", "file:", &dir.join(CONSOLE), "");
    path_arg("-qmp", "unix:", &sockets.qmp, ",server=on,wait=off");
    path_arg("-pidfile", "", &dir.join(PIDFILE), "");
    path_arg("-kernel", "", &spec.kernel, "");
    path_arg("-initrd", "", &spec.initramfs, "");
    args.push("-append".into());
    args.push(cmdline(spec, accel, cpu_khz).into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Nic;

    fn spec() -> BootSpec {
        crate::sample_spec()
    }

    #[test]
    fn tcg_gets_the_tsc_frequency_and_kvm_the_host_cpu() {
        let sockets = Sockets { qmp: "/s/qmp.sock".into(), control: Some("/s/control.sock".into()) };
        let tcg = args(&spec(), "i-1", Path::new("/s"), &sockets, Accel::Tcg, Some(2_793_436), 18080);
        let text: Vec<String> = tcg.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let append = &text[text.iter().position(|a| a == "-append").unwrap() + 1];
        assert_eq!(append, "console=ttyS0 quiet pci=off tsc_early_khz=2793436");
        assert!(text.contains(&"user,id=net0,hostfwd=tcp:127.0.0.1:18080-:80,restrict=on".to_owned()));
        assert!(text.contains(&"file:/s/console.log".to_owned()));
        assert!(text.contains(&"api,process=sdsec-i-1".to_owned()));
        assert!(!text.contains(&"kvm".to_owned()));
        assert!(text.contains(&"socket,id=sdsecctl,path=/s/control.sock,server=on,wait=off".to_owned()));
        assert!(text.contains(&"virtserialport,chardev=sdsecctl,name=sdsec.control".to_owned()));

        let tap = BootSpec {
            nic: Nic::Tap {
                ifname: "sdt-0123456789".into(),
                mac: "52:54:00:d5:00:02".into(),
                ip: [10, 213, 0, 2].into(),
            },
            ..spec()
        };
        let text: Vec<String> = args(&tap, "i-1", Path::new("/s"), &sockets, Accel::Tcg, None, 0)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(text.contains(&"tap,id=net0,ifname=sdt-0123456789,script=no,downscript=no".to_owned()));
        assert!(text.contains(&"virtio-net-device,netdev=net0,mac=52:54:00:d5:00:02".to_owned()));

        let kvm = args(&spec(), "i-1", Path::new("/s"), &sockets, Accel::Kvm, Some(2_793_436), 18080);
        let text: Vec<String> = kvm.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(text.windows(2).any(|w| w == ["-accel", "kvm"]));
        assert!(text.contains(&"console=ttyS0 quiet pci=off".to_owned()));
    }
}
