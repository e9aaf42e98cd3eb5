//! Terraform numbers are arbitrary precision. Most are small integers
//! (ports, sizes, counts), so they are kept as `i64`; fractional values as
//! `f64`; anything else as the exact decimal text Terraform sent, so nothing
//! is rounded on the way through the provider.

use std::fmt;

/// A Terraform number. Equality is numeric between the `i64` and `f64`
/// forms (construction normalises integral floats to `i64`).
#[derive(Debug, Clone)]
pub struct Number(Repr);

#[derive(Debug, Clone)]
enum Repr {
    Int(i64),
    Float(f64),
    /// Exact decimal text for values outside `i64` that `f64` would round.
    Decimal(String),
}

impl Number {
    /// Floats that hold an integer in `i64` range become integers, so that
    /// `8080.0` from one encoder equals `8080` from another.
    pub fn from_f64(float: f64) -> Self {
        // 2^63 is exactly representable; values at or above it do not fit.
        const I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;
        if float.fract() == 0.0 && (-I64_LIMIT..I64_LIMIT).contains(&float) {
            #[allow(clippy::cast_possible_truncation)]
            return Number(Repr::Int(float as i64));
        }
        Number(Repr::Float(float))
    }

    /// Parses Terraform's decimal text form (`"-12"`, `"3.5e10"`). Returns
    /// `None` for anything that is not a finite decimal number.
    pub fn parse(text: &str) -> Option<Self> {
        if !is_decimal_syntax(text) {
            return None;
        }
        if let Ok(int) = text.parse::<i64>() {
            return Some(Number(Repr::Int(int)));
        }
        let float: f64 = text.parse().ok()?;
        if !float.is_finite() {
            return Some(Number(Repr::Decimal(text.to_owned())));
        }
        // Keep the text when the float would not print back to the same
        // value: precision beyond f64 is the reason Terraform sent a string.
        if float.to_string().parse::<f64>().ok() == Some(float) && exact_in_f64(text, float) {
            Some(Number::from_f64(float))
        } else {
            Some(Number(Repr::Decimal(text.to_owned())))
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match &self.0 {
            Repr::Int(int) => Some(*int),
            _ => None,
        }
    }

    /// Lossy for decimals beyond f64 precision.
    pub fn as_f64(&self) -> f64 {
        match &self.0 {
            #[allow(clippy::cast_precision_loss)]
            Repr::Int(int) => *int as f64,
            Repr::Float(float) => *float,
            Repr::Decimal(text) => text.parse().unwrap_or(f64::NAN),
        }
    }

    pub(crate) fn wire_form(&self) -> WireNumber<'_> {
        match &self.0 {
            Repr::Int(int) => WireNumber::Int(*int),
            Repr::Float(float) => WireNumber::Float(*float),
            Repr::Decimal(text) => WireNumber::Text(text),
        }
    }
}

/// How a number is written on the wire.
pub(crate) enum WireNumber<'a> {
    Int(i64),
    Float(f64),
    Text(&'a str),
}

fn is_decimal_syntax(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let mut parts = mantissa.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next().unwrap_or("");
    let digits_ok = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    let mantissa_ok = (!whole.is_empty() || !fraction.is_empty()) && digits_ok(whole) && digits_ok(fraction);
    let exponent_ok = exponent.is_none_or(|exp| {
        let digits = exp.strip_prefix(['-', '+']).unwrap_or(exp);
        !digits.is_empty() && digits_ok(digits)
    });
    mantissa_ok && exponent_ok
}

/// Whether `float` represents the decimal `text` exactly: true for short
/// decimals (at most 15 significant digits always round-trip through f64).
fn exact_in_f64(text: &str, float: f64) -> bool {
    let significant = text
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .bytes()
        .filter(u8::is_ascii_digit)
        .skip_while(|digit| *digit == b'0')
        .count();
    significant <= 15 || float.to_string() == text
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Int(a), Repr::Int(b)) => a == b,
            (Repr::Decimal(a), Repr::Decimal(b)) => a == b,
            (Repr::Decimal(_), _) | (_, Repr::Decimal(_)) => false,
            _ => self.as_f64() == other.as_f64(),
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Int(int) => write!(formatter, "{int}"),
            Repr::Float(float) => write!(formatter, "{float}"),
            Repr::Decimal(text) => formatter.write_str(text),
        }
    }
}

impl From<i64> for Number {
    fn from(int: i64) -> Self {
        Number(Repr::Int(int))
    }
}

impl From<i32> for Number {
    fn from(int: i32) -> Self {
        Number(Repr::Int(i64::from(int)))
    }
}

impl From<u32> for Number {
    fn from(int: u32) -> Self {
        Number(Repr::Int(i64::from(int)))
    }
}

impl From<u64> for Number {
    fn from(int: u64) -> Self {
        match i64::try_from(int) {
            Ok(small) => Number(Repr::Int(small)),
            Err(_) => Number(Repr::Decimal(int.to_string())),
        }
    }
}

impl From<f64> for Number {
    fn from(float: f64) -> Self {
        Number::from_f64(float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_floats_equal_integers() {
        assert_eq!(Number::from_f64(8080.0), Number::from(8080));
        assert_eq!(Number::from_f64(8080.0).as_i64(), Some(8080));
        assert_ne!(Number::from_f64(0.5), Number::from(0));
    }

    #[test]
    fn parse_keeps_precision_beyond_f64() {
        let big = "123456789012345678901234567890";
        let number = Number::parse(big);
        assert_eq!(number.map(|n| n.to_string()).as_deref(), Some(big));
        let precise = "0.1000000000000000000000001";
        assert_eq!(Number::parse(precise).map(|n| n.to_string()).as_deref(), Some(precise));
    }

    #[test]
    fn parse_normalises_ordinary_numbers() {
        assert_eq!(Number::parse("42"), Some(Number::from(42)));
        assert_eq!(Number::parse("2.5").map(|n| n.as_f64()), Some(2.5));
        assert_eq!(Number::parse("1e3"), Some(Number::from(1000)));
        assert_eq!(Number::from(u64::MAX).to_string(), "18446744073709551615");
    }

    #[test]
    fn parse_rejects_non_numbers() {
        for text in ["", "-", "abc", "1.2.3", "1e", "0x10", "NaN", "inf"] {
            assert!(Number::parse(text).is_none(), "{text:?} should not parse");
        }
    }
}
