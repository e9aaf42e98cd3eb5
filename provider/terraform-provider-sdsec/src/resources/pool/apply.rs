//! What apply and refresh do to a pool: create and fill it, refill it or rebuild its
//! members for a new image, drop members that are not ready any more, drain it. The ledger
//! is changed under the pool's lock only.

use engine::pool::{Ledger, Pools};
use tfplugin::{ApplyRequest, Diagnostic, Diagnostics, StateResult, Value};

use super::members;
use super::model::Model;
use crate::provider::Shared;
use crate::resources::error::{Error, blocking};
use crate::resources::image::{ImageModel, Operation, planned};

pub async fn create(shared: &Shared, request: ApplyRequest) -> Result<StateResult, Diagnostics> {
    let config = shared.config()?;
    let (mut model, desired) = planned::<Model>(&request.planned_state)?;
    let timeout = model.timeouts.duration(Operation::Create).map_err(Diagnostic::from)?;
    let ledger = blocking(move || -> Result<Ledger, Diagnostics> {
        let pools = Pools::new(&config.state_dir);
        let id = Pools::new_id().map_err(|e| Error::new("Cannot create the pool", e))?;
        let locked = pools.lock(&id, true).map_err(|e| Error::new("Cannot create the pool", e))?;
        let mut ledger = Ledger {
            id: id.clone(),
            warm: desired.warm,
            image_digest: String::new(),
            image_plan: desired.image.plan.canonical_json(),
            members: Vec::new(),
        };
        if let Err(e) = members::fill(&config, &locked, &mut ledger, &desired, timeout) {
            // Nothing half-made stays: no member, no ledger.
            let _ = members::drain(&config, &locked, &mut ledger);
            drop(locked);
            let _ = pools.remove(&id);
            return Err(e);
        }
        Ok(ledger)
    })
    .await?;
    model.record(&ledger);
    Ok(StateResult::new(model.encode()))
}

pub async fn read(shared: &Shared, current: Value, private: Vec<u8>) -> Result<StateResult, Diagnostics> {
    let config = shared.config()?;
    let mut model = Model::decode(&current).map_err(Diagnostic::from)?;
    let Some(id) = model.id.known().cloned() else { return Ok(StateResult::new(Value::Null)) };
    let ledger = blocking(move || -> Result<Option<Ledger>, Error> {
        let Ok(locked) = Pools::new(&config.state_dir).lock(&id, false) else { return Ok(None) };
        let Some(mut ledger) = locked.load().map_err(|e| Error::new("Cannot read the pool", e))? else {
            return Ok(None);
        };
        members::refresh(&config, &locked, &mut ledger)?;
        Ok(Some(ledger))
    })
    .await?;
    let Some(ledger) = ledger else { return Ok(StateResult::new(Value::Null)) };
    model.record(&ledger);
    Ok(StateResult { private, ..StateResult::new(model.encode()) })
}

/// Refills the pool, after draining it when the image changes. What was done is recorded
/// even when it fails half-way: the state then shows the ledger as it is.
pub async fn update(shared: &Shared, request: ApplyRequest) -> Result<StateResult, Diagnostics> {
    let config = shared.config()?;
    let prior = Model::decode(&request.prior_state).map_err(Diagnostic::from)?;
    let (planned, desired) = planned::<Model>(&request.planned_state)?;
    let timeout = planned.timeouts.duration(Operation::Create).map_err(Diagnostic::from)?;
    let Some(id) = prior.id.known().cloned() else {
        return Err(Error::new("Pool not known", "The configuration is still unknown at apply.").into());
    };
    let digest = planned.image_digest.known().cloned().unwrap_or_default();
    let (ledger, diagnostics) = blocking(move || -> Result<_, Error> {
        let locked = match Pools::new(&config.state_dir).lock(&id, false) {
            Ok(locked) => locked,
            Err(e) => return Ok((None, Error::new("Pool unavailable", e).into())),
        };
        let mut ledger = match locked.load() {
            Ok(Some(ledger)) => ledger,
            Ok(None) => return Ok((None, Error::new("Pool unavailable", format!("Pool {id} has no ledger.")).into())),
            Err(e) => return Ok((None, Error::new("Pool unavailable", e).into())),
        };
        if ledger.image_digest != digest {
            // The image changes: members of the old one cannot serve the new plan.
            if let Err(e) = members::drain(&config, &locked, &mut ledger) {
                return Ok((Some(ledger), e.into()));
            }
            ledger.image_plan = desired.image.plan.canonical_json();
        }
        let filled = members::fill(&config, &locked, &mut ledger, &desired, timeout);
        Ok((Some(ledger), filled.err().unwrap_or_default()))
    })
    .await?;
    let mut state = if diagnostics.has_errors() { prior } else { planned };
    if let Some(ledger) = &ledger {
        state.record(ledger);
    }
    Ok(StateResult { diagnostics, ..StateResult::new(state.encode()) })
}

pub async fn delete(shared: &Shared, request: ApplyRequest) -> Result<(), Diagnostics> {
    let config = shared.config()?;
    let prior = Model::decode(&request.prior_state).map_err(Diagnostic::from)?;
    let Some(id) = prior.id.known().cloned() else { return Ok(()) };
    blocking(move || -> Result<(), Error> {
        let pools = Pools::new(&config.state_dir);
        let Ok(locked) = pools.lock(&id, false) else { return Ok(()) };
        if let Ok(Some(mut ledger)) = locked.load() {
            members::drain(&config, &locked, &mut ledger)?;
        }
        drop(locked);
        pools.remove(&id).map_err(|e| Error::new("Cannot remove the pool", e))
    })
    .await?;
    Ok(())
}
