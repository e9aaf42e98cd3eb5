//! `sdsec_pool` as a Rust value: decoded once from a configuration, plan or state,
//! encoded back after plan or apply. The only place its attributes are read or written.

use engine::instance::ImageInputs;
use engine::pool::{Ledger, PoolSpec, Warm};
use tfplugin::Value;

use super::schema::{MAX_SIZE, MEMBERS, OPERATIONS, READY, SIZE, WARM};
use crate::resources::image::timeouts::TIMEOUTS;
use crate::resources::image::{
    ID, IMAGE_DIGEST, ImageFields, ImageModel, Invalid, NAME, Operation, Timeouts, Unresolved, in_range,
};
use crate::values::{Field, Object, ShapeError};

/// The members' name when the configuration gives none.
pub const DEFAULT_NAME: &str = "pool";

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    // Set in the configuration.
    pub name: Field<String>,
    pub image: ImageFields,
    pub size: Field<i64>,
    pub warm: Field<String>,
    pub timeouts: Timeouts,
    // Set by the provider.
    pub id: Field<String>,
    pub image_digest: Field<String>,
    pub ready: Field<i64>,
    pub members: Field<Vec<String>>,
}

impl ImageModel for Model {
    type Desired = PoolSpec;
    const KIND: &'static str = "Pool";
    const OPERATIONS: &'static [Operation] = &OPERATIONS;

    fn decode(value: &Value) -> Result<Self, ShapeError> {
        let object = Object::root(value);
        Ok(Model {
            name: object.field(NAME)?,
            image: ImageFields::decode(&object)?,
            size: object.field(SIZE)?,
            warm: object.field(WARM)?,
            timeouts: Timeouts::decode(&object, &OPERATIONS)?,
            id: object.field(ID)?,
            image_digest: object.field(IMAGE_DIGEST)?,
            ready: object.field(READY)?,
            members: object.field(MEMBERS)?,
        })
    }

    /// What the configuration asks for. A `name` left out is [`DEFAULT_NAME`]: left out is
    /// not unknown. Decoded from a configuration, `memory_mb` and `vcpus` left out take the
    /// plan's; from a plan, they hold what plan chose.
    fn desired(&self) -> Result<PoolSpec, Unresolved> {
        let pending = self.name.is_unknown() || self.size.is_unknown() || self.warm.is_unknown();
        let (image, ()) = self.image.resolve_with(pending, |_, _| ())?;
        let name = self.name.clone().or_when_null(|| DEFAULT_NAME.to_owned()).ok_or(Unresolved::Pending)?;
        // Required, and checked by the schema's validators at validate time; a value unknown
        // then and known now is checked here, so a bad one is refused at plan, not at apply.
        let mut invalid = Vec::new();
        let size = in_range(&self.size, SIZE, 0..=MAX_SIZE as u64, &mut invalid);
        let warm = self.warm.known().and_then(|w| {
            let warm = Warm::parse(w);
            if warm.is_none() {
                invalid.push(Invalid::NotOneOf { attribute: WARM, value: w.clone(), allowed: Warm::NAMES });
            }
            warm
        });
        if !invalid.is_empty() {
            return Err(Unresolved::Invalid(invalid));
        }
        // Only a state that never had them lacks them.
        let (Some(size), Some(warm)) = (size, warm) else { return Err(Unresolved::Pending) };
        Ok(PoolSpec { name, image, size: size as usize, warm })
    }

    fn encode(&self) -> Value {
        let mut attributes = vec![
            (ID, self.id.encode()),
            (NAME, self.name.encode()),
            (SIZE, self.size.encode()),
            (WARM, self.warm.encode()),
            (IMAGE_DIGEST, self.image_digest.encode()),
            (READY, self.ready.encode()),
            (MEMBERS, self.members.encode()),
            (TIMEOUTS, self.timeouts.encode()),
        ];
        attributes.extend(self.image.encode());
        Value::object(attributes)
    }

    fn image(desired: &PoolSpec) -> &ImageInputs {
        &desired.image
    }

    fn plan_unknown(&mut self, creating: bool, _configured: &Self) -> Vec<&'static str> {
        if creating {
            self.id = Field::unknown();
        }
        self.image_digest = Field::unknown();
        self.ready = Field::unknown();
        self.members = Field::unknown();
        self.image.plan_unknown();
        // A pool takes a new image in place: its members are replaced, not the pool.
        Vec::new()
    }

    fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }
}

impl Model {
    /// The ledger as the state shows it.
    pub fn record(&mut self, ledger: &Ledger) {
        self.id = Field::Known(ledger.id.clone());
        self.image_digest = Field::Known(ledger.image_digest.clone());
        self.ready = Field::Known(ledger.members.len() as i64);
        self.members = Field::Known(ledger.members.clone());
    }
}
