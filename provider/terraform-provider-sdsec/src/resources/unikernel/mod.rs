//! `sdsec_unikernel`: a protected unikernel on the provider's hypervisor. Plan computes the
//! image digest from the inputs (nothing is built) and checks placement; create builds or
//! reuses the image and boots it until the runtime serves; read reports instances that are
//! gone, stopped or whose image no longer verifies, which the next plan replaces; delete
//! stops the VM and removes what it left.

mod apply;
pub(crate) mod desired;
mod schema;
mod state;

use std::sync::Arc;

use hypervisor::{HypervisorError, InstanceId, InstanceState};
use sdsec_image::{ImageDigest, Manifest, Store, StoreError};
use tfplugin::{
    ApplyRequest, AttributePath, Diagnostic, Diagnostics, PlanRequest, PlanResult, Resource, Schema, StateResult, Value,
};

pub(crate) use self::apply::{enforced_digest, keep_image, pool_image, reconfigure};
use self::desired::{DEFAULT_CREATE_TIMEOUT, DEFAULT_DELETE_TIMEOUT, Desired, Metadata};
use crate::config::ProviderConfig;
use crate::launch;
use crate::provider::Shared;
use crate::values::string;

pub use schema::{application_type, schema};

pub const TYPE_NAME: &str = "sdsec_unikernel";

#[derive(Debug)]
pub struct Unikernel {
    shared: Arc<Shared>,
}

impl Unikernel {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

pub(crate) fn error(summary: &str, detail: impl std::fmt::Display) -> Diagnostics {
    Diagnostic::error(summary, detail.to_string()).into()
}

/// The spec and manifest (hashes only) of `desired`'s image built with `plan`, with errors on
/// the attribute at fault.
pub(crate) fn manifest(
    desired: &Desired,
    plan: &sectosca::EnforcementPlan,
    config: &ProviderConfig,
) -> Result<(sdsec_image::ImageSpec, Manifest), Diagnostics> {
    let runtime = launch::runtime_binary().map_err(|e| error("Enforcement runtime not found", e))?;
    let mut spec =
        launch::image_spec(plan, &desired.app_spec(), config.kernel.as_deref(), &runtime).map_err(|e| match e {
            launch::LaunchError::Kernel(e) => {
                Diagnostics::from(Diagnostic::error("No kernel for the image", e.to_string()))
            }
            other => error("Cannot prepare the image", other),
        })?;
    if let Some(memory) = desired.memory_mb {
        spec.memory_mb = memory;
    }
    if let Some(vcpus) = desired.vcpus {
        spec.vcpus = vcpus;
    }
    let manifest = Manifest::from_spec(&spec).map_err(|e| {
        let text = e.to_string();
        // Errors that name the application's file belong on `application`.
        let at_app = text.contains(&desired.application.path) || text.contains("application");
        let path = if at_app { AttributePath::attr("application").attribute("path") } else { AttributePath::root() };
        Diagnostics::from(Diagnostic::error("Cannot build this image", text).at(path))
    })?;
    Ok((spec, manifest))
}

pub(crate) fn blocking_error(e: tokio::task::JoinError) -> Diagnostics {
    error("Internal error", format!("a background task failed: {e}"))
}

#[tfplugin::async_trait]
impl Resource for Unikernel {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn validate(&self, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        desired::timeout(config, "create", DEFAULT_CREATE_TIMEOUT, &mut diags);
        desired::timeout(config, "delete", DEFAULT_DELETE_TIMEOUT, &mut diags);
        let _ = desired::read(config, &mut diags);
        diags
    }

