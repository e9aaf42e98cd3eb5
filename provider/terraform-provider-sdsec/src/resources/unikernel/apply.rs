//! What apply does on the host: start an instance (a pool's warm member, or an image built
//! and booted on demand), send a running one a new plan in place, stop one.

use std::time::{Duration, Instant};

use engine::ProviderConfig;
use engine::launch;
use engine::pool::{self, Taken};
use hypervisor::{Hypervisor, Instance, InstanceId};
use sdsec_image::Store;
use sectosca::EnforcementPlan;
use tfplugin::{ApplyRequest, Diagnostic, Diagnostics, StateResult};

use super::instance::{backend, reconfigure};
use super::model::{Desired, Model};
use super::private;
use crate::provider::Shared;
use crate::resources::error::{Error, blocking};
use crate::resources::image::{self, ImageModel, Operation, planned};
use crate::values::Field;

/// A started instance.
#[derive(Debug)]
struct Started {
    instance: Instance,
    /// The plan its image was built with.
    image_plan: EnforcementPlan,
    /// From the start of apply to the instance serving.
    ready_ms: u64,
    /// Said to the user as a warning.
    note: Option<String>,
}

pub async fn create(shared: &Shared, request: ApplyRequest) -> Result<StateResult, Diagnostics> {
    let config = shared.config()?;
    let (mut model, desired) = planned::<Model>(&request.planned_state)?;
    let timeout = model.timeouts.duration(Operation::Create).map_err(Diagnostic::from)?;
    let digest = model.image_digest.known().cloned().unwrap_or_default();
    let started = blocking({
        let desired = desired.clone();
        move || start(&config, &desired, &digest, timeout)
    })
    .await?;
    model.record(&started.instance);
    model.instance.boot_ms = Field::Known(started.ready_ms as i64);
    model.enforcement_digest = Field::Known(desired.image.plan.digest());
    let mut diagnostics = Diagnostics::new();
    if let Some(note) = started.note {
        diagnostics.push(Diagnostic::warning(format!("Unikernel `{}` did not come from its pool", desired.name), note));
    }
    Ok(StateResult { private: private::new(&started.image_plan), diagnostics, ..StateResult::new(model.encode()) })
}

pub async fn update(shared: &Shared, request: ApplyRequest) -> Result<StateResult, Diagnostics> {
    let prior = Model::decode(&request.prior_state).map_err(Diagnostic::from)?;
    let (mut model, desired) = planned::<Model>(&request.planned_state)?;
    // `timeouts` and `pool` change nothing that runs.
    if prior.enforcement_digest == model.enforcement_digest {
        return Ok(StateResult { private: request.planned_private, ..StateResult::new(request.planned_state) });
    }
    let config = shared.config()?;
    let Some(id) = prior.instance_id() else {
        return Err(Error::new("Unikernel not known", "The configuration is still unknown at apply.").into());
    };
    let image_plan = private::image_plan(&request.planned_private);
    let (digest, diagnostics) = blocking(move || -> Result<_, Error> {
        let backend = backend(&config)?;
        let digest = reconfigure(backend.as_ref(), &id, &desired.image.plan)?;
        // Import then restores the plan enforced now. The instance already enforces it, so
        // failing to record it is a warning, not a failed update.
        let image_plan = image_plan.unwrap_or_else(|| desired.image.plan.clone());
        let mut warnings = Diagnostics::new();
        if let Err(e) = backend.set_metadata(&id, metadata(&desired, &image_plan)) {
            warnings.push(Diagnostic::warning(
                "New plan not recorded with the instance",
                format!(
                    "Instance {id} enforces the new plan, but recording it for `terraform import` failed: {e}. Until \
                     the next policy change is applied, importing this instance would restore the previous plan."
                ),
            ));
        }
        Ok((digest, warnings))
    })
    .await?;
    model.enforcement_digest = Field::Known(digest);
    Ok(StateResult { private: request.planned_private, diagnostics, ..StateResult::new(model.encode()) })
}

pub async fn delete(shared: &Shared, request: ApplyRequest) -> Result<(), Diagnostics> {
    let config = shared.config()?;
    let prior = Model::decode(&request.prior_state).map_err(Diagnostic::from)?;
    // Validate refused a bad duration already: never keep a VM running over it.
    let grace = prior.timeouts.duration(Operation::Delete).unwrap_or_else(|_| Operation::Delete.default_duration());
    let Some(id) = prior.instance_id() else { return Ok(()) };
    blocking(move || backend(&config)?.stop(&id, grace).map_err(|e| Error::new("Cannot stop the unikernel", e)))
        .await?;
    Ok(())
}

