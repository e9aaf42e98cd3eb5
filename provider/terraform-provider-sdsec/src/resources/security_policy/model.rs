//! `sdsec_security_policy` as a Rust value: decoded once from a configuration, plan or
//! state, encoded back after plan or apply.

use engine::policy_store::PolicyRecord;
use tfplugin::{Diagnostic, Diagnostics, Value};

use super::schema::ID;
use crate::policy::{self, PolicyFields};
use crate::values::{Field, Object, ShapeError};

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The provider's record of it.
    pub id: Field<String>,
    pub policy: PolicyFields,
}

impl Model {
    pub fn decode(value: &Value) -> Result<Self, ShapeError> {
        let object = Object::root(value);
        Ok(Model { id: object.field(ID)?, policy: PolicyFields::decode(&object)? })
    }

    pub fn encode(&self) -> Value {
        let mut attributes = vec![(ID, self.id.encode())];
        attributes.extend(self.policy.encode());
        Value::object(attributes)
    }

    /// The state of a record: its document and inputs, with what they compile to now, its
    /// imports read from `base_dir` (null: the working directory).
    pub fn from_record(record: &PolicyRecord, base_dir: Option<&str>) -> Result<Self, Diagnostics> {
        let base = tfplugin::AttributePath::root();
        let dir = base_dir.unwrap_or(policy::fields::DEFAULT_BASE_DIR);
        let compiled = policy::compile_policy(&record.document, &record.inputs, dir, &base).map_err(|mut diags| {
            diags.push(Diagnostic::error(
                "Stored policy no longer compiles",
                format!(
                    "The provider's record {} does not compile with this provider version; fix the document and apply.",
                    record.id
                ),
            ));
            diags
        })?;
        let mut policy = PolicyFields::given(&record.document, &record.inputs, base_dir);
        policy.compiled(&compiled);
        Ok(Model { id: Field::Known(record.id.clone()), policy })
    }

    /// The record of a planned or applied state, once its document and inputs are known.
    pub fn record(&self) -> Option<PolicyRecord> {
        let (document, inputs) = self.policy.source()?;
        Some(PolicyRecord {
            id: self.id.known().cloned().unwrap_or_default(),
            document,
            inputs,
            digest: self.policy.digest.known().cloned().unwrap_or_default(),
        })
    }
}
