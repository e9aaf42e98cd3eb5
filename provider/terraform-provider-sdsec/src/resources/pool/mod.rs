//! `sdsec_pool`: warm protected instances of one plan and application. Plan computes the
//! image digest and shows the gap between `ready` and `size`; create and update build the
//! image and fill the pool; read drops members that died, were taken or whose image no
//! longer verifies; delete stops every member. The ledger ([`engine::pool`]) is changed
//! under the pool's lock only.

mod apply;
mod model;
mod plan;
pub mod schema;

use std::sync::Arc;

use tfplugin::{ApplyRequest, Diagnostics, PlanRequest, PlanResult, Resource, Schema, StateResult, Value};

use self::model::Model;
use crate::provider::Shared;
use crate::resources::image;

pub use schema::schema;

pub const TYPE_NAME: &str = "sdsec_pool";

#[derive(Debug)]
pub struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[tfplugin::async_trait]
impl Resource for Pool {
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
        apply::read(&self.shared, current, private).await.unwrap_or_else(|d| StateResult::failed(current_state, d))
    }

    async fn update(&self, request: ApplyRequest) -> StateResult {
        let prior = request.prior_state.clone();
        apply::update(&self.shared, request).await.unwrap_or_else(|diags| StateResult::failed(prior, diags))
    }

    async fn delete(&self, request: ApplyRequest) -> Diagnostics {
        apply::delete(&self.shared, request).await.err().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
