//! Refinements of unknown values (msgpack extension 12): what Terraform
//! already knows about a value it cannot know yet, e.g. "not null" or
//! "starts with `https://`".
//!
//! The payload is a msgpack map keyed by small integers. Keys this code does
//! not understand, and payloads it cannot parse, are never an error: the raw
//! bytes are kept and written back unchanged, so a newer Terraform's
//! refinements survive a round trip through an older provider.

use rmpv::Value as Msgpack;

use super::Number;

/// Extension type of a plain unknown value.
pub(crate) const UNKNOWN_EXT: i8 = 0;
/// Extension type of an unknown value with refinements.
pub(crate) const REFINED_UNKNOWN_EXT: i8 = 12;

const KEY_NULLNESS: i64 = 1;
const KEY_STRING_PREFIX: i64 = 2;
const KEY_NUMBER_LOWER: i64 = 3;
const KEY_NUMBER_UPPER: i64 = 4;
const KEY_LENGTH_LOWER: i64 = 5;
const KEY_LENGTH_UPPER: i64 = 6;

/// What is known about an unknown value. `Default` is "nothing".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Refinements {
    not_null: bool,
    string_prefix: Option<String>,
    number_lower: Option<(Number, bool)>,
    number_upper: Option<(Number, bool)>,
    length_lower: Option<u64>,
    length_upper: Option<u64>,
    /// The payload exactly as Terraform sent it; re-encoded verbatim.
    raw: Option<Vec<u8>>,
}

impl Refinements {
    /// Decodes an extension-12 payload. Never fails: what cannot be read is
    /// simply not exposed, and the bytes are kept for re-encoding.
    pub(crate) fn from_payload(payload: &[u8]) -> Self {
        let mut refinements = Refinements::default();
        let mut reader = payload;
        let Ok(Msgpack::Map(entries)) = rmpv::decode::read_value_with_max_depth(&mut reader, 8) else {
            refinements.raw = Some(payload.to_vec());
            return refinements;
        };
        for (key, value) in entries {
            match key.as_i64() {
                Some(KEY_NULLNESS) => refinements.not_null = value.as_bool() == Some(false),
                Some(KEY_STRING_PREFIX) => {
                    refinements.string_prefix = value.as_str().map(str::to_owned);
                }
                Some(KEY_NUMBER_LOWER) => refinements.number_lower = number_bound(&value),
                Some(KEY_NUMBER_UPPER) => refinements.number_upper = number_bound(&value),
                Some(KEY_LENGTH_LOWER) => refinements.length_lower = value.as_u64(),
                Some(KEY_LENGTH_UPPER) => refinements.length_upper = value.as_u64(),
                _ => {}
            }
        }
        // Keep the raw bytes only when the decoded fields would not write
        // them back identically (unknown keys, other key order), so that
        // equal refinements compare equal however they were made.
        if refinements.to_extension() != (REFINED_UNKNOWN_EXT, payload.to_vec()) {
            refinements.raw = Some(payload.to_vec());
        }
        refinements
    }

    /// The extension type and payload to write for this unknown value.
    pub(crate) fn to_extension(&self) -> (i8, Vec<u8>) {
        if let Some(raw) = &self.raw {
            return (REFINED_UNKNOWN_EXT, raw.clone());
        }
        if *self == Refinements::default() {
            // A plain unknown carries one zero byte (fixext 1), as cty writes it.
            return (UNKNOWN_EXT, vec![0]);
        }
        let mut entries = Vec::new();
        if self.not_null {
            entries.push((Msgpack::from(KEY_NULLNESS), Msgpack::from(false)));
        }
        if let Some(prefix) = &self.string_prefix {
            entries.push((Msgpack::from(KEY_STRING_PREFIX), Msgpack::from(prefix.as_str())));
        }
        for (key, bound) in [(KEY_NUMBER_LOWER, &self.number_lower), (KEY_NUMBER_UPPER, &self.number_upper)] {
            if let Some((number, inclusive)) = bound {
                let number = super::msgpack::number_to_msgpack(number);
                let pair = Msgpack::Array(vec![number, Msgpack::from(*inclusive)]);
                entries.push((Msgpack::from(key), pair));
            }
        }
        for (key, bound) in [(KEY_LENGTH_LOWER, self.length_lower), (KEY_LENGTH_UPPER, self.length_upper)] {
            if let Some(length) = bound {
                entries.push((Msgpack::from(key), Msgpack::from(length)));
            }
        }
        let mut payload = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = rmpv::encode::write_value(&mut payload, &Msgpack::Map(entries));
        (REFINED_UNKNOWN_EXT, payload)
    }

    /// The value will not be null once known.
    pub fn not_null(&self) -> bool {
        self.not_null
    }

    pub fn string_prefix(&self) -> Option<&str> {
        self.string_prefix.as_deref()
    }

    /// Lower bound and whether it is inclusive.
    pub fn number_lower_bound(&self) -> Option<&(Number, bool)> {
        self.number_lower.as_ref()
    }

    /// Upper bound and whether it is inclusive.
    pub fn number_upper_bound(&self) -> Option<&(Number, bool)> {
        self.number_upper.as_ref()
    }

    /// Bounds on a collection's length (both inclusive).
    pub fn length_bounds(&self) -> (Option<u64>, Option<u64>) {
        (self.length_lower, self.length_upper)
    }

    /// Refines to "not null". Drops the received raw payload: the fields
    /// become the source of truth once the provider changes them.
    pub fn with_not_null(mut self) -> Self {
        self.not_null = true;
        self.raw = None;
        self
    }

    pub fn with_string_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.string_prefix = Some(prefix.into());
        self.raw = None;
        self
    }
}

fn number_bound(value: &Msgpack) -> Option<(Number, bool)> {
    let pair = value.as_array()?;
    let number = super::msgpack::number_from_msgpack(pair.first()?)?;
    let inclusive = pair.get(1)?.as_bool()?;
    Some((number, inclusive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_are_decoded_and_re_encoded_identically() {
        let original = Refinements::default().with_not_null().with_string_prefix("https://");
        let (ext, payload) = original.to_extension();
        assert_eq!(ext, REFINED_UNKNOWN_EXT);
        let decoded = Refinements::from_payload(&payload);
        assert!(decoded.not_null());
        assert_eq!(decoded.string_prefix(), Some("https://"));
        assert_eq!(decoded.to_extension(), (REFINED_UNKNOWN_EXT, payload));
        assert_eq!(decoded, original);
    }

    #[test]
    fn garbage_payload_is_kept_verbatim() {
        let garbage = vec![0xc1, 0xff, 0x00, 0x17];
        let decoded = Refinements::from_payload(&garbage);
        assert!(!decoded.not_null());
        assert_eq!(decoded.to_extension(), (REFINED_UNKNOWN_EXT, garbage));
    }

    #[test]
    fn unknown_keys_survive_round_trip() {
        let entries = Msgpack::Map(vec![
            (Msgpack::from(1), Msgpack::from(false)),
            (Msgpack::from(99), Msgpack::from("future")),
            (Msgpack::from(3), Msgpack::Array(vec![Msgpack::from(5), Msgpack::from(true)])),
        ]);
        let mut payload = Vec::new();
        let _ = rmpv::encode::write_value(&mut payload, &entries);
        let decoded = Refinements::from_payload(&payload);
        assert!(decoded.not_null());
        assert_eq!(decoded.number_lower_bound(), Some(&(Number::from(5), true)));
        assert_eq!(decoded.to_extension().1, payload);
    }
}
