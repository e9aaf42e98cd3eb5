//! The attributes every policy value has (`sdsec_security_policy`, `sdsec_policy_document`):
//! the document and its inputs as given, and what they compile to.

use std::collections::BTreeMap;

use tfplugin::Value;

use super::CompiledPolicy;
use crate::values::{Field, Object, ShapeError};

pub const DOCUMENT: &str = "document";
pub const INPUTS: &str = "inputs";
pub const DIGEST: &str = "digest";
pub const SUMMARY: &str = "summary";
pub const ENFORCEMENT: &str = "enforcement";
pub const BASE_DIR: &str = "base_dir";

/// A node's enforcement plan as the `enforcement` attribute carries it: its canonical JSON
/// after one space. `jsondecode`, serde and every other JSON reader take it as it is (JSON
/// allows white space before a value), and what it encodes is exactly the canonical JSON.
/// The space is for Terraform, which expands any string that starts with `{` into a
/// field-by-field listing in every plan that creates or changes it: with 200 policies that
/// listing made up most of `terraform plan`'s output and a third of its time, once for the
/// policy and again for each unikernel or pool that takes the plan. Terraform shows this as
/// one line; `summary` says what each node enforces in short, and `sdsec review` what a
/// saved plan changes inside each guest.
pub fn enforcement_value(canonical_json: &str) -> String {
    format!(" {canonical_json}")
}

/// What `base_dir` is when left out: Terraform's working directory, where the provider runs.
pub const DEFAULT_BASE_DIR: &str = ".";

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyFields {
    pub document: Field<String>,
    pub inputs: Field<BTreeMap<String, String>>,
    /// Where the document's imports are read from; null: the working directory.
    pub base_dir: Field<String>,
    pub digest: Field<String>,
    pub summary: Field<String>,
    /// Node name → canonical JSON of its enforcement plan.
    pub enforcement: Field<BTreeMap<String, String>>,
}

impl PolicyFields {
    pub fn decode(object: &Object<'_>) -> Result<Self, ShapeError> {
        Ok(PolicyFields {
            document: object.field(DOCUMENT)?,
            inputs: object.field(INPUTS)?,
            base_dir: object.field(BASE_DIR)?,
            digest: object.field(DIGEST)?,
            summary: object.field(SUMMARY)?,
            enforcement: object.field(ENFORCEMENT)?,
        })
    }

    /// The attributes, for a model's encoding.
    pub fn encode(&self) -> [(&'static str, Value); 6] {
        [
            (DOCUMENT, self.document.encode()),
            (INPUTS, self.inputs.encode()),
            (BASE_DIR, self.base_dir.encode()),
            (DIGEST, self.digest.encode()),
            (SUMMARY, self.summary.encode()),
            (ENFORCEMENT, self.enforcement.encode()),
        ]
    }

    /// A record's document and inputs (no inputs: null), nothing compiled yet.
    pub fn given(document: &str, inputs: &BTreeMap<String, String>, base_dir: Option<&str>) -> Self {
        PolicyFields {
            document: Field::Known(document.to_owned()),
            inputs: if inputs.is_empty() { Field::Null } else { Field::Known(inputs.clone()) },
            base_dir: base_dir.map_or(Field::Null, |d| Field::Known(d.to_owned())),
            digest: Field::Null,
            summary: Field::Null,
            enforcement: Field::Null,
        }
    }

    /// The document and inputs to compile, once both are known; inputs left out are none.
    pub fn source(&self) -> Option<(String, BTreeMap<String, String>)> {
        let inputs = self.inputs.clone().or_when_null(BTreeMap::new)?;
        Some((self.document.known()?.clone(), inputs))
    }

    /// The directory imports are read from, once known; left out, the working directory.
    pub fn base_dir(&self) -> Option<String> {
        self.base_dir.clone().or_when_null(|| DEFAULT_BASE_DIR.to_owned())
    }

    /// What the document compiles to.
    pub fn compiled(&mut self, compiled: &CompiledPolicy) {
        self.digest = Field::Known(compiled.digest.clone());
        self.summary = Field::Known(compiled.summary.clone());
        self.enforcement = Field::Known(compiled.enforcement.clone());
    }

    /// A document or inputs known only after apply: so is what they compile to.
    pub fn compiled_unknown(&mut self) {
        self.digest = Field::unknown();
        self.summary = Field::unknown();
        self.enforcement = Field::unknown();
    }
}
