//! Which stored images garbage collection keeps: every image a recorded instance boots
//! from, every image a pool holds (its members boot from it), and those the caller names.
//! The rule lives here so that `sdsec images gc` and any other collector agree on it.

use hypervisor::HypervisorError;
use hypervisor::registry::Registry;
use sdsec_image::{GcReport, ImageDigest, Store, StoreError};

use crate::config::{Hypervisor, ProviderConfig};
use crate::launch::{self, LaunchError};
use crate::pool::Pools;
use crate::snapshot::Snapshots;

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot list the instances that use images: {0}")]
    Instances(#[from] HypervisorError),
    #[error(transparent)]
    Backend(#[from] LaunchError),
}

/// The images that must stay: `keep`, those of the instances recorded under the state
/// directory (and those of the libvirt daemon when the configuration names one), and
/// those of every pool.
pub fn retained(config: &ProviderConfig, keep: &[ImageDigest]) -> Result<Vec<ImageDigest>, GcError> {
    let registry = Registry::new(&config.state_dir);
    // A record that cannot be read names no image; it belongs to no running instance.
    let mut digests: Vec<String> =
        registry.ids()?.iter().filter_map(|id| registry.load(id).ok()).map(|i| i.image_digest).collect();
    if config.hypervisor == Hypervisor::Libvirt {
        let libvirt = launch::backend(config)?;
        digests.extend(libvirt.list()?.into_iter().map(|(i, _)| i.image_digest));
    }
    digests.extend(Pools::new(&config.state_dir).all().into_iter().map(|p| p.image_digest));
    let mut retained = keep.to_vec();
    retained.extend(digests.iter().filter_map(|d| ImageDigest::parse(d).ok()));
    Ok(retained)
}

/// Removes every stored image [`retained`] does not name, the snapshots of those images,
/// those bound to another emulator or host than the configured hypervisor's now (no start
/// uses them again), and what crashed makes of snapshots left.
pub fn collect(config: &ProviderConfig, keep: &[ImageDigest]) -> Result<GcReport, GcError> {
    let retained = retained(config, keep)?;
    let report = Store::open(&config.state_dir)?.gc(&retained)?;
    let images: Vec<String> = retained.iter().map(ToString::to_string).collect();
    // A backend that makes no snapshots (libvirt) or cannot start here says nothing of which
    // are current: those of kept images stay.
    let compat = launch::backend(config).ok().and_then(|host| host.snapshot_compat().ok());
    Snapshots::new(&config.state_dir).retain(&images, compat.as_deref());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{Ledger, Warm};

    #[test]
    fn pools_images_and_given_digests_are_retained() {
        let state = tempfile::tempdir().unwrap();
        let config = ProviderConfig::new(state.path().to_owned());
        let pooled = ImageDigest::of(b"pooled");
        let given = ImageDigest::of(b"given");
        let pools = Pools::new(state.path());
        let id = Pools::new_id().unwrap();
        let ledger = Ledger {
            id: id.clone(),
            warm: Warm::Image,
            image_digest: pooled.to_string(),
            image_plan: String::new(),
            members: Vec::new(),
        };
        pools.lock(&id, true).unwrap().save(&ledger).unwrap();
        let kept = retained(&config, std::slice::from_ref(&given)).unwrap();
        assert!(kept.contains(&pooled) && kept.contains(&given), "{kept:?}");
        assert_eq!(collect(&config, &[]).unwrap().removed.len(), 0, "an empty store has nothing to remove");
    }

    #[test]
    fn snapshots_of_kept_images_made_for_another_emulator_are_collected() {
        use crate::snapshot::{REVISION, Record};
        let state = tempfile::tempdir().unwrap();
        let config = ProviderConfig::new(state.path().to_owned());
        let kept = ImageDigest::of(b"kept");
        let current = launch::backend(&config).unwrap().snapshot_compat().unwrap();
        let plant = |compat: &str| {
            let key = Snapshots::key(&kept.to_string(), compat);
            let dir = state.path().join("snapshots").join(&key);
            std::fs::create_dir_all(&dir).unwrap();
            let record = Record {
                revision: REVISION,
                image_digest: kept.to_string(),
                compat: compat.to_owned(),
                state_sha256: String::new(),
                size: 0,
                key: abi::control::Key::generate().unwrap(),
                boot_ms: 0,
            };
            fsutil::write_json_atomically(&dir.join("snapshot.json"), &record).unwrap();
            dir
        };
        let old = plant("qemu tcg /usr/bin/qemu-system-x86_64 of last year");
        let now = plant(&current);
        collect(&config, std::slice::from_ref(&kept)).unwrap();
        assert!(!old.exists(), "made for another emulator: no start uses it again");
        assert!(now.exists(), "the current one of a kept image stays");
    }
}
