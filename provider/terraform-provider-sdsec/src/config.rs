//! The `provider "sdsec"` block: its schema, and its validation into the engine's settled
//! configuration.

use std::path::PathBuf;

use engine::config::default_state_dir;
pub use engine::config::{Hypervisor, ProviderConfig};
use engine::network::NetworkSettings;
use hypervisor::AccelChoice;
use network::Setting;
use plan::Trust;
use sdsec_image::kernel::KernelChoice;
use tfplugin::validators::OneOf;
use tfplugin::{Attribute, AttributePath, Diagnostic, Diagnostics, Schema, Value};

use crate::values::{Object, ShapeError};

pub const STATE_DIR: &str = "state_dir";
pub const HYPERVISOR: &str = "hypervisor";
pub const LIBVIRT_URI: &str = "libvirt_uri";
pub const LIBVIRT_POOL: &str = "libvirt_pool";
pub const ACCEL: &str = "accel";
pub const KERNEL: &str = "kernel";
pub const SITE: &str = "site";
pub const TENANT: &str = "tenant";
pub const TRUST: &str = "trust";
pub const NETWORK: &str = "network";
pub const BRIDGE: &str = "bridge";
pub const SUBNET: &str = "subnet";
pub const PUBLISH_ADDRESS: &str = "publish_address";

pub fn schema() -> Schema {
    Schema::new(0)
        .description(
            "The sdsec provider compiles SecTOSCA security requirements, builds protected unikernel images from them \
             and runs them on QEMU or libvirt. The settings below say where images and records are kept and which \
             hypervisor runs the instances.",
        )
        .attribute(Attribute::string(STATE_DIR).optional().description(
            "Directory for the image store, policy records and the instance registry. Default: \
             `$XDG_STATE_HOME/sdsec`, else `~/.local/state/sdsec`.",
        ))
        .attribute(
            Attribute::string(HYPERVISOR)
                .optional()
                .validator(OneOf::new(["qemu", "libvirt"]))
                .description("`qemu` (the embedded default: QEMU started directly, no daemon) or `libvirt`."),
        )
        .attribute(Attribute::string(LIBVIRT_URI).optional().description(
            "libvirt connection URI, with `hypervisor = \"libvirt\"`, e.g. `qemu:///system` or a remote \
             `qemu+ssh://host/system`.",
        ))
        .attribute(Attribute::string(LIBVIRT_POOL).optional().description(
            "With `hypervisor = \"libvirt\"`: the daemon's storage pool that holds the kernels and initramfs its \
             instances boot, uploaded over the connection (each once per content digest, checked against it before \
             every boot). Defined as a directory pool at the daemon's `/var/lib/libvirt/sdsec-pools/<name>` when \
             missing. Letters, \
             digits, `-` and `_`. Default `sdsec`.",
        ))
        .attribute(Attribute::string(ACCEL).optional().validator(OneOf::new(["auto", "kvm", "tcg"])).description(
            "`auto` (KVM when it is real hardware virtualisation, otherwise TCG), `kvm` or `tcg`. Default `auto`.",
        ))
        .attribute(Attribute::string(KERNEL).optional().description(
            "The guest kernel: `sdsec` (the default: sdsec's own minimal kernel, built once with `sdsec kernel \
             build`), `debian-cloud` (Debian's cloud kernel, fetched with `sdsec kernel fetch`), or the path of a \
             kernel file (a PVH `vmlinux` or a `vmlinuz` with virtio-mmio, virtio-net and virtio-console built in; \
             write `./sdsec` for a file of that name).",
        ))
        .attribute(Attribute::string(SITE).optional().description(
            "The site where this provider's hypervisor stands, checked against `sdsec.policies.Isolation`.",
        ))
        .attribute(
            Attribute::string(TENANT)
                .optional()
                .description("The tenant that owns this hypervisor, checked against Isolation `tenants`."),
        )
        .attribute(Attribute::string(TRUST).optional().validator(OneOf::new(Trust::ALL.iter().map(|t| t.as_str()))).description(
            "How far this hypervisor is trusted: `untrusted`, `shared`, `trusted` or `dedicated`. Default `shared`.",
        ))
        .attribute(Attribute::string(NETWORK).optional().validator(OneOf::new(["auto", "bridge", "user"])).description(
            "How instances reach the network. `bridge`: each instance gets its own address on a Linux bridge the \
             provider owns, published ports keep the client's address, and the host enforces declared flows and \
             egress with nftables (needs CAP_NET_ADMIN). `user`: QEMU's unprivileged user network, one port \
             forwarded on 127.0.0.1, every client seen as 10.0.2.2. Default `auto`: `bridge` when the provider has \
             CAP_NET_ADMIN, else `user` (each unikernel's `network` attribute says which). With a libvirt daemon \
             on another host, `bridge` is that site's own routed network (named like `bridge`, on `subnet`) with one \
             libvirt network filter per instance for its declared flows and egress: instances are reached at their \
             own addresses, which clients route to the daemon's host, and `host_port` is refused; `auto` is `user` \
             there.",
        ))
        .attribute(Attribute::string(BRIDGE).optional().description(
            "With `network = \"bridge\"`: the name of the Linux bridge the provider creates and owns (at most 15 \
             characters). A device of that name that sdsec did not create is never taken over. Default `sdsec0`.",
        ))
        .attribute(Attribute::string(SUBNET).optional().description(
            "With `network = \"bridge\"`: the guests' IPv4 network; the bridge holds its first address (the \
             gateway) and instances get the next free ones. It must not overlap a route of the host. Default \
             `10.213.0.0/24` (253 instances).",
        ))
        .attribute(Attribute::string(PUBLISH_ADDRESS).optional().description(
            "With `network = \"bridge\"`: the host address on which `host_port` is published; `0.0.0.0` (the \
             default) publishes on every address of the host.",
        ))
}

