//! What the sdsec provider and the `sdsec` command line share beyond Terraform: the host
//! settings, building and booting protected images ([`launch`]), the pool ledger
//! ([`pool`]) and policy records ([`policy_store`]) under the state directory, placement
//! checks against this host ([`placement`]) and which images garbage collection keeps
//! ([`gc`]). No Terraform, no async runtime: callers run these on their own threads.

pub mod config;
mod error;
pub mod gc;
pub mod launch;
pub mod placement;
pub mod policy_store;
pub mod pool;

pub use config::ProviderConfig;
pub use error::{EngineError, Input};
