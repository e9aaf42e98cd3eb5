//! The summaries of failed engine steps, as a unikernel's and a pool's diagnostics say them:
//! chosen by the step's variant, never by the message; the engine's error is the detail and
//! names the input at fault.

use engine::host::HostError;
use engine::instance::InstanceError;
use engine::launch::LaunchError;

use crate::resources::error::Error;

/// An image input the engine cannot use, by what is wrong with it.
fn unusable_input(error: &LaunchError) -> &'static str {
    match error {
        LaunchError::NoRuntime { .. } => "Enforcement runtime not found",
        LaunchError::Kernel(_) => "No kernel for the image",
        LaunchError::Manifest { .. } => "Cannot build this image",
        LaunchError::OutOfRange { .. } => "Value out of range",
        _ => "Cannot prepare the image",
    }
}

/// What failed, in a unikernel's words (a pool says two of them its own way).
pub fn summary(error: &InstanceError) -> &'static str {
    match error {
        InstanceError::Backend(_) => "Hypervisor unavailable",
        InstanceError::Pool(_) => "Pool unavailable",
        InstanceError::Image(e) => unusable_input(e),
        InstanceError::Digest(_) => "Cannot digest the image",
        InstanceError::Changed { .. } => "Inputs changed since plan",
        InstanceError::Store(_) => "Image store unavailable",
        InstanceError::Build(_) => "Image build failed",
        InstanceError::Control(_) => "Cannot prepare the unikernel",
        InstanceError::Boot(HostError::Network(_) | HostError::RemoteHostPort { .. } | HostError::NoFabric { .. }) => {
            "Cannot attach the unikernel to the network"
        }
        InstanceError::Boot(HostError::Hypervisor(_)) => "Unikernel did not start",
        InstanceError::Snapshot(_) => "Cannot make or verify the image's snapshot",
        InstanceError::Resume(_) => "Cannot resume the pool member",
        InstanceError::Member(_) => "Cannot read the pool member",
        InstanceError::NotServing { .. } => "Pool member does not serve",
        InstanceError::HandOver(_) => "Cannot hand over the pool member",
        InstanceError::Channel(_) => "Cannot reconfigure the unikernel",
        InstanceError::NotTaken { .. } => "The unikernel's runtime did not take the new plan",
        InstanceError::OtherPlan { .. } => "The unikernel's runtime acknowledged another plan",
        InstanceError::Stop(HostError::Hypervisor(_)) => "Cannot stop the unikernel",
        InstanceError::Stop(HostError::Network(_) | HostError::RemoteHostPort { .. } | HostError::NoFabric { .. }) => {
            "Cannot release the unikernel's network"
        }
        InstanceError::Network(_) => "Cannot change the unikernel's network rules",
        InstanceError::State(_) => "Cannot read the unikernel's state",
        InstanceError::Verify(_) => "Cannot verify the image",
        InstanceError::Lookup(_) => "Cannot read the instance",
        InstanceError::Complete(_) => "Cannot record the unikernel as created",
    }
}

/// A failed step of a unikernel's life (or of the image plan computes), on the input at
/// fault.
pub fn failed(error: InstanceError) -> Error {
    Error::engine(summary(&error), error)
}
