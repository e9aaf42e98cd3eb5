//! The JSON form of values, as found in stored state (`RawState.json`).
//!
//! State written by older schema versions may hold attributes the current
//! schema no longer has; they are dropped rather than failing the whole
//! decode, and attributes absent from the JSON are null. JSON cannot hold
//! unknown values, so none are produced.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{Number, Type, Value};
use crate::AttributePath;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum JsonDecodeError {
    #[error("state is not valid JSON: {0}")]
    Syntax(String),
    #[error("at {path}: expected {expected}, found {found}")]
    Mismatch { path: String, expected: String, found: String },
    #[error("at {path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// Decodes JSON bytes holding a value of type `typ`.
pub fn decode_json(bytes: &[u8], typ: &Type) -> Result<Value, JsonDecodeError> {
    // serde_json limits nesting depth itself (128), so hostile input
    // cannot overflow the stack here.
    let json: Json = serde_json::from_slice(bytes).map_err(|error| JsonDecodeError::Syntax(error.to_string()))?;
    decode_json_value(&json, typ)
}

/// Decodes an already parsed JSON value of type `typ`.
pub fn decode_json_value(json: &Json, typ: &Type) -> Result<Value, JsonDecodeError> {
    from_json(json, typ, &AttributePath::root())
}

fn from_json(json: &Json, typ: &Type, path: &AttributePath) -> Result<Value, JsonDecodeError> {
    let mismatch = || JsonDecodeError::Mismatch {
        path: path.to_string(),
        expected: typ.to_json().to_string(),
        found: json_kind(json).to_owned(),
    };
    match (json, typ) {
        (Json::Null, _) => Ok(Value::Null),
        (Json::Bool(flag), Type::Bool) => Ok(Value::Bool(*flag)),
        // Terraform writes bools and numbers as strings in some old states.
        (Json::String(text), Type::Bool) => match text.as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(mismatch()),
        },
        (Json::Number(number), Type::Number) => json_number(number).ok_or_else(mismatch),
        (Json::String(text), Type::Number) => Number::parse(text).map(Value::Number).ok_or_else(mismatch),
        (Json::String(text), Type::String) => Ok(Value::String(text.clone())),
        (Json::Number(number), Type::String) => Ok(Value::String(number.to_string())),
        (Json::Bool(flag), Type::String) => Ok(Value::String(flag.to_string())),
        (Json::Array(items), Type::List(element)) => decode_items(items, |_| element, path).map(Value::List),
        (Json::Array(items), Type::Set(element)) => decode_items(items, |_| element, path).map(Value::Set),
        (Json::Array(items), Type::Tuple(elements)) => {
            if items.len() != elements.len() {
                return Err(JsonDecodeError::Invalid {
                    path: path.to_string(),
                    reason: format!("tuple has {} elements, type has {}", items.len(), elements.len()),
                });
            }
            decode_items(items, |index| &elements[index], path).map(Value::Tuple)
        }
        (Json::Object(entries), Type::Map(element)) => entries
            .iter()
            .map(|(key, item)| Ok((key.clone(), from_json(item, element, &path.clone().key(key))?)))
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map(Value::Map),
        (Json::Object(entries), Type::Object(attribute_types)) => attribute_types
            .iter()
            .map(|(name, attribute_type)| {
                let item = match entries.get(name) {
                    Some(item) => from_json(item, attribute_type, &path.clone().attribute(name))?,
                    None => Value::Null,
                };
                Ok((name.clone(), item))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map(Value::Object),
        (Json::Object(entries), Type::Dynamic) => {
            // A dynamic value in JSON is {"value": ..., "type": ...}.
            let (Some(value), Some(type_json)) = (entries.get("value"), entries.get("type")) else {
                return Err(mismatch());
            };
            let concrete = Type::from_json(type_json).map_err(|error| JsonDecodeError::Invalid {
                path: path.to_string(),
                reason: format!("dynamic value type: {error}"),
            })?;
            if concrete == Type::Dynamic {
                return Err(mismatch());
            }
            from_json(value, &concrete, path)
        }
        _ => Err(mismatch()),
    }
}

fn decode_items<'t>(
    items: &[Json],
    element_type: impl Fn(usize) -> &'t Type,
    path: &AttributePath,
) -> Result<Vec<Value>, JsonDecodeError> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let item_path = path.clone().index(i64::try_from(index).unwrap_or(i64::MAX));
            from_json(item, element_type(index), &item_path)
        })
        .collect()
}

fn json_number(number: &serde_json::Number) -> Option<Value> {
    let number = if let Some(int) = number.as_i64() {
        Number::from(int)
    } else if let Some(unsigned) = number.as_u64() {
        Number::from(unsigned)
    } else {
        Number::from_f64(number.as_f64()?)
    };
    Some(Value::Number(number))
}

fn json_kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_type() -> Type {
        Type::object([
            ("id", Type::String),
            ("port", Type::Number),
            ("tags", Type::map(Type::String)),
            ("args", Type::list(Type::String)),
            ("members", Type::set(Type::String)),
            ("pair", Type::Tuple(vec![Type::String, Type::Bool])),
            ("anything", Type::Dynamic),
        ])
    }

    #[test]
    fn decodes_a_stored_state() {
        let json = br#"{
            "id": "abc", "port": 8080, "tags": {"k": "v"}, "args": ["-v"],
            "members": ["m1"], "pair": ["x", true],
            "anything": {"value": [1, 2], "type": ["list", "number"]},
            "removed_attribute": 42
        }"#;
        let value = decode_json(json, &state_type());
        let expected = Value::object([
            ("id", Value::from("abc")),
            ("port", Value::from(8080)),
            ("tags", Value::Map(BTreeMap::from([("k".to_owned(), Value::from("v"))]))),
            ("args", Value::List(vec![Value::from("-v")])),
            ("members", Value::Set(vec![Value::from("m1")])),
            ("pair", Value::Tuple(vec![Value::from("x"), Value::Bool(true)])),
            ("anything", Value::List(vec![Value::from(1), Value::from(2)])),
        ]);
        assert_eq!(value, Ok(expected));
    }

    #[test]
    fn absent_attributes_and_nulls_decode_as_null() {
        let value = decode_json(br#"{"id": null}"#, &state_type()).unwrap_or(Value::Null);
        assert_eq!(value.get("id"), Some(&Value::Null));
        assert_eq!(value.get("port"), Some(&Value::Null));
    }

    #[test]
    fn type_mismatch_names_the_path() {
        let error = decode_json(br#"{"args": [1, {}]}"#, &state_type()).err();
        assert_eq!(
            error.map(|error| error.to_string()).as_deref(),
            Some(r#"at args[1]: expected "string", found an object"#)
        );
        assert!(decode_json(b"{", &state_type()).is_err());
    }
}
