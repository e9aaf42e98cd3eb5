//! `sdsec run`, `sdsec stop` and `sdsec ps`: protected instances on the embedded QEMU
//! backend, or on a libvirt daemon.

use std::path::Path;
use std::time::{Duration, Instant};

use engine::config::{Hypervisor, ProviderConfig};
use engine::instance::{self, Boot};
use engine::launch;
use hypervisor::{AccelChoice, InstanceId};

use crate::images::{self, ImageArgs};
use crate::{UsageError, print_stdout};

/// Where instances run: the embedded QEMU backend, or libvirt at a URI.
#[derive(Debug, Clone, clap::Args)]
pub struct Where {
    /// Use the libvirt daemon at this URI (e.g. qemu:///system) instead of the embedded QEMU backend.
    #[arg(long, global = true)]
    pub libvirt_uri: Option<String>,
}

impl Where {
    /// The engine's settings for these flags. Commands that boot nothing pass `Tcg`: it
    /// needs no check of the host's virtualisation.
    pub fn config(&self, state_dir: &Path, accel: AccelChoice) -> ProviderConfig {
        let hypervisor = if self.libvirt_uri.is_some() { Hypervisor::Libvirt } else { Hypervisor::Qemu };
        ProviderConfig {
            hypervisor,
            libvirt_uri: self.libvirt_uri.clone(),
            accel,
            ..ProviderConfig::new(state_dir.into())
        }
    }
}

pub fn run(
    config: &ProviderConfig,
    image: &ImageArgs,
    host_port: Option<u16>,
    timeout: Duration,
) -> Result<(), UsageError> {
    let started = Instant::now();
    let (spec, ensured) = images::build(&config.state_dir, image)?;
    let built_ms = started.elapsed().as_millis();
    let backend = launch::backend(config)?;
    // As the provider boots a unikernel, with nothing recorded for import.
    let boot = Boot { name: spec.plan.node.clone(), host_port, timeout, metadata: serde_json::Value::Null };
    let instance = instance::boot(backend.as_ref(), &ensured.image, &spec.plan, boot)?;
    eprintln!(
        "image {} ({built_ms} ms), booted with {} and ready in {} ms",
        ensured.image.digest, instance.accel, instance.boot_ms
    );
    print_stdout(&format!("instance: {}", instance.id));
    print_stdout(&format!("endpoint: http://{}", instance.endpoint));
    print_stdout(&format!("console:  {}", instance.console_log.display()));
    Ok(())
}

pub fn stop(config: &ProviderConfig, ids: &[String], all: bool) -> Result<(), UsageError> {
    let backend = launch::backend(config)?;
    let ids: Vec<InstanceId> = if all {
        backend.list()?.into_iter().map(|(i, _)| i.id).collect()
    } else {
        ids.iter().map(|s| s.parse().map_err(UsageError)).collect::<Result<_, _>>()?
    };
    for id in ids {
        backend.stop(&id, Duration::from_secs(5))?;
        print_stdout(&format!("stopped {id}"));
    }
    Ok(())
}

pub fn ps(config: &ProviderConfig) -> Result<(), UsageError> {
    let backend = launch::backend(config)?;
    for (instance, state) in backend.list()? {
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
