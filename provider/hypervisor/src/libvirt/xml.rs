//! The domain XML of an instance, and the sdsec record kept in its `<metadata>`.
//!
//! The guest is the same as under the QEMU backend: `microvm` booting the image's kernel
//! directly, ACPI on (the Debian cloud kernel finds its virtio-mmio devices through it),
//! no USB, the serial console and the audit channel into files on the daemon's host (in
//! sdsec's storage pool, read back over the connection), the control channel a socket
//! libvirt makes and reaches with `virDomainOpenChannel`. Devices carry virtio-mmio
//! addresses, which libvirt (9.0 and later) turns into `microvm`'s `virtio-*-device`s.
//!
//! QEMU runs as the user the daemon's DAC driver names for its domains, and nothing is
//! relabelled for it (`relabel='no'`): libvirt opens the logs and the TAP device itself and
//! hands QEMU the descriptors, and kernel and initramfs are readable as they are. So the
//! volumes every instance shares are never made writable by one instance's QEMU.
//!
//! Only QEMU's user network goes through `<qemu:commandline>`: libvirt's `<portForward>`
//! needs the passt backend, and sdsec forwards with slirp's `hostfwd` like the QEMU backend.

use std::net::Ipv4Addr;

use crate::accel::Accel;
use crate::{BootSpec, Instance, Nic};

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
    /// The console log's path on the daemon's host.
    pub console: &'a str,
    /// Where the runtime's audit channel is appended, on the daemon's host.
    pub audit: &'a str,
    /// Whether the guest has a control channel.
    pub control: bool,
    /// The address on the daemon's host that QEMU's user network forwards from.
    pub forward_ip: Ipv4Addr,
    /// The daemon's DAC label for QEMU (`+uid:+gid`), when it has a DAC driver.
    pub dac_label: Option<&'a str>,
}

pub fn domain_xml(def: &DomainDef<'_>) -> String {
    let DomainDef { spec, record, accel, cpu_khz, console, audit, control, forward_ip, dac_label } = def;
    let (kind, cpu, tcg) = match accel {
        // Only where KVM is real (see `accel`); under TCG libvirt's default CPU model.
        Accel::Kvm => ("kvm", "\n  <cpu mode='host-passthrough'/>".to_owned(), String::new()),
        Accel::Tcg => (
            "qemu",
            String::new(),
            format!("\n    <tcg>\n      <tb-cache unit='MiB'>{}</tb-cache>\n    </tcg>", spec.tcg_cache_mb),
        ),
    };
    let (interface, qemu_args) = match &spec.nic {
        Nic::Tap { ifname, mac, .. } => (
            format!(
                "\n    <interface type='ethernet'>\n      <mac address='{mac}'/>\n      <target dev='{ifname}' managed='no'/>\n      \
                 <model type='virtio'/>\n      <address type='virtio-mmio'/>\n    </interface>",
                mac = escape(mac),
                ifname = escape(ifname),
            ),
            Vec::new(),
        ),
        // A port of the daemon's network, filtered there.
        Nic::Site { network, filter, mac, .. } => (
            format!(
                "\n    <interface type='network'>\n      <source network='{network}'/>\n      <mac address='{mac}'/>\n      \
                 <filterref filter='{filter}'/>\n      <model type='virtio'/>\n      <address type='virtio-mmio'/>\n    </interface>",
                network = escape(network),
                mac = escape(mac),
                filter = escape(filter),
            ),
            Vec::new(),
        ),
        // The same arguments as the QEMU backend's, forwarding from the daemon host's address.
        Nic::User { .. } | Nic::Detached => {
            (String::new(), spec.nic.qemu_args("sdsecnet0", spec.guest_port, (*forward_ip, record.endpoint.port())))
        }
    };
    let qemu_commandline = if qemu_args.is_empty() {
        String::new()
    } else {
        let args: String = qemu_args.iter().map(|a| format!("\n    <qemu:arg value='{}'/>", escape(a))).collect();
        format!("\n  <qemu:commandline>{args}\n  </qemu:commandline>")
    };
    let control_channel = if *control {
        // No path: libvirt makes the socket in the domain's own directory.
        format!(
            "\n    <channel type='unix'>\n      <source mode='bind'/>\n      <target type='virtio' name='{}'/>\n    </channel>",
            abi::control::PORT_NAME
        )
    } else {
        String::new()
    };
    let seclabel = dac_label.map_or_else(String::new, |label| {
        format!(
            "\n  <seclabel type='static' model='dac' relabel='no'>\n    <label>{}</label>\n  </seclabel>",
            escape(label)
        )
    });
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
    <controller type='virtio-serial' index='0' ports='3'>
      <address type='virtio-mmio'/>
    </controller>
    <serial type='file'>
      <source path='{console}' append='on'/>
      <target port='0'/>
    </serial>
    <channel type='file'>
      <source path='{audit}' append='on'/>
      <target type='virtio' name='{audit_port}'/>
    </channel>{control_channel}{interface}
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
      <address type='virtio-mmio'/>
    </rng>
    <memballoon model='virtio' freePageReporting='on'>
      <address type='virtio-mmio'/>
    </memballoon>
  </devices>{seclabel}{qemu_commandline}
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
        console = escape(console),
        audit = escape(audit),
        audit_port = abi::event::AUDIT_PORT_NAME,
    )
}

