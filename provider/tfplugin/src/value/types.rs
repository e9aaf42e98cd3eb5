//! Terraform types and their JSON syntax, the form schemas and function
//! signatures carry on the wire: `"string"`, `["list","number"]`,
//! `["object",{"port":"number"}]`, `["tuple",["string","bool"]]`.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TypeError {
    #[error("type JSON is not valid JSON: {0}")]
    Syntax(String),
    #[error("unknown primitive type {0:?}")]
    UnknownPrimitive(String),
    #[error("unknown type kind {0:?}")]
    UnknownKind(String),
    #[error("type {kind:?} is malformed: {reason}")]
    Malformed { kind: String, reason: &'static str },
    #[error("type JSON must be a string or an array, found {0}")]
    NotAType(String),
}

/// A Terraform type. `Dynamic` is the "any type" placeholder whose values
/// carry their own concrete type on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    Bool,
    Number,
    String,
    Dynamic,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

impl Type {
    pub fn list(element: Type) -> Self {
        Type::List(Box::new(element))
    }

    pub fn set(element: Type) -> Self {
        Type::Set(Box::new(element))
    }

    pub fn map(element: Type) -> Self {
        Type::Map(Box::new(element))
    }

    /// An object type from `(attribute name, type)` pairs.
    pub fn object<K: Into<String>>(attributes: impl IntoIterator<Item = (K, Type)>) -> Self {
        Type::Object(attributes.into_iter().map(|(name, typ)| (name.into(), typ)).collect())
    }

    pub fn to_json(&self) -> Json {
        match self {
            Type::Bool => json!("bool"),
            Type::Number => json!("number"),
            Type::String => json!("string"),
            Type::Dynamic => json!("dynamic"),
            Type::List(element) => json!(["list", element.to_json()]),
            Type::Set(element) => json!(["set", element.to_json()]),
            Type::Map(element) => json!(["map", element.to_json()]),
            Type::Object(attributes) => {
                let attributes: serde_json::Map<String, Json> =
                    attributes.iter().map(|(name, typ)| (name.clone(), typ.to_json())).collect();
                json!(["object", attributes])
            }
            Type::Tuple(elements) => {
                json!(["tuple", elements.iter().map(Type::to_json).collect::<Vec<_>>()])
            }
        }
    }

    /// The bytes that go into `type` fields of schema and function messages.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        self.to_json().to_string().into_bytes()
    }

    pub fn from_json_bytes(bytes: &[u8]) -> Result<Type, TypeError> {
        let json: Json = serde_json::from_slice(bytes).map_err(|error| TypeError::Syntax(error.to_string()))?;
        Type::from_json(&json)
    }

    pub fn from_json(json: &Json) -> Result<Type, TypeError> {
        match json {
            Json::String(name) => match name.as_str() {
                "bool" => Ok(Type::Bool),
                "number" => Ok(Type::Number),
                "string" => Ok(Type::String),
                "dynamic" => Ok(Type::Dynamic),
                other => Err(TypeError::UnknownPrimitive(other.to_owned())),
            },
            Json::Array(parts) => composite_from_json(parts),
            other => Err(TypeError::NotAType(other.to_string())),
        }
    }
}

fn composite_from_json(parts: &[Json]) -> Result<Type, TypeError> {
    let kind = parts.first().and_then(Json::as_str).unwrap_or("");
    let malformed = |reason| TypeError::Malformed { kind: kind.to_owned(), reason };
    let argument = parts.get(1).ok_or_else(|| malformed("missing argument"))?;
    match kind {
        "list" | "set" | "map" => {
            if parts.len() != 2 {
                return Err(malformed("takes exactly one element type"));
            }
            let element = Box::new(Type::from_json(argument)?);
            Ok(match kind {
                "list" => Type::List(element),
                "set" => Type::Set(element),
                _ => Type::Map(element),
            })
        }
        "object" => {
            // A third element lists optional attributes in type constraints;
            // schemas never send it, and values do not depend on it.
            if parts.len() > 3 {
                return Err(malformed("too many parts"));
            }
            let attributes = argument.as_object().ok_or_else(|| malformed("attributes must be a JSON object"))?;
            attributes
                .iter()
                .map(|(name, typ)| Ok((name.clone(), Type::from_json(typ)?)))
                .collect::<Result<_, _>>()
                .map(Type::Object)
        }
        "tuple" => {
            if parts.len() != 2 {
                return Err(malformed("takes exactly one list of element types"));
            }
            let elements = argument.as_array().ok_or_else(|| malformed("element types must be a JSON array"))?;
            elements.iter().map(Type::from_json).collect::<Result<_, _>>().map(Type::Tuple)
        }
        other => Err(TypeError::UnknownKind(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> Type {
        let typ = Type::from_json_bytes(text.as_bytes()).unwrap_or(Type::Dynamic);
        assert_eq!(String::from_utf8_lossy(&typ.to_json_bytes()), text);
        typ
    }

    #[test]
    fn primitive_and_composite_types_round_trip() {
        assert_eq!(round_trip(r#""string""#), Type::String);
        assert_eq!(round_trip(r#"["map","string"]"#), Type::map(Type::String));
        assert_eq!(round_trip(r#"["set",["list","bool"]]"#), Type::set(Type::list(Type::Bool)));
        assert_eq!(
            round_trip(r#"["object",{"a":"string","b":["tuple",["number","dynamic"]]}]"#),
            Type::object([("a", Type::String), ("b", Type::Tuple(vec![Type::Number, Type::Dynamic])),])
        );
    }

    #[test]
    fn object_with_optional_attribute_list_is_accepted() {
        let typ = Type::from_json_bytes(br#"["object",{"a":"string"},["a"]]"#);
        assert_eq!(typ, Ok(Type::object([("a", Type::String)])));
    }

    #[test]
    fn malformed_types_are_errors_not_panics() {
        for text in [
            "",
            "42",
            r#""str""#,
            r#"["list"]"#,
            r#"["list","string","bool"]"#,
            r#"["object","a"]"#,
            r#"["tuple",{}]"#,
            r#"["frob","string"]"#,
            r#"[]"#,
        ] {
            assert!(Type::from_json_bytes(text.as_bytes()).is_err(), "{text:?}");
        }
    }
}
