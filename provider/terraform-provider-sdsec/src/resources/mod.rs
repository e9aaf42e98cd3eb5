//! Managed resources, one folder each (schema, typed model, plan, apply), and what they
//! share: the image inputs of unikernels and pools, errors and the blocking helper.

pub mod error;
pub mod image;
pub mod pool;
pub mod security_policy;
pub mod unikernel;

#[cfg(test)]
pub(crate) mod testing;

use tfplugin::{PlanRequest, PlanResult, Value};

/// A plan request as a plan hook reads it: the prior state, the configuration, and the
/// framework's plan for the hook to adjust.
pub fn split(request: PlanRequest) -> (Value, Value, PlanResult) {
    let PlanRequest { prior_state, config, prior_private, planned_state, requires_replace } = request;
    let result = PlanResult {
        planned_state,
        requires_replace,
        planned_private: prior_private,
        diagnostics: tfplugin::Diagnostics::new(),
    };
    (prior_state, config, result)
}
