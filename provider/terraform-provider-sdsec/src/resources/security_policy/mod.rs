//! `sdsec_security_policy`: a SecTOSCA document under management. Compiled at validate and
//! plan time, so every computed value is known in the plan and dependents see a policy
//! change in the same plan. The provider keeps a record of it in its state directory,
//! which import reads and refresh checks the Terraform state against.

mod apply;
mod imports;
mod model;
mod plan;
pub mod schema;

use std::sync::Arc;

use tfplugin::{ApplyRequest, Diagnostics, PlanRequest, PlanResult, Resource, Schema, StateResult, Value};

use crate::provider::Shared;

pub use schema::schema;

pub const TYPE_NAME: &str = "sdsec_security_policy";

#[derive(Debug)]
pub struct SecurityPolicy {
    shared: Arc<Shared>,
}

impl SecurityPolicy {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[tfplugin::async_trait]
impl Resource for SecurityPolicy {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn validate(&self, config: &Value) -> Diagnostics {
        plan::validate(config)
    }

    async fn plan(&self, request: PlanRequest) -> PlanResult {
        let prior_private = request.prior_private.clone();
        let mut result = plan::plan(request);
        imports::check_plan(&prior_private, &mut result);
        result
    }

    async fn create(&self, request: ApplyRequest) -> StateResult {
        apply::create(&self.shared, request).unwrap_or_else(|diags| StateResult::failed(Value::Null, diags))
    }

    async fn read(&self, current_state: Value, private: Vec<u8>) -> StateResult {
        apply::read(&self.shared, &current_state, private)
            .unwrap_or_else(|diags| StateResult::failed(current_state, diags))
    }

    async fn update(&self, request: ApplyRequest) -> StateResult {
        let prior = request.prior_state.clone();
        apply::update(&self.shared, request).unwrap_or_else(|diags| StateResult::failed(prior, diags))
    }

    async fn delete(&self, request: ApplyRequest) -> Diagnostics {
        apply::delete(&self.shared, request).err().unwrap_or_default()
    }

    async fn import(&self, id: &str) -> StateResult {
        apply::import(&self.shared, id).unwrap_or_else(|diags| StateResult::failed(Value::Null, diags))
    }
}

#[cfg(test)]
mod tests;
