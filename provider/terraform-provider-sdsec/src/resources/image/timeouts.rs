//! The `timeouts` block: how long an operation may take, as `30s`, `5m` or `1h`.

use std::time::Duration;

use tfplugin::{Attribute, AttributePath, Block, NestedBlock, Nesting, Value};

use super::Invalid;
use crate::values::{Field, Object, ShapeError};

pub const TIMEOUTS: &str = "timeouts";

/// An operation a resource's `timeouts` block may bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Build and boot until the runtime serves.
    Create,
    /// The graceful stop before the VM is killed.
    Delete,
}

impl Operation {
    /// Its attribute in the block.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Delete => "delete",
        }
    }

    /// How long it may take when the block does not say.
    pub fn default_duration(self) -> Duration {
        match self {
            Operation::Create => Duration::from_secs(300),
            Operation::Delete => Duration::from_secs(30),
        }
    }
}

/// The block's schema, with one attribute per operation and its description.
pub fn block(operations: &[(Operation, &str)]) -> NestedBlock {
    let block = operations.iter().fold(
        Block::new().description("How long operations may take, as `30s`, `5m` or `1h`."),
        |block, (operation, description)| {
            block.attribute(Attribute::string(operation.name()).optional().description(*description))
        },
    );
    NestedBlock::new(TIMEOUTS, Nesting::Single, block)
}

/// The block as given: null when left out, else each operation's value.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    given: Field<Vec<(Operation, Field<String>)>>,
}

impl Timeouts {
    /// A block left out.
    pub fn none() -> Self {
        Timeouts { given: Field::Null }
    }

    /// The block of a resource whose schema has `operations`.
    pub fn decode(object: &Object<'_>, operations: &[Operation]) -> Result<Self, ShapeError> {
        let block = object.nested(TIMEOUTS);
        let given = match block.shape() {
            Field::Null => Field::Null,
            Field::Unknown(Value::Unknown(refinements)) => Field::Unknown(Value::Unknown(refinements)),
            // Known in part or in whole: each attribute keeps its own value.
            Field::Unknown(_) | Field::Known(()) => Field::Known(
                operations.iter().map(|op| Ok((*op, block.field(op.name())?))).collect::<Result<_, ShapeError>>()?,
            ),
        };
        Ok(Timeouts { given })
    }

    pub fn encode(&self) -> Value {
        match &self.given {
            Field::Known(operations) => Value::object(operations.iter().map(|(op, value)| (op.name(), value.encode()))),
            Field::Null => Value::Null,
            Field::Unknown(value) => value.clone(),
        }
    }

    /// How long `operation` may take: as given, else its default; a value that is not a
    /// duration is refused.
    pub fn duration(&self, operation: Operation) -> Result<Duration, Invalid> {
        let text = match &self.given {
            Field::Known(operations) => operations.iter().find(|(op, _)| *op == operation).and_then(|(_, v)| v.known()),
            Field::Null | Field::Unknown(_) => None,
        };
        let Some(text) = text else { return Ok(operation.default_duration()) };
        parse_duration(text).ok_or_else(|| Invalid::Duration {
            path: AttributePath::attr(TIMEOUTS).attribute(operation.name()),
            text: text.clone(),
        })
    }
}

/// `30s`, `5m`, `1h` or a combination such as `1m30s`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits.parse().ok()?;
        digits.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
    }
    (digits.is_empty() && total > 0).then(|| Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        for bad in ["", "5", "m", "5d", "-1s", "0s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_block_decodes_and_encodes_back_unchanged() {
        let ops = [Operation::Create, Operation::Delete];
        for block in [
            Value::Null,
            Value::object([("create", Value::from("1m")), ("delete", Value::Null)]),
            Value::object([("create", Value::unknown()), ("delete", Value::from("5s"))]),
        ] {
            let value = Value::object([(TIMEOUTS, block.clone())]);
            let timeouts = Timeouts::decode(&Object::root(&value), &ops).unwrap();
            assert_eq!(timeouts.encode(), block);
        }
        let value =
            Value::object([(TIMEOUTS, Value::object([("create", Value::from("soon")), ("delete", Value::Null)]))]);
        let timeouts = Timeouts::decode(&Object::root(&value), &ops).unwrap();
        let err = timeouts.duration(Operation::Create).unwrap_err();
        assert_eq!(err.attribute().to_string(), "timeouts.create");
        assert_eq!(timeouts.duration(Operation::Delete), Ok(Duration::from_secs(30)));
    }
}
