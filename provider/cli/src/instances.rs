//! `sdsec run`, `sdsec stop` and `sdsec ps`: protected instances on the embedded QEMU backend.

use std::path::Path;
use std::time::{Duration, Instant};

use hypervisor::{AccelChoice, InstanceId};
use sdsec_image::{ImageDigest, Store};
use sdsec_provider::launch;

use crate::images::{ImageArgs, spec};
use crate::{UsageError, print_stdout};

fn fail(e: impl std::fmt::Display) -> UsageError {
    UsageError(e.to_string())
}

/// Where instances run: the embedded QEMU backend, or libvirt at a URI.
#[derive(Debug, Clone, clap::Args)]
pub struct Where {
    /// Use the libvirt daemon at this URI (e.g. qemu:///system) instead of the embedded QEMU backend.
    #[arg(long, global = true)]
    pub libvirt_uri: Option<String>,
}

pub fn run(
    state_dir: &Path,
    at: &Where,
    image: &ImageArgs,
    host_port: Option<u16>,
    accel: AccelChoice,
    timeout: Duration,
) -> Result<(), UsageError> {
    let started = Instant::now();
    let spec = spec(image)?;
    let store = Store::open(state_dir).map_err(fail)?;
    let ensured = store.ensure(&spec).map_err(fail)?;
    let built_ms = started.elapsed().as_millis();
    let backend = launch::backend_at(state_dir, at.libvirt_uri.as_deref(), accel).map_err(fail)?;
    let mut boot = launch::boot_spec(&ensured.image, &spec.plan, host_port, timeout);
    boot.control = Some(launch::control_boot().map_err(fail)?);
    let instance = backend.boot(&boot).map_err(fail)?;
    eprintln!(
        "image {} ({built_ms} ms), booted with {} and ready in {} ms",
        ensured.image.digest, instance.accel, instance.boot_ms
    );
    print_stdout(&format!("instance: {}", instance.id));
    print_stdout(&format!("endpoint: http://{}", instance.endpoint));
    print_stdout(&format!("console:  {}", instance.console_log.display()));
    Ok(())
}

pub fn stop(state_dir: &Path, at: &Where, ids: &[String], all: bool) -> Result<(), UsageError> {
    let qemu = launch::backend_at(state_dir, at.libvirt_uri.as_deref(), AccelChoice::Tcg).map_err(fail)?;
    let ids: Vec<InstanceId> = if all {
        qemu.list().map_err(fail)?.into_iter().map(|(i, _)| i.id).collect()
    } else {
        ids.iter().map(|s| s.parse().map_err(UsageError)).collect::<Result<_, _>>()?
    };
    for id in ids {
        qemu.stop(&id, Duration::from_secs(5)).map_err(fail)?;
        print_stdout(&format!("stopped {id}"));
    }
    Ok(())
}

pub fn ps(state_dir: &Path, at: &Where) -> Result<(), UsageError> {
    let qemu = launch::backend_at(state_dir, at.libvirt_uri.as_deref(), AccelChoice::Tcg).map_err(fail)?;
    for (instance, state) in qemu.list().map_err(fail)? {
        print_stdout(&format!(
            "{}  {:<8} {:<16} http://{}  {}",
            instance.id,
            state.as_str(),
            instance.name,
            instance.endpoint,
            instance.image_digest
        ));
    }
    Ok(())
}

/// Digests of images that recorded instances boot from (the embedded backend's, and those
/// of the libvirt daemon when one is named): never collected.
pub fn image_digests_in_use(state_dir: &Path, at: &Where) -> Result<Vec<ImageDigest>, UsageError> {
    let registry = hypervisor::registry::Registry::new(state_dir);
    let ids = registry.ids().map_err(fail)?;
    let mut digests: Vec<String> = ids.iter().filter_map(|id| registry.load(id).ok()).map(|i| i.image_digest).collect();
    if let Some(uri) = &at.libvirt_uri {
        let libvirt = launch::backend_at(state_dir, Some(uri), AccelChoice::Tcg).map_err(fail)?;
        digests.extend(libvirt.list().map_err(fail)?.into_iter().map(|(i, _)| i.image_digest));
    }
    Ok(digests.iter().filter_map(|d| ImageDigest::parse(d).ok()).collect())
}
