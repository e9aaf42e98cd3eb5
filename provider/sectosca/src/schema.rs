//! JSON Schemas generated from the Rust types: the document (for editors) and the plan.

use serde_json::{Value, json};

use crate::lower::plan::EnforcementPlan;
use crate::model::document::ServiceTemplate;

/// The JSON Schema of SecTOSCA documents, pretty-printed with a trailing newline.
pub fn document_schema() -> String {
    let mut schema = schemars::schema_for!(ServiceTemplate);
    schema.insert("$id".into(), "https://sdsec.dev/schemas/sectosca.schema.json".into());
    let mut value = schema.to_value();
    allow_get_input(&mut value);
    pretty(&value)
}

/// The JSON Schema of documents in draft-07, for language servers and validators that do
/// not know 2020-12 (`definitions` instead of `$defs`).
pub fn document_schema_draft07() -> String {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<ServiceTemplate>();
    schema.insert("$id".into(), "https://sdsec.dev/schemas/sectosca.draft-07.schema.json".into());
    let mut value = schema.to_value();
    allow_get_input(&mut value);
    pretty(&value)
}

/// The JSON Schema of enforcement plans (what `sdsec compile --node` prints).
pub fn plan_schema() -> String {
    let mut schema = schemars::schema_for!(EnforcementPlan);
    schema.insert("$id".into(), "https://sdsec.dev/schemas/enforcement-plan.schema.json".into());
    pretty(&schema.to_value())
}

/// Any property of a node or policy type, at any depth, may be `{ get_input: name }`
/// instead of a value, so each property schema also accepts that form.
fn allow_get_input(schema: &mut Value) {
    // 2020-12 keeps definitions under `$defs`, draft-07 under `definitions`.
    let key = if schema.get("$defs").is_some() { "$defs" } else { "definitions" };
    let get_input = format!("#/{key}/GetInput");
    let Some(defs) = schema.get_mut(key).and_then(Value::as_object_mut) else { return };
    for (name, def) in defs.iter_mut() {
        if matches!(name.as_str(), "TopologyTemplate" | "InputDefinition" | "AdaptationOverrides") {
            continue;
        }
        let Some(props) = def.get_mut("properties").and_then(Value::as_object_mut) else { continue };
        for prop in props.values_mut() {
            let description = prop.as_object_mut().and_then(|o| o.remove("description"));
            let original = prop.take();
            *prop = json!({ "anyOf": [original, { "$ref": get_input }] });
            if let Some(d) = description {
                prop["description"] = d;
            }
        }
    }
    defs.insert(
        "GetInput".into(),
        json!({
            "description": "The value of a declared input.",
            "type": "object",
            "properties": { "get_input": { "type": "string" } },
            "required": ["get_input"],
            "additionalProperties": false
        }),
    );
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}
