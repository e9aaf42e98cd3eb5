//! A protected unikernel's life on the host: started from a pool's warm member or built and
//! booted on demand, sent a new plan in place, refreshed, found again for import, stopped.
//! The provider's `sdsec_unikernel` and `sdsec run` share [`build`] and [`boot`]; no
//! Terraform here, so the messages say what failed, and the variant of [`InstanceError`]
//! which step.

mod control;
mod error;
mod image;
mod refresh;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use hypervisor::{Creator, HypervisorError, Instance, InstanceId};
use plan::EnforcementPlan;
use sdsec_image::{Ensured, ImageSpec, Manifest, Store};
use serde::{Deserialize, Serialize};

pub use self::control::reconfigure;
pub use self::error::InstanceError;
pub use self::image::{Application, ImageInputs};
pub use self::refresh::{ImageStatus, Refreshed, VERIFIED, refresh};
use crate::ProviderConfig;
use crate::host::{Host, HostError};
use crate::launch;
use crate::peers::Peer;
use crate::pool::{self, Taken};

/// What a unikernel is asked to be.
#[derive(Debug, Clone)]
pub struct Unikernel {
    pub name: String,
    pub image: ImageInputs,
    pub host_port: Option<u16>,
    /// The pool to take it from.
    pub pool: Option<String>,
    /// Nodes its node `connects_to` that run elsewhere, where they are reached.
    pub peers: Vec<Peer>,
}

/// What an instance records for its owner: enough to restore its configuration on import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub name: String,
    pub enforcement: String,
    pub application: Application,
    pub host_port: Option<u16>,
    /// The plan the image was built with, when it differs from `enforcement` (after an
    /// update in place, or from a pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_enforcement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<Peer>,
}

impl Unikernel {
    /// What its instance records, for an image built with its own plan.
    pub fn metadata(&self) -> Metadata {
        Metadata {
            name: self.name.clone(),
            enforcement: self.image.enforcement.clone(),
            application: self.image.application.clone(),
            host_port: self.host_port,
            image_enforcement: None,
            pool: self.pool.clone(),
            peers: self.peers.clone(),
        }
    }

    /// What its instance records when its image was built with `image_plan`.
    fn recorded(&self, image_plan: &EnforcementPlan) -> serde_json::Value {
        let mut metadata = self.metadata();
        if *image_plan != self.image.plan {
            metadata.image_enforcement = Some(image_plan.canonical_json());
        }
        serde_json::to_value(metadata).unwrap_or_default()
    }
}

impl Metadata {
    /// The plan the instance's image was built with.
    pub fn image_plan(&self) -> Option<EnforcementPlan> {
        serde_json::from_str(self.image_enforcement.as_deref().unwrap_or(&self.enforcement)).ok()
    }
}

/// The hypervisor the configuration names.
pub(crate) fn backend(config: &ProviderConfig) -> Result<Host, InstanceError> {
    launch::backend(config).map_err(InstanceError::Backend)
}

/// The image of `spec` (whose inputs `manifest` hashed earlier) from the store: reused if
/// stored and intact, otherwise built.
pub fn build(state_dir: &Path, spec: &ImageSpec, manifest: &Manifest) -> Result<Ensured, InstanceError> {
    let store = Store::open(state_dir).map_err(InstanceError::Store)?;
    store.ensure_manifest(spec, manifest).map_err(InstanceError::Build)
}

/// How to boot an image, beyond what the image and its plan say.
#[derive(Debug, Clone)]
pub struct Boot {
    /// Shown in process lists and logs.
    pub name: String,
    /// Published on the host (forwarded to the runtime); `None`: on a bridge, reached at
    /// the guest's address only; on QEMU's user network, forwarded from a free port.
    pub host_port: Option<u16>,
    /// Until the runtime serves; past it the VM is stopped.
    pub timeout: Duration,
    /// Recorded with the instance.
    pub metadata: serde_json::Value,
    /// Nodes its node `connects_to` that run elsewhere: the host lets it reach them.
    pub peers: Vec<Peer>,
}

/// Boots `image` (built with `plan`) with a fresh control key, until its runtime serves.
pub fn boot(
    backend: &Host,
    image: &sdsec_image::Image,
    plan: &EnforcementPlan,
    boot: Boot,
) -> Result<Instance, InstanceError> {
    let mut spec = launch::boot_spec(image, plan, boot.timeout);
    spec.name = boot.name;
    spec.metadata = boot.metadata;
    spec.control = Some(launch::control_boot().map_err(InstanceError::Control)?);
    let app_port = image.manifest.application.port;
    backend.boot(spec, (plan, &boot.peers), app_port, boot.host_port).map_err(InstanceError::Boot)
}

