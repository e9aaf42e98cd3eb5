//! Keeping a pool's members: fill it to size, drop what died or no longer verifies, drain it.
//! Callers hold the pool's lock throughout. The pool's own ledger errors are about the
//! resource as a whole.

use std::time::Duration;

use engine::ProviderConfig;
use engine::launch;
use engine::pool::{Ledger, Locked, Warm};
use hypervisor::{Hypervisor, InstanceId, InstanceState};
use sdsec_image::{ImageDigest, Store};
use tfplugin::Diagnostics;

use super::model::Desired;
use crate::resources::error::Error;
use crate::resources::image;

/// Builds (or finds) the image of `ledger.image_plan` and adds members until there are
/// `size`; extra members are stopped. The ledger is saved after every member, so what was
/// done survives a failure half-way.
pub fn fill(
    config: &ProviderConfig,
    locked: &Locked,
    ledger: &mut Ledger,
    desired: &Desired,
    timeout: Duration,
) -> Result<(), Diagnostics> {
    let size = desired.size;
    let backend = backend(config)?;
    while ledger.members.len() > size {
        if let Some(member) = ledger.members.pop() {
            stop_member(backend.as_ref(), ledger.warm, &member);
        }
    }
    // The image is kept built and verified even with no member to boot (`warm = "image"`,
    // or `size = 0`): takers boot it.
    let plan: sectosca::EnforcementPlan =
        serde_json::from_str(&ledger.image_plan).map_err(|e| Error::new("Pool ledger unreadable", e))?;
    let (spec, manifest) = image::manifest(&desired.image, &plan, config)?;
    let store = Store::open(&config.state_dir).map_err(|e| Error::new("Image store unavailable", e))?;
    let image = store.ensure_manifest(&spec, &manifest).map_err(|e| Error::new("Image build failed", e))?.image;
    ledger.image_digest = image.digest.to_string();
    let missing = size - ledger.members.len();
    if missing == 0 {
        return Ok(save(locked, ledger)?);
    }
    if ledger.warm == Warm::Image {
        for _ in 0..missing {
            ledger.members.push(slot_id()?);
        }
        return Ok(save(locked, ledger)?);
    }
    // Booted side by side: each waits mostly on its guest.
    let pool_id = ledger.id.clone();
    let booted: Vec<Result<InstanceId, Error>> = std::thread::scope(|scope| {
        let boots: Vec<_> = (0..missing)
            .map(|_| {
                let (backend, image, plan, pool_id) = (backend.as_ref(), &image, &plan, &pool_id);
                scope.spawn(move || -> Result<InstanceId, Error> {
                    let mut boot = launch::boot_spec(image, plan, None, timeout);
                    boot.name = format!("{}-pool", desired.name);
                    boot.metadata = serde_json::json!({ "pool": pool_id });
                    boot.control =
                        Some(launch::control_boot().map_err(|e| Error::engine("Cannot prepare a member", e))?);
                    let instance = backend.boot(&boot).map_err(|e| Error::new("Pool member did not start", e))?;
                    if let Err(e) = backend.pause(&instance.id) {
                        let _ = backend.stop(&instance.id, Duration::from_secs(5));
                        return Err(Error::new("Cannot pause a pool member", e));
                    }
                    Ok(instance.id)
                })
            })
            .collect();
        boots
            .into_iter()
            .map(|b| b.join().unwrap_or_else(|_| Err(Error::new("Internal error", "a boot thread failed"))))
            .collect()
    });
    let mut errors = Diagnostics::new();
    for result in booted {
        match result {
            Ok(id) => ledger.members.push(id.as_str().to_owned()),
            Err(e) => errors.push(e.into()),
        }
    }
    save(locked, ledger)?;
    if errors.has_errors() { Err(errors) } else { Ok(()) }
}

fn save(locked: &Locked, ledger: &Ledger) -> Result<(), Error> {
    locked.save(ledger).map_err(|e| Error::new("Cannot record the pool", e))
}

fn backend(config: &ProviderConfig) -> Result<Box<dyn Hypervisor>, Error> {
    launch::backend(config).map_err(|e| Error::engine("Hypervisor unavailable", e))
}

fn slot_id() -> Result<String, Error> {
    let id = InstanceId::random().map_err(|e| Error::new("Cannot name a member", e))?;
    Ok(format!("m-{}", id.as_str().trim_start_matches("i-")))
}

/// Members are paused: a graceful stop gains nothing, so they get a short grace whatever
/// the delete timeout.
const STOP_GRACE: Duration = Duration::from_secs(5);

fn stop_member(backend: &dyn Hypervisor, warm: Warm, member: &str) {
    if warm == Warm::Paused
        && let Ok(id) = member.parse::<InstanceId>()
    {
        let _ = backend.stop(&id, STOP_GRACE);
    }
}

/// Drops members that are not ready any more: all of them when the image fails
/// verification, a paused member that is no longer paused. Returns why, per dropped member.
pub fn refresh(config: &ProviderConfig, locked: &Locked, ledger: &mut Ledger) -> Result<Vec<String>, Error> {
    let backend = backend(config)?;
    let image_problem = ImageDigest::parse(&ledger.image_digest)
        .ok()
        .and_then(|digest| Store::open(&config.state_dir).ok()?.verify(&digest).err())
        .map(|e| e.to_string());
    let mut dropped = Vec::new();
    let mut kept = Vec::new();
    for member in std::mem::take(&mut ledger.members) {
        let why = match (&image_problem, ledger.warm) {
            (Some(problem), _) => Some(format!("its image failed verification: {problem}")),
            (None, Warm::Image) => None,
            (None, Warm::Paused) => match member.parse::<InstanceId>().map(|id| backend.state(&id)) {
                Ok(Ok(InstanceState::Paused)) => None,
                Ok(Ok(state)) => Some(format!("it is {}", state.as_str())),
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e),
            },
        };
        match why {
            None => kept.push(member),
            Some(why) => {
                stop_member(backend.as_ref(), ledger.warm, &member);
                dropped.push(format!("{member}: {why}"));
            }
        }
    }
    ledger.members = kept;
    save(locked, ledger)?;
    Ok(dropped)
}

/// Stops every member.
pub fn drain(config: &ProviderConfig, locked: &Locked, ledger: &mut Ledger) -> Result<(), Error> {
    let backend = backend(config)?;
    for member in std::mem::take(&mut ledger.members) {
        stop_member(backend.as_ref(), ledger.warm, &member);
    }
    save(locked, ledger)
}
