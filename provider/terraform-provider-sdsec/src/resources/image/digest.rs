//! The image plan shows: its digest, computed from the inputs without building anything,
//! and whether an image that already exists (a running instance's, a pool's) can serve
//! instead of a new one.

use engine::ProviderConfig;
use engine::launch::{self, LaunchError};
use sdsec_image::{ImageDigest, ImageSpec, Manifest};
use sectosca::{ChangeKind, EnforcementPlan};

use super::Image;
use crate::resources::error::Error;

/// The spec and manifest (inputs hashed, nothing built) of `image` built with `plan`.
pub fn manifest(
    image: &Image,
    plan: &EnforcementPlan,
    config: &ProviderConfig,
) -> Result<(ImageSpec, Manifest), Error> {
    launch::manifest(plan, &image.app_spec(), config, image.sizing).map_err(|e| {
        let summary = match &e {
            LaunchError::NoRuntime { .. } => "Enforcement runtime not found",
            LaunchError::Kernel(_) => "No kernel for the image",
            LaunchError::Manifest { .. } => "Cannot build this image",
            LaunchError::OutOfRange { .. } => "Value out of range",
            _ => "Cannot prepare the image",
        };
        Error::engine(summary, e)
    })
}

/// The digest of `image` built with `plan`.
pub fn digest(image: &Image, plan: &EnforcementPlan, config: &ProviderConfig) -> Result<ImageDigest, Error> {
    let (_, manifest) = manifest(image, plan, config)?;
    manifest.digest().map_err(|e| Error::new("Cannot digest the image", e))
}

/// True when an image built with `image_plan` (digest `image_digest`) can serve `image`:
/// the plans differ in runtime mechanisms only, and the image's other inputs are `image`'s.
fn image_serves(image: &Image, config: &ProviderConfig, image_plan: &EnforcementPlan, image_digest: &str) -> bool {
    image.plan.change_from(image_plan) != ChangeKind::Replace
        && digest(image, image_plan, config).is_ok_and(|d| d.as_str() == image_digest)
}

/// The image to plan: `existing` (a running or pooled image, with the plan it was built with)
/// when it can serve `image` in place, else `computed`, the image of `image`'s own plan.
pub fn keep_image(
    image: &Image,
    config: &ProviderConfig,
    computed: ImageDigest,
    existing: Option<(String, EnforcementPlan)>,
) -> ImageDigest {
    match existing {
        Some((digest, plan)) if digest != computed.as_str() && image_serves(image, config, &plan, &digest) => {
            ImageDigest::parse(&digest).unwrap_or(computed)
        }
        _ => computed,
    }
}

/// Pool `id`'s image and the plan it was built with.
pub fn pool_image(config: &ProviderConfig, id: &str) -> Option<(String, EnforcementPlan)> {
    let ledger = engine::pool::ledger(&config.state_dir, id)?;
    serde_json::from_str(&ledger.image_plan).ok().map(|plan| (ledger.image_digest, plan))
}
