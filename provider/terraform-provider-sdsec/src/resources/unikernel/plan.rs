//! Planning `sdsec_unikernel`: the image digest from the inputs (nothing is built), the
//! placement check, and what forces a new instance, with why in words for the reviewer.

use engine::ProviderConfig;
use engine::config::Hypervisor;
use engine::host::HostError;
use engine::instance::Unikernel;
use hypervisor::InstanceId;
use network::{NetworkError, NetworkMode};
use plan::RateScope;
use plan::{ChangeKind, EnforcementPlan};
use sdsec_image::ImageDigest;
use tfplugin::{AttributePath, Diagnostic, Diagnostics, PlanResult};

use super::model::{InstanceFields, Model, RUNNING, STOPPED, VERIFIED};
use super::private;
use super::schema::{CREATED_AT, HOST_PORT, IMAGE_STATUS, STATE};
use crate::resources::error::{Error, blocking};
use crate::resources::image::{IMAGE_DIGEST, ImageModel, POOL, PlanModel, Planning, failed};
use crate::values::Field;

impl PlanModel for Model {
    async fn fill(planning: Planning<Self>, result: &mut PlanResult) -> Result<(), Diagnostics> {
        let Planning { prior, mut planned, config, desired, creating } = planning;
        // Before anything reads the pool: the id becomes a path under the state directory.
        if let Some(id) = &desired.pool
            && let Err(e) = engine::pool::check_id(id)
        {
            return Err(Error::at(AttributePath::attr(POOL), "Invalid pool id", e.to_string()).into());
        }
        // The plan the running image was built with (older states: the enforcement itself).
        let image_plan = private::image_plan(&result.planned_private)
            .or_else(|| prior.image.enforcement.known().and_then(|json| serde_json::from_str(json).ok()));
        let (mode, why_mode) = config.network_mode();
        let digest = blocking({
            let (desired, prior_digest, prior_id, config) =
                (desired.clone(), prior.image_digest.known().cloned(), prior.instance_id(), config.clone());
            move || planned_digest(&desired, &config, prior_digest, prior_id, image_plan)
        })
        .await?;
        if creating {
            let (host_port, config) = (desired.host_port, config.clone());
            blocking(move || check_network(&config, host_port)).await?;
        }
        let reasons = fill_computed(result, &mut planned, &prior, creating, &desired, &digest);
        if creating {
            planned.instance.network = Field::Known(mode.as_str().to_owned());
        }
        result.planned_state = planned.encode();
        if mode == NetworkMode::User {
            user_network_notes(result, &desired, why_mode);
        }
        if !reasons.is_empty() {
            result.diagnostics.push(Diagnostic::warning(
                format!("Unikernel `{}` will be replaced", desired.name),
                format!("Why: {}.", reasons.join("; ")),
            ));
        }
        Ok(())
    }
}

/// Under `network = "bridge"`: what a crash left is reclaimed, the bridge settings suit
/// this host, and `host_port` is free.
fn check_network(config: &ProviderConfig, host_port: Option<u16>) -> Result<(), Error> {
    let host = engine::launch::backend(config).map_err(|e| Error::engine("Hypervisor unavailable", e))?;
    host.check(host_port).map_err(|e| match e {
        HostError::Network(NetworkError::PortInUse { .. } | NetworkError::PortLeased { .. }) => {
            Error::at(AttributePath::attr(HOST_PORT), "host_port in use", e.to_string())
        }
        HostError::Network(e) if e.setting().is_some() => {
            let setting = e.setting().map(|s| s.as_str()).unwrap_or_default();
            Error::new("Network unusable", format!("{e} (the provider's `{setting}` setting)"))
        }
        other => Error::new("Network unusable", other.to_string()),
    })
}

/// On QEMU's user network: a pool's members cannot be published when taken, and every
/// client is seen as the same address.
fn user_network_notes(result: &mut PlanResult, desired: &Unikernel, why_mode: &str) {
    if desired.pool.is_some() && desired.host_port.is_some() {
        result.diagnostics.push(Diagnostic::from(Error::at(
            AttributePath::attr(HOST_PORT),
            "host_port with pool needs network = \"bridge\"",
            format!(
                "On the user network ({why_mode}) a pool's members are booted before they are taken, each forwarded \
                 from a port of its own; with `network = \"bridge\"` a taken member is published on its own \
                 host_port. Run the provider with CAP_NET_ADMIN (e.g. as root), or remove `host_port` or `pool`."
            ),
        )));
    }
    let runtime = &desired.image.plan.runtime;
    if !runtime.firewall.egress.is_empty() || !runtime.flows.connects_to.is_empty() {
        result.diagnostics.push(Diagnostic::warning(
            format!("Unikernel `{}`: flows and egress are not enforced by the host", desired.name),
            format!(
                "The provider uses QEMU's user network ({why_mode}): the Firewall's `egress` is not applied (no \
                 connection leaves the guest), and a node that `connects_to` another may connect anywhere QEMU \
                 reaches. Use `network = \"bridge\"` (needs CAP_NET_ADMIN) to have the host enforce them."
            ),
        ));
    }
    let firewall = &runtime.firewall;
    let per_source = firewall.ingress.iter().any(|set| set.rules.iter().any(|rule| !rule.from.is_empty()))
        || firewall.rate_limits.iter().any(|limit| limit.per == RateScope::Source);
    if per_source {
        result.diagnostics.push(Diagnostic::warning(
            format!("Unikernel `{}`: per-source rules cannot tell clients apart", desired.name),
            format!(
                "The provider uses QEMU's user network ({why_mode}): every client reaches the runtime as 10.0.2.2, \
                 so ingress `from` rules and per-source rate limits treat all clients as one. Use \
                 `network = \"bridge\"` (needs CAP_NET_ADMIN) for real client addresses."
            ),
        ));
    }
}

