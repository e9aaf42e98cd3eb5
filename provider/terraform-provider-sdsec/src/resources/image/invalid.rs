//! Configuration values the provider refuses, each with the attribute it is.

use tfplugin::{AttributePath, Diagnostic};

use super::{APPLICATION, ENFORCEMENT, app};
use crate::values::ShapeError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Invalid {
    #[error(
        "`enforcement` must be one node's plan from `sdsec_security_policy.<name>.enforcement[\"<node>\"]` (or `sdsec compile --node`); it does not parse as one: {0}."
    )]
    NotAPlan(String),
    #[error("Give the path of the static executable to run.")]
    MissingPath,
    #[error("`application.port` is the port the application listens on in the guest, 1 to 65535; got {0:?}.")]
    Port(Option<i64>),
    #[error("`{attribute}` must be between {min} and {max}, not {value}.")]
    OutOfRange { attribute: &'static str, min: u64, max: u64, value: i64 },
    #[error("`{attribute}` must be one of {}, not `{value}`.", allowed.join(", "))]
    NotOneOf { attribute: &'static str, value: String, allowed: &'static [&'static str] },
    /// A `timeouts` attribute that is not a duration.
    #[error("`{text}` is not a duration; write it as `30s`, `5m`, `1h` or `1m30s`.")]
    Duration { path: AttributePath, text: String },
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// An entry of a unikernel's `peers`.
    #[error("{0}")]
    Peer(engine::peers::PeerError),
}

impl Invalid {
    pub fn summary(&self) -> &'static str {
        match self {
            Invalid::NotAPlan(_) => "Not an enforcement plan",
            Invalid::MissingPath => "Missing application path",
            Invalid::Port(_) => "Invalid application port",
            Invalid::OutOfRange { .. } => "Value out of range",
            Invalid::NotOneOf { .. } => "Invalid value",
            Invalid::Duration { .. } => "Invalid duration",
            Invalid::Shape(_) => "Invalid value",
            Invalid::Peer(_) => "Invalid peer",
        }
    }

    pub fn attribute(&self) -> AttributePath {
        match self {
            Invalid::NotAPlan(_) => AttributePath::attr(ENFORCEMENT),
            Invalid::MissingPath => AttributePath::attr(APPLICATION).attribute(app::PATH),
            Invalid::Port(_) => AttributePath::attr(APPLICATION).attribute(app::PORT),
            Invalid::OutOfRange { attribute, .. } | Invalid::NotOneOf { attribute, .. } => {
                AttributePath::attr(*attribute)
            }
            Invalid::Duration { path, .. } => path.clone(),
            Invalid::Shape(e) => e.path.clone(),
            Invalid::Peer(e) => AttributePath::attr("peers").key(e.node()),
        }
    }
}

impl From<Invalid> for Diagnostic {
    fn from(invalid: Invalid) -> Self {
        Diagnostic::error(invalid.summary(), invalid.to_string()).at(invalid.attribute())
    }
}
