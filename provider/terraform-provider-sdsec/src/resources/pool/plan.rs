//! Planning `sdsec_pool`: the members' image digest from the inputs (nothing is built), the
//! placement check, and the gap between `ready` and `size`.

use engine::ProviderConfig;
use tfplugin::{Diagnostics, PlanRequest, PlanResult, Value};

use super::model::{Desired, Model};
use crate::provider::Shared;
use crate::resources::error::{Error, blocking};
use crate::resources::image::{self, ImageModel, Planning};
use crate::values::Field;

pub async fn plan(shared: &Shared, request: PlanRequest) -> PlanResult {
    let (prior, config, mut result) = crate::resources::split(request);
    if let Err(errors) = plan_into(shared, &prior, &config, &mut result).await {
        result.diagnostics.extend(errors);
    }
    result
}

async fn plan_into(
    shared: &Shared,
    prior_state: &Value,
    config_value: &Value,
    result: &mut PlanResult,
) -> Result<(), Diagnostics> {
    let Some(Planning { prior, mut planned, config, desired }) =
        image::begin::<Model>(shared, prior_state, config_value, result)?
    else {
        return Ok(());
    };
    let digest = blocking({
        let (desired, pool_id) = (desired.clone(), prior.id.known().cloned());
        move || planned_digest(&desired, &config, pool_id.as_deref())
    })
    .await?;
    desired.image.plan_sizing(&mut planned.image);
    planned.ready = Field::Known(desired.size as i64);
    let unchanged = prior.image_digest.known() == Some(&digest) && prior.ready.known() == Some(&(desired.size as i64));
    if !unchanged {
        planned.members = Field::unknown();
    }
    planned.image_digest = Field::Known(digest);
    if prior_state.is_null() {
        planned.id = Field::unknown();
    }
    result.planned_state = planned.encode();
    Ok(())
}

/// The members' image: the pool's current one while it can serve the new plan in place,
/// else the image of the new plan.
fn planned_digest(desired: &Desired, config: &ProviderConfig, pool_id: Option<&str>) -> Result<String, Error> {
    let digest = image::digest(&desired.image, &desired.image.plan, config)?;
    let existing = pool_id.and_then(|id| image::pool_image(config, id));
    Ok(image::keep_image(&desired.image, config, digest, existing).to_string())
}