/// The provider block as given: every setting optional, all known (see [`settle`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Block {
    state_dir: Option<String>,
    hypervisor: Option<String>,
    libvirt_uri: Option<String>,
    libvirt_pool: Option<String>,
    accel: Option<String>,
    kernel: Option<String>,
    site: Option<String>,
    tenant: Option<String>,
    trust: Option<String>,
    network: Option<String>,
    bridge: Option<String>,
    subnet: Option<String>,
    publish_address: Option<String>,
}

impl Block {
    fn decode(value: &Value) -> Result<Self, ShapeError> {
        let object = Object::root(value);
        let text = |name| object.field::<String>(name).map(|f| f.into_known());
        Ok(Block {
            state_dir: text(STATE_DIR)?,
            hypervisor: text(HYPERVISOR)?,
            libvirt_uri: text(LIBVIRT_URI)?,
            libvirt_pool: text(LIBVIRT_POOL)?,
            accel: text(ACCEL)?,
            kernel: text(KERNEL)?,
            site: text(SITE)?,
            tenant: text(TENANT)?,
            trust: text(TRUST)?,
            network: text(NETWORK)?,
            bridge: text(BRIDGE)?,
            subnet: text(SUBNET)?,
            publish_address: text(PUBLISH_ADDRESS)?,
        })
    }
}