/// Takes a member of `desired.pool` whose image is `digest`, or builds and boots the image.
fn start(config: &ProviderConfig, desired: &Desired, digest: &str, timeout: Duration) -> Result<Started, Error> {
    let started = Instant::now();
    let backend = backend(config)?;
    let mut note = None;
    let mut image_plan = desired.image.plan.clone();
    if let Some(pool_id) = &desired.pool {
        match pool::take(&config.state_dir, pool_id, digest).map_err(|e| Error::engine("Pool unavailable", e))? {
            Some(Taken::Paused { instance, image_plan }) => {
                let resumed = resume(backend.as_ref(), desired, &instance, &image_plan, timeout);
                return match resumed {
                    Ok(instance) => Ok(Started { instance, image_plan, ready_ms: elapsed_ms(started), note }),
                    Err(e) => {
                        // Taken, it is ours: leave nothing behind.
                        let _ = backend.stop(&instance, Duration::from_secs(5));
                        Err(e)
                    }
                };
            }
            Some(Taken::Image { image_plan: plan }) => image_plan = plan,
            None => {
                note = Some(format!(
                    "Pool {pool_id} had no ready member with image {digest}; the unikernel was built and booted on \
                     demand. The pool refills at the next apply."
                ))
            }
        }
    }
    let (spec, manifest) = image::manifest(&desired.image, &image_plan, config)?;
    let built = manifest.digest().map_err(|e| Error::new("Cannot digest the image", e))?;
    if built.as_str() != digest {
        return Err(Error::new(
            "Inputs changed since plan",
            format!(
                "The image would be {built}, but the plan said {digest}: the application, kernel or runtime changed \
                 on disk after `terraform plan`. Plan again."
            ),
        ));
    }
    let store = Store::open(&config.state_dir).map_err(|e| Error::new("Image store unavailable", e))?;
    let image = store.ensure_manifest(&spec, &manifest).map_err(|e| Error::new("Image build failed", e))?.image;
    let mut boot = launch::boot_spec(&image, &spec.plan, desired.host_port, timeout);
    boot.name = desired.name.clone();
    boot.metadata = metadata(desired, &image_plan);
    boot.control = Some(launch::control_boot().map_err(|e| Error::engine("Cannot prepare the unikernel", e))?);
    let instance = backend.boot(&boot).map_err(|e| Error::new("Unikernel did not start", e))?;
    if image_plan != desired.image.plan
        && let Err(e) = reconfigure(backend.as_ref(), &instance.id, &desired.image.plan)
    {
        let _ = backend.stop(&instance.id, Duration::from_secs(5));
        return Err(e);
    }
    Ok(Started { instance, image_plan, ready_ms: elapsed_ms(started), note })
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// What the instance keeps for import: the configuration, and the image's plan when it differs.
fn metadata(desired: &Desired, image_plan: &EnforcementPlan) -> serde_json::Value {
    let mut metadata = desired.metadata();
    if *image_plan != desired.image.plan {
        metadata.image_enforcement = Some(image_plan.canonical_json());
    }
    serde_json::to_value(metadata).unwrap_or_default()
}

/// Resumes a paused member, checks it serves, makes it `desired`'s.
fn resume(
    backend: &dyn Hypervisor,
    desired: &Desired,
    id: &InstanceId,
    image_plan: &EnforcementPlan,
    timeout: Duration,
) -> Result<Instance, Error> {
    backend.resume(id).map_err(|e| Error::new("Cannot resume the pool member", e))?;
    let instance = backend.instance(id).map_err(|e| Error::new("Cannot read the pool member", e))?;
    let health = &image_plan.runtime.firewall.http.health_path;
    let deadline = Instant::now() + timeout;
    loop {
        match hypervisor::probe::http_status(instance.endpoint, health, Duration::from_secs(2)) {
            Ok(200) => break,
            other if Instant::now() >= deadline => {
                return Err(Error::new(
                    "Pool member does not serve",
                    format!("Instance {id} resumed but its health path answered {other:?}; it was stopped."),
                ));
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    backend
        .set_metadata(id, metadata(desired, image_plan))
        .map_err(|e| Error::new("Cannot hand over the pool member", e))?;
    if *image_plan != desired.image.plan {
        reconfigure(backend, id, &desired.image.plan)?;
    }
    backend.instance(id).map_err(|e| Error::new("Cannot read the pool member", e))
}
