//! Terraform's type system as Rust data: [`Type`] and [`Value`], plus the
//! wire codecs (`msgpack` for every DynamicValue, `json` for raw state).
//!
//! A value on the wire does not say whether an array is a list, a set or a
//! tuple, so decoding is always directed by the schema's [`Type`].

mod json;
mod msgpack;
mod number;
mod refinements;
mod types;

use std::collections::BTreeMap;

pub use json::{JsonDecodeError, decode_json, decode_json_value};
pub use msgpack::{MsgpackError, decode_msgpack, encode_msgpack};
pub use number::Number;
pub use refinements::Refinements;
pub use types::{Type, TypeError};

/// One Terraform value. Collections keep the shape the schema gave them, so
/// that a value can be re-encoded without losing list/set/tuple distinctions.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// The typed null (an optional attribute left out of the configuration).
    Null,
    /// Not known until apply; refinements narrow what it may become.
    Unknown(Refinements),
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    /// Terraform sends set elements in a canonical order, so keeping them in
    /// a `Vec` in that order makes equal sets compare equal.
    Set(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
    Tuple(Vec<Value>),
}

impl Value {
    /// A plain unknown, as the framework marks computed attributes.
    pub fn unknown() -> Self {
        Value::Unknown(Refinements::default())
    }

    pub fn string(text: impl Into<String>) -> Self {
        Value::String(text.into())
    }

    pub fn number(number: impl Into<Number>) -> Self {
        Value::Number(number.into())
    }

    /// An object from `(attribute name, value)` pairs.
    pub fn object<K: Into<String>>(attributes: impl IntoIterator<Item = (K, Value)>) -> Self {
        Value::Object(attributes.into_iter().map(|(name, value)| (name.into(), value)).collect())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown(_))
    }

    /// True when neither this value nor anything inside it is unknown.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown(_) => false,
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => items.iter().all(Value::is_wholly_known),
            Value::Map(entries) | Value::Object(entries) => entries.values().all(Value::is_wholly_known),
            _ => true,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(flag) => Some(*flag),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<&Number> {
        match self {
            Value::Number(number) => Some(number),
            _ => None,
        }
    }

    /// Attribute of an object value; `None` for non-objects and missing names.
    pub fn get(&self, attribute: &str) -> Option<&Value> {
        match self {
            Value::Object(attributes) => attributes.get(attribute),
            _ => None,
        }
    }

    /// Sets an attribute of an object value; returns false (and does
    /// nothing) when this value is not an object.
    pub fn set(&mut self, attribute: &str, value: Value) -> bool {
        match self {
            Value::Object(attributes) => {
                attributes.insert(attribute.to_owned(), value);
                true
            }
            _ => false,
        }
    }

    /// The path of the first unknown found inside this value, depth first;
    /// used to explain "provider produced an unknown after apply" faults.
    pub fn first_unknown_path(&self) -> Option<crate::AttributePath> {
        use crate::AttributePath;
        match self {
            Value::Unknown(_) => Some(AttributePath::root()),
            Value::List(items) | Value::Tuple(items) | Value::Set(items) => {
                items.iter().enumerate().find_map(|(index, item)| {
                    let inner = item.first_unknown_path()?;
                    let index = i64::try_from(index).unwrap_or(i64::MAX);
                    Some(AttributePath::root().index(index).join(&inner))
                })
            }
            Value::Map(entries) => entries.iter().find_map(|(key, item)| {
                let inner = item.first_unknown_path()?;
                Some(AttributePath::root().key(key).join(&inner))
            }),
            Value::Object(attributes) => attributes.iter().find_map(|(name, item)| {
                let inner = item.first_unknown_path()?;
                Some(AttributePath::root().attribute(name).join(&inner))
            }),
            _ => None,
        }
    }

    /// Best-effort type of a value, for encoding values of `dynamic` type.
    /// Empty collections and nulls give `dynamic` element types.
    pub fn infer_type(&self) -> Type {
        fn element_type(items: &[Value]) -> Type {
            items.iter().find(|item| !item.is_null() && !item.is_unknown()).map_or(Type::Dynamic, Value::infer_type)
        }
        match self {
            Value::Null | Value::Unknown(_) => Type::Dynamic,
            Value::Bool(_) => Type::Bool,
            Value::Number(_) => Type::Number,
            Value::String(_) => Type::String,
            Value::List(items) => Type::list(element_type(items)),
            Value::Set(items) => Type::set(element_type(items)),
            Value::Map(entries) => {
                let items: Vec<Value> = entries.values().cloned().collect();
                Type::map(element_type(&items))
            }
            Value::Object(attributes) => {
                Type::Object(attributes.iter().map(|(name, value)| (name.clone(), value.infer_type())).collect())
            }
            Value::Tuple(items) => Type::Tuple(items.iter().map(Value::infer_type).collect()),
        }
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Self {
        Value::Bool(flag)
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::String(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::String(text)
    }
}

impl From<i64> for Value {
    fn from(number: i64) -> Self {
        Value::Number(Number::from(number))
    }
}

impl From<Number> for Value {
    fn from(number: Number) -> Self {
        Value::Number(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_unknown_path_names_the_nested_attribute() {
        let value = Value::object([
            ("a", Value::from("x")),
            ("b", Value::List(vec![Value::from(1), Value::object([("c", Value::unknown())])])),
        ]);
        let path = value.first_unknown_path().map(|path| path.to_string());
        assert_eq!(path.as_deref(), Some("b[1].c"));
        assert!(!value.is_wholly_known());
    }

    #[test]
    fn infer_type_of_nested_value() {
        let value = Value::object([("tags", Value::Map(BTreeMap::new())), ("n", Value::from(3))]);
        assert_eq!(value.infer_type().to_json().to_string(), r#"["object",{"n":"number","tags":["map","dynamic"]}]"#);
    }
}
