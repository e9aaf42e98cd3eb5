//! Managed resources, one file each.

pub mod security_policy;
pub mod unikernel;
