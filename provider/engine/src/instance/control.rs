//! A running instance's control channel: a new plan sent to its runtime, the plan it says
//! it enforces, and the requests it refused.

use std::time::Duration;

use abi::control::Command;
use abi::event::Event;
use hypervisor::{Hypervisor, InstanceId};
use plan::EnforcementPlan;

use super::InstanceError;

/// How long the runtime has to acknowledge a new plan.
const RECONFIGURE_TIMEOUT: Duration = Duration::from_secs(30);
/// Refresh asks a running instance for its plan digest; a busy guest may answer late.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `plan` to the instance's runtime; returns the digest it acknowledged.
pub fn reconfigure(backend: &dyn Hypervisor, id: &InstanceId, plan: &EnforcementPlan) -> Result<String, InstanceError> {
    let channel = backend.control(id).map_err(InstanceError::Channel)?;
    let command = Command::Reconfigure { plan: plan.canonical_json() };
    let reply = channel
        .call(command, RECONFIGURE_TIMEOUT)
        .map_err(|source| InstanceError::NotTaken { id: id.clone(), source })?;
    let expected = plan.digest();
    match reply.digest {
        Some(digest) if digest == expected => Ok(digest),
        acknowledged => Err(InstanceError::OtherPlan { id: id.clone(), acknowledged, expected }),
    }
}

/// Which plan a running instance enforces, if it can be asked.
pub(super) fn enforced_digest(backend: &dyn Hypervisor, id: &InstanceId) -> Option<String> {
    let channel = backend.control(id).ok()?;
    channel.call(Command::Status, STATUS_TIMEOUT).ok()?.digest
}

/// Control messages the instance's runtime refused, as its audit log shows them, and where
/// that log is (empty when it cannot be read). Its logs are rotated past their caps first:
/// the count covers the current and the previous file.
pub(super) fn refused_messages(backend: &dyn Hypervisor, id: &InstanceId) -> (u64, String) {
    let Ok((events, log)) = backend.events(id) else { return (0, String::new()) };
    let count = events.iter().filter(|event| matches!(event, Event::ControlRefused { .. })).count() as u64;
    (count, log)
}
