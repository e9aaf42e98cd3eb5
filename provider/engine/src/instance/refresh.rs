//! An instance as refresh finds it: whether it still runs, the plan its runtime enforces,
//! whether its stored image still verifies, and the control messages it refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hypervisor::{InstanceId, InstanceState};
use sdsec_image::{ImageDigest, Store, StoreError};

use super::control::{enforced_digest, refused_messages};
use super::{InstanceError, backend};
use crate::ProviderConfig;

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
    /// Where its console log is.
    pub console: PathBuf,
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
    let image = image_status(&config.state_dir, image_digest)?;
    let (refused, console) = refused_messages(&*backend, id);
    Ok(Some(Refreshed { state, enforced, image, refused, console }))
}

fn image_status(state_dir: &Path, digest: Option<&str>) -> Result<ImageStatus, InstanceError> {
    let Some(digest) = digest.and_then(|d| ImageDigest::parse(d).ok()) else { return Ok(ImageStatus::Missing) };
    match Store::open(state_dir).and_then(|store| store.verify(&digest).map(|_| ())) {
        Ok(()) => Ok(ImageStatus::Verified),
        Err(StoreError::NotFound(_)) => Ok(ImageStatus::Missing),
        Err(StoreError::Tampered { reason, .. }) => Ok(ImageStatus::Tampered(reason)),
        Err(e) => Err(InstanceError::Verify(e)),
    }
}
