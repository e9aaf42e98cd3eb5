//! Refresh and import: a running instance as [`engine::instance`] finds it, with the
//! control messages its runtime refused reported once each.

use engine::instance::{self, InstanceError};
use hypervisor::{HypervisorError, InstanceId};
use tfplugin::{Diagnostic, Diagnostics, StateResult, Value};

use super::model::Model;
use super::private;
use crate::provider::Shared;
use crate::resources::error::{Error, blocking};
use crate::resources::image::{ImageModel, failed};

/// Refresh: the state as the hypervisor and the store see it now; null when the instance
/// is gone. Warns about control messages refused since the last refresh.
pub async fn read(shared: &Shared, current: Value, private: Vec<u8>) -> Result<StateResult, Diagnostics> {
    let config = shared.config()?;
    let mut model = Model::decode(&current).map_err(Diagnostic::from)?;
    let Some(id) = model.instance_id() else { return Ok(StateResult::new(Value::Null)) };
    let name = model.name.known().cloned().unwrap_or_default();
    let image_digest = model.image_digest.known().cloned();
    let refreshed = blocking(move || instance::refresh(&config, &id, image_digest.as_deref()).map_err(failed)).await?;
    // Gone outside Terraform: the next plan creates it anew.
    let Some(refreshed) = refreshed else { return Ok(StateResult::new(Value::Null)) };
    model.refreshed(&refreshed);
    let refused = refreshed.refused;
    let (reported, private) = private::refused_reported(&private, refused);
    let mut result = StateResult { private, ..StateResult::new(model.encode()) };
    if refused > reported {
        result.diagnostics.push(Diagnostic::warning(
            format!("Unikernel `{name}` refused {} control message(s)", refused - reported),
            format!(
                "Its runtime refused reconfiguration requests that were not authenticated by the instance's key, \
                 replayed, or malformed, and kept its plan. Someone with access to its control socket tried to \
                 reconfigure it: see the `control_refused` lines in {}.",
                refreshed.console.display()
            ),
        ));
    }
    Ok(result)
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
        let (instance, metadata) = instance::recorded(&config, &id).map_err(|e| match e {
            InstanceError::Lookup(HypervisorError::NoSuchInstance(_)) => Error::new(
                "Unikernel not found",
                format!("No instance {id} in this provider's state directory; check `state_dir` and the id."),
            ),
            other => failed(other),
        })?;
        let metadata = metadata.ok_or_else(|| {
            Error::new(
                "Not a Terraform-managed instance",
                format!(
                    "Instance {id} was not started by sdsec_unikernel (it has no configuration record); stop it \
                     with `sdsec stop {id}`."
                ),
            )
        })?;
        let private = metadata.image_plan().map(|plan| private::new(&plan)).unwrap_or_default();
        let reach = engine::network::reach(&config.network, &instance, metadata.host_port);
        Ok((Model::imported(&instance, &metadata, &reach).encode(), private))
    })
    .await?;
    Ok(StateResult { private, ..StateResult::new(state) })
}
