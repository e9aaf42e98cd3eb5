//! JSON Schemas generated from the Rust types: the document (for editors) and the plan.

use crate::lower::plan::EnforcementPlan;
use crate::model::document::ServiceTemplate;

/// The JSON Schema of SecTOSCA documents, pretty-printed with a trailing newline.
pub fn document_schema() -> String {
    let mut schema = schemars::schema_for!(ServiceTemplate);
    schema.insert("$id".into(), "https://sdsec.dev/schemas/sectosca.schema.json".into());
    pretty(&schema)
}

/// The JSON Schema of enforcement plans (what `sdsec compile` prints per node).
pub fn plan_schema() -> String {
    let mut schema = schemars::schema_for!(EnforcementPlan);
    schema.insert("$id".into(), "https://sdsec.dev/schemas/enforcement-plan.schema.json".into());
    pretty(&schema)
}

fn pretty(schema: &schemars::Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
