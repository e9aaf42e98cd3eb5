//! The host settings the provider and the command line share: where state is kept, which
//! hypervisor runs the instances, and what this host may be trusted with. The provider
//! fills them from its Terraform block, the command line from its flags.

use std::path::PathBuf;

use hypervisor::AccelChoice;
use plan::Trust;

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
    pub accel: AccelChoice,
    pub kernel: Option<PathBuf>,
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
            accel: AccelChoice::Auto,
            kernel: None,
            runtime: None,
            site: None,
            tenant: None,
            trust: Trust::Shared,
            network: NetworkSettings::default(),
        }
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
