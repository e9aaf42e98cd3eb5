//! `sdsec_unikernel`: a protected unikernel on the provider's hypervisor. Plan computes the
//! image digest from the inputs (nothing is built) and checks placement; create builds or
//! reuses the image and boots it until the runtime serves; read reports instances that are
//! gone, stopped or whose image no longer verifies, which the next plan replaces; delete
//! stops the VM and removes what it left.

mod apply;
mod instance;
mod model;
mod plan;
mod private;
pub mod schema;

use std::sync::Arc;

use tfplugin::{ApplyRequest, Diagnostics, PlanRequest, PlanResult, Resource, Schema, StateResult, Value};

use self::model::Model;
use crate::provider::Shared;
use crate::resources::image;

pub use schema::schema;

pub const TYPE_NAME: &str = "sdsec_unikernel";

#[derive(Debug)]
pub struct Unikernel {
    shared: Arc<Shared>,
}

impl Unikernel {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[tfplugin::async_trait]
impl Resource for Unikernel {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn validate(&self, config: &Value) -> Diagnostics {
        image::validate::<Model>(config)
    }

    async fn plan(&self, request: PlanRequest) -> PlanResult {
        image::plan::<Model>(&self.shared, request).await
    }

    async fn create(&self, request: ApplyRequest) -> StateResult {
        apply::create(&self.shared, request).await.unwrap_or_else(|diags| StateResult::failed(Value::Null, diags))
    }

    async fn read(&self, current_state: Value, private: Vec<u8>) -> StateResult {
        let current = current_state.clone();
        instance::read(&self.shared, current, private).await.unwrap_or_else(|d| StateResult::failed(current_state, d))
    }

    async fn update(&self, request: ApplyRequest) -> StateResult {
        let prior = request.prior_state.clone();
        apply::update(&self.shared, request).await.unwrap_or_else(|diags| StateResult::failed(prior, diags))
    }

    async fn delete(&self, request: ApplyRequest) -> Diagnostics {
        apply::delete(&self.shared, request).await.err().unwrap_or_default()
    }

    async fn import(&self, id: &str) -> StateResult {
        instance::import(&self.shared, id).await.unwrap_or_else(|diags| StateResult::failed(Value::Null, diags))
    }
}

#[cfg(test)]
mod tests;