    async fn plan(&self, request: PlanRequest) -> PlanResult {
        let prior = request.prior_state.clone();
        // The plan the running image was built with (older states: the enforcement itself).
        let image_plan = apply::image_plan_from_private(&request.prior_private)
            .or_else(|| string(&prior, "enforcement").and_then(|json| serde_json::from_str(&json).ok()));
        let mut result = request.into_result();
        let config = match self.shared.config() {
            Ok(config) => config,
            Err(diags) => {
                result.diagnostics = diags;
                return result;
            }
        };
        let mut diags = Diagnostics::new();
        let Some(desired) = desired::read(&result.planned_state, &mut diags) else {
            state::mark_unknown(&mut result.planned_state, prior.is_null());
            result.diagnostics = diags;
            return result;
        };
        let violations = crate::placement::violations(&desired.plan, &config);
        if !violations.is_empty() {
            for violation in violations {
                diags.attribute_error(AttributePath::attr("enforcement"), "Placement requirement not met", violation);
            }
            result.diagnostics = diags;
            return result;
        }
        let prior_digest = string(&prior, "image_digest");
        let prior_id = string(&prior, "id").and_then(|id| id.parse::<InstanceId>().ok());
        let computed = tokio::task::spawn_blocking({
            let (desired, config) = (desired.clone(), config.clone());
            move || {
                // A daemon that cannot be reached is found now rather than half-way through apply.
                let backend = match config.hypervisor {
                    crate::config::Hypervisor::Libvirt => {
                        Some(launch::backend(&config).map_err(|e| error("Hypervisor unavailable", e))?)
                    }
                    crate::config::Hypervisor::Qemu => launch::backend(&config).ok(),
                };
                let digest = manifest(&desired, &desired.plan, &config)
                    .and_then(|(_, m)| m.digest().map_err(|e| error("Cannot digest the image", e)))?;
                // Only an instance with a control channel (booted by this release or later) can
                // be reconfigured; an older one is replaced instead.
                let reachable = |id: &InstanceId| backend.as_ref().is_some_and(|b| b.control(id).is_ok());
                let image_plan = image_plan.filter(|_| prior_id.as_ref().is_some_and(reachable));
                Ok(planned_image(&desired, &config, digest, prior_digest, image_plan))
            }
        })
        .await
        .map_err(blocking_error)
        .and_then(|r| r);
        let digest = match computed {
            Ok(digest) => digest,
            Err(diags) => {
                result.diagnostics = diags;
                return result;
            }
        };
        let reasons = state::plan(&mut result, &prior, &desired, &digest);
        if desired.pool.is_some() && desired.host_port.is_some() {
            diags.attribute_error(
                AttributePath::attr("host_port"),
                "host_port cannot be used with pool",
                "A pool's members are booted before they are taken, each with a free port of its own; remove \
                 `host_port` or `pool`.",
            );
        }
        if !reasons.is_empty() {
            diags.push(Diagnostic::warning(
                format!("Unikernel `{}` will be replaced", desired.name),
                format!("Why: {}.", reasons.join("; ")),
            ));
        }
        result.diagnostics = diags;
        result
    }

    async fn create(&self, request: ApplyRequest) -> StateResult {
        let config = match self.shared.config() {
            Ok(config) => config,
            Err(diags) => return StateResult::failed(Value::Null, diags),
        };
        let mut diags = Diagnostics::new();
        let planned = request.planned_state;
        let timeout = desired::timeout(&planned, "create", DEFAULT_CREATE_TIMEOUT, &mut diags);
        let Some(desired) = desired::read(&planned, &mut diags) else {
            diags.push(Diagnostic::error("Unikernel not known", "The configuration is still unknown at apply."));
            return StateResult::failed(Value::Null, diags);
        };
        let planned_digest = string(&planned, "image_digest").unwrap_or_default();
        let started = tokio::task::spawn_blocking({
            let desired = desired.clone();
            move || apply::start(&config, &desired, &planned_digest, timeout)
        })
        .await
        .map_err(blocking_error)
        .and_then(|r| r);
        match started {
            Ok(started) => {
                let mut state = planned;
                state::record_instance(&mut state, &started.instance);
                state.set("boot_ms", Value::from(started.ready_ms as i64));
                state.set("enforcement_digest", Value::from(desired.plan.digest()));
                if let Some(note) = started.note {
                    diags.push(Diagnostic::warning(
                        format!("Unikernel `{}` did not come from its pool", desired.name),
                        note,
                    ));
                }
                StateResult {
                    private: apply::private(&started.image_plan),
                    diagnostics: diags,
                    ..StateResult::new(state)
                }
            }
            Err(mut errors) => {
                errors.extend(diags);
                StateResult::failed(Value::Null, errors)
            }
        }
    }

