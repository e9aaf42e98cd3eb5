//! `data.sdsec_policy_document` as a Rust value: its configuration decoded once, its state
//! encoded back.

use tfplugin::Value;

use crate::policy::PolicyFields;
use crate::values::{Object, ShapeError};

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub policy: PolicyFields,
}

impl Model {
    pub fn decode(value: &Value) -> Result<Self, ShapeError> {
        Ok(Model { policy: PolicyFields::decode(&Object::root(value))? })
    }

    pub fn encode(&self) -> Value {
        Value::object(self.policy.encode())
    }
}
