//! What apply does on the host, off the async runtime: start an instance (a pool's warm
//! member, or an image built and booted on demand), reconfigure a running one in place, and
//! ask one which plan it enforces.

use std::time::{Duration, Instant};

use hypervisor::{Hypervisor, Instance, InstanceId};
use sdsec_image::{ImageDigest, Store};
use sectosca::{ChangeKind, EnforcementPlan};
use tfplugin::Diagnostics;

use super::desired::Desired;
use super::{error, manifest};
use crate::config::ProviderConfig;
use crate::launch;
use crate::pool::{self, Taken};

/// How long the runtime has to acknowledge a new plan.
const RECONFIGURE_TIMEOUT: Duration = Duration::from_secs(30);
/// Refresh asks a running instance for its plan digest; a busy guest may answer late.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// A started instance.
#[derive(Debug)]
pub struct Started {
    pub instance: Instance,
    /// The plan its image was built with.
    pub image_plan: EnforcementPlan,
    /// From the start of apply to the instance serving.
    pub ready_ms: u64,
    /// Said to the user as a warning.
    pub note: Option<String>,
}

/// True when an image built with `image_plan` (digest `image_digest`) can serve `desired`: the
/// plans differ in runtime mechanisms only, and the image's other inputs are `desired`'s.
fn image_serves(desired: &Desired, config: &ProviderConfig, image_plan: &EnforcementPlan, image_digest: &str) -> bool {
    desired.plan.change_from(image_plan) != ChangeKind::Replace
        && manifest(desired, image_plan, config)
            .ok()
            .and_then(|(_, m)| m.digest().ok())
            .is_some_and(|d| d.as_str() == image_digest)
}

/// The image to plan: `existing` (a running or pooled image, with the plan it was built with)
/// when it can serve `desired` in place, else `computed`, the image of `desired`'s own plan.
pub fn keep_image(
    desired: &Desired,
    config: &ProviderConfig,
    computed: ImageDigest,
    existing: Option<(String, EnforcementPlan)>,
) -> ImageDigest {
    match existing {
        Some((digest, plan)) if digest != computed.as_str() && image_serves(desired, config, &plan, &digest) => {
            ImageDigest::parse(&digest).unwrap_or(computed)
        }
        _ => computed,
    }
}

/// Pool `id`'s image and the plan it was built with.
pub fn pool_image(config: &ProviderConfig, id: &str) -> Option<(String, EnforcementPlan)> {
    let ledger = pool::ledger(&config.state_dir, id)?;
    serde_json::from_str(&ledger.image_plan).ok().map(|plan| (ledger.image_digest, plan))
}

