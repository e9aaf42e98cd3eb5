//! The sdsec provider: resources, data sources and functions on the `tfplugin` framework,
//! wired to the SecTOSCA compiler. Also what the `sdsec` command line shares with it.

pub mod config;
pub mod data_sources;
pub mod docs;
pub mod functions;
pub mod launch;
pub mod placement;
pub mod policy;
pub mod policy_store;
pub mod pool;
pub mod provider;
pub mod resources;
pub mod values;

pub use provider::SdsecProvider;
