//! Diagnostics are data: a stable code, a message, where it is and how to fix it.
//! Rendering (source snippets, colours) happens at the edge, in the CLI or the provider.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::path::YamlPath;
use crate::source::{Source, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $severity:ident, $summary:literal; )*) => {
        /// Stable diagnostic codes. A code is never reused for another meaning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            pub const fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity,)* }
            }

            /// One line saying what the code means, for the reference documentation.
            pub const fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary,)* }
            }
        }
    };
}

codes! {
    YamlSyntax = "E0101", Error, "the document is not well-formed YAML";
    TooLarge = "E0102", Error, "the document is larger than the size limit";
    TooDeep = "E0103", Error, "the document nests deeper than the depth limit";
    TooManyNodes = "E0104", Error, "the document, with its aliases expanded, has more nodes than the limit";
    DuplicateKey = "E0105", Error, "a mapping has the same key twice";
    NotOneDocument = "E0106", Error, "the stream is empty or holds more than one document";
    ComplexKey = "E0107", Error, "a mapping key is not a plain scalar";

    UnknownKey = "E0201", Error, "a key that this part of the document does not have";
    MissingKey = "E0202", Error, "a required key is missing";
    WrongType = "E0203", Error, "a value of the wrong type (for example a list where a string is expected)";
    InvalidValue = "E0204", Error, "a value outside the allowed set or range";
    UnsupportedVersion = "E0205", Error, "tosca_definitions_version is not one this compiler reads";
    InvalidName = "E0206", Error, "a template, policy or input name that is not an identifier";
    DuplicateName = "E0207", Error, "two templates or two policies share a name";

    UnknownNodeType = "E0301", Error, "a node template names a type that does not exist";
    UnknownPolicyType = "E0302", Error, "a policy names a type that does not exist";
    UnknownProperty = "E0303", Error, "a property that the type does not define";

    InvalidCidr = "E0401", Error, "not an IPv4 or IPv6 network in CIDR notation";
    InvalidPort = "E0402", Error, "not a port (1-65535) or a port range";
    InvalidGlob = "E0403", Error, "not a valid path glob";
    InvalidDuration = "E0404", Error, "not a duration such as 90s, 15m, 24h or 7d";
    InvalidPasswordHash = "E0405", Error, "not an argon2 or bcrypt password hash in PHC/MCF form";
    InvalidTokenHash = "E0406", Error, "not a SHA-256 token hash (64 hex digits); plaintext tokens are refused";
    InvalidPublicKey = "E0407", Error, "not a PEM public key usable with the declared algorithm";
    InvalidMethod = "E0408", Error, "not an HTTP method";

    UnknownTarget = "E0501", Error, "a policy target names no node template";
    UnknownRequirementTarget = "E0502", Error, "a requirement names no node template";
    WrongRequirementTarget = "E0503", Error, "a requirement names a node template of the wrong type";
    UnknownInput = "E0504", Error, "a reference to an input that is not declared";
    UnknownPolicyReference = "E0505", Error, "an adaptation overrides a policy that does not exist";
    WrongTargetType = "E0506", Error, "a policy targets a node template its type does not apply to";

    MissingInput = "E0601", Error, "a required input has no value and no default";
    InputConstraint = "E0602", Error, "an input value violates the input's constraints";
    InputType = "E0603", Error, "an input value does not have the input's type";
    UndeclaredInput = "E0604", Error, "a value was given for an input the document does not declare";

    PolicyConflict = "E0701", Error, "policies of one type on one target that cannot be merged";
    InconsistentPolicy = "E0702", Error, "properties of one policy that contradict each other";
    InvalidAdaptation = "E0703", Error, "an adaptation whose overrides cannot be applied";

    TrustTooLow = "E0801", Error, "the host's trust level is below the isolation policy's min_trust";
    TenantNotAllowed = "E0802", Error, "the host's tenant is not among the tenants the isolation policy allows";
    HostNotDedicated = "E0803", Error, "a dedicated_host requirement on a host that other unikernels share";

    UnknownRole = "W0901", Warning, "an authorization rule names a role that no principal has";
    NoTargets = "W0902", Warning, "a policy applies to no unikernel";
    UnusedInput = "W0903", Warning, "an input is declared but never used";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Where a diagnostic points in a source document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: Arc<str>,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// The YAML path of the offending value; empty for problems with the whole document.
    #[serde(serialize_with = "serialize_display")]
    pub path: YamlPath,
    pub location: Option<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

fn serialize_display<S: serde::Serializer, T: fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl Diagnostic {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            severity: code.severity(),
            message: message.into(),
            path: YamlPath::root(),
            location: None,
            hint: None,
        }
    }

    pub fn at(mut self, source: &Source, span: Span, path: &YamlPath) -> Self {
        let (line, column) = source.line_col(span.start);
        self.location = Some(Location { file: source.name.clone(), line, column, span });
        self.path = path.clone();
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// One line: `file:line:col: error[E0401] message (at path)`, then the hint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{}:{}:{}: ", loc.file, loc.line, loc.column)?;
        }
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}[{}] {}", self.code, self.message)?;
        if !self.path.is_root() {
            write!(f, " (at {})", self.path)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one source while a stage runs.
#[derive(Debug)]
pub struct Sink<'s> {
    pub source: &'s Source,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'s> Sink<'s> {
    pub fn new(source: &'s Source) -> Self {
        Self { source, diagnostics: Vec::new() }
    }

    pub fn report(&mut self, code: Code, span: Span, path: &YamlPath, message: impl Into<String>) -> &mut Diagnostic {
        let d = Diagnostic::new(code, message).at(self.source, span, path);
        self.diagnostics.push(d);
        let last = self.diagnostics.len() - 1;
        &mut self.diagnostics[last]
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Helper so that `sink.report(...).hint("...")` reads well.
pub trait HintExt {
    fn hint(&mut self, hint: impl Into<String>);
}

impl HintExt for Diagnostic {
    fn hint(&mut self, hint: impl Into<String>) {
        self.hint = Some(hint.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert_eq!(s.len(), 5);
            let expect = if code.severity() == Severity::Error { 'E' } else { 'W' };
            assert!(s.starts_with(expect), "{s} prefix does not match its severity");
        }
    }
}
