//! An instance as refresh finds it: whether it still runs, the plan its runtime enforces,
//! whether its stored image still verifies, the control messages it refused, and (under
//! bridge networking) whether the host's network had drifted from the leases.

use std::path::Path;
use std::time::Duration;

use hypervisor::{InstanceId, InstanceState};
use network::Drift;
use sdsec_image::{ImageDigest, Store, StoreError};

use super::control::{enforced_digest, refused_messages};
use super::{InstanceError, backend};
use crate::ProviderConfig;
use crate::host::Host;

/// What [`ImageStatus::Verified`] reads as.
pub const VERIFIED: &str = "verified";

/// The stored image an instance booted from, as checked now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageStatus {
    Verified,
    /// Not in the store (or no digest recorded).
    Missing,
    /// Its stored bytes no longer match its digest.
    Tampered(String),
}

impl std::fmt::Display for ImageStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageStatus::Verified => f.write_str(VERIFIED),
            ImageStatus::Missing => f.write_str("missing"),
            ImageStatus::Tampered(reason) => write!(f, "tampered: {reason}"),
        }
    }
}

/// An instance as refresh found it.
#[derive(Debug)]
pub struct Refreshed {
    /// Never [`InstanceState::Gone`]: refresh returns `None` for that.
    pub state: InstanceState,
    /// The digest of the plan its runtime says it enforces, when it runs and answers.
    pub enforced: Option<String>,
    pub image: ImageStatus,
    /// Control messages its runtime refused so far.
    pub refused: u64,
    /// Where its runtime's events are kept: its audit log (the console log for instances
    /// booted by earlier releases).
    pub event_log: String,
    /// How the host's network differed from the state directory's leases, in sentences,
    /// before this refresh restored it (bridge networking only). Another instance's lost
    /// TAP is left to that instance's refresh. When the host could not be checked, why.
    pub network_drift: Vec<String>,
    /// This instance's TAP is gone: its VM has lost its network interface for good.
    pub network_lost: bool,
}

/// Instance `id`, booted from image `image_digest`, as the hypervisor and the store see it
/// now; `None` when it is gone (what it left is removed).
pub fn refresh(
    config: &ProviderConfig,
    id: &InstanceId,
    image_digest: Option<&str>,
) -> Result<Option<Refreshed>, InstanceError> {
    let backend = backend(config)?;
    let state = backend.state(id).map_err(InstanceError::State)?;
    if state == InstanceState::Gone {
        let _ = backend.stop(id, Duration::from_secs(1));
        return Ok(None);
    }
    let enforced = if state == InstanceState::Running { enforced_digest(&*backend, id) } else { None };
    let mut image = image_status(&config.state_dir, image_digest)?;
    // The store's copy verifies; the hypervisor's own copy (a remote daemon's) may not.
    // A check that could not be made now is made again at the next refresh, and before
    // any boot.
    if image == ImageStatus::Verified
        && let Ok(drift) = backend.boot_files_drift(id)
        && !drift.is_empty()
    {
        image = ImageStatus::Tampered(drift.join("; "));
    }
    let (refused, event_log) = refused_messages(&*backend, id);
    let (network_drift, network_lost) = network_drift(&backend, id);
    Ok(Some(Refreshed { state, enforced, image, refused, event_log, network_drift, network_lost }))
}

/// The host's network drift, repaired, as refresh of instance `id` reports it, and whether
/// `id` lost its TAP. Failing to check is not fatal: the reason is reported instead.
fn network_drift(host: &Host, id: &InstanceId) -> (Vec<String>, bool) {
    match host.repair_network() {
        Ok(found) => drift_report(&found, id.as_str()),
        Err(e) => (vec![format!("the host's network could not be checked against its leases: {e}")], false),
    }
}

/// The sentences of `found` for instance `id`'s refresh (all but other instances' lost
/// TAPs), and whether `id`'s own TAP is lost.
fn drift_report(found: &[Drift], id: &str) -> (Vec<String>, bool) {
    let lost = found.iter().any(|drift| !drift.repairable() && drift.instance() == Some(id));
    let sentences = found
        .iter()
        .filter(|drift| drift.repairable() || drift.instance().is_none_or(|other| other == id))
        .map(ToString::to_string)
        .collect();
    (sentences, lost)
}

fn image_status(state_dir: &Path, digest: Option<&str>) -> Result<ImageStatus, InstanceError> {
    let Some(digest) = digest.and_then(|d| ImageDigest::parse(d).ok()) else { return Ok(ImageStatus::Missing) };
    match Store::open(state_dir).and_then(|store| store.verify(&digest).map(|_| ())) {
        Ok(()) => Ok(ImageStatus::Verified),
        // An image of an older store layout is rebuilt as a missing one is.
        Err(StoreError::NotFound(_) | StoreError::Outdated(_)) => Ok(ImageStatus::Missing),
        Err(StoreError::Tampered { reason, .. }) => Ok(ImageStatus::Tampered(reason)),
        Err(e) => Err(InstanceError::Verify(e)),
    }
}

#[cfg(test)]
mod tests {
    use network::{Drift, Owner};

    use super::drift_report;

    #[test]
    fn a_lost_tap_is_reported_by_its_own_instance_only() {
        let lost = |id: &str| Drift::TapMissing { tap: format!("sdt-{id}"), owner: Owner::Instance(id.into()) };
        let table = Drift::TableMissing { family: "inet".into(), table: "sdsec_sdsec0".into() };
        let found = [table, lost("i-a"), lost("i-b")];
        let (sentences, gone) = drift_report(&found, "i-a");
        assert!(gone);
        assert_eq!(
            sentences,
            [
                "table inet sdsec_sdsec0 is missing",
                "TAP sdt-i-a of instance i-a is missing: the instance has lost its network interface",
            ]
        );
        let (sentences, gone) = drift_report(&found, "i-c");
        assert!(!gone);
        assert_eq!(sentences, ["table inet sdsec_sdsec0 is missing"]);
        assert_eq!(drift_report(&[], "i-a"), (Vec::new(), false));
    }
}
