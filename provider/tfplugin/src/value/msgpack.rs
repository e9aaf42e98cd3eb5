//! The msgpack form of DynamicValue, directed by the schema type.
//!
//! Conventions of Terraform's encoding: null is msgpack nil whatever the
//! type; unknown is extension 0 (or 12 with refinements); objects and maps
//! are maps with string keys; lists, sets and tuples are arrays; numbers are
//! integers or floats, or decimal strings when neither holds them exactly;
//! a value of `dynamic` type is the pair `[type as JSON bytes, value]`.

use rmpv::Value as Msgpack;

use super::refinements::{REFINED_UNKNOWN_EXT, UNKNOWN_EXT};
use super::{Number, Refinements, Type, Value, number::WireNumber};
use crate::AttributePath;

/// Deep enough for any real schema, shallow enough that hostile input
/// cannot exhaust the stack of a decoding task.
const MAX_DEPTH: usize = 128;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MsgpackError {
    #[error("malformed msgpack: {0}")]
    Malformed(String),
    #[error("{trailing} unexpected bytes after the msgpack value")]
    TrailingBytes { trailing: usize },
    #[error("at {path}: expected {expected}, found {found}")]
    Mismatch { path: String, expected: String, found: String },
    #[error("at {path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// Decodes a msgpack DynamicValue of type `typ`.
pub fn decode_msgpack(bytes: &[u8], typ: &Type) -> Result<Value, MsgpackError> {
    let mut reader = bytes;
    let msgpack = rmpv::decode::read_value_with_max_depth(&mut reader, MAX_DEPTH)
        .map_err(|error| MsgpackError::Malformed(error.to_string()))?;
    if !reader.is_empty() {
        return Err(MsgpackError::TrailingBytes { trailing: reader.len() });
    }
    from_msgpack(&msgpack, typ, &AttributePath::root())
}

/// Encodes `value` as a msgpack DynamicValue of type `typ`. Fails when the
/// value does not have that type (a provider bug worth naming precisely).
pub fn encode_msgpack(value: &Value, typ: &Type) -> Result<Vec<u8>, MsgpackError> {
    let msgpack = to_msgpack(value, typ, &AttributePath::root())?;
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &msgpack).map_err(|error| MsgpackError::Malformed(error.to_string()))?;
    Ok(bytes)
}

pub(crate) fn number_to_msgpack(number: &Number) -> Msgpack {
    match number.wire_form() {
        WireNumber::Int(int) => Msgpack::from(int),
        WireNumber::Float(float) => Msgpack::F64(float),
        WireNumber::Text(text) => Msgpack::from(text),
    }
}

pub(crate) fn number_from_msgpack(msgpack: &Msgpack) -> Option<Number> {
    match msgpack {
        Msgpack::Integer(int) => match (int.as_i64(), int.as_u64()) {
            (Some(signed), _) => Some(Number::from(signed)),
            (None, Some(unsigned)) => Some(Number::from(unsigned)),
            _ => None,
        },
        Msgpack::F32(float) => Some(Number::from_f64(f64::from(*float))),
        Msgpack::F64(float) if float.is_finite() => Some(Number::from_f64(*float)),
        Msgpack::String(text) => text.as_str().and_then(Number::parse),
        _ => None,
    }
}

fn mismatch(path: &AttributePath, expected: &Type, found: &Msgpack) -> MsgpackError {
    let found = match found {
        Msgpack::Nil => "nil",
        Msgpack::Boolean(_) => "a boolean",
        Msgpack::Integer(_) | Msgpack::F32(_) | Msgpack::F64(_) => "a number",
        Msgpack::String(_) => "a string",
        Msgpack::Binary(_) => "binary data",
        Msgpack::Array(_) => "an array",
        Msgpack::Map(_) => "a map",
        Msgpack::Ext(_, _) => "an extension value",
    };
    MsgpackError::Mismatch { path: path.to_string(), expected: expected.to_json().to_string(), found: found.to_owned() }
}

