//! What `sdsec_unikernel` and `sdsec_pool` share: the inputs of an image (enforcement,
//! application, sizing) with their attribute names, their part of each model, the
//! summaries of failed engine steps, and the `timeouts` block.

mod failure;
mod invalid;
mod model;
pub mod timeouts;

use engine::instance::{Application, ImageInputs};
use engine::launch::Sizing;
use engine::{Input, ProviderConfig};
use plan::EnforcementPlan;
use tfplugin::{AttributePath, Diagnostics, Type, Value};

pub use self::failure::{failed, summary};
pub use self::invalid::Invalid;
pub use self::model::{ImageModel, PlanModel, Planning, plan, planned, validate};
pub use self::timeouts::{Operation, Timeouts};
use crate::resources::error::Error;
use crate::values::{Field, Object, ShapeError};

pub const ID: &str = "id";
pub const NAME: &str = "name";
pub const ENFORCEMENT: &str = "enforcement";
pub const APPLICATION: &str = "application";
pub const MEMORY_MB: &str = "memory_mb";
pub const VCPUS: &str = "vcpus";
pub const IMAGE_DIGEST: &str = "image_digest";
/// A unikernel's pool: the input the engine calls [`Input::Pool`].
pub const POOL: &str = "pool";

/// The attributes of `application`.
pub mod app {
    pub const PATH: &str = "path";
    pub const ARGS: &str = "args";
    pub const PORT: &str = "port";
}

pub fn application_type() -> Type {
    Type::object([(app::PATH, Type::String), (app::ARGS, Type::list(Type::String)), (app::PORT, Type::Number)])
}

/// The attribute an engine input is, in the resources that have it; `None` for host
/// settings (the kernel, the runtime) that no attribute of a resource can fix.
pub fn input_attribute(input: Input) -> Option<AttributePath> {
    match input {
        Input::Application => Some(AttributePath::attr(APPLICATION).attribute(app::PATH)),
        Input::Enforcement => Some(AttributePath::attr(ENFORCEMENT)),
        Input::MemoryMb => Some(AttributePath::attr(MEMORY_MB)),
        Input::Vcpus => Some(AttributePath::attr(VCPUS)),
        Input::Pool => Some(AttributePath::attr(POOL)),
        Input::Id => Some(AttributePath::attr(ID)),
        Input::HostPort => Some(AttributePath::attr(crate::resources::unikernel::schema::HOST_PORT)),
        Input::Kernel | Input::Runtime => None,
    }
}

/// `application` as decoded: any of its attributes may be null.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationFields {
    pub path: Option<String>,
    pub args: Option<Vec<String>>,
    pub port: Option<i64>,
}

/// Why a model does not resolve to what it asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Unresolved {
    /// An input it needs is known only after apply.
    Pending,
    /// Inputs it refuses, each with its attribute.
    Invalid(Vec<Invalid>),
}

/// Placement requirements of `plan` this host does not meet, as errors on `enforcement`.
pub fn check_placement(plan: &EnforcementPlan, config: &ProviderConfig) -> Result<(), Diagnostics> {
    let violations = engine::placement::violations(plan, config);
    if violations.is_empty() {
        return Ok(());
    }
    let at = || AttributePath::attr(ENFORCEMENT);
    Err(violations.into_iter().map(|v| Error::at(at(), "Placement requirement not met", v).into()).collect())
}

/// The image inputs of a unikernel's or a pool's model.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFields {
    pub enforcement: Field<String>,
    pub application: Field<ApplicationFields>,
    pub memory_mb: Field<i64>,
    pub vcpus: Field<i64>,
}

impl ImageFields {
    pub fn decode(object: &Object<'_>) -> Result<Self, ShapeError> {
        let app = object.nested(APPLICATION);
        let application = match app.shape() {
            Field::Null => Field::Null,
            Field::Unknown(value) => Field::Unknown(value),
            Field::Known(()) => Field::Known(ApplicationFields {
                path: app.field(app::PATH)?.into_known(),
                args: app.field(app::ARGS)?.into_known(),
                port: app.field(app::PORT)?.into_known(),
            }),
        };
        Ok(ImageFields {
            enforcement: object.field(ENFORCEMENT)?,
            application,
            memory_mb: object.field(MEMORY_MB)?,
            vcpus: object.field(VCPUS)?,
        })
    }