    async fn read(&self, current_state: Value, private: Vec<u8>) -> StateResult {
        let config = match self.shared.config() {
            Ok(config) => config,
            Err(diags) => return StateResult::failed(current_state, diags),
        };
        let Some(id) = string(&current_state, "id").and_then(|id| id.parse::<InstanceId>().ok()) else {
            return StateResult::new(Value::Null);
        };
        let current = current_state.clone();
        let refreshed = tokio::task::spawn_blocking(move || refresh(&config, &id, current)).await;
        match refreshed.map_err(blocking_error).and_then(|r| r) {
            Ok((state, (refused, console))) => {
                let (reported, private) = apply::refused_reported(&private, refused);
                let mut result = StateResult { private, ..StateResult::new(state) };
                if refused > reported {
                    let name = string(&current_state, "name").unwrap_or_default();
                    result.diagnostics.push(Diagnostic::warning(
                        format!("Unikernel `{name}` refused {} control message(s)", refused - reported),
                        format!(
                            "Its runtime refused reconfiguration requests that were not authenticated by the \
                             instance's key, replayed, or malformed, and kept its plan. Someone with access to its \
                             control socket tried to reconfigure it: see the `control_refused` lines in {console}."
                        ),
                    ));
                }
                result
            }
            Err(diags) => StateResult::failed(current_state, diags),
        }
    }

    async fn update(&self, request: ApplyRequest) -> StateResult {
        let keep = |diags| StateResult::failed(request.prior_state.clone(), diags);
        let unchanged =
            string(&request.prior_state, "enforcement_digest") == string(&request.planned_state, "enforcement_digest");
        // `timeouts` and `pool` change nothing that runs.
        if unchanged {
            return StateResult { private: request.planned_private, ..StateResult::new(request.planned_state) };
        }
        let config = match self.shared.config() {
            Ok(config) => config,
            Err(diags) => return keep(diags),
        };
        let mut diags = Diagnostics::new();
        let (Some(desired), Some(id)) = (
            desired::read(&request.planned_state, &mut diags),
            string(&request.prior_state, "id").and_then(|id| id.parse::<InstanceId>().ok()),
        ) else {
            diags.push(Diagnostic::error("Unikernel not known", "The configuration is still unknown at apply."));
            return keep(diags);
        };
        let image_plan = apply::image_plan_from_private(&request.planned_private);
        let applied = tokio::task::spawn_blocking({
            let desired = desired.clone();
            move || -> Result<String, Diagnostics> {
                let backend = launch::backend(&config).map_err(|e| error("Hypervisor unavailable", e))?;
                let digest = reconfigure(backend.as_ref(), &id, &desired.plan)?;
                // Import then restores the plan enforced now.
                let image_plan = image_plan.unwrap_or_else(|| desired.plan.clone());
                let _ = backend.set_metadata(&id, apply::metadata(&desired, &image_plan));
                Ok(digest)
            }
        })
        .await
        .map_err(blocking_error)
        .and_then(|r| r);
        match applied {
            Ok(digest) => {
                let mut state = request.planned_state;
                state.set("enforcement_digest", Value::from(digest));
                StateResult { private: request.planned_private, ..StateResult::new(state) }
            }
            Err(errors) => keep(errors),
        }
    }

    async fn delete(&self, request: ApplyRequest) -> Diagnostics {
        let config = match self.shared.config() {
            Ok(config) => config,
            Err(diags) => return diags,
        };
        let mut diags = Diagnostics::new();
        let grace = desired::timeout(&request.prior_state, "delete", DEFAULT_DELETE_TIMEOUT, &mut diags);
        let Some(id) = string(&request.prior_state, "id").and_then(|id| id.parse::<InstanceId>().ok()) else {
            return diags;
        };
        let stopped = tokio::task::spawn_blocking(move || {
            let backend = launch::backend(&config).map_err(|e| error("Hypervisor unavailable", e))?;
            backend.stop(&id, grace).map_err(|e| error("Cannot stop the unikernel", e))
        })
        .await
        .map_err(blocking_error)
        .and_then(|r| r);
        if let Err(errors) = stopped {
            diags.extend(errors);
        }
        diags
    }

