//! Planning `sdsec_pool`: the members' image digest from the inputs (nothing is built), the
//! placement check, and the gap between `ready` and `size`.

use engine::ProviderConfig;
use engine::pool::PoolSpec;
use tfplugin::{Diagnostics, PlanResult};

use super::model::Model;
use crate::resources::error::{Error, blocking};
use crate::resources::image::{ImageModel, PlanModel, Planning, failed};
use crate::values::Field;

impl PlanModel for Model {
    async fn fill(planning: Planning<Self>, result: &mut PlanResult) -> Result<(), Diagnostics> {
        let Planning { prior, mut planned, config, desired, creating } = planning;
        let digest = blocking({
            let (desired, pool_id) = (desired.clone(), prior.id.known().cloned());
            move || planned_digest(&desired, &config, pool_id.as_deref())
        })
        .await?;
        planned.image.plan_sizing(&desired.image);
        planned.ready = Field::Known(desired.size as i64);
        let unchanged =
            prior.image_digest.known() == Some(&digest) && prior.ready.known() == Some(&(desired.size as i64));
        if !unchanged {
            planned.members = Field::unknown();
        }
        planned.image_digest = Field::Known(digest);
        if creating {
            planned.id = Field::unknown();
        }
        result.planned_state = planned.encode();
        Ok(())
    }
}

/// The members' image: the pool's current one while it can serve the new plan in place,
/// else the image of the new plan.
fn planned_digest(desired: &PoolSpec, config: &ProviderConfig, pool_id: Option<&str>) -> Result<String, Error> {
    let image = &desired.image;
    let digest = image.digest(&image.plan, config).map_err(failed)?;
    let existing = pool_id.and_then(|id| engine::pool::image(&config.state_dir, id));
    Ok(image.keep(config, digest, existing).to_string())
}
