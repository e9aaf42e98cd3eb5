//! What validate, plan and apply do alike with a unikernel's or a pool's model: decode it,
//! check its inputs, and resolve it to what it asks for.

use std::future::Future;

use engine::ProviderConfig;
use engine::instance::ImageInputs;
use tfplugin::{AttributePath, Diagnostic, Diagnostics, PlanRequest, PlanResult, Value};

use super::{Operation, Timeouts, Unresolved, check_placement};
use crate::provider::Shared;
use crate::resources::error::Error;
use crate::values::ShapeError;

/// A model with image inputs.
pub trait ImageModel: Sized {
    /// What it asks for once its inputs are known and valid.
    type Desired;
    /// The resource, as errors name it: "Unikernel", "Pool".
    const KIND: &'static str;
    /// The operations of its `timeouts` block.
    const OPERATIONS: &'static [Operation];

    fn decode(value: &Value) -> Result<Self, ShapeError>;
    fn encode(&self) -> Value;
    fn desired(&self) -> Result<Self::Desired, Unresolved>;
    fn timeouts(&self) -> &Timeouts;
    /// The image `desired` asks for.
    fn image(desired: &Self::Desired) -> &ImageInputs;
    /// A plan whose inputs are not all known: what depends on them is unknown too. Only
    /// what the configuration leaves out may be planned unknown. Returns the attributes
    /// whose unknown values in `configured` force a replacement (an update planned now
    /// cannot become one at apply).
    fn plan_unknown(&mut self, creating: bool, configured: &Self) -> Vec<&'static str>;
}

fn invalid(unresolved: Unresolved) -> Option<Diagnostics> {
    match unresolved {
        Unresolved::Invalid(invalid) => Some(invalid.into_iter().map(Diagnostic::from).collect()),
        Unresolved::Pending => None,
    }
}

/// Validate: the inputs and timeouts it refuses; inputs not known yet are checked at plan.
pub fn validate<M: ImageModel>(config: &Value) -> Diagnostics {
    let model = match M::decode(config) {
        Ok(model) => model,
        Err(e) => return Diagnostic::from(e).into(),
    };
    let mut diags: Diagnostics =
        M::OPERATIONS.iter().filter_map(|op| model.timeouts().duration(*op).err().map(Diagnostic::from)).collect();
    if let Some(invalid) = model.desired().err().and_then(invalid) {
        diags.extend(invalid);
    }
    diags
}

/// What the configuration asks for, `None` while an input it needs is known only after
/// apply.
fn wanted<M: ImageModel>(configured: &M) -> Result<Option<M::Desired>, Diagnostics> {
    match configured.desired() {
        Ok(desired) => Ok(Some(desired)),
        Err(unresolved) => invalid(unresolved).map_or(Ok(None), Err),
    }
}

/// A plan of a model with image inputs, once what the configuration asks for is known.
#[derive(Debug)]
pub struct Planning<M: ImageModel> {
    pub prior: M,
    /// The framework's plan, for the resource to fill in.
    pub planned: M,
    pub config: ProviderConfig,
    pub desired: M::Desired,
    /// No prior state: the resource is created.
    pub creating: bool,
}

/// A model with image inputs whose resource fills in its plan.
pub trait PlanModel: ImageModel + Send {
    /// Fills `result` (the framework's plan) once what the configuration asks for is known
    /// and placed.
    fn fill(planning: Planning<Self>, result: &mut PlanResult) -> impl Future<Output = Result<(), Diagnostics>> + Send;
}

/// Plan: [`begin`], then the resource's [`PlanModel::fill`]; the errors of either go into
/// the plan's diagnostics.
pub async fn plan<M: PlanModel>(shared: &Shared, request: PlanRequest) -> PlanResult {
    let (prior, config, mut result) = crate::resources::split(request);
    let filled = match begin::<M>(shared, &prior, &config, &mut result) {
        Ok(Some(planning)) => M::fill(planning, &mut result).await,
        Ok(None) => Ok(()),
        Err(errors) => Err(errors),
    };
    if let Err(errors) = filled {
        result.diagnostics.extend(errors);
    }
    result
}

/// The start of every plan: the prior and planned models, the provider's settings, and
/// what the configuration asks for, checked against this host's placement. `None` when an
/// input is known only after apply: the plan is then complete, with what depends on it
/// unknown.
fn begin<M: ImageModel>(
    shared: &Shared,
    prior_state: &Value,
    config: &Value,
    result: &mut PlanResult,
) -> Result<Option<Planning<M>>, Diagnostics> {
    let prior = M::decode(prior_state).map_err(Diagnostic::from)?;
    let mut planned = M::decode(&result.planned_state).map_err(Diagnostic::from)?;
    let settings = shared.config()?;
    let configured = M::decode(config).map_err(Diagnostic::from)?;
    let Some(desired) = wanted(&configured)? else {
        let forcing = planned.plan_unknown(prior_state.is_null(), &configured);
        result.planned_state = planned.encode();
        if !forcing.is_empty() {
            let named: Vec<String> = forcing.iter().map(|a| format!("`{a}`")).collect();
            result.diagnostics.push(Diagnostic::warning(
                format!("{} will be replaced", M::KIND),
                format!(
                    "{} known only after apply: sdsec cannot tell at plan whether the image changes, and an update \
                     planned now could not become a replacement at apply, so the instance is replaced. Make the \
                     value known at plan to keep the instance when its image stays the same.",
                    named.join(" and ") + if named.len() == 1 { " is" } else { " are" }
                ),
            ));
            result.requires_replace.extend(forcing.into_iter().map(AttributePath::attr));
        }
        return Ok(None);
    };
    check_placement(&M::image(&desired).plan, &settings)?;
    Ok(Some(Planning { prior, planned, config: settings, desired, creating: prior_state.is_null() }))
}

/// Apply: the planned model and what it asks for. Every input is known by then; one that
/// is not is an error.
pub fn planned<M: ImageModel>(value: &Value) -> Result<(M, M::Desired), Diagnostics> {
    let model = M::decode(value).map_err(Diagnostic::from)?;
    match model.desired() {
        Ok(desired) => Ok((model, desired)),
        Err(unresolved) => Err(invalid(unresolved).unwrap_or_else(|| {
            Error::new(format!("{} not known", M::KIND), "The configuration is still unknown at apply.").into()
        })),
    }
}