/// Settles the configuration. Unknown values (from other resources) are an error here:
/// the provider needs to know where it keeps its state before it can plan anything.
pub fn settle(config: &Value) -> Result<ProviderConfig, Diagnostics> {
    let mut diags = Diagnostics::new();
    if let Some(path) = config.first_unknown_path() {
        diags.attribute_error(
            path.clone(),
            "Provider setting not known",
            format!("`{path}` depends on a value known only after apply; sdsec needs its settings at plan time."),
        );
        return Err(diags);
    }
    let block = Block::decode(config).map_err(Diagnostic::from)?;
    let hypervisor = match block.hypervisor.as_deref() {
        Some("libvirt") => Hypervisor::Libvirt,
        _ => Hypervisor::Qemu,
    };
    match (hypervisor, &block.libvirt_uri) {
        (Hypervisor::Qemu, Some(_)) => diags.attribute_error(
            AttributePath::attr(LIBVIRT_URI),
            "libvirt_uri without libvirt",
            "`libvirt_uri` is used only with `hypervisor = \"libvirt\"`. Remove it, or set the hypervisor.",
        ),
        (Hypervisor::Libvirt, Some(uri)) if !uri.contains(':') => diags.attribute_error(
            AttributePath::attr(LIBVIRT_URI),
            "Invalid libvirt URI",
            format!("`{uri}` is not a libvirt URI such as `qemu:///system` or `qemu+ssh://host/system`."),
        ),
        _ => {}
    }
    match (hypervisor, block.libvirt_pool.as_deref()) {
        (Hypervisor::Qemu, Some(_)) => diags.attribute_error(
            AttributePath::attr(LIBVIRT_POOL),
            "libvirt_pool without libvirt",
            "`libvirt_pool` is used only with `hypervisor = \"libvirt\"`. Remove it, or set the hypervisor.",
        ),
        (Hypervisor::Libvirt, Some(pool)) if !hypervisor::libvirt_pool_name_ok(pool) => diags.attribute_error(
            AttributePath::attr(LIBVIRT_POOL),
            "Invalid storage pool name",
            format!("`{pool}` is not a pool name sdsec uses: letters, digits, `-` and `_` only."),
        ),
        _ => {}
    }
    // The schema allows only the values AccelChoice parses.
    let accel = block.accel.as_deref().and_then(|a| a.parse().ok()).unwrap_or(AccelChoice::Auto);
    let network = settle_network(&block, &mut diags);
    let state_dir = match block.state_dir {
        Some(dir) if dir.trim().is_empty() => {
            diags.attribute_error(AttributePath::attr(STATE_DIR), "Empty state_dir", "Leave it out for the default.");
            PathBuf::new()
        }
        Some(dir) => PathBuf::from(dir),
        None => default_state_dir(),
    };
    // Validation has refused any other name; absent means shared.
    let trust =
        Trust::ALL.iter().copied().find(|t| Some(t.as_str()) == block.trust.as_deref()).unwrap_or(Trust::Shared);
    if diags.has_errors() {
        return Err(diags);
    }
    // Absolute, so that a daemon (libvirt) with another working directory finds the files.
    let absolute = |path: PathBuf| std::path::absolute(&path).unwrap_or(path);
    Ok(ProviderConfig {
        hypervisor,
        libvirt_uri: block.libvirt_uri,
        libvirt_pool: block.libvirt_pool,
        accel,
        kernel: block.kernel.as_deref().map(KernelChoice::parse).map_or(KernelChoice::Sdsec, |choice| match choice {
            KernelChoice::Path(path) => KernelChoice::Path(absolute(path)),
            named => named,
        }),
        site: block.site,
        tenant: block.tenant,
        trust,
        network,
        ..ProviderConfig::new(absolute(state_dir))
    })
}

