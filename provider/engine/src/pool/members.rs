//! Keeping a pool's members: fill it to size, drop what died or no longer verifies, drain
//! it. Callers hold the pool's lock throughout; the ledger is saved after each change, so
//! what was done survives a failure half-way.

use std::time::Duration;

use hypervisor::{HypervisorError, InstanceId, InstanceState};
use sdsec_image::{ImageDigest, Store};

use super::{Ledger, Locked, PoolError, PoolSpec, Warm};
use crate::ProviderConfig;
use crate::host::Host;
use crate::instance::{self, Boot, InstanceError};

/// How long a new member runs before it is paused: time for its guest to give back the
/// memory it freed (free-page reporting waits 2 s, then takes a fraction of a second).
const MEMORY_SETTLE: Duration = Duration::from_secs(3);

/// What can fail in keeping a pool, one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum MembersError {
    /// A step members share with a unikernel's start: the hypervisor, the image, a boot.
    #[error(transparent)]
    Instance(#[from] InstanceError),
    /// A new pool's id or ledger cannot be made.
    #[error(transparent)]
    Create(PoolError),
    /// The ledger cannot be read at refresh.
    #[error(transparent)]
    Read(PoolError),
    /// The ledger cannot be locked or read to be changed.
    #[error(transparent)]
    Unavailable(PoolError),
    #[error("Pool {0} has no ledger.")]
    NoLedger(String),
    /// The ledger cannot be saved.
    #[error(transparent)]
    Record(PoolError),
    #[error(transparent)]
    Remove(PoolError),
    /// The ledger's plan does not parse.
    #[error(transparent)]
    Plan(serde_json::Error),
    /// No random id for an image member's slot.
    #[error(transparent)]
    Slot(fsutil::RandomError),
    #[error(transparent)]
    Pause(HypervisorError),
    /// A new member cannot be marked as created.
    #[error("a new member cannot be marked as created (it will be taken for an orphan and stopped): {0}")]
    Complete(HypervisorError),
    #[error("a boot thread failed")]
    Thread,
}

impl MembersError {
    /// The input at fault: only a step shared with a unikernel's start can name one; the
    /// rest is the pool's or the host's.
    pub fn input(&self) -> Option<crate::Input> {
        match self {
            MembersError::Instance(e) => e.input(),
            MembersError::Create(_)
            | MembersError::Read(_)
            | MembersError::Unavailable(_)
            | MembersError::NoLedger(_)
            | MembersError::Record(_)
            | MembersError::Remove(_)
            | MembersError::Plan(_)
            | MembersError::Slot(_)
            | MembersError::Pause(_)
            | MembersError::Complete(_)
            | MembersError::Thread => None,
        }
    }
}

/// A single failure, where several may be reported.
pub(super) fn one(error: impl Into<MembersError>) -> Vec<MembersError> {
    vec![error.into()]
}