/// Starts a copy of `image`'s snapshot (built with `plan`; the snapshot is made first when
/// there is none, or when the stored one fails verification), resumed with its own key,
/// randomness, clock and address, until its runtime serves.
pub fn boot_from_snapshot(
    backend: &Host,
    state_dir: &Path,
    image: &sdsec_image::Image,
    plan: &EnforcementPlan,
    boot: Boot,
) -> Result<Instance, InstanceError> {
    let snapshots = crate::snapshot::Snapshots::new(state_dir);
    let snapshot = snapshots.ensure(backend, image, plan, boot.timeout).map_err(InstanceError::Snapshot)?;
    let mut spec = launch::boot_spec(image, plan, boot.timeout);
    spec.name = boot.name;
    spec.metadata = boot.metadata;
    spec.control = Some(launch::control_boot().map_err(InstanceError::Control)?);
    spec.restore = Some(snapshot.restore());
    let app_port = image.manifest.application.port;
    match backend.boot(spec, (plan, &boot.peers), app_port, boot.host_port) {
        // It verifies but QEMU refuses it: it would fail every start, so it goes.
        Err(HostError::Hypervisor(HypervisorError::SnapshotUnloadable { reason, .. })) => {
            Err(InstanceError::Snapshot(snapshots.unloadable(&snapshot, reason)))
        }
        booted => booted.map_err(InstanceError::Boot),
    }
}

/// A started instance.
#[derive(Debug)]
pub struct Started {
    pub instance: Instance,
    /// The plan its image was built with.
    pub image_plan: EnforcementPlan,
    /// From the start of [`start`] to the instance serving.
    pub ready_ms: u64,
    /// Its pool had no ready member with its image: it was built and booted on demand.
    pub pool_missed: bool,
}

