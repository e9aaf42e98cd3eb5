//! `sdsec run`, `sdsec stop` and `sdsec ps`: protected instances on the embedded QEMU
//! backend, or on a libvirt daemon.

use std::path::Path;
use std::time::{Duration, Instant};

use engine::config::{Hypervisor, ProviderConfig};
use engine::instance::{self, Boot};
use engine::launch;
use engine::network::NetworkSettings;
use hypervisor::{AccelChoice, Creation, InstanceId, LogKind};
use network::BridgeConfig;

use crate::images::{self, ImageArgs};
use crate::{UsageError, print_stdout};

/// Where instances run: the embedded QEMU backend, or libvirt at a URI, and their network.
#[derive(Debug, Clone, clap::Args)]
pub struct Where {
    /// Use the libvirt daemon at this URI (e.g. qemu:///system) instead of the embedded QEMU backend.
    #[arg(long, global = true)]
    pub libvirt_uri: Option<String>,
    /// With --libvirt-uri: the daemon's storage pool for kernels and initramfs (sdsec defines
    /// it when missing).
    #[arg(long, global = true, default_value = hypervisor::DEFAULT_LIBVIRT_POOL)]
    pub libvirt_pool: String,
    /// auto (bridge with CAP_NET_ADMIN, else user), bridge (own address on the provider's
    /// bridge, host-enforced flows) or user (QEMU's user network, 127.0.0.1 only).
    #[arg(long, global = true, env = "SDSEC_NETWORK", default_value = "auto", value_parser = ["auto", "bridge", "user"])]
    pub network: String,
    /// With the bridge: the Linux bridge sdsec owns.
    #[arg(long, global = true, env = "SDSEC_BRIDGE", default_value = engine::network::DEFAULT_BRIDGE)]
    pub bridge: String,
    /// With the bridge: the guests' IPv4 network.
    #[arg(long, global = true, env = "SDSEC_SUBNET", default_value = engine::network::DEFAULT_SUBNET)]
    pub subnet: ipnet::Ipv4Net,
    /// With the bridge: where --host-port is published (0.0.0.0: every address of the host).
    #[arg(long, global = true, env = "SDSEC_PUBLISH_ADDRESS", default_value = "0.0.0.0")]
    pub publish_address: std::net::Ipv4Addr,
}

impl Where {
    /// The engine's settings for these flags. Commands that boot nothing pass `Tcg`: it
    /// needs no check of the host's virtualisation.
    pub fn config(&self, state_dir: &Path, accel: AccelChoice) -> Result<ProviderConfig, UsageError> {
        let hypervisor = if self.libvirt_uri.is_some() { Hypervisor::Libvirt } else { Hypervisor::Qemu };
        let network = NetworkSettings {
            choice: self
                .network
                .parse()
                .map_err(|_| UsageError(format!("--network {}: not auto, bridge or user", self.network)))?,
            bridge: BridgeConfig {
                bridge: self.bridge.clone(),
                subnet: self.subnet,
                publish_address: self.publish_address,
            },
        };
        network.bridge.validate().map_err(|e| UsageError(e.to_string()))?;
        if !hypervisor::libvirt_pool_name_ok(&self.libvirt_pool) {
            return Err(UsageError(format!("--libvirt-pool {}: letters, digits, `-` and `_` only", self.libvirt_pool)));
        }
        Ok(ProviderConfig {
            hypervisor,
            libvirt_uri: self.libvirt_uri.clone(),
            libvirt_pool: Some(self.libvirt_pool.clone()),
            accel,
            network,
            ..ProviderConfig::new(state_dir.into())
        })
    }
}

pub fn run(
    config: &ProviderConfig,
    image: &ImageArgs,
    host_port: Option<u16>,
    timeout: Duration,
    snapshot: bool,
) -> Result<(), UsageError> {
    let started = Instant::now();
    let (spec, ensured) = images::build(&config.state_dir, image)?;
    let built_ms = started.elapsed().as_millis();
    let backend = launch::backend(config)?;
    // As the provider boots a unikernel, with nothing recorded for import.
    let boot =
        Boot { name: spec.plan.node.clone(), host_port, timeout, metadata: serde_json::Value::Null, peers: Vec::new() };
    backend.check(host_port)?;
    let instance = match snapshot {
        true => instance::boot_from_snapshot(&backend, &config.state_dir, &ensured.image, &spec.plan, boot)?,
        false => instance::boot(&backend, &ensured.image, &spec.plan, boot)?,
    };
    // Handed to the user now: no longer this process's to complete.
    if let Err(e) = backend.set_creator(&instance.id, None) {
        let _ = backend.stop(&instance.id, Duration::from_secs(5));
        return Err(UsageError(format!("instance {} booted but cannot be marked as created: {e}", instance.id)));
    }
    let reach = engine::network::reach(&config.network, &instance, host_port);
    let how = if snapshot { "started from its snapshot" } else { "booted" };
    eprintln!(
        "image {} ({built_ms} ms), {how} with {} and ready in {} ms",
        ensured.image.digest, instance.accel, instance.boot_ms
    );
    print_stdout(&format!("instance: {}", instance.id));
    print_stdout(&format!("endpoint: {}", reach.endpoint));
    if let Some(ip) = reach.ip {
        print_stdout(&format!("ip:       {ip}"));
    }
    print_stdout(&format!("console:  {}", instance.console_log.display()));
    if let Some(audit) = &instance.audit_log {
        print_stdout(&format!("audit:    {}", audit.display()));
    }
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

/// The last `lines` lines of instance `id`'s console log, or with `audit` of the log its
/// runtime's events are in; logs past their caps are rotated first.
pub fn logs(config: &ProviderConfig, id: &str, audit: bool, lines: usize) -> Result<(), UsageError> {
    let id: InstanceId = id.parse().map_err(UsageError)?;
    let backend = launch::backend(config)?;
    backend.instance(&id)?;
    let (console, events) = (backend.log(&id, LogKind::Console)?, backend.log(&id, LogKind::Audit)?);
    hypervisor::logs::rotate_both(&*console, &*events);
    print_stdout(&hypervisor::logs::tail(if audit { &*events } else { &*console }, lines));
    Ok(())
}

/// Stops every orphan and releases its network lease.
pub fn stop_orphans(config: &ProviderConfig) -> Result<(), UsageError> {
    for id in instance::sweep_orphans(config)? {
        print_stdout(&format!("stopped orphan {id}"));
    }
    Ok(())
}

pub fn ps(config: &ProviderConfig) -> Result<(), UsageError> {
    let backend = launch::backend(config)?;
    for (instance, state) in backend.list()? {
        // Until its creator completes it, how its creation stands says more than the VM's state.
        let shown = match instance.creation() {
            Creation::Complete => state.as_str(),
            creation => creation.as_str(),
        };
        print_stdout(&format!(
            "{}  {:<8} {:<16} http://{}  {}",
            instance.id, shown, instance.name, instance.endpoint, instance.image_digest
        ));
    }
    Ok(())
}
