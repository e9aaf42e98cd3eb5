//! Terraform values as Rust types, one attribute at a time. Models decode a whole object
//! through [`Object`] and encode it back with [`Field::encode`], so that attribute names
//! appear in one decode and one encode, and what planning adds (values known only after
//! apply) is a state of its own rather than a missing value.

use std::collections::BTreeMap;

use tfplugin::{AttributePath, Diagnostic, Value};

/// One attribute's value as Terraform sent it.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<T> {
    /// Left out of the configuration, or not set yet.
    Null,
    /// Known only after apply, in whole or in part. Kept as Terraform sent it, so that
    /// encoding gives back exactly that: its known parts and refinements included.
    Unknown(Value),
    Known(T),
}

impl<T> Field<T> {
    /// A plain unknown, for computed values the plan cannot know.
    pub fn unknown() -> Self {
        Field::Unknown(Value::unknown())
    }

    pub fn known(&self) -> Option<&T> {
        match self {
            Field::Known(value) => Some(value),
            Field::Null | Field::Unknown(_) => None,
        }
    }

    pub fn into_known(self) -> Option<T> {
        match self {
            Field::Known(value) => Some(value),
            Field::Null | Field::Unknown(_) => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Field::Null)
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Field::Unknown(_))
    }

    /// A computed value the configuration left out: unknown until plan knows it.
    pub fn unknown_when_null(&mut self) {
        if self.is_null() {
            *self = Field::unknown();
        }
    }

    /// The value, with `default` for null; `None` while it is unknown.
    pub fn or_when_null(self, default: impl FnOnce() -> T) -> Option<T> {
        match self {
            Field::Known(value) => Some(value),
            Field::Null => Some(default()),
            Field::Unknown(_) => None,
        }
    }
}

impl<T> From<Option<T>> for Field<T> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Field::Null, Field::Known)
    }
}

/// A Rust type an attribute decodes to. Values arrive typed by the schema, so a known
/// value has the schema's shape; `decode` fails only where the Rust type is narrower
/// (a number that is not a whole one).
pub trait Codec: Sized {
    /// What a value must be, for the message when it is not: "a whole number".
    const EXPECTED: &'static str;
    fn decode(value: &Value) -> Option<Self>;
    fn encode(&self) -> Value;
}

impl Codec for String {
    const EXPECTED: &'static str = "a string";
    fn decode(value: &Value) -> Option<Self> {
        value.as_str().map(str::to_owned)
    }
    fn encode(&self) -> Value {
        Value::from(self.as_str())
    }
}

impl Codec for i64 {
    const EXPECTED: &'static str = "a whole number";
    fn decode(value: &Value) -> Option<Self> {
        value.as_number().and_then(tfplugin::Number::as_i64)
    }
    fn encode(&self) -> Value {
        Value::from(*self)
    }
}

impl Codec for Vec<String> {
    const EXPECTED: &'static str = "a list of strings";
    fn decode(value: &Value) -> Option<Self> {
        match value {
            Value::List(items) => items.iter().map(String::decode).collect(),
            _ => None,
        }
    }
    fn encode(&self) -> Value {
        Value::List(self.iter().map(String::encode).collect())
    }
}

impl Codec for BTreeMap<String, String> {
    const EXPECTED: &'static str = "a map of strings";
    fn decode(value: &Value) -> Option<Self> {
        match value {
            Value::Map(entries) => entries.iter().map(|(k, v)| Some((k.clone(), String::decode(v)?))).collect(),
            _ => None,
        }
    }
    fn encode(&self) -> Value {
        Value::Map(self.iter().map(|(k, v)| (k.clone(), v.encode())).collect())
    }
}

impl<T: Codec> Field<T> {
    /// Decodes `value`, absent counting as null; `path` names it in the error.
    pub fn decode(value: Option<&Value>, path: impl FnOnce() -> AttributePath) -> Result<Self, ShapeError> {
        match value {
            None | Some(Value::Null) => Ok(Field::Null),
            Some(value) if !value.is_wholly_known() => Ok(Field::Unknown(value.clone())),
            Some(value) => T::decode(value).map(Field::Known).ok_or_else(|| ShapeError {
                path: path(),
                expected: T::EXPECTED,
                value: shown(value),
            }),
        }
    }

    pub fn encode(&self) -> Value {
        match self {
            Field::Null => Value::Null,
            Field::Unknown(value) => value.clone(),
            Field::Known(value) => value.encode(),
        }
    }
}

/// A known value that does not fit the model's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{path}` must be {expected}, not {value}.")]
pub struct ShapeError {
    pub path: AttributePath,
    pub expected: &'static str,
    /// The value as given, for the message.
    pub value: String,
}

fn shown(value: &Value) -> String {
    match value {
        Value::Number(number) => number.to_string(),
        Value::String(text) => format!("{text:?}"),
        other => format!("{other:?}"),
    }
}

impl From<ShapeError> for Diagnostic {
    fn from(error: ShapeError) -> Self {
        Diagnostic::error("Invalid value", error.to_string()).at(error.path.clone())
    }
}

/// Reads the attributes of an object value (a configuration, plan or state, or a nested
/// object), naming each by its path in errors.
#[derive(Debug, Clone)]
pub struct Object<'a> {
    value: &'a Value,
    path: AttributePath,
}

impl<'a> Object<'a> {
    /// A whole resource's value. A null value (no prior state) reads as all null.
    pub fn root(value: &'a Value) -> Self {
        Object { value, path: AttributePath::root() }
    }

    /// The object attribute or single nested block `name`, null when absent.
    pub fn nested(&self, name: &str) -> Object<'a> {
        static NULL: Value = Value::Null;
        Object { value: self.value.get(name).unwrap_or(&NULL), path: self.path.clone().attribute(name) }
    }

    pub fn field<T: Codec>(&self, name: &str) -> Result<Field<T>, ShapeError> {
        Field::decode(self.value.get(name), || self.path.clone().attribute(name))
    }

    /// Whether the object itself is null, or not wholly known.
    pub fn shape(&self) -> Field<()> {
        match self.value {
            Value::Null => Field::Null,
            value if !value.is_wholly_known() => Field::Unknown(value.clone()),
            _ => Field::Known(()),
        }
    }
}
