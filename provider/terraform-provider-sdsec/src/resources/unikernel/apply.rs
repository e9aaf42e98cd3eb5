//! Apply: start an instance ([`engine::instance::start`]: a pool's warm member, or an image
//! built and booted on demand), send a running one a new plan in place, stop one.

use engine::instance;
use tfplugin::{ApplyRequest, Diagnostic, Diagnostics, StateResult};

use super::model::Model;
use super::private;
use crate::provider::Shared;
use crate::resources::error::{Error, blocking};
use crate::resources::image::{ImageModel, Operation, failed, planned};
use crate::values::Field;

pub async fn create(shared: &Shared, request: ApplyRequest) -> Result<StateResult, Diagnostics> {
    let config = shared.config()?;
    let (mut model, desired) = planned::<Model>(&request.planned_state)?;
    let timeout = model.timeouts.duration(Operation::Create).map_err(Diagnostic::from)?;
    let digest = model.image_digest.known().cloned().unwrap_or_default();
    let started = blocking({
        let (desired, digest, config) = (desired.clone(), digest.clone(), config.clone());
        move || instance::start(&config, &desired, &digest, timeout).map_err(failed)
    })
    .await?;
    // Completed right before the new state goes back to Terraform: until then, a provider
    // killed mid-create leaves an orphan that the next start or plan stops.
    blocking({
        let (config, id) = (config.clone(), started.instance.id.clone());
        move || {
            instance::complete(&config, &id).map_err(|e| {
                let _ = instance::stop(&config, &id, std::time::Duration::from_secs(5));
                failed(e)
            })
        }
    })
    .await?;
    model.record(&started.instance, &engine::network::reach(&config.network, &started.instance, desired.host_port));
    model.instance.boot_ms = Field::Known(started.ready_ms as i64);
    model.enforcement_digest = Field::Known(desired.image.plan.digest());
    let mut diagnostics = Diagnostics::new();
    if let Some(pool_id) = desired.pool.as_ref().filter(|_| started.pool_missed) {
        diagnostics.push(Diagnostic::warning(
            format!("Unikernel `{}` did not come from its pool", desired.name),
            format!(
                "Pool {pool_id} had no ready member with image {digest}; the unikernel was built and booted on \
                 demand. The pool refills at the next apply."
            ),
        ));
    }
    Ok(StateResult { private: private::new(&started.image_plan), diagnostics, ..StateResult::new(model.encode()) })
}

pub async fn update(shared: &Shared, request: ApplyRequest) -> Result<StateResult, Diagnostics> {
    let prior = Model::decode(&request.prior_state).map_err(Diagnostic::from)?;
    let (mut model, desired) = planned::<Model>(&request.planned_state)?;
    let peers_changed =
        prior.peers.known().cloned().unwrap_or_default() != model.peers.known().cloned().unwrap_or_default();
    // `timeouts` and `pool` change nothing that runs.
    if prior.enforcement_digest == model.enforcement_digest && !peers_changed {
        return Ok(StateResult { private: request.planned_private, ..StateResult::new(request.planned_state) });
    }
    let config = shared.config()?;
    let Some(id) = prior.instance_id() else {
        return Err(Error::new("Unikernel not known", "The configuration is still unknown at apply.").into());
    };
    if prior.enforcement_digest == model.enforcement_digest {
        let unrecorded = blocking({
            let id = id.clone();
            move || instance::set_peers(&config, &id, &desired).map_err(failed)
        })
        .await?;
        let diagnostics = unrecorded.map(|e| unrecorded_warning(&id, &e, "peers")).into_iter().collect();
        return Ok(StateResult {
            private: request.planned_private,
            diagnostics,
            ..StateResult::new(request.planned_state)
        });
    }
    let image_plan = private::image_plan(&request.planned_private);
    let updated = blocking({
        let id = id.clone();
        move || instance::update(&config, &id, &desired, image_plan).map_err(failed)
    })
    .await?;
    // The instance enforces the new plan already: failing to record it for import is a
    // warning, not a failed update.
    let mut diagnostics = Diagnostics::new();
    if let Some(e) = updated.unrecorded {
        diagnostics.push(unrecorded_warning(&id, &e, "plan"));
    }
    model.enforcement_digest = Field::Known(updated.digest);
    Ok(StateResult { private: request.planned_private, diagnostics, ..StateResult::new(model.encode()) })
}

pub async fn delete(shared: &Shared, request: ApplyRequest) -> Result<(), Diagnostics> {
    let config = shared.config()?;
    let prior = Model::decode(&request.prior_state).map_err(Diagnostic::from)?;
    // Validate refused a bad duration already: never keep a VM running over it.
    let grace = prior.timeouts.duration(Operation::Delete).unwrap_or_else(|_| Operation::Delete.default_duration());
    let Some(id) = prior.instance_id() else { return Ok(()) };
    blocking(move || instance::stop(&config, &id, grace).map_err(failed)).await?;
    Ok(())
}

/// What was applied but could not be recorded with instance `id` for `terraform import`.
fn unrecorded_warning(id: &hypervisor::InstanceId, error: &hypervisor::HypervisorError, what: &str) -> Diagnostic {
    Diagnostic::warning(
        format!("New {what} not recorded with the instance"),
        format!(
            "Instance {id} has its new {what} already, but recording it for `terraform import` failed: {error}. \
             Until the next change is applied, importing this instance would restore the previous {what}."
        ),
    )
}