/// The text of the domain's `<os>` element `tag` (`kernel`, `initrd`) in `xml`, unescaped.
pub fn boot_file(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(unescape(&xml[start..end]))
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
            bridged: None,
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
            console: "/s/console.log",
            audit: "/s/audit.log",
            control: true,
            forward_ip: Ipv4Addr::LOCALHOST,
            dac_label: Some("+64055:+64055"),
        };
        let xml = domain_xml(&def);
        assert!(xml.starts_with("<domain type='qemu'"));
        assert!(xml.contains("<name>sdsec-i-0123456789abcdef</name>"));
        assert!(xml.contains("<type arch='x86_64' machine='microvm'>hvm</type>"));
        // Never restarted in place (see the QEMU backend's `-no-reboot`).
        assert!(xml.contains("<on_reboot>destroy</on_reboot>"));
        assert!(xml.contains("<cmdline>console=ttyS0 quiet pci=off tsc_early_khz=2793436 tsc=reliable</cmdline>"));
        assert!(xml.contains("value='user,id=sdsecnet0,hostfwd=tcp:127.0.0.1:18080-:80,restrict=on'"));
        assert!(xml.contains("<controller type='usb' model='none'/>"));
        assert!(xml.contains("<tb-cache unit='MiB'>16</tb-cache>"), "{xml}");
        assert!(xml.contains("<memballoon model='virtio' freePageReporting='on'>"));
        assert!(xml.contains("<source path='/s/console.log' append='on'/>"));
        assert!(
            xml.contains("<source path='/s/audit.log' append='on'/>\n      <target type='virtio' name='sdsec.audit'/>")
        );
        assert!(xml.contains("<source mode='bind'/>\n      <target type='virtio' name='sdsec.control'/>"));
        // QEMU as the daemon's user, and nothing made writable for it.
        assert!(xml.contains("<seclabel type='static' model='dac' relabel='no'>\n    <label>+64055:+64055</label>"));
        assert!(xml.contains("<vcpu>2</vcpu>") && xml.contains("<memory unit='MiB'>128</memory>"));
        assert!(!xml.contains("host-passthrough"));

        let kvm = domain_xml(&DomainDef { accel: Accel::Kvm, ..def });
        assert!(kvm.starts_with("<domain type='kvm'") && kvm.contains("host-passthrough"));
        assert!(kvm.contains("<cmdline>console=ttyS0 quiet pci=off</cmdline>"));

        // A remote daemon's forward listens on its host's address; a bridge's TAP is
        // opened by libvirt and handed to QEMU, and no argument is passed around libvirt.
        let remote = domain_xml(&DomainDef { forward_ip: Ipv4Addr::new(10, 1, 2, 3), control: false, ..def });
        assert!(remote.contains("hostfwd=tcp:10.1.2.3:18080-:80"));
        assert!(!remote.contains("sdsec.control"));
        let nic =
            Nic::Tap { ifname: "sdsectap0".into(), mac: "52:54:00:00:00:01".into(), ip: Ipv4Addr::new(10, 0, 0, 2) };
        let tap_spec = BootSpec { nic, ..spec.clone() };
        let tap = domain_xml(&DomainDef { spec: &tap_spec, ..def });
        assert!(
            tap.contains("<target dev='sdsectap0' managed='no'/>")
                && tap.contains("<mac address='52:54:00:00:00:01'/>")
        );
        assert!(!tap.contains("qemu:commandline>"), "{tap}");
        assert_eq!(boot_file(&xml, "kernel").as_deref(), Some("/k/vmlinux"));
        assert_eq!(boot_file(&xml, "initrd").as_deref(), Some("/i/initramfs.cpio"));
        assert_eq!(boot_file(&xml, "dtb"), None);
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
