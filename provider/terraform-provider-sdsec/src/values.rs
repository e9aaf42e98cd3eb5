//! Small conversions between Terraform values and Rust types.

use std::collections::BTreeMap;

use tfplugin::Value;

/// A known string attribute.
pub fn string(value: &Value, attribute: &str) -> Option<String> {
    value.get(attribute).and_then(Value::as_str).map(str::to_owned)
}

/// A map(string) attribute: `Ok(None)` when it is unknown (or holds unknowns), an empty map
/// when null.
pub fn string_map(value: &Value, attribute: &str) -> Option<BTreeMap<String, String>> {
    match value.get(attribute) {
        None | Some(Value::Null) => Some(BTreeMap::new()),
        Some(Value::Map(entries)) => {
            entries.iter().map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))).collect()
        }
        Some(_) => None,
    }
}

pub fn map_value(map: &BTreeMap<String, String>) -> Value {
    Value::Map(map.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect())
}

/// Whether an attribute is present and not unknown.
pub fn is_known(value: &Value, attribute: &str) -> bool {
    value.get(attribute).is_some_and(Value::is_wholly_known)
}