    async fn import(&self, id: &str) -> StateResult {
        let config = match self.shared.config() {
            Ok(config) => config,
            Err(diags) => return StateResult::failed(Value::Null, diags),
        };
        let Ok(id) = id.parse::<InstanceId>() else {
            return StateResult::failed(
                Value::Null,
                error(
                    "Invalid instance id",
                    format!("`{id}` is not an instance id: `i-` and 16 hex digits, as `instance_id`."),
                ),
            );
        };
        let imported = tokio::task::spawn_blocking(move || {
            let backend = launch::backend(&config).map_err(|e| error("Hypervisor unavailable", e))?;
            let instance = backend.instance(&id).map_err(|e| match e {
                HypervisorError::NoSuchInstance(_) => error(
                    "Unikernel not found",
                    format!("No instance {id} in this provider's state directory; check `state_dir` and the id."),
                ),
                other => error("Cannot read the instance", other),
            })?;
            let metadata: Metadata = serde_json::from_value(instance.metadata.clone()).map_err(|_| {
                error(
                    "Not a Terraform-managed instance",
                    format!("Instance {id} was not started by sdsec_unikernel (it has no configuration record); stop it with `sdsec stop {id}`."),
                )
            })?;
            let image_plan = metadata.image_enforcement.as_deref().unwrap_or(&metadata.enforcement);
            let private = serde_json::from_str(image_plan).map(|plan| apply::private(&plan)).unwrap_or_default();
            Ok((state::from_instance(&instance, &metadata), private))
        })
        .await
        .map_err(blocking_error)
        .and_then(|r| r);
        match imported {
            Ok((state, private)) => StateResult { private, ..StateResult::new(state) },
            Err(diags) => StateResult::failed(Value::Null, diags),
        }
    }
}

/// The state as the hypervisor and the store see it now; `Null` when the instance is gone.
/// Also returns how many control messages the runtime has refused so far.
fn refresh(
    config: &ProviderConfig,
    id: &InstanceId,
    mut current: Value,
) -> Result<(Value, (u64, String)), Diagnostics> {
    let backend = launch::backend(config).map_err(|e| error("Hypervisor unavailable", e))?;
    let instance_state = backend.state(id).map_err(|e| error("Cannot read the unikernel's state", e))?;
    if instance_state == InstanceState::Gone {
        // Gone outside Terraform: remove what it left, and let the next plan create it anew.
        let _ = backend.stop(id, std::time::Duration::from_secs(1));
        return Ok((Value::Null, (0, String::new())));
    }
    current.set("state", Value::from(instance_state.as_str()));
    if instance_state == InstanceState::Running
        && let Some(digest) = enforced_digest(backend.as_ref(), id)
    {
        current.set("enforcement_digest", Value::from(digest));
    }
    let image_status = match string(&current, "image_digest").and_then(|d| ImageDigest::parse(&d).ok()) {
        None => "missing".to_owned(),
        Some(digest) => match Store::open(&config.state_dir).and_then(|store| store.verify(&digest).map(|_| ())) {
            Ok(()) => "verified".to_owned(),
            Err(StoreError::NotFound(_)) => "missing".to_owned(),
            Err(StoreError::Tampered { reason, .. }) => format!("tampered: {reason}"),
            Err(e) => return Err(error("Cannot verify the image", e)),
        },
    };
    current.set("image_status", Value::from(image_status));
    Ok((current, apply::refused_messages(backend.as_ref(), id)))
}

/// The image digest to plan: the running image's, when it can serve the new plan in place
/// (or, for a new instance, its pool's); else the one `digest` computed.
fn planned_image(
    desired: &Desired,
    config: &ProviderConfig,
    digest: ImageDigest,
    prior_digest: Option<String>,
    image_plan: Option<sectosca::EnforcementPlan>,
) -> ImageDigest {
    let existing = match (prior_digest, image_plan) {
        (Some(prior), Some(plan)) => Some((prior, plan)),
        (None, _) => desired.pool.as_deref().and_then(|id| pool_image(config, id)),
        (Some(_), None) => None,
    };
    keep_image(desired, config, digest, existing)
}