/// A member of `unikernel.pool` whose image is `digest`, or the image of `digest` built
/// and booted. `digest` is what plan computed: inputs that changed on disk since are
/// refused rather than booted.
pub fn start(
    config: &ProviderConfig,
    unikernel: &Unikernel,
    digest: &str,
    timeout: Duration,
) -> Result<Started, InstanceError> {
    let started = Instant::now();
    let backend = backend(config)?;
    let mut pool_missed = false;
    let mut from_snapshot = false;
    let mut image_plan = unikernel.image.plan.clone();
    if let Some(pool_id) = &unikernel.pool {
        // The member is this process's to complete from the moment it leaves the ledger.
        let claim = |member: &InstanceId| backend.set_creator(member, Some(Creator::this_process()));
        match pool::take(&config.state_dir, pool_id, digest, claim).map_err(InstanceError::Pool)? {
            Some(Taken::Paused { instance, image_plan }) => {
                let resumed = resume(&backend, unikernel, &instance, &image_plan, timeout);
                return match resumed {
                    Ok(instance) => Ok(Started { instance, image_plan, ready_ms: elapsed_ms(started), pool_missed }),
                    Err(e) => {
                        // Taken, it is ours: leave nothing behind.
                        let _ = backend.stop(&instance, Duration::from_secs(5));
                        Err(e)
                    }
                };
            }
            Some(Taken::Image { image_plan: plan }) => image_plan = plan,
            Some(Taken::Snapshot { image_plan: plan }) => {
                image_plan = plan;
                from_snapshot = true;
            }
            None => pool_missed = true,
        }
    }
    let (spec, manifest) = unikernel.image.manifest(&image_plan, config)?;
    let built = manifest.digest().map_err(InstanceError::Digest)?;
    if built.as_str() != digest {
        return Err(InstanceError::Changed { built, planned: digest.to_owned() });
    }
    let image = build(&config.state_dir, &spec, &manifest)?.image;
    let settings = Boot {
        name: unikernel.name.clone(),
        host_port: unikernel.host_port,
        timeout,
        metadata: unikernel.recorded(&image_plan),
        peers: unikernel.peers.clone(),
    };
    let instance = match from_snapshot {
        true => boot_from_snapshot(&backend, &config.state_dir, &image, &spec.plan, settings)?,
        false => boot(&backend, &image, &spec.plan, settings)?,
    };
    if image_plan != unikernel.image.plan {
        let sent = reconfigure(&*backend, &instance.id, &unikernel.image.plan)
            .and_then(|_| set_flows(&backend, &instance.id, unikernel));
        if let Err(e) = sent {
            let _ = backend.stop(&instance.id, Duration::from_secs(5));
            return Err(e);
        }
    }
    Ok(Started { instance, image_plan, ready_ms: elapsed_ms(started), pool_missed })
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Resumes a paused member, checks it serves, makes it `unikernel`'s.
fn resume(
    backend: &Host,
    unikernel: &Unikernel,
    id: &InstanceId,
    image_plan: &EnforcementPlan,
    timeout: Duration,
) -> Result<Instance, InstanceError> {
    backend.resume(id).map_err(InstanceError::Resume)?;
    let instance = backend.instance(id).map_err(InstanceError::Member)?;
    let health = &image_plan.runtime.firewall.http.health_path;
    // It served before it was paused; a probe its ingress would drop is not sent.
    let source = backend.probe_source(&instance);
    let probed = crate::network::readiness_probe(image_plan, unikernel.image.application.port, source).http;
    if probed {
        wait_serving(id, instance.endpoint, health, timeout)?;
    }
    backend.set_metadata(id, unikernel.recorded(image_plan)).map_err(InstanceError::HandOver)?;
    if *image_plan != unikernel.image.plan {
        reconfigure(&**backend, id, &unikernel.image.plan)?;
    }
    // A member was booted for no peer in particular.
    if *image_plan != unikernel.image.plan || !unikernel.peers.is_empty() {
        set_flows(backend, id, unikernel)?;
    }
    backend.publish(id, unikernel.host_port).map_err(InstanceError::Network)?;
    backend.instance(id).map_err(InstanceError::Member)
}

/// Waits until the health path at `endpoint` answers 200.
fn wait_serving(id: &InstanceId, endpoint: SocketAddr, health: &str, timeout: Duration) -> Result<(), InstanceError> {
    let deadline = Instant::now() + timeout;
    loop {
        match hypervisor::probe::http_status(endpoint, health, Duration::from_secs(2)) {
            Ok(200) => return Ok(()),
            answer if Instant::now() >= deadline => {
                let answer = answer.map_err(|e| e.to_string());
                return Err(InstanceError::NotServing { id: id.clone(), answer });
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A running instance after [`update`].
#[derive(Debug)]
pub struct Updated {
    /// The digest of the plan its runtime acknowledged.
    pub digest: String,
    /// Recording the new plan with the instance failed: it enforces the plan, but import
    /// would restore the previous one until the next change is applied.
    pub unrecorded: Option<HypervisorError>,
}

/// Sends `unikernel`'s plan to running instance `id`, whose image was built with
/// `image_plan` (`None`: with the plan sent), and records it for import.
pub fn update(
    config: &ProviderConfig,
    id: &InstanceId,
    unikernel: &Unikernel,
    image_plan: Option<EnforcementPlan>,
) -> Result<Updated, InstanceError> {
    let backend = backend(config)?;
    let digest = reconfigure(&*backend, id, &unikernel.image.plan)?;
    set_flows(&backend, id, unikernel)?;
    let image_plan = image_plan.unwrap_or_else(|| unikernel.image.plan.clone());
    let unrecorded = backend.set_metadata(id, unikernel.recorded(&image_plan)).err();
    Ok(Updated { digest, unrecorded })
}

/// Applies `unikernel`'s flows, egress and peers to running instance `id`'s host-side
/// rules, in place.
fn set_flows(backend: &Host, id: &InstanceId, unikernel: &Unikernel) -> Result<(), InstanceError> {
    backend.set_flows(id, &unikernel.image.plan, &unikernel.peers).map_err(InstanceError::Network)
}

/// Changes running instance `id`'s peers elsewhere to `unikernel`'s (its plan unchanged),
/// in place, and records them for import; a failure to record them is returned apart, as
/// the instance has them already.
pub fn set_peers(
    config: &ProviderConfig,
    id: &InstanceId,
    unikernel: &Unikernel,
) -> Result<Option<HypervisorError>, InstanceError> {
    let backend = backend(config)?;
    set_flows(&backend, id, unikernel)?;
    let metadata = serde_json::from_value::<Metadata>(backend.instance(id).map_err(InstanceError::Lookup)?.metadata);
    let image_plan = metadata.ok().and_then(|m| m.image_plan()).unwrap_or_else(|| unikernel.image.plan.clone());
    Ok(backend.set_metadata(id, unikernel.recorded(&image_plan)).err())
}

/// Marks instance `id`, created by this process ([`start`], [`boot`]), as complete: from
/// now on its owner keeps track of it (the provider: right before it returns the new
/// state). Until then it is an orphan should this process die.
pub fn complete(config: &ProviderConfig, id: &InstanceId) -> Result<(), InstanceError> {
    backend(config)?.set_creator(id, None).map_err(InstanceError::Complete)
}

/// Stops every instance whose creator died before completing it, releasing its network
/// lease; returns their ids. The provider calls it when it is configured, and plan when a
/// unikernel is to be created.
pub fn sweep_orphans(config: &ProviderConfig) -> Result<Vec<InstanceId>, InstanceError> {
    backend(config)?.sweep_orphans().map_err(InstanceError::Stop)
}

/// Stops instance `id` (killed after `grace`) and removes what it left.
pub fn stop(config: &ProviderConfig, id: &InstanceId, grace: Duration) -> Result<(), InstanceError> {
    backend(config)?.stop(id, grace).map_err(InstanceError::Stop)
}

/// Instance `id` and what it recorded when [`start`] booted it (`None`: it was started
/// some other way).
pub fn recorded(config: &ProviderConfig, id: &InstanceId) -> Result<(Instance, Option<Metadata>), InstanceError> {
    let instance = backend(config)?.instance(id).map_err(InstanceError::Lookup)?;
    let metadata = serde_json::from_value(instance.metadata.clone()).ok();
    Ok((instance, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Input;
    use crate::pool::PoolError;

    fn unikernel(pool: Option<&str>) -> Unikernel {
        let doc = "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    api: { type: sdsec.nodes.Unikernel }\n";
        let plan = sectosca::compile_str("t", doc).plans["api"].clone();
        let image = ImageInputs {
            enforcement: plan.canonical_json(),
            plan,
            application: Application { path: "/build/api".into(), args: vec!["-v".into()], port: 8080 },
            sizing: Default::default(),
        };
        Unikernel { name: "api".into(), image, host_port: None, pool: pool.map(str::to_owned), peers: Vec::new() }
    }

    #[test]
    fn instances_record_the_image_plan_only_when_it_differs() {
        let unikernel = unikernel(Some("pool-0123456789ab"));
        let own: Metadata = serde_json::from_value(unikernel.recorded(&unikernel.image.plan)).unwrap();
        assert_eq!(own, unikernel.metadata());
        assert_eq!(own.image_plan(), Some(unikernel.image.plan.clone()));
        let mut older = unikernel.image.plan.clone();
        older.runtime.firewall.http.health_path = "/older".into();
        let pooled: Metadata = serde_json::from_value(unikernel.recorded(&older)).unwrap();
        assert_eq!(pooled.image_plan(), Some(older), "import restores the plan the image was built with");
    }

    #[test]
    fn records_of_earlier_releases_still_import() {
        let record = serde_json::json!({
            "name": "api",
            "enforcement": unikernel(None).image.enforcement,
            "application": { "path": "/build/api", "args": [], "port": 8080 },
            "host_port": null,
        });
        let metadata: Metadata = serde_json::from_value(record).unwrap();
        assert_eq!((metadata.image_enforcement, metadata.pool), (None, None));
    }

    #[test]
    fn only_input_errors_name_an_input() {
        assert_eq!(InstanceError::Pool(PoolError::NotFound("pool-x".into())).input(), Some(Input::Pool));
        let control = launch::LaunchError::Control("no randomness".into());
        assert_eq!(InstanceError::Control(control).input(), None);
        let changed = InstanceError::Changed { built: sdsec_image::ImageDigest::of(b"a"), planned: "sha256:b".into() };
        assert_eq!(changed.input(), None);
        assert!(changed.to_string().ends_with("Plan again."), "{changed}");
    }

    #[test]
    fn image_statuses_read_as_refresh_reports_them() {
        assert_eq!(ImageStatus::Verified.to_string(), VERIFIED);
        assert_eq!(ImageStatus::Missing.to_string(), "missing");
        assert_eq!(ImageStatus::Tampered("initramfs changed".into()).to_string(), "tampered: initramfs changed");
    }
}
