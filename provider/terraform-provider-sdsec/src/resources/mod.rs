//! Managed resources, one file each.

pub mod pool;
pub mod security_policy;
pub mod unikernel;
