//! Canonical JSON and digests: object keys sorted at every level, no insignificant white
//! space, strings escaped by serde_json. Plans hold no floating-point numbers, so equal
//! plans give equal bytes. Keys are sorted here rather than relying on serde_json's map
//! type, which another crate in the build could switch to insertion order.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
#[error("cannot serialise the value as canonical JSON: {0}")]
pub struct CanonicalError(#[from] serde_json::Error);

pub fn to_canonical_json<T: Serialize>(value: &T) -> Result<String, CanonicalError> {
    let value = serde_json::to_value(value)?;
    let mut out = String::new();
    write_value(&value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut String) -> Result<(), CanonicalError> {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k)?);
                out.push(':');
                write_value(v, out)?;
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(v, out)?;
            }
            out.push(']');
        }
        scalar => out.push_str(&serde_json::to_string(scalar)?),
    }
    Ok(())
}

/// `sha256:` and the lowercase hex SHA-256 of the bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in hash {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_does_not_change_the_bytes() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"d":[1,"x\"y"],"c":null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"c":null,"d":[1,"x\"y"]},"b":1}"#).unwrap();
        assert_eq!(to_canonical_json(&a).unwrap(), to_canonical_json(&b).unwrap());
        assert_eq!(to_canonical_json(&a).unwrap(), r#"{"a":{"c":null,"d":[1,"x\"y"]},"b":1}"#);
        assert_eq!(sha256_digest(b"abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
