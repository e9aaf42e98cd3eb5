//! The host settings the provider and the command line share: where state is kept, which
//! hypervisor runs the instances, and what this host may be trusted with. The provider
//! fills them from its Terraform block, the command line from its flags.

use std::path::PathBuf;

use hypervisor::AccelChoice;
use plan::Trust;
use sdsec_image::kernel::KernelChoice;

use network::{ModeChoice, NetworkMode};

use crate::network::NetworkSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hypervisor {
    Qemu,
    Libvirt,
}

/// The settings after validation and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    pub state_dir: PathBuf,
    pub hypervisor: Hypervisor,
    pub libvirt_uri: Option<String>,
    /// The libvirt daemon's storage pool for kernels and initramfs; `None`: sdsec's default.
    pub libvirt_pool: Option<String>,
    pub accel: AccelChoice,
    pub kernel: KernelChoice,
    /// The enforcement runtime put into images; `None` finds it as
    /// [`crate::launch::runtime_binary`] does.
    pub runtime: Option<PathBuf>,
    pub site: Option<String>,
    pub tenant: Option<String>,
    pub trust: Trust,
    /// How instances are attached to the network.
    pub network: NetworkSettings,
}

impl ProviderConfig {
    /// The defaults for `state_dir`: the embedded QEMU backend, automatic acceleration, the
    /// cached kernel, no site or tenant, shared trust, automatic networking.
    pub fn new(state_dir: PathBuf) -> ProviderConfig {
        ProviderConfig {
            state_dir,
            hypervisor: Hypervisor::Qemu,
            libvirt_uri: None,
            libvirt_pool: None,
            accel: AccelChoice::Auto,
            kernel: KernelChoice::Sdsec,
            runtime: None,
            site: None,
            tenant: None,
            trust: Trust::Shared,
            network: NetworkSettings::default(),
        }
    }
}

impl ProviderConfig {
    /// The network new instances get, and why. With a libvirt daemon elsewhere `auto` is the
    /// user network, and `bridge` the site's own network kept by that daemon.
    pub fn network_mode(&self) -> (NetworkMode, &'static str) {
        if self.network.choice == ModeChoice::Auto && self.remote_libvirt() {
            return (
                NetworkMode::User,
                "auto: the libvirt daemon is on another host; set network = \"bridge\" for its site network",
            );
        }
        self.network.mode()
    }

    /// Whether `libvirt_uri` names a daemon on another host (a host part, or a network
    /// transport such as `+ssh`, `+tcp`, `+tls`).
    pub fn remote_libvirt(&self) -> bool {
        let Some(uri) = self.libvirt_uri.as_deref().filter(|_| self.hypervisor == Hypervisor::Libvirt) else {
            return false;
        };
        hypervisor::libvirt_remote_host(uri).is_some()
    }
}

/// `$XDG_STATE_HOME/sdsec`, else `~/.local/state/sdsec`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("sdsec");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/var/lib"), PathBuf::from);
    home.join(".local/state/sdsec")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_networking_is_for_local_daemons() {
        let libvirt = |uri: &str| ProviderConfig {
            hypervisor: Hypervisor::Libvirt,
            libvirt_uri: Some(uri.to_owned()),
            ..ProviderConfig::new("/s".into())
        };
        for local in ["qemu:///system", "qemu+unix:///system?socket=/run/x/libvirt-sock", "qemu:///session"] {
            assert!(!libvirt(local).remote_libvirt(), "{local}");
        }
        for remote in
            ["qemu+ssh://root@host/system", "qemu+tcp://10.0.0.2/system", "qemu+tls://h/system", "qemu://h/system"]
        {
            let config = libvirt(remote);
            assert!(config.remote_libvirt(), "{remote}");
            assert_eq!(config.network_mode().0, NetworkMode::User, "{remote}: auto is the user network");
        }
        assert!(!ProviderConfig::new("/s".into()).remote_libvirt(), "the embedded QEMU backend is local");
    }
}
