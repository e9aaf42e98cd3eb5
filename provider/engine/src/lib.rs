//! What the sdsec provider and the `sdsec` command line share beyond Terraform: the host
//! settings, building and booting protected images ([`launch`]), a unikernel's life on the
//! host ([`instance`]) and the host it runs on ([`host`]: hypervisor and [`network`]), pools of warm members and their ledger ([`pool`]), policy records
//! ([`policy_store`]) under the state directory, placement checks against this host
//! ([`placement`]) and which images garbage collection keeps ([`gc`]). No Terraform, no async runtime: callers run these on their own threads.

pub mod config;
mod error;
pub mod gc;
pub mod host;
pub mod instance;
pub mod launch;
pub mod network;
pub mod peers;
pub mod placement;
pub mod policy_store;
pub mod pool;
pub mod snapshot;

pub use config::ProviderConfig;
pub use error::{EngineError, Input};