fn from_msgpack(msgpack: &Msgpack, typ: &Type, path: &AttributePath) -> Result<Value, MsgpackError> {
    match (msgpack, typ) {
        (Msgpack::Nil, _) => Ok(Value::Null),
        (Msgpack::Ext(UNKNOWN_EXT, _), _) => Ok(Value::unknown()),
        (Msgpack::Ext(REFINED_UNKNOWN_EXT, payload), _) => Ok(Value::Unknown(Refinements::from_payload(payload))),
        (Msgpack::Boolean(flag), Type::Bool) => Ok(Value::Bool(*flag)),
        (Msgpack::String(text), Type::String) => match text.as_str() {
            Some(text) => Ok(Value::String(text.to_owned())),
            None => Err(invalid(path, "string is not valid UTF-8")),
        },
        (_, Type::Number) => {
            number_from_msgpack(msgpack).map(Value::Number).ok_or_else(|| mismatch(path, typ, msgpack))
        }
        (Msgpack::Array(items), Type::List(element) | Type::Set(element)) => {
            let items = decode_items(items, |_| element, path)?;
            Ok(if matches!(typ, Type::List(_)) { Value::List(items) } else { Value::Set(items) })
        }
        (Msgpack::Array(items), Type::Tuple(elements)) => {
            if items.len() != elements.len() {
                return Err(invalid(path, &format!("tuple has {} elements, type has {}", items.len(), elements.len())));
            }
            decode_items(items, |index| &elements[index], path).map(Value::Tuple)
        }
        (Msgpack::Map(entries), Type::Map(element)) => {
            let mut map = std::collections::BTreeMap::new();
            for (key, item) in entries {
                let key = map_key(key, path)?;
                let item = from_msgpack(item, element, &path.clone().key(key))?;
                map.insert(key.to_owned(), item);
            }
            Ok(Value::Map(map))
        }
        (Msgpack::Map(entries), Type::Object(attribute_types)) => {
            let mut attributes = std::collections::BTreeMap::new();
            for (key, item) in entries {
                let name = map_key(key, path)?;
                let Some(attribute_type) = attribute_types.get(name) else {
                    return Err(invalid(path, &format!("unsupported attribute {name:?}")));
                };
                let item = from_msgpack(item, attribute_type, &path.clone().attribute(name))?;
                attributes.insert(name.to_owned(), item);
            }
            // Absent attributes are null, as in Terraform's own decoder.
            for name in attribute_types.keys() {
                attributes.entry(name.clone()).or_insert(Value::Null);
            }
            Ok(Value::Object(attributes))
        }
        (Msgpack::Array(pair), Type::Dynamic) if pair.len() == 2 => {
            let type_json = match &pair[0] {
                Msgpack::Binary(bytes) => bytes.as_slice(),
                Msgpack::String(text) => text.as_bytes(),
                other => return Err(mismatch(path, &Type::String, other)),
            };
            let concrete = Type::from_json_bytes(type_json)
                .map_err(|error| invalid(path, &format!("dynamic value type: {error}")))?;
            if concrete == Type::Dynamic {
                return Err(invalid(path, "dynamic value declares type dynamic"));
            }
            from_msgpack(&pair[1], &concrete, path)
        }
        _ => Err(mismatch(path, typ, msgpack)),
    }
}

fn decode_items<'t>(
    items: &[Msgpack],
    element_type: impl Fn(usize) -> &'t Type,
    path: &AttributePath,
) -> Result<Vec<Value>, MsgpackError> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let item_path = path.clone().index(i64::try_from(index).unwrap_or(i64::MAX));
            from_msgpack(item, element_type(index), &item_path)
        })
        .collect()
}

fn map_key<'a>(key: &'a Msgpack, path: &AttributePath) -> Result<&'a str, MsgpackError> {
    key.as_str().ok_or_else(|| invalid(path, "map key is not a UTF-8 string"))
}

