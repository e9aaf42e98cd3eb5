//! A pool's whole life: created and filled, refreshed (members that are not ready any more
//! dropped), refilled or rebuilt for a new image, destroyed. The ledger is changed under
//! the pool's lock only.

use std::time::Duration;

use super::members::{self, MembersError, one};
use super::{Ledger, Pools, Warm};
use crate::ProviderConfig;
use crate::instance::ImageInputs;

/// What a pool is asked to hold.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    /// What its members are called.
    pub name: String,
    pub image: ImageInputs,
    pub size: usize,
    pub warm: Warm,
}

/// A new pool of `spec`, filled. Nothing half-made stays: on failure, no member and no
/// ledger.
pub fn create(config: &ProviderConfig, spec: &PoolSpec, timeout: Duration) -> Result<Ledger, Vec<MembersError>> {
    let pools = Pools::new(&config.state_dir);
    let id = Pools::new_id().map_err(|e| one(MembersError::Create(e)))?;
    let locked = pools.lock(&id, true).map_err(|e| one(MembersError::Create(e)))?;
    let mut ledger = Ledger {
        id: id.clone(),
        warm: spec.warm,
        image_digest: String::new(),
        image_plan: spec.image.plan.canonical_json(),
        members: Vec::new(),
    };
    if let Err(e) = members::fill(config, &locked, &mut ledger, spec, timeout) {
        let _ = members::drain(config, &locked, &mut ledger);
        drop(locked);
        let _ = pools.remove(&id);
        return Err(e);
    }
    Ok(ledger)
}

/// A pool after [`refresh`].
#[derive(Debug)]
pub struct Refreshed {
    pub ledger: Ledger,
    /// The members dropped, each with why.
    pub dropped: Vec<String>,
}

/// Pool `id` with the members that are not ready any more dropped; `None` when it is gone.
pub fn refresh(config: &ProviderConfig, id: &str) -> Result<Option<Refreshed>, MembersError> {
    let Ok(locked) = Pools::new(&config.state_dir).lock(id, false) else { return Ok(None) };
    let Some(mut ledger) = locked.load().map_err(MembersError::Read)? else { return Ok(None) };
    let dropped = members::drop_unready(config, &locked, &mut ledger)?;
    Ok(Some(Refreshed { ledger, dropped }))
}

/// Refills pool `id` to `spec`, after draining it when its image is not `digest` any more
/// (members of the old image cannot serve the new plan). Returns the ledger as it is after,
/// even when a step failed half-way (`None` when it could not be read), and what failed.
pub fn update(
    config: &ProviderConfig,
    id: &str,
    spec: &PoolSpec,
    digest: &str,
    timeout: Duration,
) -> (Option<Ledger>, Vec<MembersError>) {
    let locked = match Pools::new(&config.state_dir).lock(id, false) {
        Ok(locked) => locked,
        Err(e) => return (None, one(MembersError::Unavailable(e))),
    };
    let mut ledger = match locked.load() {
        Ok(Some(ledger)) => ledger,
        Ok(None) => return (None, one(MembersError::NoLedger(id.to_owned()))),
        Err(e) => return (None, one(MembersError::Unavailable(e))),
    };
    if ledger.image_digest != digest {
        if let Err(e) = members::drain(config, &locked, &mut ledger) {
            return (Some(ledger), one(e));
        }
        ledger.image_plan = spec.image.plan.canonical_json();
    }
    let filled = members::fill(config, &locked, &mut ledger, spec, timeout);
    (Some(ledger), filled.err().unwrap_or_default())
}

/// Stops every member of pool `id` and removes its ledger; a pool already gone is not an
/// error.
pub fn destroy(config: &ProviderConfig, id: &str) -> Result<(), MembersError> {
    let pools = Pools::new(&config.state_dir);
    let Ok(locked) = pools.lock(id, false) else { return Ok(()) };
    if let Ok(Some(mut ledger)) = locked.load() {
        members::drain(config, &locked, &mut ledger)?;
    }
    drop(locked);
    pools.remove(id).map_err(MembersError::Remove)
}