/// The image digest to plan: the running image's, when it can serve the new plan in place
/// (or, for a new instance, its pool's); else the image of `desired`'s own plan.
fn planned_digest(
    desired: &Unikernel,
    config: &ProviderConfig,
    prior_digest: Option<String>,
    prior_id: Option<InstanceId>,
    image_plan: Option<EnforcementPlan>,
) -> Result<ImageDigest, Error> {
    // A daemon that cannot be reached is found now rather than half-way through apply.
    let backend = match config.hypervisor {
        Hypervisor::Libvirt => {
            Some(engine::launch::backend(config).map_err(|e| Error::engine("Hypervisor unavailable", e))?)
        }
        Hypervisor::Qemu => engine::launch::backend(config).ok(),
    };
    let digest = desired.image.digest(&desired.image.plan, config).map_err(failed)?;
    // Only an instance with a control channel (booted by this release or later) can be
    // reconfigured; an older one is replaced instead.
    let reachable = |id: &InstanceId| backend.as_ref().is_some_and(|b| b.control(id).is_ok());
    let image_plan = image_plan.filter(|_| prior_id.as_ref().is_some_and(reachable));
    let existing = match (prior_digest, image_plan) {
        (Some(prior), Some(plan)) => Some((prior, plan)),
        (None, _) => desired.pool.as_deref().and_then(|id| engine::pool::image(&config.state_dir, id)),
        (Some(_), None) => None,
    };
    Ok(desired.image.keep(config, digest, existing))
}

/// Fills the plan's computed values, marks what forces a new instance, and returns why in
/// sentences for the reviewer (Terraform plans the replacement's new object without the
/// prior state, so an attribute could not carry this).
fn fill_computed(
    result: &mut PlanResult,
    planned: &mut Model,
    prior: &Model,
    creating: bool,
    desired: &Unikernel,
    digest: &ImageDigest,
) -> Vec<String> {
    planned.image.plan_sizing(&desired.image);
    planned.image_digest = Field::Known(digest.to_string());
    planned.enforcement_digest = Field::Known(desired.image.plan.digest());
    planned.state = Field::Known(RUNNING.to_owned());
    planned.image_status = Field::Known(VERIFIED.to_owned());
    if creating {
        planned.instance = InstanceFields::unknown();
        return Vec::new();
    }
    let mut replace = Vec::new();
    let mut why = Vec::new();
    if prior.image_digest.known().map(String::as_str) != Some(digest.as_str()) {
        replace.push(IMAGE_DIGEST);
        let prior_plan: Option<EnforcementPlan> =
            prior.image.enforcement.known().and_then(|json| serde_json::from_str(json).ok());
        why.push(match prior_plan.map(|p| desired.image.plan.change_from(&p)) {
            Some(ChangeKind::Replace) => {
                "the policy changed build or placement settings (hardening, size, kernel settings, isolation), \
                 which need a new image"
                    .to_owned()
            }
            Some(ChangeKind::InPlace) => "the policy changed only mechanisms the runtime can reconfigure, but the \
                running instance cannot take them in place: it has no control channel (booted by an older sdsec) or \
                its image's other inputs changed"
                .to_owned(),
            Some(ChangeKind::None) | None => {
                "the image's inputs changed (application, arguments, size, kernel or runtime)".to_owned()
            }
        });
    }
    if prior.state.known().map(String::as_str) == Some(STOPPED) {
        replace.push(STATE);
        why.push("refresh found the instance stopped".to_owned());
    }
    if let Some(status) = prior.image_status.known().filter(|s| *s != VERIFIED) {
        replace.push(IMAGE_STATUS);
        why.push(format!(
            "the image failed verification ({status}); the replacement boots a verified copy, never this one"
        ));
    }
    if prior.expired(&desired.image.plan) {
        replace.push(CREATED_AT);
        why.push("the instance is older than the policy's max_lifetime".to_owned());
    }
    if replace.is_empty() {
        // Refresh may have found the instance paused: report it as it is. What only the
        // instance tells (id, address, endpoint…) stays as it is, null ones included.
        planned.state = prior.state.clone();
        planned.instance = prior.instance.clone();
        return why;
    }
    planned.instance = InstanceFields::unknown();
    result.requires_replace.extend(replace.into_iter().map(AttributePath::attr));
    why
}
