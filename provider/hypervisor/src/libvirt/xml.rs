//! The domain XML of an instance, and the sdsec record kept in its `<metadata>`.
//!
//! The guest is the same as under the QEMU backend: `microvm` booting the image's kernel
//! directly, ACPI on (the Debian cloud kernel finds its virtio-mmio devices through it),
//! no USB, no balloon, the serial console into a file the backend follows.
//!
//! Network and entropy go through `<qemu:commandline>`: libvirt 9.0 only builds PCI (or
//! CCW) virtio devices from `<interface>`/`<rng>`, and `microvm` has no PCI bus; its
//! `<portForward>` needs the passt backend, which slirp's `hostfwd` does not. Passing the
//! QEMU backend's `-netdev user,...,hostfwd=...` and `virtio-*-device` keeps both
//! backends' guests identical.

use std::path::Path;

use crate::accel::Accel;
use crate::{BootSpec, Instance};

/// The namespace of sdsec's element in a domain's `<metadata>`; a domain holding it is
/// one sdsec started.
pub const NAMESPACE: &str = "https://github.com/sdsec/terraform-provider-sdsec/xmlns/libvirt-instance/1";
pub const PREFIX: &str = "sdsec";

/// The domain's name: libvirt names are unique per connection, the id is unique too.
pub fn domain_name(id: &str) -> String {
    format!("sdsec-{id}")
}

/// Everything a domain's XML is made of.
#[derive(Debug)]
pub struct DomainDef<'a> {
    pub spec: &'a BootSpec,
    pub record: &'a Instance,
    pub accel: Accel,
    pub cpu_khz: Option<u64>,
    pub console: &'a Path,
    /// Where the runtime's audit channel is appended.
    pub audit: &'a Path,
    /// The control channel's socket, with one.
    pub control: Option<&'a Path>,
}

pub fn domain_xml(def: &DomainDef<'_>) -> String {
    let DomainDef { spec, record, accel, cpu_khz, console, audit, control } = def;
    let (kind, cpu, tcg) = match accel {
        // Only where KVM is real (see `accel`); under TCG libvirt's default CPU model.
        Accel::Kvm => ("kvm", "\n  <cpu mode='host-passthrough'/>".to_owned(), String::new()),
        Accel::Tcg => (
            "qemu",
            String::new(),
            format!("\n    <tcg>\n      <tb-cache unit='MiB'>{}</tb-cache>\n    </tcg>", spec.tcg_cache_mb),
        ),
    };
    let nic = spec.nic.qemu_args("sdsecnet0", spec.guest_port, record.endpoint.port());
    let serial_args = crate::control::qemu_args(audit, *control);
    let qemu_args: String = nic
        .into_iter()
        .chain(["-device", "virtio-rng-device", "-device", crate::qemu::args::BALLOON].map(str::to_owned))
        .chain(serial_args.iter().map(|a| a.to_string_lossy().into_owned()))
        .map(|a| format!("\n    <qemu:arg value='{}'/>", escape(&a)))
        .collect();
    format!(
        "<domain type='{kind}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <title>{title}</title>
  <metadata>
    {metadata}
  </metadata>
  <memory unit='MiB'>{memory}</memory>{memory_backing}
  <vcpu>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features>
    <acpi/>{tcg}
  </features>{cpu}
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='{console}' append='on'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>{qemu_args}
  </qemu:commandline>
</domain>
",
        name = domain_name(record.id.as_str()),
        title = escape(&record.name),
        metadata = metadata_element(record, true),
        memory = spec.memory_mb,
        memory_backing =
            if spec.merge_memory { "" } else { "\n  <memoryBacking>\n    <nosharepages/>\n  </memoryBacking>" },
        vcpus = spec.vcpus,
        kernel = escape(&spec.kernel.to_string_lossy()),
        initrd = escape(&spec.initramfs.to_string_lossy()),
        cmdline = escape(&crate::qemu::args::cmdline(spec, *accel, *cpu_khz)),
        console = escape(&console.to_string_lossy()),
    )
}

/// The whole instance record as JSON, the main fields also as attributes for whoever
/// reads `virsh dumpxml`. `prefixed` for the domain XML; `virDomainSetMetadata` takes the
/// element unprefixed and applies the namespace itself.
pub fn metadata_element(record: &Instance, prefixed: bool) -> String {
    let json = serde_json::to_string(record).unwrap_or_default();
    let (tag, xmlns) = if prefixed {
        (format!("{PREFIX}:instance"), format!(" xmlns:{PREFIX}='{NAMESPACE}'"))
    } else {
        ("instance".to_owned(), String::new())
    };
    format!(
        "<{tag}{xmlns} id='{id}' name='{name}' image='{image}' endpoint='{endpoint}'>{json}</{tag}>",
        id = record.id,
        name = escape(&record.name),
        image = escape(&record.image_digest),
        endpoint = record.endpoint,
        json = escape(&json),
    )
}

