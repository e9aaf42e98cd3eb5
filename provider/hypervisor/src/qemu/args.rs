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
use crate::control::option;
use crate::registry::{AUDIT, CONSOLE, PIDFILE};

/// The process name QEMU shows, which also lets a pid be checked to be ours.
pub fn process_name(id: &str) -> String {
    format!("sdsec-{id}")
}

/// `microvm` has no PCI bus: without this the kernel probes for one and logs a failure.
const MACHINE_CMDLINE: &str = "pci=off";

/// Free-page reporting: pages the guest frees are handed back to the host (the guest
/// kernel needs virtio-balloon, which sdsec's kernel has built in).
pub const BALLOON: &str = "virtio-balloon-device,free-page-reporting=on";

/// The kernel command line with what depends on this host rather than the image (both
/// backends boot the same guest).
pub fn cmdline(spec: &BootSpec, accel: Accel, cpu_khz: Option<u64>) -> String {
    match (accel, cpu_khz) {
        // Without the frequency the guest calibrates the TSC against an emulated timer,
        // which takes long and gives a wrong clock under TCG. QEMU derives the emulated
        // TSC from the host's clock, but the guest's clocksource watchdog (an emulated timer
        // itself) sees it skew on a busy host and falls back to jiffies (4 ms granularity).
        (Accel::Tcg, Some(khz)) => format!("{} {MACHINE_CMDLINE} tsc_early_khz={khz} tsc=reliable", spec.cmdline),
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
    let mut args: Vec<OsString> = Vec::new();
    // `plain_name` and the id hold no commas.
    push(&mut args, &["-name", &format!("{},process={}", crate::plain_name(&spec.name), process_name(id))]);
    // `mem-merge`: guest memory is offered to KSM, which merges identical pages of
    // instances when the host turns it on (/sys/kernel/mm/ksm/run).
    let merge = if spec.merge_memory { "on" } else { "off" };
    push(&mut args, &["-machine", &format!("microvm,acpi=on,mem-merge={merge}")]);
    match accel {
        Accel::Kvm => push(&mut args, &["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => push(&mut args, &["-accel", &format!("tcg,thread=multi,tb-size={}", spec.tcg_cache_mb)]),
    }
    push(&mut args, &["-m", &spec.memory_mb.to_string(), "-smp", &spec.vcpus.to_string()]);
    // -no-reboot: a guest never restarts over its own memory, which sdsec's kernel takes
    // for fresh at boot (provider/image/kernel/patches/init-on-free-skips-boot-memory.patch).
    push(&mut args, &["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-daemonize"]);
    // QEMU confines itself with seccomp (no obsolete or scheduling calls). Spawning and
    // privilege changes stay allowed: `-daemonize` forks and calls setsid after the filter
    // is in place, and QEMU dies of SIGSYS without them.
    push(&mut args, &["-sandbox", "on,obsolete=deny,resourcecontrol=deny"]);
    args.extend(
        spec.nic
            .qemu_args(crate::snapshot::NETDEV, spec.guest_port, (std::net::Ipv4Addr::LOCALHOST, host_port))
            .into_iter()
            .map(OsString::from),
    );
    push(&mut args, &["-device", "virtio-rng-device"]);
    push(&mut args, &["-device", BALLOON]);
    // Appended, so that a log truncated by rotation is written again from its start.
    args.extend(["-chardev".into(), option("file,id=sdsecconsole,path=", &dir.join(CONSOLE), ",append=on")]);
    push(&mut args, &["-serial", "chardev:sdsecconsole"]);
    args.extend(crate::control::qemu_args(&dir.join(AUDIT), sockets.control.as_deref()));
    args.extend(["-qmp".into(), option("unix:", &sockets.qmp, ",server=on,wait=off")]);
    // These take a plain path, not QEMU's option syntax.
    for (flag, path) in [("-pidfile", &dir.join(PIDFILE)), ("-kernel", &spec.kernel), ("-initrd", &spec.initramfs)] {
        args.extend([flag.into(), path.as_os_str().to_owned()]);
    }
    args.push("-append".into());
    args.push(cmdline(spec, accel, cpu_khz).into());
    if spec.restore.is_some() {
        // The state arrives by descriptor once QEMU is up ([`crate::snapshot::load`]).
        push(&mut args, &["-incoming", "defer"]);
    }
    args
}

fn push(args: &mut Vec<OsString>, parts: &[&str]) {
    args.extend(parts.iter().map(OsString::from));
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
        assert_eq!(append, "console=ttyS0 quiet pci=off tsc_early_khz=2793436 tsc=reliable");
        assert!(text.contains(&"user,id=net0,hostfwd=tcp:127.0.0.1:18080-:80,restrict=on".to_owned()));
        assert!(text.contains(&"file,id=sdsecconsole,path=/s/console.log,append=on".to_owned()));
        assert!(text.windows(2).any(|w| w == ["-serial", "chardev:sdsecconsole"]));
        assert!(text.contains(&"file,id=sdsecaudit,path=/s/audit.log,append=on".to_owned()));
        assert!(text.contains(&"virtserialport,chardev=sdsecaudit,name=sdsec.audit".to_owned()));
        assert!(text.contains(&"virtio-serial-device,max_ports=3".to_owned()));
        assert!(text.contains(&"api,process=sdsec-i-1".to_owned()));
        // A guest never restarts in place: sdsec's kernel takes the memory it boots with
        // for the hypervisor's fresh zeroes (provider/image/kernel/patches/).
        assert!(text.contains(&"-no-reboot".to_owned()));
        assert!(!text.contains(&"kvm".to_owned()));
        assert!(text.windows(2).any(|w| w == ["-accel", "tcg,thread=multi,tb-size=16"]));
        assert!(text.windows(2).any(|w| w == ["-device", "virtio-balloon-device,free-page-reporting=on"]));
        assert!(text.windows(2).any(|w| w == ["-machine", "microvm,acpi=on,mem-merge=on"]));
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

        let private = BootSpec { merge_memory: false, ..spec() };
        let text: Vec<String> = args(&private, "i-1", Path::new("/s"), &sockets, Accel::Tcg, None, 0)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(text.windows(2).any(|w| w == ["-machine", "microvm,acpi=on,mem-merge=off"]));

        let kvm = args(&spec(), "i-1", Path::new("/s"), &sockets, Accel::Kvm, Some(2_793_436), 18080);
        let text: Vec<String> = kvm.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(text.windows(2).any(|w| w == ["-accel", "kvm"]));
        assert!(text.contains(&"console=ttyS0 quiet pci=off".to_owned()));
    }

    #[test]
    fn commas_in_paths_are_doubled_and_add_no_option() {
        let dir = Path::new("/tmp/a,b=c,server=off/i-1");
        let sockets = Sockets { qmp: dir.join("qmp.sock"), control: Some(dir.join("control.sock")) };
        let all = args(&spec(), "i-1", dir, &sockets, Accel::Tcg, None, 18080);
        let text: Vec<String> = all.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let at = |flag: &str, prefix: &str| -> Vec<String> {
            text.windows(2).filter(|w| w[0] == flag && w[1].starts_with(prefix)).map(|w| w[1].clone()).collect()
        };
        assert_eq!(
            at("-chardev", "file,id=sdsecconsole"),
            ["file,id=sdsecconsole,path=/tmp/a,,b=c,,server=off/i-1/console.log,append=on"]
        );
        assert_eq!(
            at("-chardev", "file,id=sdsecaudit"),
            ["file,id=sdsecaudit,path=/tmp/a,,b=c,,server=off/i-1/audit.log,append=on"]
        );
        assert_eq!(
            at("-chardev", "socket"),
            ["socket,id=sdsecctl,path=/tmp/a,,b=c,,server=off/i-1/control.sock,server=on,wait=off"]
        );
        assert_eq!(at("-qmp", "unix:"), ["unix:/tmp/a,,b=c,,server=off/i-1/qmp.sock,server=on,wait=off"]);
        // Plain paths stay as they are.
        assert_eq!(at("-pidfile", "/tmp"), ["/tmp/a,b=c,server=off/i-1/qemu.pid"]);
        let named = BootSpec { name: "a,b".into(), ..spec() };
        let text: Vec<String> = args(&named, "i-1", dir, &sockets, Accel::Tcg, None, 1)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(text.contains(&"ab,process=sdsec-i-1".to_owned()), "{text:?}");
    }
}
