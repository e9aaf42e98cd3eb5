//! Errors of resource operations, and the one place they become Terraform diagnostics:
//! each says what it is about by type (the resource, an engine input, an attribute), and
//! the diagnostic points at that attribute.

use engine::{EngineError, Input};
use tfplugin::{AttributePath, Diagnostic, Diagnostics};

use super::image;

/// What an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The resource as a whole, or the host it runs on.
    Resource,
    /// An input of an image, as the engine names it.
    Input(Input),
    /// One attribute of the configuration.
    Attribute(AttributePath),
}

/// A failed step of an operation: the diagnostic's summary (what failed), its detail
/// (why, and what to do) and its subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{summary}: {detail}")]
pub struct Error {
    pub summary: String,
    pub detail: String,
    pub subject: Subject,
}

impl Error {
    /// An error about the resource as a whole.
    pub fn new(summary: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Error { summary: summary.into(), detail: detail.to_string(), subject: Subject::Resource }
    }

    /// An error about one attribute.
    pub fn at(path: AttributePath, summary: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Error { subject: Subject::Attribute(path), ..Error::new(summary, detail) }
    }

    /// An engine error, about the input the engine says is at fault.
    pub fn engine(summary: impl Into<String>, error: impl Into<EngineError>) -> Self {
        let error = error.into();
        let subject = error.input().map_or(Subject::Resource, Subject::Input);
        Error { subject, ..Error::new(summary, error) }
    }

    /// The attribute the diagnostic points at, if any.
    pub fn attribute(&self) -> Option<AttributePath> {
        match &self.subject {
            Subject::Resource => None,
            Subject::Input(input) => image::input_attribute(*input),
            Subject::Attribute(path) => Some(path.clone()),
        }
    }
}

impl From<Error> for Diagnostic {
    fn from(error: Error) -> Self {
        let attribute = error.attribute();
        let diagnostic = Diagnostic::error(error.summary, error.detail);
        match attribute {
            Some(path) => diagnostic.at(path),
            None => diagnostic,
        }
    }
}

impl From<Error> for Diagnostics {
    fn from(error: Error) -> Self {
        Diagnostic::from(error).into()
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(error: tokio::task::JoinError) -> Self {
        Error::new("Internal error", format!("a background task failed: {error}"))
    }
}

/// Runs host work (files, images, the hypervisor) on the blocking pool, so that it does not
/// stall the runtime that serves Terraform's calls.
pub async fn blocking<T, E>(work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|e| E::from(Error::from(e)))?
}