/// The instance record in the element libvirt returns for [`NAMESPACE`].
pub fn parse_metadata(element: &str) -> Result<Instance, String> {
    let start = element.find('>').ok_or("no element")? + 1;
    let end = element.rfind("</").ok_or("no closing tag")?;
    if end < start {
        return Err("an empty element".into());
    }
    serde_json::from_str(&unescape(&element[start..end])).map_err(|e| e.to_string())
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The five named entities and numeric references: what libxml2 writes back.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InstanceId;
    use std::net::SocketAddr;

    fn spec() -> BootSpec {
        BootSpec { vcpus: 2, metadata: serde_json::json!({"note": "a <b> & 'c' \"d\""}), ..crate::sample_spec() }
    }

    fn record() -> Instance {
        Instance {
            id: "i-0123456789abcdef".parse::<InstanceId>().unwrap(),
            name: "api".into(),
            image_digest: "sha256:00".into(),
            endpoint: SocketAddr::from(([127, 0, 0, 1], 18080)),
            accel: Accel::Tcg,
            boot_ms: 0,
            console_log: "/s/console.log".into(),
            audit_log: Some("/s/audit.log".into()),
            creator: None,
            memory_mb: 128,
            vcpus: 2,
            started_at_ms: 1,
            metadata: spec().metadata,
        }
    }

    #[test]
    fn the_domain_matches_the_qemu_backend_guest() {
        let spec = spec();
        let record = record();
        let def = DomainDef {
            spec: &spec,
            record: &record,
            accel: Accel::Tcg,
            cpu_khz: Some(2_793_436),
            console: Path::new("/s/console.log"),
            audit: Path::new("/s/audit.log"),
            control: Some(Path::new("/s/control.sock")),
        };
        let xml = domain_xml(&def);
        assert!(xml.starts_with("<domain type='qemu'"));
        assert!(xml.contains("<name>sdsec-i-0123456789abcdef</name>"));
        assert!(xml.contains("<type arch='x86_64' machine='microvm'>hvm</type>"));
        // Never restarted in place (see the QEMU backend's `-no-reboot`).
        assert!(xml.contains("<on_reboot>destroy</on_reboot>"));
        assert!(xml.contains("<cmdline>console=ttyS0 quiet pci=off tsc_early_khz=2793436 tsc=reliable</cmdline>"));
        assert!(xml.contains("value='user,id=sdsecnet0,hostfwd=tcp:127.0.0.1:18080-:80,restrict=on'"));
        assert!(xml.contains("<memballoon model='none'/>") && xml.contains("<controller type='usb' model='none'/>"));
        assert!(xml.contains("<tb-cache unit='MiB'>16</tb-cache>"), "{xml}");
        assert!(xml.contains("value='virtio-balloon-device,free-page-reporting=on'"));
        assert!(xml.contains("<source path='/s/console.log' append='on'/>"));
        assert!(xml.contains("value='file,id=sdsecaudit,path=/s/audit.log,append=on'"));
        assert!(xml.contains("value='virtserialport,chardev=sdsecaudit,name=sdsec.audit'"));
        assert!(xml.contains("value='socket,id=sdsecctl,path=/s/control.sock,server=on,wait=off'"));
        assert!(xml.contains("<vcpu>2</vcpu>") && xml.contains("<memory unit='MiB'>128</memory>"));
        assert!(!xml.contains("host-passthrough"));

        let kvm = domain_xml(&DomainDef { accel: Accel::Kvm, ..def });
        assert!(kvm.starts_with("<domain type='kvm'") && kvm.contains("host-passthrough"));
        assert!(kvm.contains("<cmdline>console=ttyS0 quiet pci=off</cmdline>"));
    }

    #[test]
    fn the_record_survives_the_metadata_round_trip() {
        let record = record();
        let element = metadata_element(&record, true);
        assert!(element.starts_with(&format!("<sdsec:instance xmlns:sdsec='{NAMESPACE}' id='i-0123456789abcdef'")));
        assert_eq!(parse_metadata(&element).unwrap(), record);
        // As libxml2 writes it back: double quotes, other escapes.
        let json = serde_json::to_string(&record).unwrap().replace('&', "&#38;").replace('<', "&#x3C;");
        let back = format!("<instance xmlns=\"{NAMESPACE}\" id=\"x\">{json}</instance>");
        assert_eq!(parse_metadata(&back).unwrap(), record);
        assert!(parse_metadata("<instance/>").is_err());
        assert_eq!(unescape("a &amp;&lt;&gt;&quot;&apos; &bogus; & b"), "a &<>\"' &bogus; & b");
    }
}
