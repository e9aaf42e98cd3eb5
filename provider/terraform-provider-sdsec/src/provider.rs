//! The provider: its configuration, shared by every resource, and what it offers.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tfplugin::{DataSource, Diagnostics, Function, Provider, Resource, Schema, Value};

use crate::config::{self, ProviderConfig};
use crate::resources::error::Error;

/// State every resource shares: the configuration, once Terraform has sent it.
#[derive(Debug, Default)]
pub struct Shared {
    config: RwLock<Option<ProviderConfig>>,
}

impl Shared {
    /// The configuration, or an error when the provider is not configured yet.
    pub fn config(&self) -> Result<ProviderConfig, Error> {
        let guard = self.config.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.clone().ok_or_else(|| {
            Error::new("Provider not configured", "Terraform did not configure the sdsec provider before using it.")
        })
    }

    fn set(&self, config: ProviderConfig) {
        *self.config.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(config);
    }
}

#[derive(Debug, Default)]
pub struct SdsecProvider {
    shared: Arc<Shared>,
    runtime: Option<PathBuf>,
}

impl SdsecProvider {
    pub fn new() -> Self {
        Self::default()
    }

    /// A provider that puts `runtime` into images as their enforcement runtime, rather than
    /// the one it finds (`SDSEC_RUNTIME`, or the static build): for tests and embedders.
    pub fn with_runtime(runtime: PathBuf) -> Self {
        SdsecProvider { runtime: Some(runtime), ..Self::default() }
    }
}

/// Stops the instances a provider killed while creating them left behind (see
/// [`engine::instance::sweep_orphans`]); says which, or why it could not look.
async fn sweep_orphans(config: ProviderConfig) -> Diagnostics {
    let swept = crate::resources::error::blocking(move || {
        engine::instance::sweep_orphans(&config).map_err(crate::resources::image::failed)
    })
    .await;
    let mut diagnostics = Diagnostics::new();
    match swept {
        Ok(ids) if ids.is_empty() => {}
        Ok(ids) => diagnostics.push(tfplugin::Diagnostic::warning(
            "Orphaned unikernels stopped",
            format!(
                "A provider was killed while it created these instances, so no state recorded them; they were \
                 stopped and their files and network leases released: {}.",
                ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ),
        )),
        Err(e) => diagnostics.push(tfplugin::Diagnostic::warning(
            "Cannot look for orphaned unikernels",
            format!("{}: {} (`sdsec ps` lists them, `sdsec stop --orphans` stops them)", e.summary, e.detail),
        )),
    }
    diagnostics
}

#[tfplugin::async_trait]
impl Provider for SdsecProvider {
    fn type_name(&self) -> &str {
        "sdsec"
    }

    fn schema(&self) -> Schema {
        config::schema()
    }

    async fn validate(&self, config: &Value) -> Diagnostics {
        if config.first_unknown_path().is_some() {
            return Diagnostics::new();
        }
        config::settle(config).err().unwrap_or_default()
    }

    async fn configure(&self, config: &Value) -> Diagnostics {
        match config::settle(config) {
            Ok(mut settled) => {
                settled.runtime = self.runtime.clone();
                self.shared.set(settled.clone());
                sweep_orphans(settled).await
            }
            Err(diags) => diags,
        }
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        vec![
            Arc::new(crate::resources::security_policy::SecurityPolicy::new(self.shared.clone())),
            Arc::new(crate::resources::unikernel::Unikernel::new(self.shared.clone())),
            Arc::new(crate::resources::pool::Pool::new(self.shared.clone())),
        ]
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        vec![Arc::new(crate::data_sources::policy_document::PolicyDocument)]
    }

    fn functions(&self) -> Vec<Arc<dyn Function>> {
        vec![Arc::new(crate::functions::policy_digest::PolicyDigest)]
    }
}
