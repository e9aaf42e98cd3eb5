//! Provider functions, one file each.

pub mod policy_digest;
