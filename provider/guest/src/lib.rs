//! The sdsec enforcement runtime (PEP): what stands between the network and the one
//! application of a protected image, and enforces that image's enforcement plan.
//!
//! [`proxy`] is the HTTP reverse proxy; [`config`] reads a plan and compiles its runtime
//! part. The binary's `main` only wires them; in an image it is `/init`, and [`init`] does
//! the work of PID 1 before serving.

pub mod audit;
pub mod authn;
pub mod authz;
pub mod config;
pub mod control;
pub mod firewall;
pub mod init;
pub mod path;
pub mod proxy;
pub mod ratelimit;
pub mod scan;