/// `network`, `bridge`, `subnet` and `publish_address`, each error on its attribute.
fn settle_network(block: &Block, diags: &mut Diagnostics) -> NetworkSettings {
    let mut settings = NetworkSettings::default();
    // The schema allows only the values ModeChoice parses.
    if let Some(choice) = block.network.as_deref().and_then(|n| n.parse().ok()) {
        settings.choice = choice;
    }
    if let Some(bridge) = &block.bridge {
        settings.bridge.bridge = bridge.clone();
    }
    if let Some(subnet) = &block.subnet {
        match subnet.parse() {
            Ok(net) => settings.bridge.subnet = net,
            Err(_) => diags.attribute_error(
                AttributePath::attr(SUBNET),
                "Invalid subnet",
                format!("`{subnet}` is not an IPv4 network in CIDR notation such as `10.213.0.0/24`."),
            ),
        }
    }
    if let Some(address) = &block.publish_address {
        match address.parse() {
            Ok(ip) => settings.bridge.publish_address = ip,
            Err(_) => diags.attribute_error(
                AttributePath::attr(PUBLISH_ADDRESS),
                "Invalid publish_address",
                format!("`{address}` is not an IPv4 address; `0.0.0.0` publishes on every address of the host."),
            ),
        }
    }
    if diags.has_errors() {
        return settings;
    }
    if let Err(e) = settings.bridge.validate() {
        let attribute = match e.setting() {
            Setting::Bridge => BRIDGE,
            Setting::Subnet => SUBNET,
            Setting::PublishAddress => PUBLISH_ADDRESS,
        };
        diags.attribute_error(AttributePath::attr(attribute), format!("Invalid {attribute}"), e.to_string());
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Value {
        let names = [
            STATE_DIR,
            HYPERVISOR,
            LIBVIRT_URI,
            LIBVIRT_POOL,
            ACCEL,
            KERNEL,
            SITE,
            TENANT,
            TRUST,
            NETWORK,
            BRIDGE,
            SUBNET,
            PUBLISH_ADDRESS,
        ];
        Value::object(names.iter().map(|n| {
            let v = pairs.iter().find(|(k, _)| k == n).map_or(Value::Null, |(_, v)| Value::from(*v));
            (*n, v)
        }))
    }

    #[test]
    fn defaults_are_the_embedded_qemu_and_an_xdg_state_dir() {
        let c = settle(&config(&[])).unwrap();
        assert_eq!(c.hypervisor, Hypervisor::Qemu);
        assert_eq!(c.accel, AccelChoice::Auto);
        assert_eq!(c.trust, Trust::Shared);
        assert!(c.state_dir.ends_with("sdsec"), "{}", c.state_dir.display());
    }

    #[test]
    fn libvirt_uri_needs_libvirt_and_a_uri() {
        let err = settle(&config(&[(LIBVIRT_URI, "qemu:///system")])).unwrap_err();
        assert!(err.iter().any(|d| d.summary == "libvirt_uri without libvirt"));
        let err = settle(&config(&[(HYPERVISOR, "libvirt"), (LIBVIRT_URI, "nonsense")])).unwrap_err();
        assert!(err.iter().any(|d| d.summary == "Invalid libvirt URI"));
        let ok =
            settle(&config(&[(HYPERVISOR, "libvirt"), (LIBVIRT_URI, "qemu:///system"), (TRUST, "trusted")])).unwrap();
        assert_eq!(ok.trust, Trust::Trusted);
    }

    #[test]
    fn libvirt_pool_needs_libvirt_and_a_name_sdsec_takes() {
        let on = |pairs: &[(&str, &str)]| {
            let err = settle(&config(pairs)).unwrap_err();
            err.iter().map(|d| (d.summary.clone(), d.attribute.as_ref().map(|p| p.to_string()))).collect::<Vec<_>>()
        };
        let attribute = Some(LIBVIRT_POOL.to_owned());
        assert_eq!(on(&[(LIBVIRT_POOL, "images")]), [("libvirt_pool without libvirt".to_owned(), attribute.clone())]);
        let bad = on(&[(HYPERVISOR, "libvirt"), (LIBVIRT_POOL, "a/../b")]);
        assert_eq!(bad, [("Invalid storage pool name".to_owned(), attribute)]);
        let ok = settle(&config(&[(HYPERVISOR, "libvirt"), (LIBVIRT_POOL, "site-a_images")])).unwrap();
        assert_eq!(ok.libvirt_pool.as_deref(), Some("site-a_images"));
    }

    #[test]
    fn network_settings_are_checked_on_their_attribute() {
        let c =
            settle(&config(&[(NETWORK, "bridge"), (SUBNET, "10.77.0.0/24"), (PUBLISH_ADDRESS, "127.0.0.1")])).unwrap();
        assert_eq!(c.network.bridge.subnet.to_string(), "10.77.0.0/24");
        assert_eq!(c.network.bridge.publish_address, std::net::Ipv4Addr::LOCALHOST);
        assert_eq!(c.network.mode().0, network::NetworkMode::Bridge);
        let on = |pairs: &[(&str, &str)]| {
            let err = settle(&config(pairs)).unwrap_err();
            err.iter().map(|d| d.attribute.as_ref().map(|p| p.to_string()).unwrap_or_default()).collect::<Vec<_>>()
        };
        assert_eq!(on(&[(SUBNET, "10.77.0.5/24")]), [SUBNET], "host bits set: not a network");
        assert_eq!(on(&[(SUBNET, "10.77.0.0/30")]), [SUBNET], "too small");
        assert_eq!(on(&[(SUBNET, "fd00::/64")]), [SUBNET]);
        assert_eq!(on(&[(PUBLISH_ADDRESS, "localhost")]), [PUBLISH_ADDRESS]);
        assert_eq!(on(&[(BRIDGE, "a-bridge-name-too-long")]), [BRIDGE]);
    }
}