fn invalid(path: &AttributePath, reason: &str) -> MsgpackError {
    MsgpackError::Invalid { path: path.to_string(), reason: reason.to_owned() }
}

fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Unknown(_) => "unknown",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::List(_) => "a list",
        Value::Set(_) => "a set",
        Value::Map(_) => "a map",
        Value::Object(_) => "an object",
        Value::Tuple(_) => "a tuple",
    }
}

fn to_msgpack(value: &Value, typ: &Type, path: &AttributePath) -> Result<Msgpack, MsgpackError> {
    let type_mismatch = || MsgpackError::Mismatch {
        path: path.to_string(),
        expected: typ.to_json().to_string(),
        found: value_kind(value).to_owned(),
    };
    let encode_items = |items: &[Value], element_types: &[&Type]| {
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                // One type for all elements of a collection, one per tuple element.
                let item_type = element_types.get(index).or(element_types.first()).ok_or_else(type_mismatch)?;
                let item_path = path.clone().index(i64::try_from(index).unwrap_or(i64::MAX));
                to_msgpack(item, item_type, &item_path)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Msgpack::Array)
    };
    match (value, typ) {
        (Value::Null, _) => Ok(Msgpack::Nil),
        (Value::Unknown(refinements), _) => {
            let (ext, payload) = refinements.to_extension();
            Ok(Msgpack::Ext(ext, payload))
        }
        (_, Type::Dynamic) => {
            let concrete = value.infer_type();
            let inner = to_msgpack(value, &concrete, path)?;
            Ok(Msgpack::Array(vec![Msgpack::Binary(concrete.to_json_bytes()), inner]))
        }
        (Value::Bool(flag), Type::Bool) => Ok(Msgpack::Boolean(*flag)),
        (Value::Number(number), Type::Number) => Ok(number_to_msgpack(number)),
        (Value::String(text), Type::String) => Ok(Msgpack::from(text.as_str())),
        (Value::List(items), Type::List(element)) | (Value::Set(items), Type::Set(element)) => {
            encode_items(items, &[element.as_ref()])
        }
        (Value::Tuple(items), Type::Tuple(elements)) if items.len() == elements.len() => {
            encode_items(items, &elements.iter().collect::<Vec<_>>())
        }
        (Value::Map(entries), Type::Map(element)) => entries
            .iter()
            .map(|(key, item)| {
                let item = to_msgpack(item, element, &path.clone().key(key))?;
                Ok((Msgpack::from(key.as_str()), item))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Msgpack::Map),
        (Value::Object(attributes), Type::Object(attribute_types)) => {
            if let Some(extra) = attributes.keys().find(|name| !attribute_types.contains_key(*name)) {
                return Err(invalid(path, &format!("attribute {extra:?} is not in the schema")));
            }
            attribute_types
                .iter()
                .map(|(name, attribute_type)| {
                    let item = attributes.get(name).unwrap_or(&Value::Null);
                    let item = to_msgpack(item, attribute_type, &path.clone().attribute(name))?;
                    Ok((Msgpack::from(name.as_str()), item))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Msgpack::Map)
        }
        _ => Err(type_mismatch()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn round_trip(value: &Value, typ: &Type) {
        let bytes = encode_msgpack(value, typ);
        let decoded = bytes.as_deref().map(|bytes| decode_msgpack(bytes, typ));
        assert_eq!(decoded, Ok(Ok(value.clone())), "type {}", typ.to_json());
    }

    #[test]
    fn every_shape_round_trips() {
        let strings = || vec![Value::from("a"), Value::from("b")];
        let cases = [
            (Value::Null, Type::String),
            (Value::unknown(), Type::Number),
            (Value::Unknown(Refinements::default().with_not_null()), Type::String),
            (Value::Bool(true), Type::Bool),
            (Value::from(-7), Type::Number),
            (Value::number(2.5), Type::Number),
            (Value::Number(Number::from(u64::MAX)), Type::Number),
            (Value::from("héllo"), Type::String),
            (Value::List(strings()), Type::list(Type::String)),
            (Value::Set(strings()), Type::set(Type::String)),
            (Value::Map(BTreeMap::from([("k".to_owned(), Value::unknown())])), Type::map(Type::Number)),
            (
                Value::Tuple(vec![Value::from("x"), Value::Null, Value::Bool(false)]),
                Type::Tuple(vec![Type::String, Type::Number, Type::Bool]),
            ),
            (
                Value::object([("a", Value::from("x")), ("b", Value::List(vec![]))]),
                Type::object([("a", Type::String), ("b", Type::list(Type::Bool))]),
            ),
            (Value::object([("inner", Value::from("x"))]), Type::Dynamic),
            (Value::Null, Type::Dynamic),
            (Value::unknown(), Type::Dynamic),
        ];
        for (value, typ) in &cases {
            round_trip(value, typ);
        }
    }

    #[test]
    fn plain_unknown_is_fixext1_type_zero() {
        assert_eq!(encode_msgpack(&Value::unknown(), &Type::String), Ok(vec![0xd4, 0, 0]));
        // Any payload length of extension 0 reads as unknown.
        assert_eq!(decode_msgpack(&[0xc7, 0, 0], &Type::Bool), Ok(Value::unknown()));
    }

    #[test]
    fn dynamic_values_carry_their_type() {
        let bytes = encode_msgpack(&Value::from("x"), &Type::Dynamic).unwrap_or_default();
        // fixarray(2), bin8 of length 8 holding "string", fixstr "x"
        assert_eq!(bytes[..3], [0x92, 0xc4, 8]);
        assert_eq!(&bytes[3..11], br#""string""#);
    }

    #[test]
    fn missing_object_attributes_decode_as_null() {
        let typ = Type::object([("a", Type::String), ("b", Type::Number)]);
        let bytes = [0x81, 0xa1, b'a', 0xa1, b'x'];
        let expected = Value::object([("a", Value::from("x")), ("b", Value::Null)]);
        assert_eq!(decode_msgpack(&bytes, &typ), Ok(expected));
    }

    #[test]
    fn bad_input_is_an_error_with_a_path() {
        let typ = Type::object([("port", Type::Number)]);
        let bytes = [0x81, 0xa4, b'p', b'o', b'r', b't', 0xa2, b'h', b'i'];
        let error = decode_msgpack(&bytes, &typ).err().map(|error| error.to_string());
        assert_eq!(error.as_deref(), Some(r#"at port: expected "number", found a string"#));
        assert!(decode_msgpack(&[0x81, 0xa1, b'z', 0xc0], &typ).is_err());
        assert!(decode_msgpack(&[0xc0, 0xc0], &typ).is_err());
        assert!(decode_msgpack(&[0x92], &typ).is_err());
        assert!(decode_msgpack(&[0xc7, 1, 5, 0], &typ).is_err());
    }

    #[test]
    fn deep_nesting_is_rejected_not_a_stack_overflow() {
        let bytes = vec![0x91; 100_000];
        assert!(decode_msgpack(&bytes, &Type::Dynamic).is_err());
    }

    #[test]
    fn encoding_a_value_of_the_wrong_type_names_the_path() {
        let typ = Type::object([("name", Type::String)]);
        let value = Value::object([("name", Value::from(1))]);
        let error = encode_msgpack(&value, &typ).err().map(|error| error.to_string());
        assert_eq!(error.as_deref(), Some(r#"at name: expected "string", found a number"#));
        let extra = Value::object([("nmae", Value::from("x"))]);
        assert!(encode_msgpack(&extra, &typ).is_err());
    }

    #[test]
    fn big_numbers_travel_as_decimal_strings() {
        let big = Value::Number(Number::parse("1e400").unwrap_or_else(|| Number::from(0)));
        round_trip(&big, &Type::Number);
        let bytes = [0xa3, b'1', b'.', b'5'];
        assert_eq!(decode_msgpack(&bytes, &Type::Number), Ok(Value::number(1.5)));
    }
}
