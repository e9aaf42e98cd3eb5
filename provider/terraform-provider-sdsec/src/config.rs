//! The `provider "sdsec"` block: its schema, validation and the settled configuration.

use std::path::PathBuf;

use tfplugin::validators::OneOf;
use tfplugin::{Attribute, AttributePath, Diagnostics, Schema, Value};

use crate::values::string;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hypervisor {
    Qemu,
    Libvirt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Auto,
    Kvm,
    Tcg,
}

/// The provider configuration after validation and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    pub state_dir: PathBuf,
    pub hypervisor: Hypervisor,
    pub libvirt_uri: Option<String>,
    pub accel: Accel,
    pub kernel: Option<PathBuf>,
    pub site: Option<String>,
    pub tenant: Option<String>,
    pub trust: sectosca::model::Trust,
}

pub const TRUST_LEVELS: [&str; 4] = ["untrusted", "shared", "trusted", "dedicated"];

pub fn schema() -> Schema {
    Schema::new(0)
        .description(
            "The sdsec provider compiles SecTOSCA security requirements, builds protected unikernel images from them \
             and runs them on QEMU or libvirt. The settings below say where images and records are kept and which \
             hypervisor runs the instances.",
        )
        .attribute(Attribute::string("state_dir").optional().description(
            "Directory for the image store, policy records and the instance registry. Default: \
             `$XDG_STATE_HOME/sdsec`, else `~/.local/state/sdsec`.",
        ))
        .attribute(
            Attribute::string("hypervisor")
                .optional()
                .validator(OneOf::new(["qemu", "libvirt"]))
                .description("`qemu` (the embedded default: QEMU started directly, no daemon) or `libvirt`."),
        )
        .attribute(Attribute::string("libvirt_uri").optional().description(
            "libvirt connection URI, with `hypervisor = \"libvirt\"`, e.g. `qemu:///system` or a remote \
             `qemu+ssh://host/system`.",
        ))
        .attribute(Attribute::string("accel").optional().validator(OneOf::new(["auto", "kvm", "tcg"])).description(
            "`auto` (KVM when it is real hardware virtualisation, otherwise TCG), `kvm` or `tcg`. Default `auto`.",
        ))
        .attribute(Attribute::string("kernel").optional().description(
            "Path of the guest kernel (a PVH `vmlinux` or a `vmlinuz`). Default: the cached Debian cloud kernel \
             (`sdsec kernel fetch`).",
        ))
        .attribute(Attribute::string("site").optional().description(
            "The site where this provider's hypervisor stands, checked against `sdsec.policies.Isolation`.",
        ))
        .attribute(
            Attribute::string("tenant")
                .optional()
                .description("The tenant that owns this hypervisor, checked against Isolation `tenants`."),
        )
        .attribute(Attribute::string("trust").optional().validator(OneOf::new(TRUST_LEVELS)).description(
            "How far this hypervisor is trusted: `untrusted`, `shared`, `trusted` or `dedicated`. Default `shared`.",
        ))
}

pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("sdsec");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/var/lib"), PathBuf::from);
    home.join(".local/state/sdsec")
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
    let hypervisor = match string(config, "hypervisor").as_deref() {
        Some("libvirt") => Hypervisor::Libvirt,
        _ => Hypervisor::Qemu,
    };
    let libvirt_uri = string(config, "libvirt_uri");
    match (hypervisor, &libvirt_uri) {
        (Hypervisor::Qemu, Some(_)) => diags.attribute_error(
            AttributePath::attr("libvirt_uri"),
            "libvirt_uri without libvirt",
            "`libvirt_uri` is used only with `hypervisor = \"libvirt\"`. Remove it, or set the hypervisor.",
        ),
        (Hypervisor::Libvirt, Some(uri)) if !uri.contains(':') => diags.attribute_error(
            AttributePath::attr("libvirt_uri"),
            "Invalid libvirt URI",
            format!("`{uri}` is not a libvirt URI such as `qemu:///system` or `qemu+ssh://host/system`."),
        ),
        _ => {}
    }
    let accel = match string(config, "accel").as_deref() {
        Some("kvm") => Accel::Kvm,
        Some("tcg") => Accel::Tcg,
        _ => Accel::Auto,
    };
    let state_dir = match string(config, "state_dir") {
        Some(dir) if dir.trim().is_empty() => {
            diags.attribute_error(AttributePath::attr("state_dir"), "Empty state_dir", "Leave it out for the default.");
            PathBuf::new()
        }
        Some(dir) => PathBuf::from(dir),
        None => default_state_dir(),
    };
    let trust = match string(config, "trust").as_deref() {
        Some("untrusted") => sectosca::model::Trust::Untrusted,
        Some("trusted") => sectosca::model::Trust::Trusted,
        Some("dedicated") => sectosca::model::Trust::Dedicated,
        _ => sectosca::model::Trust::Shared,
    };
    if diags.has_errors() {
        return Err(diags);
    }
    // Absolute, so that a daemon (libvirt) with another working directory finds the files.
    let absolute = |path: PathBuf| std::path::absolute(&path).unwrap_or(path);
    Ok(ProviderConfig {
        state_dir: absolute(state_dir),
        hypervisor,
        libvirt_uri,
        accel,
        kernel: string(config, "kernel").map(PathBuf::from).map(absolute),
        site: string(config, "site"),
        tenant: string(config, "tenant"),
        trust,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Value {
        let names = ["state_dir", "hypervisor", "libvirt_uri", "accel", "kernel", "site", "tenant", "trust"];
        Value::object(names.iter().map(|n| {
            let v = pairs.iter().find(|(k, _)| k == n).map_or(Value::Null, |(_, v)| Value::from(*v));
            (*n, v)
        }))
    }

    #[test]
    fn defaults_are_the_embedded_qemu_and_an_xdg_state_dir() {
        let c = settle(&config(&[])).unwrap();
        assert_eq!(c.hypervisor, Hypervisor::Qemu);
        assert_eq!(c.accel, Accel::Auto);
        assert_eq!(c.trust, sectosca::model::Trust::Shared);
        assert!(c.state_dir.ends_with("sdsec"), "{}", c.state_dir.display());
    }

    #[test]
    fn libvirt_uri_needs_libvirt_and_a_uri() {
        let err = settle(&config(&[("libvirt_uri", "qemu:///system")])).unwrap_err();
        assert!(err.iter().any(|d| d.summary == "libvirt_uri without libvirt"));
        let err = settle(&config(&[("hypervisor", "libvirt"), ("libvirt_uri", "nonsense")])).unwrap_err();
        assert!(err.iter().any(|d| d.summary == "Invalid libvirt URI"));
        let ok = settle(&config(&[("hypervisor", "libvirt"), ("libvirt_uri", "qemu:///system"), ("trust", "trusted")]))
            .unwrap();
        assert_eq!(ok.trust, sectosca::model::Trust::Trusted);
    }
}
