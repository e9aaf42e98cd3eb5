//! Managed resources, one folder each (schema, typed model, plan, apply), and what they
//! share: the image inputs of unikernels and pools, errors and the blocking helper.

pub mod error;
pub mod image;
pub mod pool;
pub mod security_policy;
pub mod unikernel;

#[cfg(test)]
pub(crate) mod testing;
