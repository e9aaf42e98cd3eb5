//! A running instance as refresh and import see it, and its runtime's control channel:
//! which plan it enforces, a new plan sent to it, and the requests it refused.

use std::time::Duration;

use abi::event::Event;
use engine::ProviderConfig;
use hypervisor::{Hypervisor, HypervisorError, InstanceId, InstanceState};
use sdsec_image::{ImageDigest, Store, StoreError};
use sectosca::EnforcementPlan;
use tfplugin::{Diagnostic, Diagnostics, StateResult, Value};

use super::model::{Metadata, Model, VERIFIED};
use super::private;
use crate::provider::Shared;
use crate::resources::error::{Error, blocking};
use crate::resources::image::ImageModel;
use crate::values::Field;

/// How long the runtime has to acknowledge a new plan.
const RECONFIGURE_TIMEOUT: Duration = Duration::from_secs(30);
/// Refresh asks a running instance for its plan digest; a busy guest may answer late.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

pub fn backend(config: &ProviderConfig) -> Result<Box<dyn Hypervisor>, Error> {
    engine::launch::backend(config).map_err(|e| Error::engine("Hypervisor unavailable", e))
}

/// Refresh: the state as the hypervisor and the store see it now; null when the instance
/// is gone. Warns about control messages refused since the last refresh.
pub async fn read(shared: &Shared, current: Value, private: Vec<u8>) -> Result<StateResult, Diagnostics> {
    let config = shared.config()?;
    let model = Model::decode(&current).map_err(Diagnostic::from)?;
    let Some(id) = model.instance_id() else { return Ok(StateResult::new(Value::Null)) };
    let name = model.name.known().cloned().unwrap_or_default();
    let Some(Refreshed { model, refused, console }) = blocking(move || refresh(&config, &id, model)).await? else {
        return Ok(StateResult::new(Value::Null));
    };
    let (reported, private) = private::refused_reported(&private, refused);
    let mut result = StateResult { private, ..StateResult::new(model.encode()) };
    if refused > reported {
        result.diagnostics.push(Diagnostic::warning(
            format!("Unikernel `{name}` refused {} control message(s)", refused - reported),
            format!(
                "Its runtime refused reconfiguration requests that were not authenticated by the instance's key, \
                 replayed, or malformed, and kept its plan. Someone with access to its control socket tried to \
                 reconfigure it: see the `control_refused` lines in {console}."
            ),
        ));
    }
    Ok(result)
}

/// An instance as refresh found it.
struct Refreshed {
    model: Model,
    /// Control messages its runtime refused so far.
    refused: u64,
    /// Where its console log is.
    console: String,
}

/// `None` when the instance is gone.
fn refresh(config: &ProviderConfig, id: &InstanceId, mut model: Model) -> Result<Option<Refreshed>, Error> {
    let backend = backend(config)?;
    let instance_state = backend.state(id).map_err(|e| Error::new("Cannot read the unikernel's state", e))?;
    if instance_state == InstanceState::Gone {
        // Gone outside Terraform: remove what it left, and let the next plan create it anew.
        let _ = backend.stop(id, Duration::from_secs(1));
        return Ok(None);
    }
    model.state = Field::Known(instance_state.as_str().to_owned());
    if instance_state == InstanceState::Running
        && let Some(digest) = enforced_digest(backend.as_ref(), id)
    {
        model.enforcement_digest = Field::Known(digest);
    }
    let image_status = match model.image_digest.known().and_then(|d| ImageDigest::parse(d).ok()) {
        None => "missing".to_owned(),
        Some(digest) => match Store::open(&config.state_dir).and_then(|store| store.verify(&digest).map(|_| ())) {
            Ok(()) => VERIFIED.to_owned(),
            Err(StoreError::NotFound(_)) => "missing".to_owned(),
            Err(StoreError::Tampered { reason, .. }) => format!("tampered: {reason}"),
            Err(e) => return Err(Error::new("Cannot verify the image", e)),
        },
    };
    model.image_status = Field::Known(image_status);
    let (refused, console) = refused_messages(backend.as_ref(), id);
    Ok(Some(Refreshed { model, refused, console }))
}

/// Import: the state an instance recorded when it was booted, and its private state.
pub async fn import(shared: &Shared, id: &str) -> Result<StateResult, Diagnostics> {
    let config = shared.config()?;
    let Ok(id) = id.parse::<InstanceId>() else {
        return Err(Error::new(
            "Invalid instance id",
            format!("`{id}` is not an instance id: `i-` and 16 hex digits, as `instance_id`."),
        )
        .into());
    };
    let (state, private) = blocking(move || -> Result<_, Error> {
        let instance = backend(&config)?.instance(&id).map_err(|e| match e {
            HypervisorError::NoSuchInstance(_) => Error::new(
                "Unikernel not found",
                format!("No instance {id} in this provider's state directory; check `state_dir` and the id."),
            ),
            other => Error::new("Cannot read the instance", other),
        })?;
        let metadata: Metadata = serde_json::from_value(instance.metadata.clone()).map_err(|_| {
            Error::new(
                "Not a Terraform-managed instance",
                format!(
                    "Instance {id} was not started by sdsec_unikernel (it has no configuration record); stop it \
                     with `sdsec stop {id}`."
                ),
            )
        })?;
        let image_plan = metadata.image_enforcement.as_deref().unwrap_or(&metadata.enforcement);
        let private = serde_json::from_str(image_plan).map(|plan| private::new(&plan)).unwrap_or_default();
        Ok((Model::imported(&instance, &metadata).encode(), private))
    })
    .await?;
    Ok(StateResult { private, ..StateResult::new(state) })
}

/// Sends `plan` to the instance's runtime; returns the digest it acknowledged.
pub fn reconfigure(backend: &dyn Hypervisor, id: &InstanceId, plan: &EnforcementPlan) -> Result<String, Error> {
    let channel = backend.control(id).map_err(|e| Error::new("Cannot reconfigure the unikernel", e))?;
    let command = abi::control::Command::Reconfigure { plan: plan.canonical_json() };
    let reply = abi::control::call(&channel.socket, &channel.key, command, RECONFIGURE_TIMEOUT)
        .map_err(|e| Error::new("The unikernel's runtime did not take the new plan", format!("Instance {id}: {e}.")))?;
    let expected = plan.digest();
    match reply.digest {
        Some(digest) if digest == expected => Ok(digest),
        other => Err(Error::new(
            "The unikernel's runtime acknowledged another plan",
            format!("Instance {id} acknowledged {other:?}, not {expected}."),
        )),
    }
}

/// Which plan a running instance enforces, if it can be asked.
fn enforced_digest(backend: &dyn Hypervisor, id: &InstanceId) -> Option<String> {
    let channel = backend.control(id).ok()?;
    abi::control::call(&channel.socket, &channel.key, abi::control::Command::Status, STATUS_TIMEOUT).ok()?.digest
}

/// Control messages the instance's runtime refused, as its console log shows them, and
/// that log's path.
fn refused_messages(backend: &dyn Hypervisor, id: &InstanceId) -> (u64, String) {
    let Ok(instance) = backend.instance(id) else { return (0, String::new()) };
    let count = std::fs::read_to_string(&instance.console_log).map_or(0, |log| {
        Event::scan(&log).filter(|event| matches!(event, Event::ControlRefused { .. })).count() as u64
    });
    (count, instance.console_log.display().to_string())
}
