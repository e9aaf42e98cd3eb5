//! What an image is built from, once every input is known and valid, and which image plan
//! time settles on: the inputs' own, or one that already exists (a running instance's, a
//! pool's) and can serve them in place.

use std::path::PathBuf;

use plan::{ChangeKind, EnforcementPlan};
use sdsec_image::{ImageDigest, ImageSpec, Manifest};
use serde::{Deserialize, Serialize};

use super::InstanceError;
use crate::ProviderConfig;
use crate::launch::{self, AppSpec, Sizing};

/// The application as given, kept with an instance so that import can restore it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub path: String,
    pub args: Vec<String>,
    pub port: u16,
}

/// The inputs of an image.
#[derive(Debug, Clone)]
pub struct ImageInputs {
    /// The plan as given (canonical JSON), recorded with instances for import.
    pub enforcement: String,
    pub plan: EnforcementPlan,
    pub application: Application,
    /// As given; `None` takes the plan's.
    pub sizing: Sizing,
}

impl ImageInputs {
    /// Guest memory, the plan's unless given.
    pub fn memory_mb(&self) -> u64 {
        self.sizing.memory_mb.unwrap_or(self.plan.build.memory_mb)
    }

    /// Virtual CPUs, the plan's unless given.
    pub fn vcpus(&self) -> u64 {
        self.sizing.vcpus.unwrap_or(self.plan.build.vcpus)
    }

    pub fn app_spec(&self) -> AppSpec {
        AppSpec {
            path: PathBuf::from(&self.application.path),
            args: self.application.args.clone(),
            port: Some(self.application.port),
        }
    }

    /// The spec and manifest (inputs hashed, nothing built) of the image built with `plan`,
    /// which may be another than the inputs' own (a pool's, a running instance's).
    pub fn manifest(
        &self,
        plan: &EnforcementPlan,
        config: &ProviderConfig,
    ) -> Result<(ImageSpec, Manifest), InstanceError> {
        launch::manifest(plan, &self.app_spec(), config, self.sizing).map_err(InstanceError::Image)
    }

    /// The digest of the image built with `plan`.
    pub fn digest(&self, plan: &EnforcementPlan, config: &ProviderConfig) -> Result<ImageDigest, InstanceError> {
        let (_, manifest) = self.manifest(plan, config)?;
        manifest.digest().map_err(InstanceError::Digest)
    }

    /// True when an image built with `image_plan` (digest `image_digest`) can serve these
    /// inputs: the plans differ in runtime mechanisms only, and its other inputs are these.
    fn served_by(&self, config: &ProviderConfig, image_plan: &EnforcementPlan, image_digest: &str) -> bool {
        self.plan.change_from(image_plan) != ChangeKind::Replace
            && self.digest(image_plan, config).is_ok_and(|d| d.as_str() == image_digest)
    }

    /// The image to plan: `existing` (a running or pooled image, with the plan it was built
    /// with) when it can serve these inputs in place, else `computed`, the image of their
    /// own plan.
    pub fn keep(
        &self,
        config: &ProviderConfig,
        computed: ImageDigest,
        existing: Option<(String, EnforcementPlan)>,
    ) -> ImageDigest {
        match existing {
            Some((digest, plan)) if digest != computed.as_str() && self.served_by(config, &plan, &digest) => {
                ImageDigest::parse(&digest).unwrap_or(computed)
            }
            _ => computed,
        }
    }
}
