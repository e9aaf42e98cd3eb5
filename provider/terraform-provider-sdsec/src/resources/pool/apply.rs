//! Apply and refresh of a pool, through [`engine::pool`]: create and fill it, refill it or
//! rebuild its members for a new image, drop members that are not ready any more, drain
//! it. The ledger is changed under the pool's lock only.

use engine::Input;
use engine::instance::InstanceError;
use engine::pool::{self, MembersError};
use tfplugin::{ApplyRequest, Diagnostic, Diagnostics, StateResult, Value};

use super::model::Model;
use crate::provider::Shared;
use crate::resources::error::{Error, Subject, blocking};
use crate::resources::image::{self, ImageModel, Operation, planned};

/// A failed step of keeping the pool, in a pool's words.
fn failed(error: MembersError) -> Error {
    let summary = match &error {
        MembersError::Instance(InstanceError::Control(_)) => "Cannot prepare a member",
        MembersError::Instance(InstanceError::Boot(_)) => "Pool member did not start",
        MembersError::Instance(e) => image::summary(e),
        MembersError::Create(_) => "Cannot create the pool",
        MembersError::Read(_) => "Cannot read the pool",
        MembersError::Unavailable(_) | MembersError::NoLedger(_) => "Pool unavailable",
        MembersError::Record(_) => "Cannot record the pool",
        MembersError::Remove(_) => "Cannot remove the pool",
        MembersError::Plan(_) => "Pool ledger unreadable",
        MembersError::Slot(_) => "Cannot name a member",
        MembersError::Pause(_) => "Cannot pause a pool member",
        MembersError::Complete(_) => "Cannot record a pool member as created",
        MembersError::Thread => "Internal error",
    };
    match Error::engine(summary, error) {
        // A unikernel names its pool in `pool`; here the pool is the resource itself.
        Error { subject: Subject::Input(Input::Pool), summary, detail } => {
            Error { subject: Subject::Resource, summary, detail }
        }
        error => error,
    }
}

/// Every failure, one diagnostic each.
fn diagnostics(errors: Vec<MembersError>) -> Diagnostics {
    errors.into_iter().map(|e| Diagnostic::from(failed(e))).collect()
}

pub async fn create(shared: &Shared, request: ApplyRequest) -> Result<StateResult, Diagnostics> {
    let config = shared.config()?;
    let (mut model, desired) = planned::<Model>(&request.planned_state)?;
    let timeout = model.timeouts.duration(Operation::Create).map_err(Diagnostic::from)?;
    let ledger = blocking(move || pool::create(&config, &desired, timeout).map_err(diagnostics)).await?;
    model.record(&ledger);
    Ok(StateResult::new(model.encode()))
}

pub async fn read(shared: &Shared, current: Value, private: Vec<u8>) -> Result<StateResult, Diagnostics> {
    let config = shared.config()?;
    let mut model = Model::decode(&current).map_err(Diagnostic::from)?;
    let Some(id) = model.id.known().cloned() else { return Ok(StateResult::new(Value::Null)) };
    let refreshed = blocking(move || pool::refresh(&config, &id).map_err(failed)).await?;
    let Some(refreshed) = refreshed else { return Ok(StateResult::new(Value::Null)) };
    model.record(&refreshed.ledger);
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
    let (ledger, errors) =
        blocking(move || -> Result<_, Error> { Ok(pool::update(&config, &id, &desired, &digest, timeout)) }).await?;
    let diagnostics = diagnostics(errors);
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
    blocking(move || pool::destroy(&config, &id).map_err(failed)).await?;
    Ok(())
}