/// Builds (or finds) the image of `ledger.image_plan` and adds members until there are
/// `spec.size`; extra members are stopped. Every member that failed to start is reported.
pub(super) fn fill(
    config: &ProviderConfig,
    locked: &Locked,
    ledger: &mut Ledger,
    spec: &PoolSpec,
    timeout: Duration,
) -> Result<(), Vec<MembersError>> {
    let size = spec.size;
    let backend = instance::backend(config).map_err(one)?;
    while ledger.members.len() > size {
        if let Some(member) = ledger.members.pop() {
            stop_member(&backend, ledger.warm, &member);
        }
    }
    // The image is kept built and verified even with no member to boot (`warm = "image"`,
    // or `size = 0`): takers boot it.
    let plan: ::plan::EnforcementPlan =
        serde_json::from_str(&ledger.image_plan).map_err(|e| one(MembersError::Plan(e)))?;
    let (image_spec, manifest) = spec.image.manifest(&plan, config).map_err(one)?;
    let image = instance::build(&config.state_dir, &image_spec, &manifest).map_err(one)?.image;
    ledger.image_digest = image.digest.to_string();
    if ledger.warm == Warm::Snapshot {
        // Made (or verified, and made again if it fails) now, so that a take starts a copy
        // at once.
        crate::snapshot::Snapshots::new(&config.state_dir)
            .ensure(&backend, &image, &plan, timeout)
            .map_err(|e| one(InstanceError::Snapshot(e)))?;
    }
    let missing = size - ledger.members.len();
    if missing == 0 {
        return save(locked, ledger).map_err(one);
    }
    if ledger.warm.slots() {
        for _ in 0..missing {
            ledger.members.push(slot_id().map_err(one)?);
        }
        return save(locked, ledger).map_err(one);
    }
    // Booted side by side: each waits mostly on its guest.
    let pool_id = ledger.id.clone();
    let booted: Vec<Result<InstanceId, MembersError>> = std::thread::scope(|scope| {
        let boots: Vec<_> = (0..missing)
            .map(|_| {
                let (backend, image, plan, pool_id) = (&backend, &image, &plan, &pool_id);
                scope.spawn(move || -> Result<InstanceId, MembersError> {
                    let settings = Boot {
                        name: format!("{}-pool", spec.name),
                        host_port: None,
                        timeout,
                        metadata: serde_json::json!({ "pool": pool_id }),
                        peers: Vec::new(),
                    };
                    let instance = instance::boot(backend, image, plan, settings)?;
                    // Paused at once, a member would keep every page its boot touched (all of
                    // its memory under `strict`, which zeroes it): its guest gives free memory
                    // back only once it serves, by free-page reporting, about 2 s later.
                    std::thread::sleep(MEMORY_SETTLE);
                    if let Err(e) = backend.pause(&instance.id) {
                        let _ = backend.stop(&instance.id, Duration::from_secs(5));
                        return Err(MembersError::Pause(e));
                    }
                    Ok(instance.id)
                })
            })
            .collect();
        boots.into_iter().map(|b| b.join().unwrap_or(Err(MembersError::Thread))).collect()
    });
    let mut errors = Vec::new();
    let mut added = Vec::new();
    for result in booted {
        match result {
            Ok(id) => {
                ledger.members.push(id.as_str().to_owned());
                added.push(id);
            }
            Err(e) => errors.push(e),
        }
    }
    save(locked, ledger).map_err(one)?;
    // Complete only once the ledger holds them: a member is never untracked. One that
    // cannot be completed is stopped as an orphan later, and dropped from the ledger.
    for id in added {
        if let Err(e) = backend.set_creator(&id, None) {
            errors.push(MembersError::Complete(e));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

fn save(locked: &Locked, ledger: &Ledger) -> Result<(), MembersError> {
    locked.save(ledger).map_err(MembersError::Record)
}

/// An image member's slot: `m-` and 16 hex digits, as an instance id's digits.
fn slot_id() -> Result<String, MembersError> {
    fsutil::random_id("m-", 8).map_err(MembersError::Slot)
}

/// Members are paused: a graceful stop gains nothing, so they get a short grace whatever
/// the delete timeout.
const STOP_GRACE: Duration = Duration::from_secs(5);

fn stop_member(backend: &Host, warm: Warm, member: &str) {
    if warm == Warm::Paused
        && let Ok(id) = member.parse::<InstanceId>()
    {
        let _ = backend.stop(&id, STOP_GRACE);
    }
}

/// Drops members that are not ready any more: all of them when the image fails
/// verification, a paused member that is no longer paused. Returns why, per dropped member.
pub(super) fn drop_unready(
    config: &ProviderConfig,
    locked: &Locked,
    ledger: &mut Ledger,
) -> Result<Vec<String>, MembersError> {
    let backend = instance::backend(config)?;
    let image_problem = ImageDigest::parse(&ledger.image_digest)
        .ok()
        .and_then(|digest| Store::open(&config.state_dir).ok()?.verify(&digest).err())
        .map(|e| e.to_string());
    let mut dropped = Vec::new();
    let mut kept = Vec::new();
    for member in std::mem::take(&mut ledger.members) {
        let why = match (&image_problem, ledger.warm) {
            (Some(problem), _) => Some(format!("its image failed verification: {problem}")),
            (None, Warm::Image | Warm::Snapshot) => None,
            (None, Warm::Paused) => match member.parse::<InstanceId>().map(|id| backend.state(&id)) {
                Ok(Ok(InstanceState::Paused)) => None,
                Ok(Ok(state)) => Some(format!("it is {}", state.as_str())),
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e),
            },
        };
        match why {
            None => kept.push(member),
            Some(why) => {
                stop_member(&backend, ledger.warm, &member);
                dropped.push(format!("{member}: {why}"));
            }
        }
    }
    ledger.members = kept;
    save(locked, ledger)?;
    Ok(dropped)
}

/// Stops every member.
pub(super) fn drain(config: &ProviderConfig, locked: &Locked, ledger: &mut Ledger) -> Result<(), MembersError> {
    let backend = instance::backend(config)?;
    for member in std::mem::take(&mut ledger.members) {
        stop_member(&backend, ledger.warm, &member);
    }
    save(locked, ledger)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_look_like_instance_ids_with_another_prefix() {
        let slot = slot_id().unwrap();
        let digits = slot.strip_prefix("m-").unwrap();
        let id = InstanceId::random().unwrap();
        assert_eq!(digits.len(), id.as_str().trim_start_matches("i-").len());
        assert!(digits.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{slot}");
    }
}
