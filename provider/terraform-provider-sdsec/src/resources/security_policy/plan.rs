//! Planning `sdsec_security_policy`: the document is compiled now, so every computed value
//! is known in the plan and dependents see a policy change in the same plan.

use std::collections::BTreeMap;

use tfplugin::{AttributePath, Diagnostic, Diagnostics, PlanRequest, PlanResult, Value};

use super::model::Model;
use crate::policy::{self, CompiledPolicy};

/// The compiler's warnings about a document that compiled.
pub fn warnings(compiled: &CompiledPolicy) -> Diagnostics {
    policy::to_diagnostics(&compiled.sources, &compiled.warnings, &AttributePath::root())
}

/// Validate: the document compiles, with the inputs' values when they are known already.
pub fn validate(config: &Value) -> Diagnostics {
    let model = match Model::decode(config) {
        Ok(model) => model,
        Err(e) => return Diagnostic::from(e).into(),
    };
    // Inputs that come from variables or other resources may be unknown here; plan
    // checks the document with them once they are known.
    let (Some((document, inputs)), Some(base_dir)) = (model.policy.source(), model.policy.base_dir()) else {
        return Diagnostics::new();
    };
    compile(&document, &inputs, &base_dir).map_or_else(|diags| diags, |compiled| warnings(&compiled))
}

fn compile(document: &str, inputs: &BTreeMap<String, String>, base_dir: &str) -> Result<CompiledPolicy, Diagnostics> {
    policy::compile_policy(document, inputs, base_dir, &AttributePath::root())
}

pub fn plan(request: PlanRequest) -> PlanResult {
    let prior_state = request.prior_state.clone();
    let mut result = request.into_result();
    match plan_into(&prior_state, &result.planned_state) {
        Ok((state, diagnostics)) => {
            result.planned_state = state;
            result.diagnostics = diagnostics;
        }
        Err(diagnostics) => result.diagnostics = diagnostics,
    }
    result
}

/// The planned state and the compiler's warnings.
fn plan_into(prior_state: &Value, planned_state: &Value) -> Result<(Value, Diagnostics), Diagnostics> {
    let prior = Model::decode(prior_state).map_err(Diagnostic::from)?;
    let mut planned = Model::decode(planned_state).map_err(Diagnostic::from)?;
    let (Some((document, inputs)), Some(base_dir)) = (planned.policy.source(), planned.policy.base_dir()) else {
        planned.policy.compiled_unknown();
        return Ok((planned.encode(), Diagnostics::new()));
    };
    let compiled = compile(&document, &inputs, &base_dir)?;
    // Same plans as before: keep the prior state whole, so that an edit to comments,
    // formatting or an unused input is not a change.
    if !prior_state.is_null() && prior.policy.digest.known() == Some(&compiled.digest) {
        return Ok((prior_state.clone(), Diagnostics::new()));
    }
    planned.policy.compiled(&compiled);
    Ok((planned.encode(), warnings(&compiled)))
}