/// Takes a member of `desired.pool` whose image is `digest`, or builds and boots the image.
pub fn start(
    config: &ProviderConfig,
    desired: &Desired,
    digest: &str,
    timeout: Duration,
) -> Result<Started, Diagnostics> {
    let started = Instant::now();
    let backend = launch::backend(config).map_err(|e| error("Hypervisor unavailable", e))?;
    let mut note = None;
    let mut image_plan = desired.plan.clone();
    if let Some(pool_id) = &desired.pool {
        match pool::take(&config.state_dir, pool_id, digest).map_err(|e| error("Pool unavailable", e))? {
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
    let (spec, manifest) = manifest(desired, &image_plan, config)?;
    let built = manifest.digest().map_err(|e| error("Cannot digest the image", e))?;
    if built.as_str() != digest {
        return Err(error(
            "Inputs changed since plan",
            format!(
                "The image would be {built}, but the plan said {digest}: the application, kernel or runtime changed \
                 on disk after `terraform plan`. Plan again."
            ),
        ));
    }
    let store = Store::open(&config.state_dir).map_err(|e| error("Image store unavailable", e))?;
    let image = store.ensure_manifest(&spec, &manifest).map_err(|e| error("Image build failed", e))?.image;
    let mut boot = launch::boot_spec(&image, &spec.plan, desired.host_port, timeout);
    boot.name = desired.name.clone();
    boot.metadata = metadata(desired, &image_plan);
    boot.control = Some(launch::control_boot().map_err(|e| error("Cannot prepare the unikernel", e))?);
    let instance = backend.boot(&boot).map_err(|e| error("Unikernel did not start", e))?;
    if image_plan != desired.plan
        && let Err(e) = reconfigure(backend.as_ref(), &instance.id, &desired.plan)
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
pub fn metadata(desired: &Desired, image_plan: &EnforcementPlan) -> serde_json::Value {
    let mut metadata = desired.metadata();
    if *image_plan != desired.plan {
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
) -> Result<Instance, Diagnostics> {
    backend.resume(id).map_err(|e| error("Cannot resume the pool member", e))?;
    let instance = backend.instance(id).map_err(|e| error("Cannot read the pool member", e))?;
    let health = &image_plan.runtime.firewall.http.health_path;
    let deadline = Instant::now() + timeout;
    loop {
        match hypervisor::probe::http_status(instance.endpoint, health, Duration::from_secs(2)) {
            Ok(200) => break,
            other if Instant::now() >= deadline => {
                return Err(error(
                    "Pool member does not serve",
                    format!("Instance {id} resumed but its health path answered {other:?}; it was stopped."),
                ));
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    backend
        .set_metadata(id, metadata(desired, image_plan))
        .map_err(|e| error("Cannot hand over the pool member", e))?;
    if *image_plan != desired.plan {
        reconfigure(backend, id, &desired.plan)?;
    }
    backend.instance(id).map_err(|e| error("Cannot read the pool member", e))
}

/// Sends `plan` to the instance's runtime; returns the digest it acknowledged.
pub fn reconfigure(backend: &dyn Hypervisor, id: &InstanceId, plan: &EnforcementPlan) -> Result<String, Diagnostics> {
    let channel = backend.control(id).map_err(|e| error("Cannot reconfigure the unikernel", e))?;
    let command = control::Command::Reconfigure { plan: plan.canonical_json() };
    let reply = control::call(&channel.socket, &channel.key, command, RECONFIGURE_TIMEOUT)
        .map_err(|e| error("The unikernel's runtime did not take the new plan", format!("Instance {id}: {e}.")))?;
    let expected = plan.digest();
    match reply.digest {
        Some(digest) if digest == expected => Ok(digest),
        other => Err(error(
            "The unikernel's runtime acknowledged another plan",
            format!("Instance {id} acknowledged {other:?}, not {expected}."),
        )),
    }
}

/// Which plan a running instance enforces, if it can be asked.
pub fn enforced_digest(backend: &dyn Hypervisor, id: &InstanceId) -> Option<String> {
    let channel = backend.control(id).ok()?;
    control::call(&channel.socket, &channel.key, control::Command::Status, STATUS_TIMEOUT).ok()?.digest
}

/// The private state Terraform keeps beside the resource's.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Private {
    /// The plan the image was built with, which decides whether a later policy change can
    /// be applied in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image_enforcement: Option<String>,
    /// How many refused control messages the console showed at the last refresh.
    #[serde(default)]
    control_refused: u64,
}

fn decode(private: &[u8]) -> Private {
    serde_json::from_slice(private).unwrap_or_default()
}

fn encode(private: &Private) -> Vec<u8> {
    serde_json::to_vec(private).unwrap_or_default()
}

pub fn private(image_plan: &EnforcementPlan) -> Vec<u8> {
    encode(&Private { image_enforcement: Some(image_plan.canonical_json()), control_refused: 0 })
}

pub fn image_plan_from_private(private: &[u8]) -> Option<EnforcementPlan> {
    serde_json::from_str(&decode(private).image_enforcement?).ok()
}

/// Refused control messages already reported, and the private state recording `now`.
pub fn refused_reported(private: &[u8], now: u64) -> (u64, Vec<u8>) {
    let mut decoded = decode(private);
    let before = decoded.control_refused;
    decoded.control_refused = now;
    (before, encode(&decoded))
}

/// Control messages the instance's runtime refused, as its console log shows them, and
/// that log's path.
pub fn refused_messages(backend: &dyn Hypervisor, id: &InstanceId) -> (u64, String) {
    let Ok(instance) = backend.instance(id) else { return (0, String::new()) };
    let count = std::fs::read_to_string(&instance.console_log)
        .map_or(0, |log| log.matches("\"event\":\"control_refused\"").count() as u64);
    (count, instance.console_log.display().to_string())
}
