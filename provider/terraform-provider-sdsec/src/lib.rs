//! The sdsec provider: resources, data sources and functions on the `tfplugin` framework,
//! wired to the SecTOSCA compiler and to the engine that builds and runs images.

pub mod config;
pub mod data_sources;
pub mod functions;
pub mod policy;
pub mod provider;
pub mod resources;
pub mod values;

pub use provider::SdsecProvider;
