//! What can fail in a unikernel's life on the host, one variant per step, so that a caller
//! can say which step failed (the provider: a diagnostic's summary) without reading the
//! message. Most variants show their cause's message unchanged.

use hypervisor::{HypervisorError, InstanceId};
use network::NetworkError;
use sdsec_image::{ImageDigest, ManifestError, StoreError};

use crate::Input;
use crate::host::HostError;
use crate::launch::LaunchError;
use crate::pool::PoolError;
use crate::snapshot::SnapshotError;

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// The hypervisor the configuration names cannot be used.
    #[error(transparent)]
    Backend(LaunchError),
    /// The pool to take a member from cannot be used.
    #[error(transparent)]
    Pool(PoolError),
    /// An input of the image (runtime, kernel, application, plan, sizing) is unusable.
    #[error(transparent)]
    Image(LaunchError),
    #[error(transparent)]
    Digest(ManifestError),
    /// The inputs on disk are no longer those the expected digest was computed from.
    #[error(
        "The image would be {built}, but the plan said {planned}: the application, kernel or runtime changed on disk after `terraform plan`. Plan again."
    )]
    Changed { built: ImageDigest, planned: String },
    /// The image store cannot be opened.
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Build(StoreError),
    /// The control channel's key cannot be made.
    #[error(transparent)]
    Control(LaunchError),
    #[error(transparent)]
    Boot(HostError),
    /// The image's snapshot cannot be made or verified.
    #[error(transparent)]
    Snapshot(SnapshotError),
    /// A paused pool member does not resume.
    #[error(transparent)]
    Resume(HypervisorError),
    /// A resumed pool member's record cannot be read.
    #[error(transparent)]
    Member(HypervisorError),
    #[error("Instance {id} resumed but its health path answered {answer:?}; it was stopped.")]
    NotServing { id: InstanceId, answer: Result<u16, String> },
    /// A taken member's record cannot be made the taker's.
    #[error(transparent)]
    HandOver(HypervisorError),
    /// The instance's control channel cannot be found.
    #[error(transparent)]
    Channel(HypervisorError),
    /// The runtime did not take a new plan.
    #[error("Instance {id}: {source}.")]
    NotTaken { id: InstanceId, source: abi::control::ClientError },
    /// The runtime acknowledged a plan other than the one sent.
    #[error("Instance {id} acknowledged {acknowledged:?}, not {expected}.")]
    OtherPlan { id: InstanceId, acknowledged: Option<String>, expected: String },
    #[error(transparent)]
    Stop(HostError),
    /// The instance's record cannot be marked complete.
    #[error("The new instance cannot be marked as created (it would later be taken for an orphan and stopped): {0}")]
    Complete(HypervisorError),
    /// The host's network rules for the instance cannot be changed (publishing, flows).
    #[error(transparent)]
    Network(HostError),
    /// The hypervisor cannot say whether the instance runs.
    #[error(transparent)]
    State(HypervisorError),
    /// The stored image cannot be checked (not: it failed the check).
    #[error(transparent)]
    Verify(StoreError),
    /// The instance's record cannot be read.
    #[error(transparent)]
    Lookup(HypervisorError),
}

impl InstanceError {
    /// The input at fault: an image input, the pool, or the host settings behind the
    /// hypervisor; `None` for the host's own failures.
    pub fn input(&self) -> Option<Input> {
        match self {
            InstanceError::Backend(e) | InstanceError::Image(e) | InstanceError::Control(e) => e.input(),
            InstanceError::Pool(e) => e.input(),
            InstanceError::Boot(HostError::Network(e)) | InstanceError::Network(HostError::Network(e))
                if matches!(e, NetworkError::PortInUse { .. } | NetworkError::PortLeased { .. }) =>
            {
                Some(Input::HostPort)
            }
            InstanceError::Boot(HostError::RemoteHostPort { .. })
            | InstanceError::Network(HostError::RemoteHostPort { .. }) => Some(Input::HostPort),
            InstanceError::Digest(_)
            | InstanceError::Changed { .. }
            | InstanceError::Store(_)
            | InstanceError::Build(_)
            | InstanceError::Boot(_)
            | InstanceError::Snapshot(_)
            | InstanceError::Resume(_)
            | InstanceError::Member(_)
            | InstanceError::NotServing { .. }
            | InstanceError::HandOver(_)
            | InstanceError::Channel(_)
            | InstanceError::NotTaken { .. }
            | InstanceError::OtherPlan { .. }
            | InstanceError::Stop(_)
            | InstanceError::Network(_)
            | InstanceError::State(_)
            | InstanceError::Verify(_)
            | InstanceError::Lookup(_)
            | InstanceError::Complete(_) => None,
        }
    }
}
