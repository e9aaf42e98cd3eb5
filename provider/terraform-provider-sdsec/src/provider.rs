//! The provider: its configuration, shared by every resource, and what it offers.

use std::sync::{Arc, RwLock};

use tfplugin::{DataSource, Diagnostic, Diagnostics, Function, Provider, Resource, Schema, Value};

use crate::config::{self, ProviderConfig};

/// State every resource shares: the configuration, once Terraform has sent it.
#[derive(Debug, Default)]
pub struct Shared {
    config: RwLock<Option<ProviderConfig>>,
}

impl Shared {
    /// The configuration, or an error diagnostic when the provider is not configured yet.
    pub fn config(&self) -> Result<ProviderConfig, Diagnostics> {
        let guard = self.config.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.clone().ok_or_else(|| {
            Diagnostic::error(
                "Provider not configured",
                "Terraform did not configure the sdsec provider before using it.",
            )
            .into()
        })
    }

    fn set(&self, config: ProviderConfig) {
        *self.config.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(config);
    }
}

#[derive(Debug, Default)]
pub struct SdsecProvider {
    shared: Arc<Shared>,
}

impl SdsecProvider {
    pub fn new() -> Self {
        Self::default()
    }
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
            Ok(settled) => {
                self.shared.set(settled);
                Diagnostics::new()
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
