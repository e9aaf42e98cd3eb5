//! The `provider "sdsec"` block: its schema, and its validation into the engine's settled
//! configuration.

use std::path::PathBuf;

use engine::config::default_state_dir;
pub use engine::config::{Hypervisor, ProviderConfig};
use hypervisor::AccelChoice;
use plan::Trust;
use tfplugin::validators::OneOf;
use tfplugin::{Attribute, AttributePath, Diagnostic, Diagnostics, Schema, Value};

use crate::values::{Object, ShapeError};

pub const STATE_DIR: &str = "state_dir";
pub const HYPERVISOR: &str = "hypervisor";
pub const LIBVIRT_URI: &str = "libvirt_uri";
pub const ACCEL: &str = "accel";
pub const KERNEL: &str = "kernel";
pub const SITE: &str = "site";
pub const TENANT: &str = "tenant";
pub const TRUST: &str = "trust";

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
        .attribute(Attribute::string(ACCEL).optional().validator(OneOf::new(["auto", "kvm", "tcg"])).description(
            "`auto` (KVM when it is real hardware virtualisation, otherwise TCG), `kvm` or `tcg`. Default `auto`.",
        ))
        .attribute(Attribute::string(KERNEL).optional().description(
            "Path of the guest kernel (a PVH `vmlinux` or a `vmlinuz`). Default: the cached Debian cloud kernel \
             (`sdsec kernel fetch`).",
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
}

/// The provider block as given: every setting optional, all known (see [`settle`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Block {
    state_dir: Option<String>,
    hypervisor: Option<String>,
    libvirt_uri: Option<String>,
    accel: Option<String>,
    kernel: Option<String>,
    site: Option<String>,
    tenant: Option<String>,
    trust: Option<String>,
}

impl Block {
    fn decode(value: &Value) -> Result<Self, ShapeError> {
        let object = Object::root(value);
        let text = |name| object.field::<String>(name).map(|f| f.into_known());
        Ok(Block {
            state_dir: text(STATE_DIR)?,
            hypervisor: text(HYPERVISOR)?,
            libvirt_uri: text(LIBVIRT_URI)?,
            accel: text(ACCEL)?,
            kernel: text(KERNEL)?,
            site: text(SITE)?,
            tenant: text(TENANT)?,
            trust: text(TRUST)?,
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
    // The schema allows only the values AccelChoice parses.
    let accel = block.accel.as_deref().and_then(|a| a.parse().ok()).unwrap_or(AccelChoice::Auto);
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
        accel,
        kernel: block.kernel.map(PathBuf::from).map(absolute),
        site: block.site,
        tenant: block.tenant,
        trust,
        ..ProviderConfig::new(absolute(state_dir))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Value {
        let names = [STATE_DIR, HYPERVISOR, LIBVIRT_URI, ACCEL, KERNEL, SITE, TENANT, TRUST];
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
}
