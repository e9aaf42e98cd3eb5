//! What apply, refresh and import do with a policy: the provider's record of it in its
//! state directory.

use engine::policy_store::{PolicyStore, is_policy_id};
use tfplugin::{ApplyRequest, Diagnostic, Diagnostics, StateResult, Value};

use super::imports::Seen;
use super::model::Model;
use crate::policy::fields::DEFAULT_BASE_DIR;
use crate::provider::Shared;
use crate::resources::error::Error;
use crate::values::Field;

fn store(shared: &Shared) -> Result<PolicyStore, Error> {
    let config = shared.config()?;
    PolicyStore::open(&config.state_dir).map_err(|e| Error::engine("Policy store unavailable", e))
}

/// Writes the record of a planned state.
fn write_record(store: &PolicyStore, model: &Model) -> Result<(), Diagnostics> {
    let record = model
        .record()
        .ok_or_else(|| Error::new("Policy not known", "The document or inputs are still unknown at apply."))?;
    store.put(&record).map_err(|e| Error::engine("Cannot write the policy record", e))?;
    Ok(())
}

pub fn create(shared: &Shared, request: ApplyRequest) -> Result<StateResult, Diagnostics> {
    let store = store(shared)?;
    let mut model = Model::decode(&request.planned_state).map_err(Diagnostic::from)?;
    let id = PolicyStore::new_id().map_err(|e| Error::engine("Cannot create policy", e))?;
    model.id = Field::Known(id);
    write_record(&store, &model)?;
    // The imports the plan read, which the next plan compares with (see `imports`).
    Ok(StateResult { private: request.planned_private, ..StateResult::new(model.encode()) })
}

/// Refresh; the private data it returns holds the imported files as read now, which the
/// plan that follows (now, or at `terraform apply PLAN`) compares with (see `imports`).
pub fn read(shared: &Shared, current: &Value, _private: Vec<u8>) -> Result<StateResult, Diagnostics> {
    let store = store(shared)?;
    let state = Model::decode(current).map_err(Diagnostic::from)?;
    let Some(id) = state.id.known().cloned() else {
        return Ok(StateResult::new(Value::Null));
    };
    let Some(record) = store.get(&id).map_err(|e| Error::engine("Cannot read the policy record", e))? else {
        // Removed outside Terraform: drop it from state so the next plan creates it.
        return Ok(StateResult::new(Value::Null));
    };
    let base_dir = state.policy.base_dir.known().map(String::as_str);
    let seen = Seen::now(&record.document, &record.inputs, base_dir.unwrap_or(DEFAULT_BASE_DIR));
    let private = seen.encode();
    match record {
        // A document that imports others, unchanged since apply: the state says what was
        // applied. Compiling it again here would take in edits of the imported files, so
        // that the plan would not show them; the plan compiles them and shows the change.
        record if imports(&record.document) && state.record().as_ref() == Some(&record) => {
            Ok(StateResult { private, ..StateResult::new(current.clone()) })
        }
        record => Ok(StateResult { private, ..StateResult::new(Model::from_record(&record, base_dir)?.encode()) }),
    }
}

/// Whether a document imports documents that are read from files (not just the profile).
fn imports(document: &str) -> bool {
    let compilation = crate::policy::compile(document, &Default::default()).1;
    compilation.diagnostics.iter().any(|d| d.code == sectosca::Code::ImportNotFound)
}

pub fn update(shared: &Shared, request: ApplyRequest) -> Result<StateResult, Diagnostics> {
    let store = store(shared)?;
    let model = Model::decode(&request.planned_state).map_err(Diagnostic::from)?;
    write_record(&store, &model)?;
    Ok(StateResult { private: request.planned_private, ..StateResult::new(request.planned_state) })
}

pub fn delete(shared: &Shared, request: ApplyRequest) -> Result<(), Diagnostics> {
    let Some(id) = Model::decode(&request.prior_state).map_err(Diagnostic::from)?.id.into_known() else {
        return Ok(());
    };
    store(shared)?.remove(&id).map_err(|e| Error::engine("Cannot delete the policy record", e))?;
    Ok(())
}

pub fn import(shared: &Shared, id: &str) -> Result<StateResult, Diagnostics> {
    if !is_policy_id(id) {
        return Err(Error::new(
            "Invalid policy id",
            format!("`{id}` is not a policy id: expected `pol-` and 16 hex digits, as in the `id` attribute."),
        )
        .into());
    }
    let store = store(shared)?;
    match store.get(id).map_err(|e| Error::engine("Cannot read the policy record", e))? {
        Some(record) => Ok(StateResult::new(Model::from_record(&record, None)?.encode())),
        None => Err(Error::new(
            "Policy not found",
            format!(
                "There is no policy with id {id} in this provider's state directory; check `state_dir` and the id."
            ),
        )
        .into()),
    }
}