    /// The attributes, for a model's encoding.
    pub fn encode(&self) -> [(&'static str, Value); 4] {
        let application = match &self.application {
            Field::Null => Value::Null,
            Field::Unknown(value) => value.clone(),
            Field::Known(app) => Value::object([
                (app::PATH, Field::from(app.path.clone()).encode()),
                (app::ARGS, Field::from(app.args.clone()).encode()),
                (app::PORT, Field::from(app.port).encode()),
            ]),
        };
        [
            (ENFORCEMENT, self.enforcement.encode()),
            (APPLICATION, application),
            (MEMORY_MB, self.memory_mb.encode()),
            (VCPUS, self.vcpus.encode()),
        ]
    }

    /// Sets `memory_mb` and `vcpus` to what `image` gets: the plan's unless given.
    pub fn plan_sizing(&mut self, image: &ImageInputs) {
        self.memory_mb = Field::Known(image.memory_mb() as i64);
        self.vcpus = Field::Known(image.vcpus() as i64);
    }

    /// Whether an input the image needs is known only after apply.
    fn pending(&self) -> bool {
        !self.unknown_inputs().is_empty()
    }

    /// The inputs of the image known only after apply.
    pub fn unknown_inputs(&self) -> Vec<&'static str> {
        let unknown = [
            (ENFORCEMENT, self.enforcement.is_unknown()),
            (APPLICATION, self.application.is_unknown()),
            (MEMORY_MB, self.memory_mb.is_unknown()),
            (VCPUS, self.vcpus.is_unknown()),
        ];
        unknown.into_iter().filter(|(_, unknown)| *unknown).map(|(name, _)| name).collect()
    }

    /// A plan whose inputs are not all known: sizing left out is the plan's, unknown too.
    pub fn plan_unknown(&mut self) {
        self.memory_mb.unknown_when_null();
        self.vcpus.unknown_when_null();
    }

    /// The image these inputs ask for, and what `others` (the resource's own inputs)
    /// resolve to; `pending` says one of those is known only after apply. What is refused,
    /// of the image's inputs and the others, is reported together.
    pub fn resolve_with<T>(
        &self,
        pending: bool,
        others: impl FnOnce(&EnforcementPlan, &mut Vec<Invalid>) -> T,
    ) -> Result<(ImageInputs, T), Unresolved> {
        if pending || self.pending() {
            return Err(Unresolved::Pending);
        }
        let mut invalid = Vec::new();
        let image = self.resolve(&mut invalid)?;
        let others = others(&image.plan, &mut invalid);
        if !invalid.is_empty() {
            return Err(Unresolved::Invalid(invalid));
        }
        Ok((image, others))
    }

    /// The image these inputs ask for, once all are known; `invalid` collects what is refused.
    fn resolve(&self, invalid: &mut Vec<Invalid>) -> Result<ImageInputs, Unresolved> {
        // Required: null only in a state that never had it.
        let Some(enforcement) = self.enforcement.known() else { return Err(Unresolved::Pending) };
        let plan: EnforcementPlan = serde_json::from_str(enforcement)
            .map_err(|e| Unresolved::Invalid(vec![Invalid::NotAPlan(e.to_string())]))?;
        let Some(app) = self.application.known() else { return Err(Unresolved::Pending) };
        let path = app.path.clone().unwrap_or_default();
        if path.is_empty() {
            invalid.push(Invalid::MissingPath);
        }
        let port = match app.port {
            Some(port) if (1..=65535).contains(&port) => port as u16,
            other => {
                invalid.push(Invalid::Port(other));
                0
            }
        };
        let sizing = Sizing {
            memory_mb: in_range(&self.memory_mb, MEMORY_MB, engine::launch::MEMORY_MB, invalid),
            vcpus: in_range(&self.vcpus, VCPUS, engine::launch::VCPUS, invalid),
        };
        let application = Application { path, args: app.args.clone().unwrap_or_default(), port };
        Ok(ImageInputs { enforcement: enforcement.clone(), plan, application, sizing })
    }
}

/// A known number in `range`, else `None` (with the reason in `invalid` when it is out of it).
pub fn in_range(
    field: &Field<i64>,
    attribute: &'static str,
    range: std::ops::RangeInclusive<u64>,
    invalid: &mut Vec<Invalid>,
) -> Option<u64> {
    let value = *field.known()?;
    match u64::try_from(value) {
        Ok(n) if range.contains(&n) => Some(n),
        _ => {
            invalid.push(Invalid::OutOfRange { attribute, min: *range.start(), max: *range.end(), value });
            None
        }
    }
}
