//! One error for everything the engine does, and the input each error is about.
//!
//! Every module has its own error enum; [`EngineError`] gathers them for callers that do
//! several things in a row. Each error says by type which input is at fault
//! ([`EngineError::input`]), so that a caller can point at it (the provider: an attribute
//! path) without reading the message.

use crate::gc::GcError;
use crate::instance::InstanceError;
use crate::launch::LaunchError;
use crate::policy_store::StoreError;
use crate::pool::{MembersError, PoolError};

/// The input an error is about. Some are a unikernel's own (its application, plan, sizing,
/// pool); others are host settings (kernel, runtime) that no single unikernel can fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    /// The application: its executable, file name or arguments.
    Application,
    /// The node's enforcement plan, as compiled from the policy document.
    Enforcement,
    /// The guest's memory in MiB.
    MemoryMb,
    /// The guest's virtual CPUs.
    Vcpus,
    /// The pool a unikernel draws from, or a pool's own record.
    Pool,
    /// The host port a unikernel is published on.
    HostPort,
    /// The id of a stored record (a policy's).
    Id,
    /// The guest kernel: a host setting (the provider's `kernel`, `sdsec --kernel`) or the
    /// kernel cache.
    Kernel,
    /// The enforcement runtime put into every image (`SDSEC_RUNTIME`, or the static build).
    Runtime,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Instance(#[from] InstanceError),
    #[error(transparent)]
    Members(#[from] MembersError),
    #[error(transparent)]
    PolicyStore(#[from] StoreError),
    #[error(transparent)]
    Gc(#[from] GcError),
}

impl EngineError {
    /// The input at fault, `None` when the error is the host's (the hypervisor, the state
    /// directory) rather than any input's.
    pub fn input(&self) -> Option<Input> {
        match self {
            EngineError::Launch(e) => e.input(),
            EngineError::Pool(e) => e.input(),
            EngineError::Instance(e) => e.input(),
            EngineError::Members(e) => e.input(),
            EngineError::PolicyStore(e) => e.input(),
            EngineError::Gc(_) => None,
        }
    }
}
